"""Flow triggers, engine-agnostic: what starts which flow, and conflicts between flows.

A flow's top-level `triggers` list holds objects:
  {"type": "keyword", "any": ["soldes", "sales"]}   accent- and case-insensitive, whole message
  {"type": "referral", "ref": "sms-jan"}             a deep link, ad or QR code tag
  {"type": "start"}                                  a contact's message when no flow runs
  {"type": "widget"}                                 the web chat widget was opened
  {"type": "campaign"}                               the flow campaigns start by default
"""
from __future__ import annotations

import functools
import unicodedata
from typing import Any, Iterable, Iterator

from .types import Problem

KINDS = ("keyword", "referral", "start", "widget", "campaign")


def fold(text: str) -> str:
    """Case- and accent-insensitive form, spaces collapsed."""
    # Every text message is folded to look up keywords, and short ones repeat ("oui",
    # "bonjour"): those are remembered; long ones would only fill the cache.
    return _fold_short(text) if len(text) <= 40 else _fold(text)


def _fold(text: str) -> str:
    nfkd = unicodedata.normalize("NFKD", text.casefold())
    return " ".join("".join(c for c in nfkd if not unicodedata.combining(c)).split())


_fold_short = functools.lru_cache(maxsize=4096)(_fold)


# Which flow starts on a trigger several of a tenant's flows have. The store lists a tenant's
# flows by id (SQLite's binary order, which is Python's for these ASCII ids); TriggerIndex
# sorts them again so the rule never rests on a caller's order, and `trigger.conflict`
# warnings name the flow it picks.
RULE = "of the flows sharing a trigger, the one whose id sorts first (ASCII order) starts"


def _claims(definition: Any) -> Iterator[tuple[str, str, str, str]]:
    """(table, key, path, what) for each trigger of a flow: `table` is `keywords`,
    `referrals` or `single`, `key` what a message is looked up by there."""
    # Drafts and definitions being validated may be of any shape (the engine reports it):
    # what is not a list here triggers nothing.
    triggers = definition.get("triggers") if isinstance(definition, dict) else None
    for n, trig in enumerate(triggers if isinstance(triggers, list) else ()):
        if not isinstance(trig, dict):
            continue
        kind = trig.get("type")
        path = f"$.triggers[{n}]"
        if kind == "keyword":
            words = trig.get("any")
            for k, word in enumerate(words if isinstance(words, list) else ()):
                yield "keywords", fold(str(word)), f"{path}.any[{k}]", f"keyword {word!r}"
        elif kind == "referral" and trig.get("ref"):
            yield "referrals", str(trig["ref"]), f"{path}.ref", f"referral {trig['ref']!r}"
        elif kind in ("start", "widget", "campaign"):
            yield "single", kind, path, f"the {kind} trigger"


def _conflict(flow_id: str, rivals: Iterable[str], path: str, what: str) -> Problem:
    """The warning at `path` of flow `flow_id`: `rivals` (other flows) have the same trigger."""
    ids = sorted(set(rivals))
    winner = min(flow_id, ids[0])
    names = ", ".join(repr(i) for i in ids)
    return Problem(path=path, code="trigger.conflict", severity="warning",
                   message=f"{what} of flow {flow_id!r} is also a trigger of flow{'s' * (len(ids) > 1)} "
                           f"{names}; {winner!r} wins: {RULE}")


class TriggerIndex:
    """Which flow each trigger starts; of flows sharing a trigger, the one whose id sorts
    first wins (`RULE`), whatever order `flows` come in."""

    def __init__(self, flows: Iterable[tuple[str, dict[str, Any]]]):
        self.keywords: dict[str, str] = {}
        self.referrals: dict[str, str] = {}
        self.single: dict[str, str] = {}       # start / widget / campaign -> flow id
        self.conflicts: list[Problem] = []     # at each losing flow's trigger (paths of its own)
        tables = {"keywords": self.keywords, "referrals": self.referrals, "single": self.single}
        for flow_id, definition in sorted(flows, key=lambda f: f[0]):
            for table, key, path, what in _claims(definition):
                owner = tables[table].setdefault(key, flow_id)
                if owner != flow_id:
                    self.conflicts.append(_conflict(flow_id, (owner,), path, what))


def trigger_conflicts(flow_id: str, definition: dict[str, Any],
                      others: Iterable[tuple[str, dict[str, Any]]]) -> list[Problem]:
    """Warnings about `flow_id`'s own triggers that other flows of the tenant (`others`:
    their published definitions) have too: one per trigger of `definition`, at its path
    there, naming the flow that starts on it by `RULE`, be it this one or another.
    Conflicts among `others` alone are theirs: they are not reported here."""
    taken: dict[tuple[str, str], set[str]] = {}
    for other, d in others:
        if other != flow_id:
            for table, key, _, _ in _claims(d):
                taken.setdefault((table, key), set()).add(other)
    if not taken:
        return []
    return [_conflict(flow_id, taken[table, key], path, what)
            for table, key, path, what in _claims(definition) if (table, key) in taken]
