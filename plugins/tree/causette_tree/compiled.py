"""A flow prepared for running: templates parsed, matchers normalized, durations in seconds.

`compile` runs once per published version (the gateway caches the result), so a turn does
no parsing at all.
"""
from __future__ import annotations

import contextvars
import logging
import math
import re
import sys
import time
import warnings
from re import _parser as _re_parser   # private, but the one parser of exactly re's syntax
from typing import Any, Callable, Mapping

import msgspec
import regex

from . import model
from .matching import Option
from .template import Lookup, Template, walk_strings

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MAX_DURATION = 366 * 86400     # a year: no session lives longer (tenant session_ttl)


def duration(value: float | str) -> float:
    """Seconds from 90, "90s", "15m", "2h", "1d12h", "1w"."""
    if isinstance(value, (int, float)):
        total = float(value)
    else:
        s = value.replace(" ", "").lower()
        if not s or _DURATION.sub("", s):
            raise ValueError(f"{value!r} is not a duration (examples: 90s, 15m, 2h, 1d12h)")
        total = sum(float(n) * _UNITS[u] for n, u in _DURATION.findall(s))
    if total <= 0:
        raise ValueError("a duration must be positive")
    # "999...9s" reads as infinity, which no timer can hold (and a year outlives any session).
    if not math.isfinite(total) or total > MAX_DURATION:
        raise ValueError("a duration is at most a year (366d)")
    return total


# Identifiers (node ids, targets, choice ids, variable names) and locale codes, interned: every
# tenant's flow then shares one string object per name, as CPython does for the names in code.
# A turn compares and encodes these (dictionary lookups, the session it saves); with thousands
# of tenants loaded, a shared object is in the cache where a tenant's own copy is a trip to
# memory (docs/benchmarks.md, item 12). Texts are left alone.
_IDENTS = frozenset({"id", "next", "then", "else_", "do", "as_", "on_error", "save_as", "node",
                     "flow", "step", "queue", "start", "locale", "var"})


def intern_ids(obj: Any) -> Any:
    """`obj` (a decoded model Struct) with its identifier fields interned, recursively."""
    if isinstance(obj, msgspec.Struct):
        for name in obj.__struct_fields__:
            v = getattr(obj, name)
            if isinstance(v, str):
                if name in _IDENTS and v:
                    setattr(obj, name, sys.intern(v))
            elif isinstance(v, (list, msgspec.Struct)):
                intern_ids(v)
            elif isinstance(v, dict) and name == "branches":      # step outcome -> target
                for k, t in v.items():
                    v[k] = sys.intern(t)
    elif isinstance(obj, list):
        for x in obj:
            if isinstance(x, msgspec.Struct):
                intern_ids(x)
    return obj


class LText:
    """A text in one or several locales, each parsed as a template."""
    __slots__ = ("by_locale", "default", "fixed")

    def __init__(self, text: str | dict[str, str], default_locale: str):
        if isinstance(text, str):
            self.by_locale = {default_locale: Template(text)}
        else:
            self.by_locale = {sys.intern(k): Template(v) for k, v in text.items()}
        self.default = default_locale
        # The text itself when it reads the same for every contact (one locale, no lookup):
        # most texts. A turn then reads this string and nothing else of the text.
        only = next(iter(self.by_locale.values())) if len(self.by_locale) == 1 else None
        self.fixed: str | None = only.literal if only is not None else None

    def pick(self, locale: str) -> Template:
        t = self.by_locale
        if locale in t:
            return t[locale]
        short = locale[:2]
        if short in t:
            return t[short]
        if self.default in t:
            return t[self.default]
        return next(iter(t.values()))

    def all_texts(self) -> list[str]:
        return [tpl.source for tpl in self.by_locale.values()]


def ltext(text: Any, default_locale: str) -> LText | None:
    return None if text is None else LText(text, default_locale)


