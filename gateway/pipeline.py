"""One inbound message, design section 4: dedup, order, session, chains, flow, replies, events.

A turn costs two Redis round trips (`State.enter`, `State.leave`) and no store write; events
reach the store in batches (`gateway.background`).
"""
from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
import zlib
from typing import TYPE_CHECKING, Any

import msgspec

from .channels import Channel
from .flows import Context, StepResult
from .plugins import FAILED
from .registry import LiveFlow, TenantRuntime
from .state import Busy, Duplicate
from .triggers import fold
from .types import Event, InboundMessage, Reply, Resend, SendResult, Session, Turn

if TYPE_CHECKING:
    import aiohttp

    from .plugins import PluginHost
    from .registry import Registry
    from .state import State

log = logging.getLogger("causette.pipeline")

FALLBACK = {
    "fr": "Désolé, nous rencontrons un souci technique. Réessayez dans un instant.",
    "en": "Sorry, something went wrong on our side. Please try again in a moment.",
}
MAX_GOTO = 5
ENGINE_BUDGET = 4      # an engine's turn may call several steps, each with its own timeout
BURST_LIMIT, BURST_WINDOW = 20, 300.0    # identical replies to one contact (design 4b)
# A send the provider asks to get later (`retry`) is kept and tried again: first after its
# Retry-After (or the channel's estimate), then after at least a backoff that doubles from
# RESEND_BACKOFF, never more than RESEND_MAX_WAIT; MAX_RESENDS tries in all (at least ~30 min), then it
# is given up as `send.failed` (code `gave_up`).
RESEND_BACKOFF, RESEND_MAX_WAIT, MAX_RESENDS = 30.0, 1800.0, 8
_enc = msgspec.msgpack.Encoder()
_dec = msgspec.msgpack.Decoder(Session)
_resend_dec = msgspec.msgpack.Decoder(Resend)
_INLINE = SendResult(status="sent", detail="inline")     # read only


def _provider_wait(res: SendResult) -> float:
    """When to try a send the provider refused again: its wait, or RESEND_BACKOFF when neither
    it nor the channel said (a 5xx, a throttled account): not at once, right after the
    channel's own retries failed. (0 elsewhere means due now: replies queued behind a send.)"""
    return res.retry_after if res.retry_after > 0 else RESEND_BACKOFF


def _encodable(events: list[Event]) -> list[Event]:
    out = []
    for ev in events:
        try:
            _enc.encode(ev)
        except (OverflowError, TypeError, ValueError):
            continue
        out.append(ev)
    return out


def _decode_resend(raw: bytes | None) -> Resend | None:
    try:
        return _resend_dec.decode(raw) if raw else None
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def _stamp(item: Resend) -> bytes:
    """A kept send as stored, with a version of its own (`Resend.v`)."""
    return _enc.encode(msgspec.structs.replace(item, v=uuid.uuid4().hex[:16]))


def _superseded(item: Resend, why: str) -> tuple[Resend, list[tuple[str, Reply]]]:
    """What of a kept send still goes once the contact wrote (`superseded`: an agent's
    replies) or stopped us (`contact_stopped`: nothing), and what is dropped."""
    go = [n for n, r in enumerate(item.replies) if r.from_agent and why == "superseded"]
    dropped = [(why, r) for n, r in enumerate(item.replies) if n not in go]
    left = msgspec.structs.replace(item, replies=[item.replies[n] for n in go],
                                   keys=[item.keys[n] for n in go],
                                   first=item.first if go and go[0] == 0 else 0)
    return left, dropped


class _Sink(list):
    """The payloads a webhook answers with (TwiML, WeChat's passive XML). Closed when the
    webhook answered before the turn ended: later payloads go through the API. With a
    deadline, `ready` tells the webhook to answer now (the sink is full)."""
    closed = False
    ready: "asyncio.Future[None] | None" = None


class TenantMismatch(ValueError):
    """A channel produced a message for another tenant or channel instance than its own."""


