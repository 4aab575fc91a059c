"""Background loops of every gateway process: events to the store in batches, due timers.

Both are safe with several processes: a tenant's pending events are claimed with SPOP and
inserted idempotently by stream id; a due timer is claimed by exactly one process (Lua).
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from .pipeline import Pipeline
    from .state import State
    from .store import Store

log = logging.getLogger("causette.background")
TENANTS = 100     # tenants claimed per flush round
ROUND = 100       # about this many stream entries (turns) per round while messages are running
ROUND_IDLE = 1000  # ... and while none is: the store catches up in fewer, larger transactions
PER_TENANT = 10    # entries read per claimed tenant, at least


def _entries(rows: list) -> tuple[str, int]:
    """The last stream entry id of a batch and how many entries it read (a turn's entry
    carries several events: `id`, `id/1`...)."""
    ids = [sid for sid, _ in rows if "/" not in sid]
    return (ids[-1] if ids else ""), len(ids)


async def flush_events(state: "State", store: "Store", size: int = ROUND) -> int:
    """One round: move pending events of up to TENANTS tenants from their Redis streams to
    the store (one pipelined read, one transaction, one pipelined ack); returns how many
    stream entries the round read."""
    return (await _round(state, store, size))[0]


async def _round(state: "State", store: "Store", size: int,
                 per_tenant: float = PER_TENANT) -> tuple[int, bool, int]:
    """(entries read, whether more may be waiting, tenants claimed). A round reads about
    `size` entries: decoding them runs on the event loop, so while messages are running a
    round must stay short (a millisecond or two); the p99 of a burst depends on it
    (docs/benchmarks.md). `per_tenant` is how many entries a claimed tenant brought lately."""
    # A round's fixed costs (the claim, the store's transaction, the acknowledgement) are
    # paid per round: when a burst is spread over thousands of tenants, each with an entry
    # or two, claim more of them so that a round still carries about `size` entries.
    claim = max(1, min(TENANTS, int(size / max(1.0, per_tenant))))
    tenants = await state.pending_events(claim)
    if not tenants:
        return 0, False, 0
    each = max(PER_TENANT, size // len(tenants))
    try:
        batches = await state.read_events(tenants, each)
        good = [(sid, ev) for tenant, rows in batches.items() for sid, ev in rows
                if ev is not None and ev.tenant == tenant]
        if good:
            await store.insert_events(good)
        entries = {t: _entries(rows) for t, rows in batches.items()}
        more = {t: n == each for t, (_, n) in entries.items()}
        await state.ack_events({t: (last, more[t]) for t, (last, _) in entries.items()})
    except Exception as exc:  # the store is down or busy: keep the events, try later
        log.warning("event flush of %d tenants failed: %s", len(tenants), exc)
        await state.requeue_events(tenants)
        return 0, False, 0
    # Tenants not claimed this round, or some claimed with more waiting: go on at once.
    return (sum(n for _, n in entries.values()), len(tenants) == claim or any(more.values()),
            len(tenants))


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except asyncio.TimeoutError:
        pass


async def event_loop(state: "State", store: "Store", interval: float, stop: asyncio.Event,
                     busy: "Callable[[], bool]" = lambda: False) -> None:
    """Flush rounds until `stop`; `busy()` says whether messages are running in this process."""
    # `stop`, not only cancellation, ends the loops: redis-py can swallow a cancellation
    # that arrives while it is connecting.
    per_tenant = float(PER_TENANT)
    while not stop.is_set():
        size = ROUND if busy() else ROUND_IDLE
        try:
            read, more, claimed = await _round(state, store, size, per_tenant)
            if claimed:
                per_tenant = 0.7 * per_tenant + 0.3 * (read / claimed)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("event flusher: %s", exc)
            more = False
        if more:
            await asyncio.sleep(0)   # a backlog: keep going, but let requests in between
        else:
            await _pause(stop, interval)


async def timer_loop(state: "State", pipeline: "Pipeline", interval: float,
                     stop: asyncio.Event) -> None:
    """Due timers resume their conversations; due sends (a provider asked for them later)
    are tried again."""
    while not stop.is_set():
        try:
            due = await state.claim_timers(time.time())
            for tenant, channel, contact in due:
                try:
                    await pipeline.fire_timer(tenant, channel, contact)
                except Exception as exc:
                    log.warning("timer %s/%s/%s failed: %s", tenant, channel, contact, exc)
            sends = await state.claim_resends(time.time())
            for tenant, rid, item in sends:
                # Each in a task of its own: a provider that is slow again (a send may take
                # ~30 s) must hold up neither the timers nor other tenants' sends.
                pipeline.spawn_resend(tenant, rid, item)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("timer loop: %s", exc)
            due, sends = [], []
        if len(due) < 100 and len(sends) < 100:
            await _pause(stop, interval)
