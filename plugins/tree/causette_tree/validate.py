"""Validation of `tree` flows: every problem at once, each with a JSON path, a code, a
sentence and a severity. Errors block publishing; warnings are advice.

Shape is checked node by node with the msgspec Structs of `model` (so one bad node does
not hide the others); meaning is checked on the decoded nodes: links, steps, cycles,
templates, variables, translations, and each channel instance's limits.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Collection, Iterable, Mapping

import msgspec

from gateway.problems import key_path
from gateway.types import Problem

from . import model
from .compiled import PatternError, duration, pattern
from .matching import normalize
from .runner import MAX_HOPS
from .template import Lookup, Template, TemplateError

if TYPE_CHECKING:
    from gateway.channels import Capabilities
    from gateway.flows import Step

_UNKNOWN_FIELD = re.compile(r"^Object contains unknown field `(.+)`$")
# Nodes after which the run stops until the contact (or an agent) does something.
_USER_WAIT = ("choice", "input", "handoff")
MAX_REDECODES = 200


class Report:
    def __init__(self) -> None:
        self.problems: list[Problem] = []
        # Nodes decoded again without an unknown field (_node_spec), for the whole flow: a
        # flow of thousands of nodes full of them would otherwise cost seconds of the loop.
        self.redecodes = MAX_REDECODES

    def error(self, path: str, code: str, message: str) -> None:
        self.problems.append(Problem(path=path, code=code, message=message))

    def warn(self, path: str, code: str, message: str) -> None:
        self.problems.append(Problem(path=path, code=code, message=message, severity="warning"))


def _msgspec_problem(r: Report, base: str, exc: msgspec.ValidationError, code: str,
                     unknown_code: str = "field.unknown") -> None:
    text = str(exc)
    sub = ""
    if " - at `$" in text:
        text, sub = text.rsplit(" - at `$", 1)
        sub = sub.rstrip("`")
    m = _UNKNOWN_FIELD.match(text)
    if m:
        r.error(key_path(base + sub, m.group(1)), unknown_code, f"unknown field {m.group(1)!r}")
        return
    r.error(base + sub, code, text)


_SEGMENT = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]")


def _node_spec(r: Report, path: str, raw: dict[str, Any]) -> Any:
    """The node decoded, or None. msgspec stops at its first error: an unknown field (a
    typo, `nxet`) is reported, left out, and the node decoded again, so its other problems
    and the flow's checks of it (its `next`, its texts) come in the same answer."""
    while True:
        try:
            return msgspec.convert(raw, model.AnyNode)
        except msgspec.ValidationError as exc:
            _msgspec_problem(r, path, exc, "node.invalid")
            where, _, sub = str(exc).partition(" - at `$")
            m = _UNKNOWN_FIELD.match(where)
            if m is None or r.redecodes <= 0:
                return None
            r.redecodes -= 1
            raw = _without(raw, sub.rstrip("`"), m.group(1))
            if raw is None:
                return None


def _ids_in(value: Any, nodes: Mapping[str, Any]) -> Iterable[str]:
    """The strings in `value` (a raw node, nested) that are node ids."""
    if isinstance(value, str):
        if value in nodes:
            yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _ids_in(v, nodes)
    elif isinstance(value, list):
        for v in value:
            yield from _ids_in(v, nodes)


def _without(value: Any, sub: str, key: str) -> Any:
    """A copy of `value` without `key` in the object at `sub` (`.choices[1]`), or None."""
    if not sub:
        if not isinstance(value, dict) or key not in value:
            return None
        return {k: v for k, v in value.items() if k != key}
    m = _SEGMENT.match(sub)
    if m is None:
        return None
    name, index = m.groups()
    rest = sub[m.end():]
    if name is not None and isinstance(value, dict) and name in value:
        inner = _without(value[name], rest, key)
        return None if inner is None else {**value, name: inner}
    if index is not None and isinstance(value, list) and int(index) < len(value):
        inner = _without(value[int(index)], rest, key)
        return None if inner is None else [*value[:int(index)], inner, *value[int(index) + 1:]]
    return None


