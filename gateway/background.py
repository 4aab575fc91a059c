"""Background loops of every gateway process: events to the store in batches, due timers.

Both are safe with several processes: a tenant's pending events are claimed with SPOP and
inserted idempotently by stream id; a due timer is claimed by exactly one process (Lua).
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .pipeline import Pipeline
    from .state import State
    from .store import Store

log = logging.getLogger("causette.background")
BATCH = 1000


async def flush_events(state: "State", store: "Store") -> int:
    """Move pending events from the tenants' Redis streams to the store; returns how many."""
    moved = 0
    for tenant in await state.pending_events():
        try:
            rows = await state.read_events(tenant, BATCH)
            good = [(sid, ev) for sid, ev in rows if ev is not None and ev.tenant == tenant]
            if good:
                await store.insert_events(good)
            await state.ack_events(tenant, [sid for sid, _ in rows], more=len(rows) == BATCH)
            moved += len(good)
        except Exception as exc:  # the store is down or busy: keep the events, try later
            log.warning("event flush for %s failed: %s", tenant, exc)
            await state.requeue_events(tenant)
    return moved


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except asyncio.TimeoutError:
        pass


async def event_loop(state: "State", store: "Store", interval: float, stop: asyncio.Event) -> None:
    # `stop`, not only cancellation, ends the loops: redis-py can swallow a cancellation
    # that arrives while it is connecting.
    while not stop.is_set():
        try:
            moved = await flush_events(state, store)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("event flusher: %s", exc)
            moved = 0
        if moved < BATCH:
            await _pause(stop, interval)


async def timer_loop(state: "State", pipeline: "Pipeline", interval: float,
                     stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            due = await state.claim_timers(time.time())
            for tenant, channel, contact in due:
                try:
                    await pipeline.fire_timer(tenant, channel, contact)
                except Exception as exc:
                    log.warning("timer %s/%s/%s failed: %s", tenant, channel, contact, exc)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("timer loop: %s", exc)
            due = []
        if len(due) < 100:
            await _pause(stop, interval)