# --- patterns ------------------------------------------------------------------------------
# Tenants' patterns (input `pattern`, condition `matches`) run on contacts' free text on the
# gateway's one event loop: a pattern that backtracks without end (`^(a|aa)+$` on
# "aaaa...a!") would stall every tenant. The `regex` module can give up on a match after a
# time, which `re` cannot; it reads `re`'s syntax the same way (its version 0).
PATTERN_TIMEOUT = 0.05       # seconds one pattern may run on one text
PATTERN_TURN_BUDGET = 0.2    # seconds all the patterns of a turn may run: a loop repeats them
# regex writes out the body of `x{n}` / `x{n,}` n times when it compiles (re counts instead):
# `a{4294967294}` would fill the memory, `(a{1000}){1000}` takes half a second.
MAX_PATTERN_SIZE = 1_000     # items a pattern may be once its repeats are written out
# `a{e<=1}` is the letters "a{e<=1}" to re but fuzzy matching to regex (another meaning, and
# the slowest part of it): refused, with any brace that could start one (`\{` is a brace).
_FUZZY = re.compile(r"(?:^|[^\\])(?:\\\\)*\{[\s\d<=+]*[eisd]")


class PatternError(ValueError):
    """A pattern that is refused: the message says why, for the validator."""


def pattern(source: str, ignore_case: bool = False) -> "regex.Pattern[str]":
    """A tenant's pattern, for `found`: what `re` accepts and regex reads the same way,
    unless it is too big once written out."""
    try:
        with warnings.catch_warnings():
            # "Possible nested set" (`[[:alpha:]]`): a set of characters to re, a class to regex.
            warnings.simplefilter("error", FutureWarning)
            try:
                re.compile(source, re.I if ignore_case else 0)
            except FutureWarning as exc:
                raise PatternError(f"ambiguous: {exc}; escape the inner `[`") from None
        if _FUZZY.search(source):
            raise PatternError("a brace followed by e, i, s or d (`{e<=1}`) is fuzzy matching here, "
                               "which flows don't offer: write `\\{` for a brace")
        size = _written_out(_re_parser.parse(source))
        if size > MAX_PATTERN_SIZE:
            raise PatternError(f"repeat counts too large: written out, this pattern is {size} items "
                               f"long ({MAX_PATTERN_SIZE} at most)")
        # The compiled flow keeps it: regex's own cache would keep it after the flow is gone.
        return regex.compile(source, regex.V0 | (regex.I if ignore_case else 0), cache_pattern=False)
    except (re.error, regex.error) as exc:
        raise PatternError(f"not a regular expression: {exc}") from None
    except RecursionError:
        raise PatternError("not a regular expression: groups nested too deeply") from None
    except (OverflowError, MemoryError):
        raise PatternError("repeat counts too large") from None


NEVER = regex.compile(r"(?!)")
log = logging.getLogger("causette.tree")


def runtime_pattern(source: str, ignore_case: bool = False) -> "regex.Pattern[str]":
    """`pattern(source)` for a flow being compiled to run: a pattern refused since the flow
    was published matches nothing (the node's retry path runs) instead of losing the node."""
    try:
        return pattern(source, ignore_case)
    except PatternError as exc:
        log.warning("pattern %r refused, matches nothing: %s", source[:100], exc)
        return NEVER


_REPEATS = (_re_parser.MAX_REPEAT, _re_parser.MIN_REPEAT, _re_parser.POSSESSIVE_REPEAT)


def _written_out(items: Any) -> int:
    """The length of a parsed pattern as regex compiles it: a repeat's body once per its minimum."""
    n = 0
    for op, av in items:
        if op in _REPEATS:
            n += max(av[0], 1) * _written_out(av[2])
        elif op is _re_parser.SUBPATTERN:
            n += _written_out(av[3])
        elif op is _re_parser.BRANCH:
            n += sum(_written_out(b) for b in av[1])
        elif op in (_re_parser.ASSERT, _re_parser.ASSERT_NOT):
            n += _written_out(av[1])
        elif op is _re_parser.ATOMIC_GROUP:
            n += _written_out(av)
        elif op is _re_parser.GROUPREF_EXISTS:
            n += _written_out(av[1]) + (_written_out(av[2]) if av[2] else 0)
        else:
            n += 1
    return n


class PatternClock:
    """The pattern time one turn has left, and the turn's context to say when it ran out."""
    __slots__ = ("left", "ctx")

    def __init__(self, ctx: Any) -> None:
        self.left = PATTERN_TURN_BUDGET
        self.ctx = ctx