class Pipeline:
    def __init__(self, host: "PluginHost", registry: "Registry", state: "State",
                 http: "aiohttp.ClientSession | None" = None):
        self.host, self.registry, self.state, self.http = host, registry, state, http
        self._tasks: set[asyncio.Task] = set()
        self._runners: dict[frozenset[str], Any] = {}
        self.turns = 0

    # --- entry points ---------------------------------------------------------------------
    async def handle(self, tenant: "str | TenantRuntime", channel: "str | Channel",
                     messages: list[InboundMessage], *, inline: bool = True) -> list[Any]:
        """Run inbound messages of one webhook (or socket frame) through the pipeline, in order.
        Returns the rendered payloads the channel answers inline (TwiML, WeChat XML)."""
        rt = tenant if isinstance(tenant, TenantRuntime) else await self.registry.get(tenant)
        if rt is None:
            raise LookupError(f"unknown tenant {tenant!r}")
        ch = channel if isinstance(channel, Channel) else rt.channels.get(channel)
        if ch is None:
            raise LookupError(f"unknown channel {channel!r}")
        if not (inline and ch.capabilities.inline):
            return await self._handle(rt, ch, messages, None)
        sink = _Sink()
        deadline = ch.inline_deadline
        if not deadline:
            return await self._handle(rt, ch, messages, sink)
        # The provider drops the webhook after a few seconds (WeChat: 5) and its retries get
        # only the dedup answer: the webhook answers with what is ready when the deadline
        # passes or the sink is full, whichever comes first, and the turn sends the rest
        # through the provider's API itself, under the conversation's lease.
        ready = sink.ready = asyncio.get_running_loop().create_future()
        task = asyncio.ensure_future(self._handle(rt, ch, messages, sink))
        task.add_done_callback(lambda _: ready.done() or ready.set_result(None))
        try:
            await asyncio.wait((ready,), timeout=deadline)
        except asyncio.CancelledError:     # the webhook went away: the turn goes on, tracked
            self._tasks.add(task)
            task.add_done_callback(self._late)
            raise
        if task.done():
            return task.result()
        sink.closed = True
        self._tasks.add(task)
        task.add_done_callback(self._late)
        return list(sink)

    def _late(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("a turn that outlasted its webhook's deadline failed: %r", task.exception())

    async def _handle(self, rt: TenantRuntime, ch: Channel, messages: list[InboundMessage],
                      sink: "_Sink | None") -> list[Any]:
        statuses: list[tuple[str, Event]] = []
        for msg in messages:
            if msg.tenant != rt.slug or msg.channel != ch.instance_id:
                raise TenantMismatch(f"{ch.type} produced a message for {msg.tenant}/{msg.channel}")
            if msg.kind == "status" and msg.status == "handback":
                # The provider's human-agent inbox gave the conversation back to the bot: once
                # per event however often it is delivered (the release turn is deduplicated by
                # its id, and forgets it when it fails, so a retry runs it), and only when held.
                await self.agent(rt, ch, msg.contact, action="release", agent=f"{ch.type}:inbox",
                                 only_held=True, key=f"handback:{msg.native_id}" if msg.native_id else "")
                continue
            if msg.kind == "status":
                statuses.append((msg.native_id, Event(
                    type="message.status", tenant=rt.slug, channel=ch.instance_id, contact=msg.contact,
                    ts=msg.ts or time.time(), data={"status": msg.status, "refers_to": msg.refers_to,
                                                    **({"code": msg.payload} if msg.payload else {})})))
                continue
            await self._turn(rt, ch, msg.contact, msg.native_id, msg, sink)
        if statuses:
            # A status delivered again (the provider's retry) is neither recorded nor notified twice.
            new = await self.state.record_once(rt.slug, ch.instance_id, statuses, ch.dedup_ttl)
            self._notify(rt, ch, new)
        return sink or []

    async def fire_timer(self, tenant: str, channel: str, contact: str) -> bool:
        """A due timer (wait node, reminder, no-answer timeout) resumes its conversation."""
        rt = await self.registry.get(tenant)
        ch = rt.channels.get(channel) if rt else None
        if rt is None or ch is None:
            if rt is not None and any(c.id == channel and c.enabled for c in rt.snapshot.channels):
                # Configured, but its plugin is not installed in this process: the claim's
                # lease runs out and a process that has it takes the timer.
                log.warning("timer of %s/%s/%s left for another process: channel type not "
                            "installed here", tenant, channel, contact)
            else:
                log.warning("timer of %s/%s/%s dropped: no such tenant or channel", tenant,
                            channel, contact)
                await self.state.drop_timer(tenant, channel, contact)
            return False
        await self._turn(rt, ch, contact, f"timer:{uuid.uuid4().hex}", None, None, reason="timer")
        return True

    async def start_flow(self, rt: TenantRuntime, ch: Channel, contact: str, flow_id: str, *,
                         vars: dict[str, Any] | None = None, source: str = "campaign",
                         key: str = "", version: int = 0, locale: str = "") -> bool:
        """Start a flow without an inbound message (campaigns, API). Idempotent per `key`.
        `version` 0 is the latest published one, registry.DRAFT the draft. `locale`: the
        contact's language when the conversation is new (else the tenant's)."""
        extra = {"flow": flow_id, "vars": vars or {}, "source": source, "version": version, "locale": locale}
        return await self._turn(rt, ch, contact, key or f"start:{uuid.uuid4().hex}", None, None,
                                reason="start", extra=extra)

    async def agent(self, rt: TenantRuntime, ch: Channel, contact: str, *, action: str,
                    agent: str = "", text: str = "", queue: str = "", only_held: bool = False,
                    key: str = "") -> list[Event]:
        """Human-agent actions (takeover, reply, release) as a turn of the conversation, in
        order with the contact's messages. Returns the events of that turn (a reply outside
        the channel's window shows up as `message.held` with its reason). `only_held`: a
        release does nothing when no agent holds the conversation. `key`: the action's id when
        it comes from a provider that may deliver it again (a duplicate does nothing)."""
        out: list[Event] = []
        await self._turn(rt, ch, contact, key or f"agent:{uuid.uuid4().hex}", None, None, reason="agent",
                         extra={"action": action, "agent": agent, "text": text, "queue": queue,
                                "events_out": out, "only_held": only_held})
        return out

    async def drain(self) -> None:
        """Wait for background chain calls (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # --- one turn ------------------------------------------------------------------------
    async def _turn(self, rt: TenantRuntime, ch: Channel, contact: str, native_id: str,
                    msg: InboundMessage | None, sink: list[Any] | None, *,
                    reason: str = "message", extra: dict[str, Any] | None = None) -> bool:
        try:
            lease = await self.state.enter(rt.slug, ch.instance_id, contact, native_id)
        except Duplicate:
            return False
        session = lease.session or Session(
            locale=(msg.locale if msg else (extra or {}).get("locale", "")) or rt.snapshot.locale)
        ctx = Context(tenant=rt.slug, channel=ch.instance_id, channel_type=ch.type, contact=contact,
                      session=session, http=self.http, settings=rt.settings, tenant_config=rt.snapshot,
                      run_step=self._step_runner(rt))
        ctx.meta["reason"] = reason
        ctx.meta["_lease"] = lease
        try:
            if reason == "agent":
                replies, wait = self._agent_action(rt, ctx, extra or {}), 0.0
            else:
                replies, wait = await self._run(rt, ch, ctx, msg, extra)
            await self._deliver(rt, ch, ctx, replies, sink, native_id)
            handoff = ctx.meta.get("handoff")
            if handoff is not None:
                await self.host.call_each("handoff_requested", rt.slug, rt.enabled, ctx=ctx,
                                          handoff=handoff)
            released = ctx.meta.get("released")
            if released is not None:
                # Within the turn, as handoff_requested: what the hook records (Messenger's
                # handover.taken / handover.failed) is saved with the turn's events.
                await self.host.call_each("handoff_released", rt.slug, rt.enabled, ctx=ctx,
                                          handoff=released)
            resend = ctx.meta.get("resend")
            if resend is not None:
                # Kept before the session that names it is saved and the conversation handed
                # over: the next turn must find it to queue behind it.
                try:
                    await self._queue_resend(rt.slug, *resend)
                except Exception as exc:  # the webhook must still get its 2xx
                    log.warning("tenant %s: replies to send later not kept: %s", rt.slug, exc)
                    ctx.record("send.failed", code="not_kept", detail=str(exc)[:200])
                    ctx.session.resend = ""
        except BaseException:
            # Nothing half-written: release the conversation and forget the message id, so
            # the provider's retry of this webhook runs the turn again from the saved state
            # (kept as stored: the turn changed `lease.session` in place).
            await asyncio.shield(self.state.leave(lease, None, rt.session_ttl, [], forget=True,
                                                  keep=True))
            raise
        try:
            saved = await self.state.leave(lease, ctx.session, rt.session_ttl, ctx.events,
                                           timer_due=ctx.now + wait if wait > 0 else None,
                                           clear_timer=wait <= 0, dedup_ttl=ch.dedup_ttl)
        except (OverflowError, TypeError, ValueError) as exc:
            # msgpack cannot hold what a plugin left in the session or an event (an integer
            # beyond 64 bits, an object), or the wait is endless. The replies have gone out:
            # keep the conversation as stored before this turn, release it, say why.
            log.warning("tenant %s: turn of %s:%s not saved: %s", rt.slug, ch.instance_id,
                        contact, exc)
            ctx.events[:] = _encodable(ctx.events)
            ctx.record("flow.failed", error=f"state not saved: {exc}"[:300])
            saved = await self.state.leave(lease, None, rt.session_ttl, ctx.events, keep=True,
                                           dedup_ttl=ch.dedup_ttl)
        if not saved:
            log.warning("tenant %s: lease on %s:%s expired mid-turn; turn dropped", rt.slug,
                        ch.instance_id, contact)
        self.turns += 1
        self._notify(rt, ch, ctx.events)
        if extra is not None and "events_out" in extra:
            extra["events_out"].extend(ctx.events)
        deferred = ctx.meta.get("deferred")
        if deferred and saved:
            self._spawn(self._send_deferred(rt, ch, contact, native_id, ctx.now, deferred))
        return saved

    async def _run(self, rt: TenantRuntime, ch: Channel, ctx: Context, msg: InboundMessage | None,
                   extra: dict[str, Any] | None) -> tuple[list[Reply], float]:
        s = ctx.session
        if msg is not None:
            s.last_in = ctx.now
            s.msgs += 1
            for k, v in msg.profile.items():
                # What the flow learnt wins over the channel's profile, except for what only
                # the channel can know and that changes (a device's capabilities).
                if k == "capabilities":
                    s.contact[k] = v
                else:
                    s.contact.setdefault(k, v)
            if msg.locale and not s.locale:
                s.locale = msg.locale
            data: dict[str, Any] = {"kind": msg.kind, "id": msg.native_id}
            if msg.text:
                data["text"] = msg.text[:1000]
            if msg.payload:
                data["payload"] = msg.payload
            if msg.referral:
                data["referral"] = msg.referral.ref or msg.referral.source
            ctx.record("message.in", **data)
            if msg.kind == "optout":
                s.stopped = True
                ctx.record("consent.optout", source=msg.text or "provider")
            elif msg.kind == "optin":
                s.stopped = False
                ctx.record("consent.optin", source=msg.text or "provider")
            # Most tenants enable no inbound_message plugin: no coroutine for an empty chain.
            answer = await self.host.call_first("inbound_message", rt.slug, rt.enabled,
                                                ctx=ctx, message=msg) \
                if self.host.chain("inbound_message", rt.enabled) else None
            if answer is not None:
                return ([answer] if isinstance(answer, Reply) else list(answer)), 0.0
            if s.human or msg.kind == "optout" or s.stopped:
                return [], 0.0
            if msg.kind == "optin" and not (msg.referral and rt.referrals
                                            and msg.referral.ref in rt.referrals):
                # Consent alone (SMS START) starts nothing; a follow that carries a flow's
                # ref (WeChat's subscribe from a QR code with a scene) starts that flow.
                return [], 0.0
        elif s.human and ctx.meta["reason"] == "timer":
            return [], 0.0      # a human holds the conversation: no reminders from the bot
        target, restart_vars = self._target(rt, ctx, msg, extra)
        if target is not None:
            found = await self.registry.flow(rt, target, (extra or {}).get("version", 0))
            outside = self._outside_period(rt, found, ctx.now) if found is not None else None
            period = None
            if outside is not None:
                if isinstance(outside, Reply):
                    return [outside], 0.0
                period, target = found.period, outside
                found = await self.registry.flow(rt, target)
            if found is None:
                ctx.record("flow.missing", flow=target)
                # A fallback flow archived since (?force=true): its period's message, if any,
                # rather than silence.
                said = self._period_message(rt, period[2]) if period is not None else Reply()
                return ([said] if said.text else []), 0.0
            if s.flow and s.node:
                self._end(ctx, "abandoned", why="restarted")
            s.flow, s.version, s.node = found.id, found.version, ""
            s.vars, s.extra, s.retries, s.outcome = dict(restart_vars), {}, 0, ""
            s.started = ctx.now
            s.source = (msg.referral.ref or msg.referral.source) if (msg and msg.referral) else \
                (extra or {}).get("source", "")
            ctx.record("flow.started", source=s.source, trigger=ctx.meta.get("trigger", ""))
        elif s.flow and s.node:
            found = await self.registry.flow(rt, s.flow, s.version)
            if found is None:  # the version vanished (tenant deleted it): start over next time
                s.flow = s.node = ""
                return [], 0.0
        else:
            if msg is not None:
                ctx.record("message.unhandled")
            return [], 0.0
        return await self._advance(rt, ctx, found, msg)

    def _target(self, rt: TenantRuntime, ctx: Context, msg: InboundMessage | None,
                extra: dict[str, Any] | None) -> tuple[str | None, dict[str, Any]]:
        s = ctx.session
        if ctx.meta["reason"] == "start" and extra:
            ctx.meta["trigger"] = extra.get("source", "start")
            return extra["flow"], extra.get("vars") or {}
        if msg is None:
            return None, {}
        if msg.referral and rt.referrals and msg.referral.ref in rt.referrals:
            ctx.meta["trigger"] = "referral"
            return rt.referrals[msg.referral.ref], {}
        if msg.kind == "text" and msg.text and rt.keywords:
            hit = rt.keywords.get(fold(msg.text))
            if hit:
                ctx.meta["trigger"] = "keyword"
                return hit, {}
        if s.flow and s.node:
            return None, {}
        if msg.kind == "open":
            ctx.meta["trigger"] = "widget"
            return (rt.on_open or None), {}
        if rt.on_start:
            ctx.meta["trigger"] = "start"
            return rt.on_start, {}
        return None, {}

    @staticmethod
    def _outside_period(rt: TenantRuntime, live: LiveFlow, now: float) -> "Reply | str | None":
        """None while `live` is within its active period; else the fallback flow's id or the
        reply to give instead."""
        if live.period is None:
            return None
        start, until, active = live.period
        if (start is None or now >= start) and (until is None or now < until):
            return None
        if active.get("flow") and active["flow"] != live.id:
            return active["flow"]
        return Pipeline._period_message(rt, active)

    @staticmethod
    def _period_message(rt: TenantRuntime, active: dict[str, Any]) -> Reply:
        text = active.get("message")
        if isinstance(text, dict):
            text = text.get(rt.snapshot.locale) or next(iter(text.values()), "")
        return Reply(text=text) if text else Reply()

    async def _advance(self, rt: TenantRuntime, ctx: Context, live: LiveFlow,
                       msg: InboundMessage | None) -> tuple[list[Reply], float]:
        s = ctx.session
        replies: list[Reply] = []
        wait = 0.0
        for hop in range(MAX_GOTO):
            name, compiled = live.engine, live.compiled
            engine = self.host.engines.get(name)
            before, n_events = _enc.encode(s), len(ctx.events)
            turn = FAILED if engine is None else await self.host.invoke(
                rt.slug, self.host.owner("engine", name), engine.advance,
                ("ctx", "flow", "message"), {"ctx": ctx, "flow": compiled, "message": msg},
                f"engine {name}", timeout=self.host.timeout * ENGINE_BUDGET)
            if not isinstance(turn, Turn):
                # The engine failed: the conversation keeps its state and gets the fallback.
                ctx.session = s = _dec.decode(before)
                del ctx.events[n_events:]
                ctx.record("flow.failed", engine=name)
                locale = (s.locale or rt.snapshot.locale)[:2]
                return replies + [Reply(text=FALLBACK.get(locale, FALLBACK["en"]))], 0.0
            replies.extend(turn.replies)
            if turn.events:
                ctx.events.extend(e for e in turn.events if e not in ctx.events)
            wait = turn.wait
            if turn.handoff is not None:
                s.human = str(turn.handoff.get("queue") or "agents")
                ctx.record("handoff.requested", **{k: v for k, v in turn.handoff.items()
                                                   if isinstance(v, (str, int, float, bool))})
                # `handoff_requested` runs once the turn's replies have gone out (_turn): a
                # provider's inbox that takes the thread may refuse the bot's last words after.
                ctx.meta["handoff"] = turn.handoff
            if turn.ended:
                self._end(ctx, turn.ended)
            goto = ctx.meta.pop("goto_flow", None)
            if not goto:
                break
            if hop == MAX_GOTO - 1:
                # A turn runs at most MAX_GOTO flows: the next is not started (a started run
                # that never runs would count as running for ever).
                self._end(ctx, "abandoned", to=goto, why="max_goto")
                break
            found = await self.registry.flow(rt, goto)
            if found is None:
                # Archived since this flow was published (DELETE ?force=true): the run can't
                # go on, and analytics must not count it as still running.
                ctx.record("flow.missing", flow=goto)
                self._end(ctx, "abandoned", to=goto)
                break
            # The run of the flow left ends here; analytics see where it went.
            self._end(ctx, "goto", to=goto)
            live = found
            s.flow, s.version, s.node, s.retries, s.outcome = live.id, live.version, "", 0, ""
            s.started = ctx.now
            ctx.record("flow.started", source=s.source, trigger="goto")
            msg = None
        return replies, wait

    def _end(self, ctx: Context, outcome: str, **data: Any) -> None:
        s = ctx.session
        ctx.record("flow.ended", outcome=outcome, source=s.source, msgs=s.msgs,
                   duration=round(ctx.now - s.started, 3) if s.started else 0.0,
                   human=bool(s.human), **data)
        s.outcome, s.node, s.retries = outcome, "", 0

    def _agent_action(self, rt: TenantRuntime, ctx: Context, a: dict[str, Any]) -> list[Reply]:
        s = ctx.session
        action = a.get("action")
        if action == "takeover":
            s.human = a.get("agent") or a.get("queue") or "agent"
            ctx.record("handoff.taken", agent=a.get("agent", ""))
        elif action == "release":
            was = s.human
            if not was and a.get("only_held"):
                return []        # a provider's inbox handing back a conversation no one held
            s.human = ""
            ctx.record("handoff.released", agent=a.get("agent", ""), queue=was)
            ctx.meta["released"] = {"queue": was, "agent": a.get("agent", "")}
        elif action == "reply" and a.get("text"):
            return [Reply(text=a["text"], from_agent=a.get("agent") or "agent")]
        return []

    # --- replies -----------------------------------------------------------------------------
    async def _deliver(self, rt: TenantRuntime, ch: Channel, ctx: Context, replies: list[Reply],
                       sink: list[Any] | None, key: str) -> None:
        s = ctx.session
        window = ch.capabilities.window_hours * 3600
        chain = self.host.chain("outbound_message", rt.enabled)
        pending = await self._waiting_resend(rt, ctx) if s.resend else None
        resend = pending[0] if pending is not None else None
        queued = 0
        for i, reply in enumerate(replies):
            if "lease_lost" in ctx.meta:       # see _holding: nothing more of this turn goes
                break
            held = ""
            for plugin, fn, argnames in chain:
                res = await self.host.invoke(rt.slug, plugin, fn, argnames,
                                             {"ctx": ctx, "reply": reply}, "outbound_message")
                if res is False:
                    held = f"held by {plugin}"
                    break
                if isinstance(res, Reply):
                    reply = res
            if not held and window and not (reply.template or reply.tag) and \
                    (not s.last_in or ctx.now - s.last_in > window):
                held = "outside_window"
            if not held and s.stopped and not ctx.meta.get("confirm_stop"):
                held = "contact_stopped"
            if not held and self._burst(s, reply, ctx.now):
                held = "loop_protection"
            if held:
                ctx.record("message.held", reason=held, text=reply.text[:200])
                continue
            if resend is not None:      # an earlier reply waits for the provider: this one follows it
                resend.replies.append(reply)
                resend.keys.append(f"{key}:{i}")
                if pending is not None:
                    ctx.record("send.queued", text=reply.text[:200], behind=s.resend)
                    queued += 1
                s.msgs += 1
                continue
            try:
                payloads = ch.render(reply)
            except Exception as exc:
                log.warning("tenant %s: %s render failed: %s", rt.slug, ch.type, exc)
                ctx.record("send.failed", code="render", detail=str(exc)[:200])
                continue
            for j, payload in enumerate(payloads):
                if sink is not None and not sink.closed and len(sink) < ch.capabilities.inline:
                    sink.append(payload)
                    self._record_send(ctx, reply, j, _INLINE)
                    continue
                if sink is not None and not sink.closed:
                    if sink.ready is None:
                        # The webhook answers when the turn ends; the rest goes out right after.
                        ctx.meta.setdefault("deferred", []).append((reply, payload, f"{key}:{i}:{j}", j))
                        continue
                    sink.closed = True           # full: the webhook answers now ...
                    if not sink.ready.done():
                        sink.ready.set_result(None)
                    await asyncio.sleep(0)      # ... before the rest goes out, from here
                res = await self._send_one(rt, ch, ctx, reply, payload, f"{key}:{i}:{j}", j)
                if "lease_lost" in ctx.meta:    # not kept for later either: the turn is not saved
                    break
                if res.status == "retry":
                    resend = Resend(channel=ch.instance_id, contact=ctx.contact, replies=[reply],
                                    keys=[f"{key}:{i}"], first=j, since=ctx.now)
                    s.resend = uuid.uuid4().hex
                    ctx.meta["resend"] = (resend, _provider_wait(res), s.resend)
                    break
                if res.status == "stopped":
                    break
            s.msgs += 1
        if queued and pending is not None:
            await self._queue_behind(rt, ctx, pending[1], pending[0], queued)

    async def _waiting_resend(self, rt: TenantRuntime, ctx: Context) -> tuple[Resend, bytes] | None:
        """The replies of an earlier turn that still wait for the provider (and their stored
        form), which this turn's replies must follow, read under the conversation's lease. A
        message from the contact supersedes the bot's replies among them (dropped now,
        recorded `message.held`), not an agent's."""
        s = ctx.session
        raw = await self.state.get_resend(rt.slug, s.resend)
        while True:
            item = _decode_resend(raw)
            if item is None or item.channel != ctx.channel or item.contact != ctx.contact:
                s.resend = ""
                return None
            if ctx.meta["reason"] != "message":
                return item, raw
            left, dropped = _superseded(item, "superseded")
            then = msgspec.structs.replace(left, since=ctx.now) if left.replies else None
            stored = _stamp(then) if then is not None else None
            ok, raw = await self.state.swap_resend(rt.slug, s.resend, raw, stored)
            if ok:
                for why, reply in dropped:
                    ctx.record("message.held", reason=why, text=reply.text[:200])
                if stored is None:          # nothing of it still goes
                    s.resend = ""
                    return None
                return then, stored

    async def _queue_behind(self, rt: TenantRuntime, ctx: Context, seen: bytes, item: Resend,
                            n: int) -> None:
        """Store the kept send with this turn's last `n` replies added. Its sender may have
        outlived its lease and changed it meanwhile: then add them to what it left, or, when
        it has sent everything, keep them as a send of their own, due now."""
        rid, replies, keys = ctx.session.resend, item.replies[-n:], item.keys[-n:]
        then, due = item, None
        while True:
            ok, now = await self.state.swap_resend(rt.slug, rid, seen, _stamp(then), due)
            if ok:
                return
            cur = _decode_resend(now)
            if cur is None:
                then = Resend(channel=ctx.channel, contact=ctx.contact, replies=replies, keys=keys,
                              since=ctx.now)
                due = time.time()
            else:
                then, due = msgspec.structs.replace(cur, replies=cur.replies + replies,
                                                    keys=cur.keys + keys), None
            seen = now

    async def _send_one(self, rt: TenantRuntime, ch: Channel, ctx: Context, reply: Reply,
                        payload: Any, key: str, j: int) -> SendResult:
        """Send one rendered payload and record the outcome, which it returns (`stopped`: the
        contact stopped us; `retry`: the provider wants it later)."""
        try:
            res = await self._holding(ctx, ch.send(ctx.contact, payload, key=key))
        except Exception as exc:   # a channel bug must not lose the turn
            log.warning("tenant %s: %s send raised %s", rt.slug, ch.type, type(exc).__name__)
            res = SendResult(status="failed", code="exception", detail=type(exc).__name__)
        if res.status == "failed" and res.code in ch.fallback_codes and "lease_lost" not in ctx.meta:
            why = res.code
            res, via = await self._fallback(rt, ch, ctx, reply, key + ":fb", res)
            if via:
                # The fallback's own message id: its delivery receipts refer to it.
                ctx.record("message.out", status="sent", channel=via, text=reply.text[:500],
                           fallback_from=ch.instance_id, fallback_code=why,
                           **({"provider_id": res.provider_id} if res.provider_id else {}))
                return res
        self._record_send(ctx, reply, j, res)
        if res.status == "stopped":
            ctx.session.stopped = True
            ctx.record("consent.optout", source="provider", code=res.code)
        return res

    async def _holding(self, ctx: Context, aw: Any) -> Any:
        """Await a send, keeping the conversation's lease while it takes long (a provider slow
        to answer, retried): a turn that outlived its lease would be dropped unsaved."""
        lease = ctx.meta.get("_lease")
        if lease is None or "lease_lost" in ctx.meta:
            return await aw
        every = self.state.lock_ttl_ms / 3000
        task = asyncio.ensure_future(aw)
        try:
            while True:
                wait = every - (time.monotonic() - lease.held)
                if wait > 0:
                    done, _ = await asyncio.wait((task,), timeout=wait)
                    if done:
                        return task.result()
                    continue
                try:
                    kept = await self.state.renew(lease)
                except Exception as exc:     # Redis unreachable: the send goes on regardless
                    log.warning("tenant %s: lease not renewed: %s", ctx.tenant, exc)
                    lease.held = time.monotonic()
                    continue
                if not kept:
                    # The lock ran out before this renewal (the process stalled) and another
                    # turn took the conversation: this one will not be saved (`leave` refuses
                    # it), so its replies still to go stay unsent rather than go out of order
                    # with that turn's; this send is already with the provider.
                    log.warning("tenant %s: lease on %s:%s lost during a send; the turn's "
                                "remaining replies are dropped", ctx.tenant, ctx.channel, ctx.contact)
                    ctx.meta["lease_lost"] = True
                    return await task
        except BaseException:
            task.cancel()
            raise

    @staticmethod
    def _record_send(ctx: Context, reply: Reply, j: int, res: SendResult) -> None:
        data: dict[str, Any] = {"status": res.status}
        if j == 0:
            if reply.text:
                data["text"] = reply.text[:500]
            if reply.choices:
                data["choices"] = [c.id for c in reply.choices]
        if reply.from_agent:
            data["agent"] = reply.from_agent
        if res.provider_id:
            data["provider_id"] = res.provider_id
        if res.code:
            data["code"] = res.code
        if res.detail:
            data["detail"] = res.detail
        if res.retry_after:
            data["retry_after"] = res.retry_after
        ctx.record("message.out" if res.status == "sent" else "send." + res.status, **data)

    async def _send_deferred(self, rt: TenantRuntime, ch: Channel, contact: str, turn_key: str,
                             since: float, items: list[tuple[Reply, Any, str, int]]) -> None:
        """Send what did not fit in a webhook's inline answer (more payloads than TwiML's ten),
        once the webhook has answered: as a turn of the conversation, under its lease, so what
        the provider says (a contact who stopped us, a send to try later) is saved. A message
        from the contact that got in first supersedes them (`message.held`)."""
        try:
            lease = await self.state.enter(rt.slug, ch.instance_id, contact, f"deferred:{turn_key}")
        except Duplicate:
            return
        except Busy:
            lease = None     # the conversation stayed busy: send anyway rather than lose them
        except Exception as exc:
            log.warning("tenant %s: replies after the inline answer sent without the lease: %s",
                        rt.slug, exc)
            lease = None
        session = (lease.session if lease is not None else None) or Session()
        ctx = Context(tenant=rt.slug, channel=ch.instance_id, channel_type=ch.type, contact=contact,
                      session=session, http=self.http, settings=rt.settings, tenant_config=rt.snapshot)
        ctx.meta["_lease"] = lease
        resend: Resend | None = None
        retry_after = 0.0
        try:
            if session.last_in > since:
                for reply in dict.fromkeys(r for r, _, _, _ in items):
                    ctx.record("message.held", reason="superseded", text=reply.text[:200])
                items = []
            for reply, payload, key, j in items:
                if resend is not None:       # behind one the provider wants later, in order
                    if reply is not resend.replies[-1]:
                        resend.replies.append(reply)
                        resend.keys.append(key.rsplit(":", 1)[0])
                    continue
                res = await self._send_one(rt, ch, ctx, reply, payload, key, j)
                if res.status == "stopped" or "lease_lost" in ctx.meta:
                    break
                if res.status == "retry":
                    resend = Resend(channel=ch.instance_id, contact=contact, replies=[reply],
                                    keys=[key.rsplit(":", 1)[0]], first=j, since=since)
                    retry_after = _provider_wait(res)
            if resend is not None:
                rid = uuid.uuid4().hex
                try:
                    await self._queue_resend(rt.slug, resend, retry_after, rid)
                    # A turn that ran meanwhile (a reminder) may name a send of its own.
                    session.resend = session.resend or rid
                except Exception as exc:
                    ctx.record("send.failed", code="not_kept", detail=str(exc)[:200])
        finally:
            if lease is None:
                await self.state.record(rt.slug, ctx.events)
            else:
                await asyncio.shield(self._leave_after_sends(rt, lease, ctx))
        self._notify(rt, ch, ctx.events)

    # --- sends the provider wants later --------------------------------------------------------
    @staticmethod
    def _resend_due(item: Resend, retry_after: float) -> float:
        # The provider's wait first; from the second try on, at least a doubling backoff
        # (channels fill in an estimate when the provider gives none, so it never doubled).
        floor = RESEND_BACKOFF * 2 ** (item.attempt - 2) if item.attempt > 1 else 0.0
        wait = retry_after if math.isfinite(retry_after) else RESEND_MAX_WAIT
        return time.time() + min(max(wait, floor, 0.0), RESEND_MAX_WAIT)

    async def _queue_resend(self, tenant: str, item: Resend, retry_after: float, rid: str) -> None:
        await self.state.queue_resend(tenant, rid, _stamp(item), self._resend_due(item, retry_after))

    async def resend(self, tenant: str, rid: str, raw: bytes | None) -> bool:
        """Try again, in order, the replies a provider asked to get later (the timer loop calls
        it when they are due). It runs as a turn of the conversation: under its lease, after
        any turn running, saving what the provider said (a contact who stopped us). The lease's
        dedup mark, `resend:<id>:<version>`, makes one process send a version of it even when
        another claims it again. When the contact has written since (`superseded`: the conversation
        moved on) the bot's replies are dropped, and all of them when the contact stopped us,
        each recorded as `message.held`; an agent's replies still go."""
        item = _decode_resend(raw)
        rt = await self.registry.get(tenant) if item is not None else None
        ch = rt.channels.get(item.channel) if rt is not None and item is not None else None
        if item is None or rt is None or ch is None:
            if rt is not None and item is not None and \
                    any(c.id == item.channel and c.enabled for c in rt.snapshot.channels):
                return False     # its channel's plugin is not installed here: the lease runs out
            await self.state.drop_resend(tenant, rid)
            return False
        try:
            lease = await self.state.enter(tenant, item.channel, item.contact,
                                           f"resend:{rid}:{item.v or item.attempt}")
        except Duplicate:
            return False         # sent (or being sent) by another process
        except Busy:
            return False         # the conversation stayed busy: due again when the claim runs out
        session = lease.session or Session()
        ctx = Context(tenant=rt.slug, channel=ch.instance_id, channel_type=ch.type, contact=item.contact,
                      session=session, http=self.http, settings=rt.settings, tenant_config=rt.snapshot)
        ctx.meta["_lease"] = lease
        try:
            # As it stands now: a turn that ran since the claim may have queued replies behind it.
            raw = await self.state.get_resend(tenant, rid)
            item = _decode_resend(raw)
            then = None if item is None else await self._resend_replies(rt, ch, ctx, item)
            await self._settle_resend(rt, ctx, rid, raw, item, then)
        finally:
            await asyncio.shield(self._leave_after_sends(rt, lease, ctx))
        self._notify(rt, ch, ctx.events)
        return True

    async def _leave_after_sends(self, rt: TenantRuntime, lease: Any, ctx: Context) -> None:
        """Leave a turn that only sent (kept or deferred replies): save what the provider said
        (a contact who stopped us, a send kept for later), and create no session that was not
        there."""
        s = ctx.session
        keep = lease.session is None and not s.stopped and not s.resend
        await self.state.leave(lease, None if keep else s, rt.session_ttl, _encodable(ctx.events), keep=keep)

    def spawn_resend(self, tenant: str, rid: str, raw: bytes | None) -> None:
        """`resend` in a task tracked by the pipeline (drained at shutdown), failures logged."""
        async def run() -> None:
            try:
                await self.resend(tenant, rid, raw)
            except Exception as exc:
                log.warning("resend %s/%s failed: %s", tenant, rid, exc)
        self._spawn(run())

    async def _resend_replies(self, rt: TenantRuntime, ch: Channel, ctx: Context,
                              item: Resend) -> tuple[Resend, float] | None:
        """Send the kept replies that still should go; returns what the provider refused again
        (kept for another try, with its Retry-After), else None."""
        s = ctx.session
        if s.stopped or s.last_in > item.since:
            item, dropped = _superseded(item, "contact_stopped" if s.stopped else "superseded")
            for why, reply in dropped:
                ctx.record("message.held", reason=why, text=reply.text[:200])
        for n, (reply, key) in enumerate(zip(item.replies, item.keys)):
            try:
                payloads = ch.render(reply)
            except Exception as exc:
                ctx.record("send.failed", code="render", detail=str(exc)[:200])
                continue
            for j in range(item.first if n == 0 else 0, len(payloads)):
                res = await self._send_one(rt, ch, ctx, reply, payloads[j], f"{key}:{j}", j)
                if res.status == "stopped":
                    for gone in item.replies[n + 1:]:
                        ctx.record("message.held", reason="contact_stopped", text=gone.text[:200])
                    return None
                if res.status == "retry":
                    if item.attempt + 1 >= MAX_RESENDS:      # this try was the last allowed
                        for gone in item.replies[n:]:
                            ctx.record("send.failed", code="gave_up", attempts=item.attempt + 1,
                                       text=gone.text[:200])
                        return None
                    return msgspec.structs.replace(item, replies=item.replies[n:], keys=item.keys[n:],
                                                   first=j, attempt=item.attempt + 1), _provider_wait(res)
                if "lease_lost" in ctx.meta:
                    # Another process may claim this send now: what is left is kept, for it
                    # or a later try, rather than sent alongside it.
                    rest = (n, j + 1) if j + 1 < len(payloads) else (n + 1, 0)
                    if rest[0] >= len(item.replies):
                        return None
                    return msgspec.structs.replace(item, replies=item.replies[rest[0]:],
                                                   keys=item.keys[rest[0]:], first=rest[1]), 0.0
        return None

    async def _settle_resend(self, rt: TenantRuntime, ctx: Context, rid: str, seen: bytes | None,
                             sent: Resend | None, then: tuple[Resend, float] | None) -> None:
        """Keep what is left of a kept send after a try (`then`), or drop it. A send that
        outlived its lease may find replies queued behind it meanwhile: they are kept too."""
        while True:
            item = then[0] if then is not None else None
            due = self._resend_due(*then) if then is not None else None
            ok, now = await self.state.swap_resend(rt.slug, rid, seen,
                                                   _stamp(item) if item is not None else None, due)
            if ok:
                break
            cur = _decode_resend(now)
            if cur is None or sent is None:
                break            # gone (or unreadable) meanwhile: nothing of ours to keep
            # Merged by key (unique per reply): a turn may have queued replies behind it, and
            # the contact's message may have dropped the bot's replies from the front.
            seen_keys, alive = set(sent.keys), set(cur.keys)
            added = [(r, k) for r, k in zip(cur.replies, cur.keys) if k not in seen_keys]
            ours = [(r, k) for r, k in zip(item.replies, item.keys) if k in alive] if item else []
            both = ours + added
            if not both:
                then = None
            else:
                base = item if item is not None else msgspec.structs.replace(cur, attempt=1)
                first = item.first if item is not None and ours and ours[0][1] == item.keys[0] else 0
                then = (msgspec.structs.replace(base, replies=[r for r, _ in both],
                                                keys=[k for _, k in both], first=first),
                        then[1] if then is not None else 0.0)
            seen, sent = now, cur
        if (then is None) and ctx.session.resend == rid:
            ctx.session.resend = ""

    async def _fallback(self, rt: TenantRuntime, ch: Channel, ctx: Context, reply: Reply,
                        key: str, failed: SendResult) -> tuple[SendResult, str]:
        """Send a reply through the instance's `fallback_channel` (same tenant only); returns
        the outcome and the instance it went through ("" when it did not go)."""
        other = rt.channels.get(getattr(ch.settings, "fallback_channel", "") or "")
        if other is None or other is ch:
            return failed, ""
        try:
            first = ""
            for j, payload in enumerate(other.render(reply)):
                if "lease_lost" in ctx.meta:
                    return failed, ""
                res = await self._holding(ctx, other.send(ctx.contact, payload, key=f"{key}:{j}"))
                if res.status != "sent":
                    return res, ""
                first = first or res.provider_id
        except Exception as exc:
            return SendResult(status="failed", code="exception", detail=type(exc).__name__), ""
        return SendResult(status="sent", provider_id=first), other.instance_id

    @staticmethod
    def _burst(s: Session, reply: Reply, now: float) -> bool:
        # What the contact sees: the text and the choices (stable across processes).
        fp = zlib.crc32(reply.text.encode())
        if reply.choices or reply.cards or reply.media or reply.template:
            fp = zlib.crc32(_enc.encode((reply.choices, reply.cards, reply.media, reply.template)), fp)
        b = s.extra.get("_b")
        if not b or b[0] != fp or now - b[2] > BURST_WINDOW:
            s.extra["_b"] = [fp, 1, now]
            return False
        b[1] += 1
        return b[1] > BURST_LIMIT

    # --- steps and chains -------------------------------------------------------------------
    def _step_runner(self, rt: TenantRuntime):
        """The function a flow calls to run a step: one per set of enabled plugins, shared by
        the tenants that have that set."""
        run = self._runners.get(rt.enabled)
        if run is not None:
            return run
        host, enabled = self.host, rt.enabled

        async def run(ctx: Context, name: str, args: Any) -> StepResult:
            res = await host.run_step(ctx, name, args, enabled, live=bool(ctx.meta.get("live_steps")))
            if not res.ok:
                ctx.record("step.failed", step=name, error=res.error[:300])
            return res
        self._runners[enabled] = run
        return run

    def _notify(self, rt: TenantRuntime, ch: Channel, events: list[Event]) -> None:
        if not events or not self.host.chain("conversation_event", rt.enabled):
            return
        self._spawn(self._events_chain(rt, ch, events))

    async def _events_chain(self, rt: TenantRuntime, ch: Channel, events: list[Event]) -> None:
        for ev in events:
            ctx = Context(tenant=rt.slug, channel=ch.instance_id, channel_type=ch.type,
                          contact=ev.contact, session=Session(), http=self.http,
                          settings=rt.settings, tenant_config=rt.snapshot)
            await self.host.call_each("conversation_event", rt.slug, rt.enabled, ctx=ctx, event=ev)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
