"""One turn of a `tree` flow: run nodes until the run must wait (choice, input, wait,
handoff) or ends.

Session state the engine keeps (small: it is saved on every turn):
- `session.node`: the node waiting for something ("" = not started, or ended);
- `session.retries`: failed answers to that node;
- `session.extra`: "due" (when a wait node resumes), "rem" (reminder sent), "loops"
  ({foreach node: next index}), "variant" (the A/B variant of the contact).
Per-turn events are few: `answer` / `answer.invalid`, `reminder.sent`, `flow.timeout`,
`experiment.assigned`, `flow.error`, `pattern.timeout` (recorded by `compiled.found`). The
gateway records `flow.started` and, from `Turn.ended`, `flow.ended`. The nodes visited are
left in `ctx.meta["path"]` (simulation).
"""
from __future__ import annotations

import bisect
import copy
import hashlib
from typing import TYPE_CHECKING, Any

from gateway.types import Choice, InboundMessage, Media, Reply, Turn

from . import inputs
from .compiled import MAX_DEPTH, MAX_VALUE, CNode, Compiled, LText, within
from .matching import match
from .template import Lookup, Template

if TYPE_CHECKING:
    from gateway.flows import Context

# Nodes run in one turn: a runaway flow ends instead of spinning. The validator refuses a
# flow whose longest turn, each foreach going round its `max`, would run more
# (`flow.turn_too_long`): only drafts and flows published before that check reach it.
MAX_HOPS = 2_000