# The turn's clock, set by the engine around a turn of a flow with patterns: predicates are
# called with variables only.
CLOCK: contextvars.ContextVar[PatternClock | None] = contextvars.ContextVar("pattern_clock", default=None)


def found(find: Callable[..., Any], text: str) -> bool:
    """Whether `find` (a pattern's search or fullmatch) matches `text` in the time left; a
    match that runs out of time is no match, and a `pattern.timeout` event of the turn."""
    clock = CLOCK.get()
    if clock is None:
        budget = PATTERN_TIMEOUT
    elif clock.left <= 0:
        return False             # the match that spent it was recorded
    else:
        budget = min(PATTERN_TIMEOUT, clock.left)
    t0 = time.perf_counter()
    try:
        return find(text, timeout=budget) is not None
    except TimeoutError:
        if clock is not None:
            clock.ctx.record("pattern.timeout", after=round(budget, 3))
        return False
    finally:
        if clock is not None:
            clock.left -= time.perf_counter() - t0


# --- conditions ----------------------------------------------------------------------------
Pred = Callable[[Mapping[str, Any], Mapping[str, Any]], bool]


def _num(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v.strip().replace(",", "."))
        except ValueError:
            return None
    return None


def equal(a: Any, b: Any) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return a.strip().casefold() == b.strip().casefold()
    na, nb = _num(a), _num(b)
    if na is not None and nb is not None:
        return na == nb
    return a == b


def _operand(v: Any) -> Callable[[Mapping[str, Any], Mapping[str, Any]], Any]:
    if isinstance(v, str) and "{{" in v:
        t = Template(v)
        return t.value
    return lambda vars, contact, _v=v: _v


def compile_expr(e: model.Expr) -> Pred:
    """A predicate from the expression form; shape errors are the validator's business."""
    if e.all is not msgspec.UNSET:
        subs = [compile_expr(x) for x in e.all]
        return lambda v, c: all(p(v, c) for p in subs)
    if e.any is not msgspec.UNSET:
        subs = [compile_expr(x) for x in e.any]
        return lambda v, c: any(p(v, c) for p in subs)
    if e.not_ is not msgspec.UNSET:
        sub = compile_expr(e.not_)
        return lambda v, c: not sub(v, c)
    look = Lookup(e.var)
    if e.exists is not msgspec.UNSET:
        want = bool(e.exists)
        return lambda v, c: (look.value(v, c) not in (None, "", [], {})) == want
    if e.eq is not msgspec.UNSET:
        b = _operand(e.eq)
        return lambda v, c: equal(look.value(v, c), b(v, c))
    if e.ne is not msgspec.UNSET:
        b = _operand(e.ne)
        return lambda v, c: not equal(look.value(v, c), b(v, c))
    if e.in_ is not msgspec.UNSET or e.nin is not msgspec.UNSET:
        negate = e.in_ is msgspec.UNSET
        items = [_operand(x) for x in (e.nin if negate else e.in_)]  # type: ignore[union-attr]
        return lambda v, c: any(equal(look.value(v, c), i(v, c)) for i in items) != negate
    if e.contains is not msgspec.UNSET:
        b = _operand(e.contains)

        def contains(v: Mapping[str, Any], c: Mapping[str, Any]) -> bool:
            hay, needle = look.value(v, c), b(v, c)
            if isinstance(hay, list):
                return any(equal(x, needle) for x in hay)
            if isinstance(hay, str) and isinstance(needle, str):
                return needle.casefold() in hay.casefold()
            if isinstance(hay, dict):
                return isinstance(needle, str) and needle in hay    # a list needle: unhashable
            return False
        return contains
    if e.matches is not msgspec.UNSET:
        search = runtime_pattern(e.matches, ignore_case=True).search  # type: ignore[arg-type]
        return lambda v, c: isinstance(x := look.value(v, c), (str, int, float)) and found(search, str(x))
    for op, fn in (("gt", float.__gt__), ("gte", float.__ge__), ("lt", float.__lt__), ("lte", float.__le__)):
        raw = getattr(e, op)
        if raw is not msgspec.UNSET:
            b = _operand(raw)

            def cmp(v: Mapping[str, Any], c: Mapping[str, Any], b=b, fn=fn) -> bool:
                x, y = _num(look.value(v, c)), _num(b(v, c))
                return x is not None and y is not None and fn(x, y)
            return cmp
    return lambda v, c: False


