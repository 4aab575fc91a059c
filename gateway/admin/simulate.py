"""Run a flow against a script of user inputs, in memory: no channel, no Redis, no store,
no analytics. Steps run in dry-run mode (`Step.dry_run`) unless `live_steps` is asked for.

The engine is driven exactly as the pipeline drives it: the first message starts the run
(`session.node == ""`), later ones answer the waiting node, and a `Turn.wait` arms a timer
that a script item's `wait` fires by moving the simulated clock on.
"""
from __future__ import annotations

import time
from datetime import datetime
from zoneinfo import ZoneInfo
from typing import TYPE_CHECKING, Any

import msgspec

from ..apply import plugin_settings_type
from ..config import TenantSnapshot
from ..flows import Context, StepResult
from ..problems import ProblemError
from ..types import Event, InboundMessage, Referral, Session, Turn
from .wire import ScriptItem, SimulateIn, SimulateOut, StepCall, TranscriptEntry

if TYPE_CHECKING:
    from ..plugins import PluginHost

CONTACT = "simulator"
MAX_GOTO = 10


def _clock(now: float | str | None) -> float:
    if now is None:
        return time.time()
    if isinstance(now, (int, float)):
        return float(now)
    try:
        return datetime.fromisoformat(now.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise ProblemError(422, "Invalid request", "`now` is unix seconds or an ISO 8601 time",
                           code="validation") from None


def _instant(value: Any, tz: str) -> float | None:
    """An ISO 8601 time; without an offset it is read in the tenant's time zone."""
    if not isinstance(value, str) or not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if when.tzinfo is None:
            when = when.replace(tzinfo=ZoneInfo(tz))
    except (ValueError, KeyError):
        return None
    return when.timestamp()


def _period_note(definition: dict[str, Any], tz: str, now: float) -> str:
    active = definition.get("active") if isinstance(definition.get("active"), dict) else {}
    start, until = _instant(active.get("from"), tz), _instant(active.get("until"), tz)
    if (start is None or now >= start) and (until is None or now < until):
        return ""
    return (f"outside the flow's active period ({active.get('from', '…')} – {active.get('until', '…')}): "
            "a real conversation would get the out-of-period answer instead; simulated anyway")


def _decoded_settings(host: "PluginHost", tenant: TenantSnapshot) -> dict[str, Any]:
    out = {}
    for plugin, raw in tenant.plugins.items():
        st = plugin_settings_type(host, plugin)
        try:
            out[plugin] = msgspec.convert(raw or {}, st, str_keys=True) if st else raw
        except msgspec.ValidationError:
            pass
    return out


def _channel(host: "PluginHost", tenant: TenantSnapshot, wanted: str) -> tuple[str, str]:
    for ch in tenant.channels:
        if ch.id == wanted or (not wanted and ch.enabled):
            return ch.id, ch.type
    if wanted in host.channels:
        return wanted, wanted
    if wanted:
        raise ProblemError(422, "Invalid request", f"no channel instance or channel type {wanted!r}",
                           code="validation")
    return "simulator", "simulator"


def _message(item: ScriptItem, i: int, tenant: str, channel: str, now: float) -> InboundMessage:
    kind = item.kind or ("choice" if item.choice else "postback" if item.payload else
                         "referral" if item.ref and not item.text else "text")
    return InboundMessage(tenant=tenant, channel=channel, native_id=f"sim-{i}", contact=CONTACT, kind=kind,
                          ts=now, text=item.text, payload=item.choice or item.payload,
                          referral=Referral(source="link", ref=item.ref) if item.ref else None)


def _has_message(item: ScriptItem) -> bool:
    return bool(item.text or item.choice or item.payload or item.ref or item.kind)


async def simulate(host: "PluginHost", tenant: TenantSnapshot, flow_id: str, label: int | str,
                   definition: dict[str, Any], req: SimulateIn,
                   flows: dict[str, dict[str, Any]] | None = None, http: Any = None) -> SimulateOut:
    """`flows`: other flows a `goto` may enter (their latest published definitions)."""
    engine = host.engines.get(definition.get("engine", "tree"))
    if engine is None:
        raise ProblemError(422, "Invalid flow", f"no flow engine {definition.get('engine')!r}", code="validation")
    compiled = engine.compile(definition)
    clock = _clock(req.now)
    channel_id, channel_type = _channel(host, tenant, req.channel)
    settings = _decoded_settings(host, tenant)
    enabled = frozenset(tenant.plugins)
    session = Session(flow=flow_id, version=label if isinstance(label, int) else -1, contact=dict(req.contact),
                      vars=dict(req.vars), locale=req.locale, started=clock)
    out = SimulateOut(flow=flow_id, version=label, transcript=[], path=[], vars={}, contact={})
    state: dict[str, Any] = {"due": None, "done": False, "turns": 0, "compiled": compiled,
                             "engine": engine}

    async def run_step(ctx: Context, name: str, args: Any) -> StepResult:
        res = await host.run_step(ctx, name, args, enabled, live=req.live_steps)
        out.steps.append(StepCall(step=name, args=dict(args) if isinstance(args, dict) else {"value": args},
                                  dry_run=not req.live_steps, ok=res.ok, vars=res.vars, error=res.error))
        if not res.ok:
            ctx.record("step.failed", step=name, error=res.error[:300])
        return res

    async def turn(msg: InboundMessage | None, reason: str) -> None:
        nonlocal session
        for _hop in range(MAX_GOTO):
            state["turns"] += 1
            ctx = Context(tenant=tenant.slug, channel=channel_id, channel_type=channel_type, contact=CONTACT,
                          session=session, settings=settings, tenant_config=tenant, run_step=run_step,
                          now=clock, dry_run=True, http=http if req.live_steps else None)
            ctx.meta["reason"] = reason
            ctx.meta["live_steps"] = req.live_steps
            ctx.meta["simulation"] = True
            if not session.node and reason != "timer":
                ctx.record("flow.started", source="simulation", trigger="start")
            try:
                result = await state["engine"].advance(ctx, state["compiled"], msg)
            except Exception as exc:  # a broken engine or flow: show it, don't 500
                out.transcript.append(TranscriptEntry(who="system", at=clock,
                                                      text=f"the engine raised {type(exc).__name__}: {exc}"))
                state["done"] = True
                return
            session = ctx.session
            out.path.extend(ctx.meta.get("path", []))
            out.events.extend(ctx.events)
            out.events.extend(e for e in (result.events if isinstance(result, Turn) else []) if e not in ctx.events)
            for r in result.replies:
                rich = r if (r.cards or r.media or r.template or r.tag) else None
                out.transcript.append(TranscriptEntry(who="bot", text=r.text, choices=r.choices, reply=rich,
                                                      node=session.node, at=clock))
            state["due"] = clock + result.wait if result.wait > 0 else None
            if result.handoff is not None:
                out.handoff = dict(result.handoff)
                out.transcript.append(TranscriptEntry(who="system", at=clock,
                                                      text=f"handed over to a human ({result.handoff.get('queue', 'agents')})"))
                state["done"] = True
            if result.ended:
                out.ended = result.ended
                out.events.append(Event(type="flow.ended", tenant=tenant.slug, channel=channel_id, contact=CONTACT,
                                        ts=clock, flow=session.flow, data={"outcome": result.ended}))
                state["done"] = True
            goto = ctx.meta.get("goto_flow")
            if not goto:
                return
            target = (flows or {}).get(goto)
            tengine = host.engines.get(target.get("engine", "tree")) if target else None
            if target is None or tengine is None:
                out.transcript.append(TranscriptEntry(who="system", at=clock,
                                                      text=f"goes to flow {goto!r}, which has no published version"))
                state["done"] = True
                return
            out.transcript.append(TranscriptEntry(who="system", at=clock, text=f"enters flow {goto!r}"))
            state["engine"], state["compiled"] = tengine, tengine.compile(target)
            session.flow, session.node, session.retries = goto, "", 0
            state["done"], out.ended = False, ""
            msg, reason = None, "start"

    note = _period_note(definition, tenant.timezone, clock)
    if note:
        out.transcript.append(TranscriptEntry(who="system", text=note, at=clock))
    items = [ScriptItem(text=i) if isinstance(i, str) else i for i in req.script]
    if not items or not _has_message(items[0]):
        await turn(None, "start")
    for i, item in enumerate(items):
        if state["turns"] >= req.max_turns:
            out.transcript.append(TranscriptEntry(who="system", at=clock, text="stopped: max_turns reached"))
            break
        if item.wait:
            clock += item.wait
            while state["due"] is not None and clock >= state["due"] and not state["done"]:
                out.transcript.append(TranscriptEntry(who="system", at=clock, text="timer fired"))
                await turn(None, "timer")
        if not _has_message(item):
            continue
        msg = _message(item, i, tenant.slug, channel_id, clock)
        out.transcript.append(TranscriptEntry(who="user", text=item.text or item.choice or item.payload or item.ref,
                                              at=clock))
        if state["done"]:
            out.transcript.append(TranscriptEntry(who="system", at=clock,
                                                  text="not answered: the run has ended" if not out.handoff
                                                  else "not answered: a human holds the conversation"))
            continue
        await turn(msg, "message")
    out.vars = dict(session.vars)
    out.contact = dict(session.contact)
    out.waiting = "" if state["done"] else session.node
    return out
