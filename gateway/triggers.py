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
from typing import Any, Iterable

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


class TriggerIndex:
    """Which flow each trigger starts; the first flow listed wins a conflict."""

    def __init__(self, flows: Iterable[tuple[str, dict[str, Any]]]):
        self.keywords: dict[str, str] = {}
        self.referrals: dict[str, str] = {}
        self.single: dict[str, str] = {}       # start / widget / campaign -> flow id
        self.conflicts: list[Problem] = []
        for flow_id, definition in flows:
            # Drafts and definitions being validated may be of any shape (the engine reports
            # it): what is not a list here triggers nothing.
            triggers = definition.get("triggers")
            for n, trig in enumerate(triggers if isinstance(triggers, list) else ()):
                if not isinstance(trig, dict):
                    continue
                kind = trig.get("type")
                path = f"$.triggers[{n}]"
                if kind == "keyword":
                    words = trig.get("any")
                    for k, word in enumerate(words if isinstance(words, list) else ()):
                        self._claim(self.keywords, fold(str(word)), flow_id, f"{path}.any[{k}]",
                                    f"keyword {word!r}")
                elif kind == "referral" and trig.get("ref"):
                    self._claim(self.referrals, str(trig["ref"]), flow_id, f"{path}.ref",
                                f"referral {trig['ref']!r}")
                elif kind in ("start", "widget", "campaign"):
                    self._claim(self.single, kind, flow_id, path, f"the {kind} trigger")

    def _claim(self, table: dict[str, str], key: str, flow_id: str, path: str, what: str) -> None:
        owner = table.setdefault(key, flow_id)
        if owner != flow_id:
            self.conflicts.append(Problem(
                path=path, code="trigger.conflict", severity="warning",
                message=f"{what} of flow {flow_id!r} is already taken by flow {owner!r}; "
                        f"{owner!r} wins"))


def trigger_conflicts(flow_id: str, definition: dict[str, Any],
                      others: Iterable[tuple[str, dict[str, Any]]]) -> list[Problem]:
    """Problems publishing `flow_id` would cause with the tenant's other published flows."""
    rest = [(i, d) for i, d in others if i != flow_id]
    return TriggerIndex(rest + [(flow_id, definition)]).conflicts