def _matches(e: model.Expr) -> bool:
    if e.matches is not msgspec.UNSET:
        return True
    subs = [*(e.all or ()), *(e.any or ()), *((e.not_,) if e.not_ is not msgspec.UNSET else ())]
    return any(_matches(x) for x in subs)


# --- set values --------------------------------------------------------------------------
MAX_VALUE = 16_384     # characters (and items) a `set` may write in one variable
MAX_DEPTH = 32         # levels of lists and objects in it


def within(v: Any, budget: int = MAX_VALUE, depth: int = MAX_DEPTH) -> int:
    """What is left of `budget` once `v` is counted (strings by length, keys, items and
    other values as 1 each), or -1 when it doesn't fit or nests deeper than `depth`. Stops
    as soon as the budget is spent, so a value doubled turn after turn costs little."""
    if isinstance(v, str):
        return budget - len(v)
    if isinstance(v, list):
        if not depth:
            return -1
        for x in v:
            budget = within(x, budget - 1, depth - 1)
            if budget < 0:
                return -1
        return budget
    if isinstance(v, dict):
        if not depth:
            return -1
        for k, x in v.items():
            budget = within(x, budget - 1 - len(k), depth - 1)
            if budget < 0:
                return -1
        return budget
    return budget - 1


def _grows(tpl: Any) -> bool:
    """A `set` value that can be larger than the flow wrote it: a template with a lookup among
    other parts (`"{{log}} {{answer}}"`), or a list or object holding a lookup. Set in a loop
    it can grow each time round (double, even); a lone `"{{x}}"` only copies a value."""
    if isinstance(tpl, Template):
        return tpl.literal is None and len(tpl.parts) > 1
    if isinstance(tpl, list):
        return any(isinstance(x, Template) and x.literal is None or _grows(x) for x in tpl)
    if isinstance(tpl, dict):
        return _grows(list(tpl.values()))
    return False