class Run:
    __slots__ = ("f", "ctx", "s", "replies", "locale", "path")

    def __init__(self, f: Compiled, ctx: "Context"):
        self.f, self.ctx, self.s = f, ctx, ctx.session
        self.replies: list[Reply] = []
        self.locale = (self.s.locale or f.locale).lower()
        self.path: list[str] = ctx.meta.setdefault("path", [])

    # --- entry ----------------------------------------------------------------------------
    async def advance(self, msg: InboundMessage | None) -> Turn:
        s = self.s
        if not s.node:
            for k, v in self.f.defaults.items():
                s.vars.setdefault(k, copy.deepcopy(v))
            return await self.run(self.f.start)
        node = self.f.nodes.get(s.node)
        if node is None:
            self.ctx.record("flow.error", error=f"session is at unknown node {s.node!r}")
            return self.finish("abandoned")
        if self.ctx.meta.get("reason") == "timer" and msg is None:
            return await self.on_timer(node)
        if msg is None:
            return Turn()
        t = node.type
        if t == "wait":
            # The contact wrote during a delay: keep the timer where it was.
            return Turn(wait=max(float(s.extra.get("due", 0)) - self.ctx.now, 1.0))
        if t == "handoff":       # back from a human agent
            s.node = ""
            return await self.run(node.spec.next)
        if msg.kind in ("open", "referral") and not msg.text and not msg.payload:
            return self.ask(node)             # the contact came back: ask again
        if t == "choice":
            return await self.on_choice(node, msg)
        if t == "input":
            return await self.on_input(node, msg)
        # Resting on a node that doesn't wait (a run cut short by a crash in a step): go on
        # from there rather than leave the contact without an answer.
        return await self.run(node.id)

    # --- answers ---------------------------------------------------------------------------
    async def on_choice(self, node: CNode, msg: InboundMessage) -> Turn:
        p, route = msg.payload, node.route
        n = len(route) // 2
        try:                     # a button press: no matching, no Option objects read
            i, how = route.index(p, 0, n), "payload"
        except ValueError:
            m = match(msg.text, node.options, p)
            if m is None:
                return await self.retry(node, msg)
            i, how = m.index, m.how
        cid = route[i]
        if node.save_as:
            self.save(node.save_as, cid)
        self.ctx.record("answer", choice=cid, how=how)
        self.answered()
        return await self.run(route[n + i])

    async def on_input(self, node: CNode, msg: InboundMessage) -> Turn:
        spec = node.spec
        text = msg.text or msg.payload
        value = None
        if text:
            if spec.validate == "regex":
                value = inputs.regex(text, spec, node.regex)
            else:
                value = inputs.VALIDATORS[spec.validate](text, spec)
        if value is None:
            return await self.retry(node, msg)
        self.save(spec.save_as, value)
        self.ctx.record("answer", var=spec.save_as)
        self.answered()
        return await self.run(spec.next)

    def answered(self) -> None:
        self.s.retries = 0
        self.s.extra.pop("rem", None)

    async def retry(self, node: CNode, msg: InboundMessage) -> Turn:
        s, spec = self.s, node.spec
        s.retries += 1
        self.ctx.record("answer.invalid", text=(msg.text or msg.payload)[:100], retries=s.retries)
        r = spec.retry
        if r is not None and r.max and s.retries > r.max:
            s.retries = 0
            if r.then:
                return await self.run(r.then)
            return self.finish("abandoned")
        if node.retry_text is not None:
            text = self.render(node.retry_text)
        else:
            key = "choice" if node.type == "choice" else spec.validate
            texts = inputs.DEFAULT_RETRY[key]
            text = texts.get(self.locale[:2], texts["en"])
        self.replies.append(Reply(text=text, choices=self.choices(node)))
        return Turn(replies=self.replies, wait=node.timeout)

    async def on_timer(self, node: CNode) -> Turn:
        s = self.s
        if node.type == "wait":
            s.extra.pop("due", None)
            return await self.run(node.spec.next)
        t = getattr(node.spec, "timeout", None)
        if t is None:
            return Turn()     # a stale timer of a node that no longer waits for one
        if node.reminder is not None and not s.extra.get("rem"):
            s.extra["rem"] = 1
            self.ctx.record("reminder.sent")
            self.replies.append(Reply(text=self.render(node.reminder), choices=self.choices(node)))
            return Turn(replies=self.replies, wait=node.timeout)
        s.extra.pop("rem", None)
        self.ctx.record("flow.timeout", after=node.timeout)
        if t.then:
            s.retries = 0
            return await self.run(t.then)
        return self.finish("abandoned")

    # --- running nodes ---------------------------------------------------------------------
    async def run(self, nid: str) -> Turn:
        s, ctx = self.s, self.ctx
        for _ in range(MAX_HOPS):
            if not nid:
                return self.finish("completed")
            node = self.f.nodes.get(nid)
            if node is None:
                ctx.record("flow.error", error=f"unknown node {nid!r}")
                return self.finish("abandoned")
            s.node = nid
            self.path.append(nid)
            t, spec = node.type, node.spec
            if t == "message":
                self.say_node(node)
                nid = node.next
            elif t in ("choice", "input"):
                s.retries = 0
                s.extra.pop("rem", None)
                return self.ask(node)
            elif t == "condition":
                nid = spec.else_
                for pred, target in node.branches:
                    if pred(s.vars, s.contact):
                        nid = target
                        break
            elif t == "set":
                for name, tpl, grows in node.sets:
                    value = self.value(tpl)
                    if grows and within(value) < 0:
                        # A variable growing round a loop: end before the session does.
                        ctx.record("flow.error", error=f"{name!r} would hold more than {MAX_VALUE} "
                                   f"characters or {MAX_DEPTH} levels")
                        return self.finish("abandoned")
                    self.save(name, value)
                nid = node.next
            elif t == "step":
                nid = await self.step(node)
                continue
            elif t == "goto":
                if spec.flow:
                    # The gateway switches flows after this turn (pipeline: meta["goto_flow"]).
                    ctx.meta["goto_flow"] = spec.flow
                    s.node = ""
                    return Turn(replies=self.replies)
                nid = spec.node
                continue
            elif t == "wait":
                self.say(node.text)
                s.extra["due"] = ctx.now + node.seconds
                return Turn(replies=self.replies, wait=node.seconds)
            elif t == "end":
                self.say_node(node)
                return self.finish(node.outcome)
            elif t == "handoff":
                self.say(node.text)
                if not spec.next:
                    s.node = ""
                handoff = {"queue": spec.queue}
                if spec.reason:
                    handoff["reason"] = spec.reason
                return Turn(replies=self.replies, handoff=handoff)
            elif t == "split":
                nid = self.split(node)
                continue
            elif t == "foreach":
                nid = self.foreach(node)
                continue
        if not nid:              # the last node allowed was the run's last
            return self.finish("completed")
        ctx.record("flow.error", error=f"more than {MAX_HOPS} nodes in one turn")
        return self.finish("abandoned")

    def ask(self, node: CNode) -> Turn:
        if node.type == "wait":
            return Turn(wait=max(float(self.s.extra.get("due", 0)) - self.ctx.now, 1.0))
        text = node.said
        if text is None:
            text = self.render(node.text) if node.text else ""
        self.replies.append(Reply(text=text, choices=self.choices(node)))
        return Turn(replies=self.replies, wait=node.timeout)

    def choices(self, node: CNode) -> list[Choice]:
        if node.type != "choice":
            return []
        fixed = node.fixed_choices
        if fixed is not None:
            it = iter(fixed)
            return [Choice(id=i, title=t, description=d) for i, t, d in zip(it, it, it)]
        static = node.static_choices
        texts = static.get(self.locale) if static is not None else None
        if texts is None:
            texts = [(c.id, self.render(title), self.render(desc) if desc else "")
                     for c, title, desc in zip(node.spec.choices, node.titles, node.descriptions)]
            if static is not None and len(static) < 16:   # locales come from contacts: bounded
                static[self.locale] = texts
        return [Choice(id=i, title=t, description=d) for i, t, d in texts]

    async def step(self, node: CNode) -> str:
        spec, s = node.spec, self.s
        args = _values(node.args, self)
        res = await self.ctx.run_step(spec.step, args)
        self.replies.extend(res.replies)
        if res.vars:
            if spec.save_as:
                s.vars[spec.save_as] = dict(res.vars)
            else:
                for k, v in res.vars.items():
                    self.save(k, v)
        # A named outcome wins, failed or not: http.request fails a 404 or a timeout and
        # names it, and a flow routes `"404"` apart from its general `on_error`.
        if res.branch and spec.branches:
            b = res.branch
            target = spec.branches.get(b)
            if target is None and len(b) == 3 and b.isdigit():
                target = spec.branches.get(b[0] + "xx")
            if target is not None:
                return target
        if not res.ok:
            return spec.on_error or spec.next
        return spec.next

    def split(self, node: CNode) -> str:
        variants = node.spec.variants
        total = node.cum_weights[-1]
        if total <= 0:
            v = variants[0]
        else:
            key = f"{self.ctx.tenant}\0{self.ctx.contact}\0{self.f.id}\0{node.id}".encode()
            x = int.from_bytes(hashlib.sha256(key).digest()[:8], "big") / 2**64 * total
            v = variants[min(bisect.bisect_right(node.cum_weights, x), len(variants) - 1)]
        if self.s.extra.get("variant") != v.id:
            self.s.extra["variant"] = v.id
            self.ctx.record("experiment.assigned", split=node.id, variant=v.id)
        return v.next

    def foreach(self, node: CNode) -> str:
        spec, s = node.spec, self.s
        loops = s.extra.setdefault("loops", {})
        i = int(loops.get(node.id, 0))
        items = node.lookup.value(s.vars, s.contact)
        items = items if isinstance(items, list) else []
        if i < min(len(items), spec.max):
            s.vars[spec.as_] = items[i]
            s.vars[spec.as_ + "_index"] = i + 1
            loops[node.id] = i + 1
            return spec.do
        loops.pop(node.id, None)
        if not loops:
            s.extra.pop("loops", None)
        return spec.next

    def finish(self, outcome: str) -> Turn:
        s = self.s
        s.node, s.retries, s.outcome = "", 0, outcome
        for k in ("due", "rem", "loops"):
            s.extra.pop(k, None)
        return Turn(replies=self.replies, ended=outcome)

    # --- values ----------------------------------------------------------------------------
    def render(self, text: LText) -> str:
        fixed = text.fixed
        if fixed is not None:
            return fixed
        return text.pick(self.locale).render(self.s.vars, self.s.contact)

    def say_node(self, node: CNode) -> None:
        """A message or end node's text and media."""
        if node.said is not None and not node.media:
            self.replies.append(Reply(text=node.said))
        else:
            self.say(node.text, node.media)

    def say(self, text: LText | None, media: tuple | list | None = None) -> None:
        items = [Media(kind=k, url=self.value_str(u), caption=self.render(c) if c else "")
                 for k, u, c in (media or ())]
        if text is None and not items:
            return
        self.replies.append(Reply(text=self.render(text) if text else "", media=items))

    def value_str(self, s: str) -> str:
        return Template(s).render(self.s.vars, self.s.contact) if "{{" in s else s

    def value(self, tpl: Any) -> Any:
        return _values(tpl, self)

    def save(self, name: str, value: Any) -> None:
        if name.startswith("contact."):
            self.s.contact[name[8:]] = value
        else:
            self.s.vars[name] = value


def _values(tpl: Any, run: Run) -> Any:
    """Evaluate precompiled templates inside a JSON-shaped value."""
    if isinstance(tpl, Template):
        return tpl.value(run.s.vars, run.s.contact)
    if isinstance(tpl, list):
        return [_values(v, run) for v in tpl]
    if isinstance(tpl, dict):
        return {k: _values(v, run) for k, v in tpl.items()}
    return tpl
