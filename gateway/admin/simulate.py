"""Run a flow against a script of user inputs, in memory: no channel, no Redis, no store,
no analytics. Steps run in dry-run mode (`Step.dry_run`) unless `live_steps` is asked for.

The engine is driven exactly as the pipeline drives it: the first message starts the run
(`session.node == ""`), later ones answer the waiting node, and a `Turn.wait` arms a timer
that a script item's `wait` fires by moving the simulated clock on. Every turn, timers' and
gotos' included, counts against `max_turns`: a flow whose timers re-arm forever still ends.
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
from ..pipeline import MAX_GOTO
from ..problems import ProblemError, invalid
from ..types import Event, InboundMessage, Problem, Referral, Session, Turn
from .wire import ScriptItem, SimulateIn, SimulateOut, StepCall, TranscriptEntry

if TYPE_CHECKING:
    from ..plugins import PluginHost

CONTACT = "simulator"
# The simulated clock stays within years 1970 to 9999. Past them a float clock loses its
# seconds (1e300 + 60 == 1e300) or overflows to infinity, so timers come out of order or are
# always due; and dates past 9999 cannot be formatted.
MIN_NOW, MAX_NOW = 0.0, 253402300799.0            # 1970-01-01T00:00:00Z, 9999-12-31T23:59:59Z
MAX_WAIT = 366 * 86400.0                          # one item's `wait`: a year, the longest timer
MAX_SPAN = 10 * MAX_WAIT                          # the script's waits together


def _clock(now: float | str | None, tz: str) -> float:
    """`now` in unix seconds; an ISO 8601 time without an offset is read in the tenant's time
    zone, as active periods are (the server's zone means nothing to the tenant)."""
    if now is None:
        return time.time()
    when = float(now) if isinstance(now, (int, float)) else _instant(now, tz)
    if when is None:
        raise invalid([Problem(path="$.now", code="type",
                               message="`now` is unix seconds or an ISO 8601 time")])
    if not MIN_NOW <= when <= MAX_NOW:
        raise invalid([Problem(path="$.now", code="constraint",
                               message="`now` is between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59Z")])
    return when


def _check_waits(script: list[str | ScriptItem], clock: float) -> None:
    """Every `wait` at most a year, all of them at most ten years, and the clock never past
    9999: checked before anything runs, every problem at once."""
    problems, total = [], 0.0
    for i, item in enumerate(script):
        if isinstance(item, str) or not item.wait:
            continue
        path = f"$.script[{i}].wait"
        if item.wait > MAX_WAIT:
            problems.append(Problem(path=path, code="constraint",
                                    message=f"a wait is at most 366 days ({MAX_WAIT:.0f} seconds)"))
            continue
        total += item.wait
        if total > MAX_SPAN:
            problems.append(Problem(path=path, code="constraint",
                                    message=f"the script's waits add up to more than {MAX_SPAN:.0f} seconds "
                                            "(10 years)"))
            break
        if clock + total > MAX_NOW:
            problems.append(Problem(path=path, code="constraint",
                                    message="moves the clock past 9999-12-31T23:59:59Z"))
            break
    if problems:
        raise invalid(problems)


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
        raise invalid([Problem(path="$.channel", code="constraint",
                               message=f"no channel instance or channel type {wanted!r}")])
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
    clock = _clock(req.now, tenant.timezone)
    _check_waits(req.script, clock)
    compiled = engine.compile(definition)
    channel_id, channel_type = _channel(host, tenant, req.channel)
    settings = _decoded_settings(host, tenant)
    enabled = frozenset(tenant.plugins)
    session = Session(flow=flow_id, version=label if isinstance(label, int) else -1, contact=dict(req.contact),
                      vars=dict(req.vars), locale=req.locale, started=clock)
    out = SimulateOut(flow=flow_id, version=label, transcript=[], path=[], vars={}, contact={})
    state: dict[str, Any] = {"due": None, "done": False, "turns": 0, "stopped": False, "compiled": compiled,
                             "engine": engine}

    def out_of_turns() -> bool:
        """max_turns reached: the run stops, and the transcript says so once."""
        if state["turns"] < req.max_turns:
            return False
        if not state["stopped"]:
            out.transcript.append(TranscriptEntry(who="system", at=clock, text="stopped: max_turns reached"))
            state["stopped"] = True
        return True

    async def run_step(ctx: Context, name: str, args: Any) -> StepResult:
        res = await host.run_step(ctx, name, args, enabled, live=req.live_steps)
        out.steps.append(StepCall(step=name, args=dict(args) if isinstance(args, dict) else {"value": args},
                                  dry_run=not req.live_steps, ok=res.ok, vars=res.vars, error=res.error))
        if not res.ok:
            ctx.record("step.failed", step=name, error=res.error[:300])
        return res

    async def turn(msg: InboundMessage | None, reason: str) -> None:
        nonlocal session
        # As many flows per turn as the pipeline runs (`gateway.pipeline.MAX_GOTO`), so the
        # transcript shows what a contact would get.
        trigger = "start"
        for hop in range(MAX_GOTO):
            if out_of_turns():
                return
            state["turns"] += 1
            ctx = Context(tenant=tenant.slug, channel=channel_id, channel_type=channel_type, contact=CONTACT,
                          session=session, settings=settings, tenant_config=tenant, run_step=run_step,
                          now=clock, dry_run=True, http=http if req.live_steps else None)
            ctx.meta["reason"] = reason
            ctx.meta["live_steps"] = req.live_steps
            ctx.meta["simulation"] = True
            if not session.node and reason != "timer":
                ctx.record("flow.started", source="simulation", trigger=trigger)
            try:
                result = await state["engine"].advance(ctx, state["compiled"], msg)
            except Exception as exc:  # a broken engine or flow: show it, don't 500
                out.transcript.append(TranscriptEntry(who="system", at=clock,
                                                      text=f"the engine raised {type(exc).__name__}: {exc}"))
                out.events.extend(ctx.events)
                state["done"] = True
                return
            session = ctx.session
            out.path.extend(ctx.meta.get("path", []))
            ctx.events.extend(e for e in (result.events if isinstance(result, Turn) else []) if e not in ctx.events)
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
                ctx.record("flow.ended", outcome=result.ended)   # with the variant, as the pipeline's
                state["done"] = True
            goto = ctx.meta.get("goto_flow")
            if not goto:
                out.events.extend(ctx.events)
                return
            if hop == MAX_GOTO - 1:
                # The pipeline stops here too: the next flow is not run, nothing waits.
                out.transcript.append(TranscriptEntry(
                    who="system", at=clock,
                    text=f"goes to flow {goto!r}: not run, a turn runs at most {MAX_GOTO} flows"))
                ctx.record("flow.ended", outcome="abandoned", to=goto, why="max_goto")
                out.events.extend(ctx.events)
                out.ended = "abandoned"
                state["done"] = True
                return
            target = (flows or {}).get(goto)
            tengine = host.engines.get(target.get("engine", "tree")) if target else None
            if target is None or tengine is None:
                out.transcript.append(TranscriptEntry(who="system", at=clock,
                                                      text=f"goes to flow {goto!r}, which has no published version"))
                ctx.record("flow.missing", flow=goto)
                ctx.record("flow.ended", outcome="abandoned", to=goto)
                out.events.extend(ctx.events)
                out.ended = "abandoned"
                state["done"] = True
                return
            ctx.record("flow.ended", outcome="goto", to=goto)
            out.events.extend(ctx.events)
            trigger = "goto"
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
        if out_of_turns():
            break
        if item.wait:
            # Each timer fires at its due time, as the timer loop fires it, so a timer it arms
            # (a reminder, then the timeout) fires within the same wait if due by its end.
            until = clock + item.wait
            while state["due"] is not None and state["due"] <= until and not state["done"]:
                if out_of_turns():
                    break
                clock = max(clock, state["due"])
                out.transcript.append(TranscriptEntry(who="system", at=clock, text="timer fired"))
                await turn(None, "timer")
            if state["stopped"]:
                break
            clock = until
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