def validate(flow: Any, *, steps: Mapping[str, "Step"] = {},
             channels: "Mapping[str, Capabilities]" = {},
             flows: "Collection[str] | None" = None,
             definitions: "Mapping[str, Any] | None" = None,
             disabled: "Mapping[str, str]" = {}) -> list[Problem]:
    """`flows`: the tenant's flow ids; `definitions`: their published definitions by id
    (None for a flow never published), which lets gotos that come back to this flow be
    checked (a mapping given as `flows` counts as both); `disabled`: steps installed but of
    plugins the tenant has not enabled, with their plugin."""
    if definitions is None and isinstance(flows, Mapping):
        definitions = flows
    r = Report()
    if not isinstance(flow, dict):
        r.error("$", "flow.not_object", "a flow is a JSON object")
        return r.problems
    top = dict(flow)
    if "format" not in flow:
        r.error("$.format", "flow.format_missing", 'say which format the flow is written in: "format": 1')
        top["format"] = model.FORMAT
    elif flow["format"] != model.FORMAT:
        r.error("$.format", "flow.format_unsupported",
                f"format {flow['format']!r} is not supported; this engine reads format {model.FORMAT}")
        top["format"] = model.FORMAT
    raw_nodes = flow.get("nodes")
    if not isinstance(raw_nodes, dict) or not raw_nodes:
        r.error("$.nodes", "flow.no_nodes", "a flow needs a `nodes` object with at least one node")
        raw_nodes = {}
    start = flow.get("start")
    if not start or not isinstance(start, str):
        r.error("$.start", "flow.start_missing", "name the node the flow starts at: \"start\": \"<node id>\"")
    elif start not in raw_nodes:
        r.error("$.start", "flow.start_unknown", f"the start node {start!r} is not among the nodes")
    top["start"] = "x"
    top["nodes"] = {}
    try:
        head = msgspec.convert(top, model.Flow)
    except msgspec.ValidationError as exc:
        _msgspec_problem(r, "$", exc, "flow.invalid")
        head = None

    specs: dict[str, Any] = {}
    for nid, raw in raw_nodes.items():
        path = key_path("$.nodes", nid)
        if not re.match(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$", nid):
            r.error(path, "node.invalid_id", f"node id {nid!r}: use letters, digits, _ . - (64 at most)")
        if not isinstance(raw, dict):
            r.error(path, "node.invalid", "a node is a JSON object with a `type`")
            continue
        kind = raw.get("type")
        # A list or object `type` can't be looked up (unhashable): it is just another unknown type.
        if not isinstance(kind, str) or kind not in model.NODE_TYPES:
            r.error(path + ".type", "node.unknown_type",
                    ("a node needs a `type`" if "type" not in raw else f"unknown node type {kind!r}")
                    + f" (types: {', '.join(model.NODE_TYPES)})")
            continue
        if kind == "input" and raw.get("validate", "text") not in model.VALIDATORS:
            r.error(path + ".validate", "input.unknown_validator",
                    f"unknown validator {raw.get('validate')!r} (validators: {', '.join(model.VALIDATORS)})")
            raw = {**raw, "validate": "text"}
        spec = _node_spec(r, path, raw)
        if spec is not None:
            specs[nid] = spec

    _integers(r, flow, "$")
    locale = head.locale if head else str(flow.get("locale") or "fr")
    v = _Checker(r, specs, raw_nodes, steps, flows, locale)
    v.disabled = disabled
    if isinstance(start, str) and start in specs:
        v.own = (str(flow.get("id") or ""), start)
    v.check_nodes()
    if isinstance(start, str) and start in specs:
        v.reachability(start)
    v.cycles()
    if definitions is not None and v.own is not None and v.own[0]:
        v.goto_cycles(definitions)
    v.variables(head.vars if head else {})
    if head is not None and head.active is not None and head.active.message is not None:
        # Sent as written by the gateway (no templates), but to contacts of every locale.
        v.texts.append(("$.active.message", head.active.message))
    v.translations(head.locales if head else [])
    for cid, caps in channels.items():
        v.channel(cid, caps)
    if head is not None:
        _check_head(r, head, flows)
    return sorted(r.problems, key=lambda p: p.severity != "error")   # errors first, stable


_INT_MIN, _INT_MAX = -2**63, 2**64 - 1


def _integers(r: Report, value: Any, path: str) -> None:
    """Integers the session (msgpack) cannot store, and that comparisons cannot turn into
    floats (10**400): refused wherever they are."""
    if isinstance(value, dict):
        for k, x in value.items():
            _integers(r, x, key_path(path, str(k)))
    elif isinstance(value, list):
        for i, x in enumerate(value):
            _integers(r, x, f"{path}[{i}]")
    elif isinstance(value, int) and not isinstance(value, bool) and not _INT_MIN <= value <= _INT_MAX:
        r.error(path, "value.out_of_range", "an integer beyond 64 bits: write it as a decimal or a text")


def _check_head(r: Report, head: model.Flow, flows: "Collection[str] | None") -> None:
    a = head.active
    if a is not None:
        if a.from_ and a.until:
            fa, ua = a.from_, a.until
            if (fa.tzinfo is None) == (ua.tzinfo is None) and fa >= ua:
                r.error("$.active", "active.empty", "`until` must come after `from`")
        if a.flow and flows is not None and a.flow not in flows:
            r.error("$.active.flow", "flow.unknown", f"no flow {a.flow!r} in this tenant")
    seen: dict[str, int] = {}
    for i, t in enumerate(head.triggers):
        if isinstance(t, model.KeywordTrigger):
            for j, word in enumerate(t.any):
                n = normalize(word)
                if not n:
                    r.error(f"$.triggers[{i}].any[{j}]", "trigger.empty_keyword",
                            "a keyword needs letters or digits")
                elif n in seen:
                    r.warn(f"$.triggers[{i}].any[{j}]", "trigger.duplicate",
                           f"keyword {word!r} is listed twice (accents and case don't count)")
                seen[n] = i
        elif isinstance(t, model.ReferralTrigger) and not _LINK_REF.fullmatch(t.ref):
            r.warn(f"$.triggers[{i}].ref", "trigger.ref",
                   f"ref {t.ref[:80]!r} cannot come back from a wa.me or t.me link (those carry 1-64 "
                   "letters, digits, _ and -; wa.me also .): only channels whose refs come as "
                   "they are (m.me, ads, QR codes of RCS or Apple) can start this flow")


# What a deep-link ref survives as on every channel: WhatsApp's `[ref:...]` mark takes
# [A-Za-z0-9_.-]{1,64}, Telegram's /start payload [A-Za-z0-9_-]{1,64} (no dot).
_LINK_REF = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


_NONE = object()


def _stand_in(args_type: Any, name: str) -> Any:
    """A value of field `name`'s declared type in a step's Args Struct (within its bounds where
    they are simple), or _NONE."""
    import msgspec.inspect as mi
    try:
        info = mi.type_info(args_type)
        t = next(f.type for f in info.fields if f.encode_name == name or f.name == name)
    except (StopIteration, AttributeError, TypeError, ValueError):
        return _NONE
    if isinstance(t, mi.UnionType):
        t = next((x for x in t.types if not isinstance(x, mi.NoneType)), t.types[0])
    if isinstance(t, (mi.IntType, mi.FloatType)):
        low = t.ge if t.ge is not None else (t.gt + (1 if isinstance(t, mi.IntType) else 0.5) if t.gt is not None else 0)
        return int(low) if isinstance(t, mi.IntType) else float(low)
    if isinstance(t, mi.StrType):
        return "x" * max(1, t.min_length or 0) if t.pattern is None else _NONE
    if isinstance(t, mi.BoolType):
        return False
    if isinstance(t, (mi.ListType, mi.VarTupleType, mi.SetType)):
        return []
    if isinstance(t, mi.DictType):
        return {}
    if isinstance(t, mi.LiteralType):
        return t.values[0]
    if isinstance(t, (mi.AnyType, mi.NoneType)):
        return None
    return _NONE


class _Checker:
    def __init__(self, r: Report, specs: dict[str, Any], raw: dict[str, Any],
                 steps: Mapping[str, "Step"], flows: Any, locale: str):
        self.r, self.specs, self.raw, self.steps, self.flows = r, specs, raw, steps, flows
        self.locale = locale
        self.edges: dict[str, list[tuple[str, str]]] = {n: [] for n in raw}   # src -> [(dst, path)]
        self.refs: list[tuple[str, str]] = []       # (var, path) read by templates/conditions
        self.sets: set[str] = set()                 # variables some node sets
        self.set_prefixes: set[str] = set()         # step save_as namespaces
        self.texts: list[tuple[str, Any]] = []      # (path, Text) shown to the contact
        self.known = set(raw)
        self.own: tuple[str, str] | None = None     # (this flow's id, its start node)
        self.disabled: Mapping[str, str] = {}       # step -> its plugin, not enabled here

    # --- helpers ------------------------------------------------------------------------
    def link(self, src: str, dst: str, path: str) -> None:
        if not dst:
            return
        if dst not in self.known:
            self.r.error(path, "next.unknown", f"{dst!r} is not a node of this flow")
            return
        self.edges[src].append((dst, path))

    def template(self, s: str, path: str) -> Template | None:
        try:
            t = Template(s)
        except TemplateError as exc:
            self.r.error(path, "template.invalid", str(exc))
            return None
        for lk in t.lookups:
            if lk.source == "vars":
                self.refs.append((lk.path[0], path))
        return t

    def text(self, value: Any, path: str, shown: bool = True) -> None:
        if value is None:
            return
        if shown:
            self.texts.append((path, value))
        if isinstance(value, str):
            self.template(value, path)
        else:
            for loc, s in value.items():
                self.template(s, key_path(path, loc))

    def strings(self, value: Any, path: str) -> None:
        if isinstance(value, str):
            self.template(value, path)
        elif isinstance(value, list):
            for i, x in enumerate(value):
                self.strings(x, f"{path}[{i}]")
        elif isinstance(value, dict):
            for k, x in value.items():
                self.strings(x, key_path(path, k))

    def saves(self, name: str) -> None:
        if name and not name.startswith("contact."):
            self.sets.add(name)

    def dur(self, value: Any, path: str) -> None:
        try:
            duration(value)
        except ValueError as exc:
            self.r.error(path, "duration.invalid", str(exc))

    # --- nodes --------------------------------------------------------------------------
    def check_nodes(self) -> None:
        for nid, n in self.specs.items():
            p = key_path("$.nodes", nid)
            getattr(self, "_" + n.__struct_config__.tag)(nid, n, p)

    def _message(self, nid: str, n: model.Message, p: str) -> None:
        self.text(n.text, p + ".text")
        for i, m in enumerate(n.media):
            self.template(m.url, f"{p}.media[{i}].url")
            self.text(m.caption, f"{p}.media[{i}].caption")
        if n.text is None and not n.media:
            self.r.warn(p, "message.empty", "this message has neither text nor media")
        self.link(nid, n.next, p + ".next")

    def _waits(self, nid: str, n: Any, p: str) -> None:
        if n.retry is not None:
            self.text(n.retry.text, p + ".retry.text")
            self.link(nid, n.retry.then, p + ".retry.then")
        if n.timeout is not None:
            self.dur(n.timeout.after, p + ".timeout.after")
            self.text(n.timeout.reminder, p + ".timeout.reminder")
            self.link(nid, n.timeout.then, p + ".timeout.then")

    def _choice(self, nid: str, n: model.ChoiceNode, p: str) -> None:
        self.text(n.text, p + ".text")
        ids: set[str] = set()
        for i, c in enumerate(n.choices):
            cp = f"{p}.choices[{i}]"
            if c.id in ids:
                self.r.error(cp + ".id", "choice.duplicate_id", f"two choices have the id {c.id!r}")
            ids.add(c.id)
            self.text(c.title, cp + ".title")
            self.text(c.description, cp + ".description")
            if not c.next and not n.next:
                self.r.warn(cp + ".next", "choice.no_next",
                            "this choice has no `next` (nor has the node): choosing it ends the run")
            self.link(nid, c.next, cp + ".next")
        self.link(nid, n.next, p + ".next")
        self.saves(n.save_as)
        self._waits(nid, n, p)

    def _input(self, nid: str, n: model.Input, p: str) -> None:
        self.text(n.text, p + ".text")
        if n.validate == "regex":
            if not n.pattern:
                self.r.error(p + ".pattern", "input.invalid_pattern", 'validate "regex" needs a `pattern`')
            else:
                try:
                    pattern(n.pattern)
                except PatternError as exc:
                    self.r.error(p + ".pattern", "input.invalid_pattern", str(exc))
        elif n.pattern:
            self.r.warn(p + ".pattern", "input.pattern_ignored", 'a `pattern` only counts with validate "regex"')
        self.saves(n.save_as)
        self.link(nid, n.next, p + ".next")
        self._waits(nid, n, p)

    def _condition(self, nid: str, n: model.Condition, p: str) -> None:
        for i, b in enumerate(n.branches):
            self.expr(b.if_, f"{p}.branches[{i}].if")
            self.link(nid, b.next, f"{p}.branches[{i}].next")
        self.link(nid, n.else_, p + ".else")
        if not n.else_:
            self.r.warn(p + ".else", "condition.no_else",
                        "no `else`: when no branch holds, the run ends here")

    def expr(self, e: model.Expr, p: str) -> None:
        combos = [c for c, attr in (("all", "all"), ("any", "any"), ("not", "not_"))
                  if getattr(e, attr) is not msgspec.UNSET]
        ops = [o for o in model.OPERATORS if getattr(e, "in_" if o == "in" else o) is not msgspec.UNSET]
        if combos:
            if len(combos) > 1 or ops or e.var:
                self.r.error(p, "condition.invalid",
                             "use one of all / any / not alone, or a `var` with one operator")
            for c in combos:
                sub = getattr(e, "not_" if c == "not" else c)
                for i, x in enumerate(sub if isinstance(sub, list) else [sub]):
                    self.expr(x, f"{p}.{c}[{i}]" if isinstance(sub, list) else f"{p}.not")
            return
        if not e.var:
            self.r.error(p, "condition.invalid", "name the variable to test: {\"var\": \"category\", \"eq\": \"w\"}")
            return
        if len(ops) != 1:
            self.r.error(p, "condition.invalid",
                         f"give exactly one operator with `var` (operators: {', '.join(model.OPERATORS)})"
                         + (f"; found {', '.join(ops)}" if ops else ""))
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$", e.var) or not _lookup(e.var):
            self.r.error(p + ".var", "condition.invalid", f"{e.var!r} is not a variable path")
        elif not e.var.startswith("contact."):
            self.refs.append((e.var.removeprefix("vars.").split(".")[0], p + ".var"))
        if e.matches is not msgspec.UNSET:
            try:
                pattern(e.matches, ignore_case=True)  # type: ignore[arg-type]
            except PatternError as exc:
                self.r.error(p + ".matches", "condition.invalid", str(exc))
        for o in ops:
            if o in ("matches",):
                continue
            val = getattr(e, "in_" if o == "in" else o)
            self.strings(val, f"{p}.{o}")

    def _set(self, nid: str, n: model.SetNode, p: str) -> None:
        for k, val in n.vars.items():
            if not re.match(r"^(contact\.)?[A-Za-z_][A-Za-z0-9_]{0,63}$", k):
                self.r.error(key_path(p + ".vars", k), "var.invalid_name",
                             f"{k!r}: a variable name is letters, digits and _ (or contact.<name>)")
            self.strings(val, key_path(p + ".vars", k))
            self.saves(k)
        self.link(nid, n.next, p + ".next")

    def _step(self, nid: str, n: model.StepNode, p: str) -> None:
        self.strings(n.with_, p + ".with")
        step = self.steps.get(n.step)
        if step is None and n.step in self.disabled:
            self.r.error(p + ".step", "step.plugin_disabled",
                         f"step {n.step!r} comes from plugin {self.disabled[n.step]!r}, which this "
                         f"tenant has not enabled: add it to the tenant's plugins")
        elif step is None:
            known = ", ".join(sorted(self.steps)) or "none installed"
            self.r.error(p + ".step", "step.unknown", f"no installed step is called {n.step!r} (steps: {known})")
        else:
            self._step_args(step, n, p)
            for name in getattr(step, "outputs", ()) or ():
                self.saves(name)
        save = n.with_.get("save")
        if isinstance(save, dict):
            for k in save:
                self.saves(k)
        if n.save_as:
            self.sets.add(n.save_as)
        self.link(nid, n.next, p + ".next")
        self.link(nid, n.on_error, p + ".on_error")
        for b, target in n.branches.items():
            self.link(nid, target, key_path(p + ".branches", b))

    def _step_args(self, step: "Step", n: model.StepNode, p: str) -> None:
        # A template's type is only known at run time: a templated field that does not decode
        # stands in as a value of its declared type, and the rest is checked again (msgspec
        # stops at its first problem, so one templated field would hide a typo behind it).
        args = dict(n.with_)
        for _ in range(len(args) + 1):
            try:
                msgspec.convert(args, step.Args, str_keys=True)
                return
            except msgspec.ValidationError as exc:
                text = str(exc)
                sub = text.rsplit(" - at `$", 1)[1].rstrip("`") if " - at `$" in text else ""
                m = re.match(r"^\.([A-Za-z0-9_]+)", sub)
                name = m.group(1) if m else ""
                val = n.with_.get(name)
                if not (isinstance(val, str) and "{{" in val):
                    _msgspec_problem(self.r, p + ".with", exc, "step.invalid_args", "step.invalid_args")
                    return
                stand_in = _stand_in(step.Args, name)
                if stand_in is _NONE or args.get(name) is not val:
                    return     # no value of that type to stand in, or it did not do: run time tells
                args[name] = stand_in

    def _goto(self, nid: str, n: model.Goto, p: str) -> None:
        if bool(n.node) == bool(n.flow):
            self.r.error(p, "goto.invalid", "a goto names either a `node` of this flow or a `flow`")
            return
        if n.node:
            self.link(nid, n.node, p + ".node")
        elif self.own is not None and n.flow == self.own[0]:
            # This flow again: a jump back to its start, in this turn (loops are checked).
            self.link(nid, self.own[1], p + ".flow")
        elif self.flows is not None and n.flow not in self.flows:
            self.r.error(p + ".flow", "flow.unknown", f"no flow {n.flow!r} in this tenant")

    def _wait(self, nid: str, n: model.Wait, p: str) -> None:
        self.dur(n.for_, p + ".for")
        self.text(n.text, p + ".text")
        self.link(nid, n.next, p + ".next")

    def _end(self, nid: str, n: model.End, p: str) -> None:
        self.text(n.text, p + ".text")

    def _handoff(self, nid: str, n: model.Handoff, p: str) -> None:
        self.text(n.text, p + ".text")
        self.link(nid, n.next, p + ".next")

    def _split(self, nid: str, n: model.Split, p: str) -> None:
        if sum(v.weight for v in n.variants) <= 0:
            self.r.error(p + ".variants", "split.no_weight", "at least one variant needs a weight above 0")
        ids: set[str] = set()
        for i, v in enumerate(n.variants):
            if not v.weight <= model.MAX_WEIGHT:        # NaN too
                self.r.error(f"{p}.variants[{i}].weight", "node.invalid",
                             f"a weight is at most {model.MAX_WEIGHT:,} (weights are relative: "
                             f"1 and 3 split 25/75)")
            if v.id in ids:
                self.r.error(f"{p}.variants[{i}].id", "split.duplicate_id", f"two variants have the id {v.id!r}")
            ids.add(v.id)
            self.link(nid, v.next, f"{p}.variants[{i}].next")

    def _foreach(self, nid: str, n: model.Foreach, p: str) -> None:
        if not re.match(r"^(contact\.)?[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$", n.list) \
                or not _lookup(n.list):
            self.r.error(p + ".list", "foreach.invalid_list", f"{n.list!r} is not a variable path")
        elif not n.list.startswith("contact."):
            self.refs.append((n.list.removeprefix("vars.").split(".")[0], p + ".list"))
        self.sets.update((n.as_, n.as_ + "_index"))
        self.link(nid, n.do, p + ".do")
        self.link(nid, n.next, p + ".next")
        if not n.do:
            self.r.error(p + ".do", "next.unknown", "a foreach needs `do`: the first node of its body")

    # --- graph-wide checks ----------------------------------------------------------------
    def reachability(self, start: str) -> None:
        seen, todo = {start}, [start]
        while todo:
            nid = todo.pop()
            # A node that did not decode has no edges: any node id among its strings counts
            # as one, so what follows it is not reported unreachable on top of its problem.
            outs = (d for d, _ in self.edges.get(nid, ())) if nid in self.specs else \
                _ids_in(self.raw.get(nid), self.raw)
            for dst in outs:
                if dst not in seen:
                    seen.add(dst)
                    todo.append(dst)
        for nid in self.raw:
            if nid not in seen:
                self.r.warn(key_path("$.nodes", nid), "node.unreachable",
                            f"no path from the start node leads to {nid!r}")

    def cycles(self) -> None:
        """A loop that never waits for the contact would run until the engine's limit of
        nodes per turn: an error. A loop whose only pause is a `wait` node re-sends forever:
        a warning. A `foreach` is no pause: it bounds only its body's way back to it (by
        `do`), not a loop that leaves it by `next` and comes round to start it over.
        Then the longest turn must fit in the engine's limit (MAX_HOPS)."""
        types = {nid: n.__struct_config__.tag for nid, n in self.specs.items()}
        for kinds, code, sev in ((set(_USER_WAIT) | {"wait"}, "flow.loop_without_input", "error"),
                                 (set(_USER_WAIT), "flow.loop_wait_only", "warning")):
            # A node of `kinds` ends the turn: it has no way on within it.
            succ = {n: [] if types[n] in kinds else [d for d, _ in self.edges.get(n, ()) if d in types]
                    for n in types}
            top, loops = _loops(succ, self.specs)
            for comp in loops:
                if sev == "warning" and not any(types[n] == "wait" for n in comp):
                    continue  # reported as an error already
                nodes = ", ".join(comp)
                again = [n for n in comp if types[n] == "foreach" and self.specs[n].next in comp]
                if sev == "warning":
                    path = key_path("$.nodes", comp[0])
                    msg = f"this loop only pauses at a wait node and never asks the contact: {nodes}"
                elif again:
                    path = key_path("$.nodes", again[0]) + ".next"
                    msg = (f"after its last item this foreach goes on, without waiting for the contact, "
                           f"back round to itself and starts over: a foreach bounds only the way back "
                           f"from its `do`, so these nodes loop without end: {nodes}")
                else:
                    path = key_path("$.nodes", comp[0])
                    msg = f"these nodes can loop without waiting for the contact: {nodes}"
                (self.r.error if sev == "error" else self.r.warn)(path, code, msg)
            if sev == "error" and not loops:
                self._turn_length(top)

    def _turn_length(self, top: "_Loop") -> None:
        """The most nodes one turn can run (loops counted round as often as their `max`
        allows), against the engine's limit: past it the run ends as `abandoned`."""
        if top.length <= MAX_HOPS:
            return
        way = top.longest()
        loops = [x for x in way if isinstance(x, _Loop)]
        total = f"more than {_CAP:,}" if top.length >= _CAP else f"{top.length:,}"
        if loops:
            big = max(loops, key=lambda x: x.length)
            head = big.heads[0]
            path = key_path("$.nodes", head) + ".max"
            msg = (f"a turn can run through {total} nodes, {big.length:,} of them round this "
                   f"foreach ({', '.join(big.members)}); the engine stops a turn after {MAX_HOPS:,} "
                   f"nodes and ends the run as abandoned: lower `max`, shorten the loop, or ask "
                   f"the contact something in it")
        else:
            path = key_path("$.nodes", way[0])     # type: ignore[arg-type]
            msg = (f"a turn can run through {total} nodes from here without waiting for the contact; "
                   f"the engine stops a turn after {MAX_HOPS:,} nodes and ends the run as abandoned")
        self.r.error(path, "flow.turn_too_long", msg)

    def start_gotos(self) -> list[tuple[str, str]]:
        """(node, flow) of the gotos to other flows that a run reaches from the start in its
        first turn: without a node that waits (as for `cycles`) on the way."""
        if self.own is None:
            return []
        me, start = self.own
        stop = set(_USER_WAIT) | {"wait"}            # a foreach runs on in the same turn
        out, seen, todo = [], {start}, [start]
        while todo:
            nid = todo.pop()
            n = self.specs.get(nid)
            if n is None or n.__struct_config__.tag in stop:
                continue
            if isinstance(n, model.Goto) and n.flow and not n.node and n.flow != me:
                out.append((nid, n.flow))
            for dst, _ in self.edges.get(nid, ()):
                if dst not in seen:
                    seen.add(dst)
                    todo.append(dst)
        return sorted(out)

    def goto_cycles(self, flows: Mapping[str, Any]) -> None:
        """A goto to another flow starts it in the same turn. When that flow's start goes,
        from flow to flow and never waiting for the contact, back to this one, the turn goes
        round until the gateway's limit on gotos: an error at the goto that leaves this flow."""
        me = self.own[0]  # type: ignore[index]
        nexts: dict[str, list[str]] = {}     # flow -> the flows its start goes to, same turn

        def after(fid: str) -> list[str]:
            if fid not in nexts:
                other = _other_flow(fid, flows.get(fid))
                nexts[fid] = sorted({f for _, f in other.start_gotos()}) if other else []
            return nexts[fid]

        for nid, target in self.start_gotos():
            came = {target: me}              # breadth first: the shortest way back, to show
            todo, last = [target], None
            while todo and last is None:
                fid = todo.pop(0)
                for f in after(fid):
                    if f == me:
                        last = fid
                        break
                    if f not in came:
                        came[f] = fid
                        todo.append(f)
            if last is None:
                continue
            chain = [last]
            while chain[0] != target:
                chain.insert(0, came[chain[0]])
            way = " → ".join([me, *chain, me])
            self.r.error(key_path("$.nodes", nid), "flow.loop_without_input",
                         f"this goto starts {target!r}, which comes back to {me!r} without waiting "
                         f"for the contact ({way}): the turn would go round until the gateway stops it")

    def variables(self, defaults: Mapping[str, Any]) -> None:
        known = self.sets | set(defaults)
        for var, path in self.refs:
            if var not in known and var not in self.set_prefixes:
                self.r.warn(path, "var.never_set",
                            f"no node sets the variable {var!r} (a step may; set a default in "
                            f"the flow's `vars` to be sure)")

    def translations(self, declared: list[str]) -> None:
        wanted = set(declared)
        if not wanted:
            for _, t in self.texts:
                if isinstance(t, dict):
                    wanted.update(t)
            if wanted:
                wanted.add(self.locale)
        if len(wanted) < 2:
            return
        for path, t in self.texts:
            if isinstance(t, dict):
                missing = sorted(wanted - set(t))
                if missing:
                    self.r.warn(path, "text.missing_translation",
                                f"no {', '.join(missing)} text: contacts in that locale get "
                                f"the {self.locale if self.locale in t else next(iter(t))} one")
            elif declared:
                self.r.warn(path, "text.missing_translation",
                            f"a plain text in a flow declared for {', '.join(sorted(wanted))}: "
                            f"every contact gets it as written")

    def channel(self, cid: str, caps: "Capabilities") -> None:
        where = f"channel {cid!r}"
        for nid, n in self.specs.items():
            p = key_path("$.nodes", nid)
            if isinstance(n, model.ChoiceNode):
                count = len(n.choices)
                titles = [(i, s) for i, c in enumerate(n.choices) for s in _variants(c.title)]
                if caps.buttons and count <= caps.buttons:
                    limit, what = caps.button_title, "button"
                elif caps.list_rows and count <= caps.list_rows:
                    self.r.warn(p + ".choices", "channel.too_many_buttons",
                                f"{where} shows {caps.buttons} buttons at most: these {count} "
                                f"choices go out as a list")
                    limit, what = caps.list_title, "list row"
                else:
                    shown = f"{caps.buttons} buttons" if caps.buttons else "no buttons"
                    if caps.list_rows:
                        shown += f" and lists of {caps.list_rows} rows"
                    self.r.warn(p + ".choices", "channel.too_many_buttons",
                                f"{where} has {shown}: these {count} choices go out as "
                                f"numbered options in the text")
                    limit, what = 0, ""
                for i, title in titles:
                    if limit and len(title) > limit:
                        self.r.warn(f"{p}.choices[{i}].title", "channel.title_too_long",
                                    f"{where} shows {limit} characters per {what}: "
                                    f"{title!r} is cut to {title[:limit]!r}")
            self._window(where, caps, n, p)
            for field in ("text",):
                value = getattr(n, field, None)
                for s in _variants(value):
                    if len(s) > caps.text_length:
                        self.r.warn(f"{p}.{field}", "channel.text_too_long",
                                    f"{where} takes {caps.text_length} characters per message: this "
                                    f"text ({len(s)}) is split or cut by the channel")


    def _window(self, where: str, caps: "Capabilities", n: Any, p: str) -> None:
        """Delays past the channel's messaging window: what follows is held by the gateway."""
        if not caps.window_hours:
            return
        window = caps.window_hours * 3600
        delays = []
        if isinstance(n, model.Wait):
            delays.append((p + ".for", n.for_, "after this wait the next message"))
        timeout = getattr(n, "timeout", None)
        if timeout is not None:
            what = "the reminder" if timeout.reminder is not None else "what follows the timeout"
            delays.append((p + ".timeout.after", timeout.after, what))
        for path, value, what in delays:
            try:
                seconds = duration(value)
            except ValueError:
                continue
            if seconds >= window:
                self.r.warn(path, "channel.window",
                            f"{where} lets free-form messages go only within {caps.window_hours:g} h "
                            f"of the contact's last message: {what} is held"
                            + (" (a template message can go)" if caps.templates else ""))


def _other_flow(fid: str, definition: Any) -> "_Checker | None":
    """The links of another flow of the tenant (published, so valid: read defensively all
    the same); its own problems are not this flow's."""
    if not isinstance(definition, Mapping):
        return None
    raw, start = definition.get("nodes"), definition.get("start")
    if not isinstance(raw, dict) or not isinstance(start, str) or start not in raw:
        return None
    specs = {}
    for nid, node in raw.items():
        try:
            specs[nid] = msgspec.convert(node, model.AnyNode)
        except (msgspec.ValidationError, TypeError):
            continue
    v = _Checker(Report(), specs, raw, {}, None, str(definition.get("locale") or "fr"))
    v.own = (fid, start)
    v.check_nodes()
    return v


_CAP = 1_000_000      # turn lengths are counted up to here (nested loops multiply)


class _Loop:
    """Nodes a turn can go round (a strongly connected part of the graph of one turn).
    `heads`: the foreach nodes that bound it (their body in it, their `next` out of it);
    each time round it goes through one of their `do`, at most `max` times each. `parts`:
    what it is made of once those `do` are cut, nodes and the loops inside, sinks first."""
    __slots__ = ("heads", "members", "parts", "succ", "length")

    def __init__(self, heads: list[str], members: list[str]):
        self.heads, self.members = heads, members
        self.parts: list["str | _Loop"] = []
        self.succ: dict[str, list[str]] = {}
        self.length = 0                 # the most nodes one visit of it runs (capped at _CAP)

    def _ways(self) -> tuple[list[int], list[int]]:
        """For each part: the most nodes run from it on, inside this loop, and the part after."""
        where = {n: i for i, x in enumerate(self.parts) for n in (x.members if isinstance(x, _Loop) else (x,))}
        best: list[int] = []
        after: list[int] = []
        for i, x in enumerate(self.parts):     # sinks first: what follows is counted already
            j = max((where[d] for n in (x.members if isinstance(x, _Loop) else (x,))
                     for d in self.succ[n] if where[d] != i), key=lambda k: best[k], default=-1)
            best.append(min(_CAP, (x.length if isinstance(x, _Loop) else 1) + (best[j] if j >= 0 else 0)))
            after.append(j)
        return best, after

    def longest(self) -> list["str | _Loop"]:
        """The parts along the way that runs the most nodes."""
        best, after = self._ways()
        i = max(range(len(best)), key=lambda k: best[k])
        way = []
        while i >= 0:
            way.append(self.parts[i])
            i = after[i]
        return way


def _loops(succ: dict[str, list[str]], specs: Mapping[str, Any]) -> "tuple[_Loop, list[list[str]]]":
    """The loops of a turn's graph (`succ`: a node's ways on within the turn), nested: the
    whole graph, with its length (the most nodes a turn runs); and the loops that nothing
    bounds, each sorted. A loop's foreach heads are cut and what is left is searched again
    (iteratively: loops may nest deeply), for loops inside and loops left unbounded."""
    top = _Loop([], sorted(succ))
    top.succ = succ
    unbounded: list[list[str]] = []
    todo, done = [top], []
    while todo:
        loop = todo.pop()
        done.append(loop)
        for comp in _sccs(loop.succ):
            if len(comp) == 1 and comp[0] not in loop.succ[comp[0]]:
                loop.parts.append(comp[0])
                continue
            inside = set(comp)
            heads = sorted(n for n in comp if isinstance(specs[n], model.Foreach)
                           and specs[n].do in inside and specs[n].next not in inside)
            sub = _Loop(heads, sorted(comp))
            loop.parts.append(sub)
            if not heads:
                unbounded.append(sub.members)
                sub.length = _CAP
                continue
            sub.succ = {n: [d for d in loop.succ[n] if d in inside and not (n in heads and d == specs[n].do)]
                        for n in comp}
            todo.append(sub)
    for loop in reversed(done):          # inner loops first
        if loop.parts:
            times = sum(specs[h].max for h in loop.heads) + 1    # rounds, and the way out
            loop.length = min(_CAP, times * max(loop._ways()[0]))
    return top, sorted(unbounded)


def _lookup(path: str) -> bool:
    """Whether a `var` or `list` path reads something: `contact` or `vars` alone don't."""
    try:
        Lookup(path)
    except TemplateError:
        return False
    return True


def _variants(text: Any) -> Iterable[str]:
    if text is None:
        return ()
    return (text,) if isinstance(text, str) else tuple(text.values())


def _sccs(graph: dict[str, list[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components, iterative (flows can be deep)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(graph.get(root, ())))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on.add(root)
        while work:
            node, it = work[-1]
            advanced = False
            for nxt in it:
                if nxt not in graph:
                    continue
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on.add(nxt)
                    work.append((nxt, iter(graph.get(nxt, ()))))
                    advanced = True
                    break
                if nxt in on:
                    low[node] = min(low[node], index[nxt])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == node:
                        break
                out.append(comp)
    return out