# --- nodes ---------------------------------------------------------------------------------
class CNode:
    """A node ready to run. `spec` is the decoded Struct; the rest is precomputed."""
    # What a turn reads first, so that it shares the object's first cache line or two; with
    # thousands of tenants, every other object of its own a turn reads (the Struct, the
    # LText) is one more trip to memory (docs/benchmarks.md, item 15).
    __slots__ = ("type", "said", "route", "next", "fixed_choices", "save_as", "timeout", "media",
                 "spec", "text", "id", "outcome", "options", "titles", "descriptions",
                 "retry_text", "reminder", "seconds", "regex", "branches", "sets", "args",
                 "cum_weights", "static_choices", "lookup")

    def __init__(self, nid: str, spec: model.Node, loc: str):
        self.id = nid
        self.type: str = spec.__struct_config__.tag  # type: ignore[assignment]
        self.spec: Any = spec
        self.text = ltext(getattr(spec, "text", None), loc)
        # The text when it reads the same for every contact (most): a turn reads no LText.
        self.said: str | None = self.text.fixed if self.text is not None else None
        self.next: str = getattr(spec, "next", "") or ""
        self.save_as: str = getattr(spec, "save_as", "") or ""
        self.outcome: str = getattr(spec, "outcome", "") or ""
        self.options: list[Option] = []
        self.titles: list[LText] = []
        self.descriptions: list[LText | None] = []
        self.retry_text = self.reminder = None
        self.timeout = self.seconds = 0.0
        self.regex: regex.Pattern[str] | None = None
        self.branches: list[tuple[Pred, str]] = []
        # (name, value with templates, whether it can grow: checked against MAX_VALUE)
        self.sets: list[tuple[str, Any, bool]] = []
        self.lookup: Lookup | None = None       # foreach: the list it reads
        self.args: Any = None
        self.cum_weights: list[float] = []
        self.media: tuple[tuple[str, str, LText | None], ...] = ()
        # (id, title, description) per locale, filled as locales are met, for choices whose
        # texts hold no lookup (most): a turn then renders none of them.
        self.static_choices: dict[str, list[tuple[str, str, str]]] | None = None
        # Choices that read the same for every contact (the usual case), flat:
        # (id, title, description, id, title, ...).
        self.fixed_choices: tuple[str, ...] | None = None
        # A choice node's ids, then where each goes: (id0, id1, ..., next0, next1, ...).
        self.route: tuple[str, ...] = ()
        s: Any = spec
        if isinstance(spec, model.ChoiceNode):
            for c in spec.choices:
                t = LText(c.title, loc)
                self.titles.append(t)
                self.descriptions.append(ltext(c.description, loc))
                self.options.append(Option(c.id, t.all_texts(), c.synonyms))
            self.route = (*(c.id for c in spec.choices), *(c.next or spec.next for c in spec.choices))
            texts = self.titles + [d for d in self.descriptions if d is not None]
            if all(lt.fixed is not None for lt in texts):
                self.fixed_choices = tuple(x for c, t, d in zip(spec.choices, self.titles, self.descriptions)
                                           for x in (c.id, t.fixed, d.fixed if d else ""))
            elif all(tpl.literal is not None for lt in texts for tpl in lt.by_locale.values()):
                self.static_choices = {}
        if isinstance(spec, (model.ChoiceNode, model.Input)):
            if spec.retry is not None:
                self.retry_text = ltext(spec.retry.text, loc)
            if spec.timeout is not None:
                self.timeout = duration(spec.timeout.after)
                self.reminder = ltext(spec.timeout.reminder, loc)
        if isinstance(spec, model.Input) and spec.validate == "regex":
            self.regex = runtime_pattern(spec.pattern)
        if isinstance(spec, model.Wait):
            self.seconds = duration(spec.for_)
        if isinstance(spec, model.Condition):
            self.branches = [(compile_expr(b.if_), b.next) for b in spec.branches]
        if isinstance(spec, model.SetNode):
            self.sets = [(k, tpl, _grows(tpl)) for k, v in spec.vars.items()
                         for tpl in (walk_strings(v, Template),)]
        if isinstance(spec, model.StepNode):
            self.args = walk_strings(s.with_, Template)
        if isinstance(spec, model.Split):
            total = 0.0
            for w in model.weights(spec.variants):
                total += w
                self.cum_weights.append(total)
        if isinstance(spec, model.Foreach):
            self.lookup = Lookup(spec.list)
        if isinstance(spec, model.Message):
            self.media = tuple((m.kind, m.url, ltext(m.caption, loc)) for m in spec.media)


class Compiled:
    """A whole flow ready to run."""
    __slots__ = ("id", "locale", "start", "nodes", "defaults", "definition", "patterns")

    def __init__(self, flow: model.Flow, definition: Mapping[str, Any]):
        self.id = sys.intern(flow.id)
        self.locale = sys.intern(flow.locale)
        self.start = sys.intern(flow.start)
        self.defaults = flow.vars
        self.definition = definition
        self.nodes: dict[str, CNode] = {}
        for nid, spec in flow.nodes.items():
            nid = sys.intern(nid)
            try:
                self.nodes[nid] = CNode(nid, intern_ids(spec), self.locale)
            except ValueError:   # a bad template, duration or pattern (drafts only)
                continue
        # Whether a turn needs a PatternClock: most flows have no pattern, and don't pay for one.
        self.patterns = any(n.regex is not None or n.type == "condition"
                            and any(_matches(b.if_) for b in n.spec.branches)
                            for n in self.nodes.values())


def compile_flow(definition: Mapping[str, Any]) -> Compiled:
    """Published versions are valid. A draft run from `causette chat --draft` may not be:
    its broken nodes are left out (reaching one ends the run with a `flow.error` event)
    rather than refusing the whole draft."""
    try:
        flow = msgspec.convert(dict(definition), model.Flow)
    except msgspec.ValidationError:
        raw = definition.get("nodes") if isinstance(definition.get("nodes"), dict) else {}
        nodes = {}
        for nid, node in raw.items():
            try:
                nodes[nid] = msgspec.convert(node, model.AnyNode)
            except msgspec.ValidationError:
                continue
        try:
            flow = msgspec.convert({**definition, "nodes": {}}, model.Flow)
        except msgspec.ValidationError as exc:
            raise ValueError(f"flow {definition.get('id')!r} cannot run: {exc}") from None
        flow.nodes = nodes
    return Compiled(flow, definition)
