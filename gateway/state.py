"""Conversation state in Redis: the two round trips of a turn, and their keys.

Every key starts `cst:{tenant}:` (the braces make the tenant a cluster hash tag, so one
tenant's keys live on one node and a Lua script may touch them all). The only keys without
a tenant are the indexes `cst:evq` (tenants with events waiting for the store),
`cst:timers` (due timers) and `cst:resends` (sends a provider asked to retry later), whose
members are prefixed by their tenant; they hold references, never data.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
from pathlib import Path
from typing import Awaitable, Callable

import msgspec
import redis.asyncio as aioredis

from .leanredis import LeanRedis
from .types import Event, Session

log = logging.getLogger("causette.state")
_LUA = Path(__file__).parent / "lua"
EVENT_INDEX = "cst:evq"
TIMERS = "cst:timers"
RESENDS = "cst:resends"   # sends to try again: members "tenant SEP id", score due ms (data under the tenant)
RESEND_KEEP = 2 * 24 * 3600   # seconds a tenant's hash of waiting sends outlives its last change
RESEND_LEASE = 600            # seconds a claimed send is another process's to leave alone
SEP = "\x1f"   # separates tenant, channel and contact in timer members

# Lock tokens: unique per turn across processes. A random prefix per process and a counter, so
# the hot path makes no syscall (os.urandom releases the GIL, and getting it back can cost a
# switch interval, 5 ms, while the event flusher's thread is busy).
_TOKEN_PREFIX = os.urandom(8).hex()
_token_counter = itertools.count()


def _new_token_prefix() -> None:   # a forked child must not repeat its parent's tokens
    global _TOKEN_PREFIX
    _TOKEN_PREFIX = os.urandom(8).hex()


os.register_at_fork(after_in_child=_new_token_prefix)


def _next_token() -> str:
    return f"{_TOKEN_PREFIX}{next(_token_counter):x}"


_session_enc = msgspec.msgpack.Encoder()
_session_dec = msgspec.msgpack.Decoder(Session)
_event_enc = msgspec.msgpack.Encoder()
_events_dec = msgspec.msgpack.Decoder(list[Event])


def tenant_prefix(tenant: str) -> str:
    """Where every Redis key of `tenant` starts, the gateway's and its plugins' alike: deleting
    the tenant deletes everything under it (`State.purge_tenant`)."""
    return f"cst:{{{tenant}}}:"


def _glob_escape(s: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in s)


def resend_key(tenant: str) -> str:
    return f"{tenant_prefix(tenant)}rs"


# The hot path's keys write tenant_prefix out in their f-strings: one call less a key.
def conv_key(tenant: str, channel: str, contact: str) -> str:
    return f"cst:{{{tenant}}}:c:{channel}:{contact}"


def dedup_key(tenant: str, channel: str, native_id: str) -> str:
    return f"cst:{{{tenant}}}:d:{channel}:{native_id}"


def events_key(tenant: str) -> str:
    return f"cst:{{{tenant}}}:ev"


def timer_member(tenant: str, channel: str, contact: str) -> str:
    return f"{tenant}{SEP}{channel}{SEP}{contact}"


class Duplicate(Exception):
    """This provider message id was already handled (or is being handled)."""


class Busy(Exception):
    """The conversation stayed locked longer than the gateway waits; the provider retries."""


class Lease:
    """A turn's hold on one conversation, from `State.enter` to `State.leave`."""
    __slots__ = ("tenant", "channel", "contact", "dedup", "token", "session", "base", "held")

    def __init__(self, tenant: str, channel: str, contact: str, dedup: str, token: str,
                 session: Session | None):
        self.tenant, self.channel, self.contact = tenant, channel, contact
        self.dedup, self.token, self.session = dedup, token, session
        self.base = conv_key(tenant, channel, contact)
        self.held = time.monotonic()       # when the lock was last set (`State.renew`)


def _lean_for(redis: aioredis.Redis) -> "LeanRedis | None":
    """A LeanRedis to the same server and database as a redis-py client, when it speaks plain TCP."""
    from redis.asyncio.connection import Connection
    pool = redis.connection_pool
    if pool.connection_class is not Connection:     # unix socket, TLS: keep redis-py
        return None
    kw = pool.connection_kwargs
    return LeanRedis(kw.get("host", "localhost"), kw.get("port", 6379), kw.get("db", 0) or 0,
                     kw.get("password"), kw.get("username"))


class State:
    def __init__(self, redis: aioredis.Redis, *, lock_ttl: float = 30.0, lock_wait: float = 20.0,
                 dedup_ttl: int = 86400, events_maxlen: int = 1_000_000, fast: bool = True):
        self.redis = redis
        self.lock_ttl_ms = int(lock_ttl * 1000)
        self.lock_wait = lock_wait
        self.dedup_ttl_ms = dedup_ttl * 1000
        self.events_maxlen = events_maxlen
        # The two scripts of every turn go through the lean client when the connection allows
        # (TCP without TLS): redis-py costs ~85 µs of CPU per command, the lean client ~10, and
        # concurrent turns' scripts share its one connection's writes (docs/benchmarks.md).
        self.fast = _lean_for(redis) if fast else None
        scripts = self.fast or redis
        self._enter = scripts.register_script((_LUA / "enter.lua").read_text())
        self._leave = scripts.register_script((_LUA / "leave.lua").read_text())
        self._claim = redis.register_script((_LUA / "claim_timers.lua").read_text())
        self._renew = redis.register_script((_LUA / "renew.lua").read_text())
        self._swap = redis.register_script((_LUA / "swap_resend.lua").read_text())
        self._record_once = redis.register_script((_LUA / "record.lua").read_text())
        self._later: set[asyncio.Task] = set()

    async def aclose(self) -> None:
        """Close the lean connection (the redis-py client is its owner's to close)."""
        for task in self._later:
            task.cancel()
        if self.fast is not None:
            await self.fast.close()

    async def enter(self, tenant: str, channel: str, contact: str, native_id: str) -> Lease:
        """Round trip 1: dedup + queue + lock + load. Waits its turn behind earlier messages
        of the same conversation (any process); raises Duplicate or Busy."""
        base = conv_key(tenant, channel, contact)
        dk = dedup_key(tenant, channel, native_id)
        token = _next_token()
        keys = (dk, base + ":q", base + ":l", base + ":s")
        ttl = self.lock_ttl_ms
        res = await self._enter(keys, (token, ttl, "1"))
        if res[0] != 2:
            res = await self._wait_turn(keys, token, ttl, dk, native_id, res, f"{channel}:{contact}")
        raw = res[1]
        session = _session_dec.decode(raw) if raw else None
        return Lease(tenant, channel, contact, dk, token, session)

    async def _wait_turn(self, keys: tuple[str, ...], token: str, ttl: int, dk: str, native_id: str,
                         res: list[Any], conversation: str) -> list[Any]:
        """Another message of the conversation runs (or this one is a duplicate): poll, with
        backoff, until it is our turn."""
        delay, deadline = 0.002, time.monotonic() + self.lock_wait
        while res[0] != 2:
            if res[0] == 0:
                raise Duplicate(native_id)
            if time.monotonic() > deadline:
                await self._forget(keys, token, dk)
                raise Busy(f"conversation {conversation} busy")
            if res[0] == 1:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.05)
                res = await self._enter(keys, (token, ttl, "0"))
            else:
                res = await self._enter(keys, (token, ttl, "2"))
        return res

    async def _forget(self, keys: tuple[str, ...], token: str, dk: str) -> None:
        # Give up our place and our dedup mark, so the provider's retry is handled later.
        async with self.redis.pipeline(transaction=True) as p:
            p.lrem(keys[1], 1, token).delete(dk)
            await p.execute()

    async def renew(self, lease: Lease) -> bool:
        """Keep a long turn's hold on its conversation for another lock lifetime; False when
        it ran out and another message has the conversation or waits for it (renew.lua)."""
        lease.held = time.monotonic()
        return bool(await self._renew((lease.base + ":l", lease.dedup, lease.base + ":q"),
                                      (lease.token, self.lock_ttl_ms)))

    async def leave(self, lease: Lease, session: Session | None, ttl: int,
                    events: list[Event], timer_due: float | None = None,
                    clear_timer: bool = False, forget: bool = False, keep: bool = False,
                    dedup_ttl: int = 0) -> bool:
        """Round trip 2: save + done + unlock (hand over) + events + timer. False when the
        lease had expired (another message went ahead): nothing was written. `keep` leaves
        the stored session as it was before the turn (`session` is then ignored). `dedup_ttl`:
        seconds the message id is remembered when the channel's provider redelivers for longer
        than the gateway's default (0: that default)."""
        base = lease.base
        keys = (base + ":s", base + ":l", base + ":q", lease.dedup, events_key(lease.tenant),
                EVENT_INDEX, TIMERS)
        if keep:
            data: bytes | str = "="
        elif session is None:
            data = ""
        else:
            data = _session_enc.encode(session)
        due = "-" if clear_timer else (str(int(timer_due * 1000)) if timer_due else "")
        args = [lease.token, data, ttl * 1000,
                0 if forget else (dedup_ttl * 1000 if dedup_ttl else self.dedup_ttl_ms), self.lock_ttl_ms,
                lease.tenant, self.events_maxlen,
                timer_member(lease.tenant, lease.channel, lease.contact), due]
        # A turn's events travel as one stream entry: one XADD in the script, not one each.
        if events:
            args.extend((1, _event_enc.encode(events)))
        else:
            args.append(0)
        return bool(await self._leave(keys, args))

    async def record_once(self, tenant: str, channel: str, events: list[tuple[str, Event]],
                          dedup_ttl: int = 0) -> list[Event]:
        """Events of a webhook that runs no turn (delivery statuses), each with the provider's
        id for it ("" for none): those whose id was seen within the dedup TTL are dropped, the
        others recorded, in one round trip (record.lua). Returns the events recorded."""
        if not events:
            return []
        keys, args = [events_key(tenant), EVENT_INDEX], [tenant, self.events_maxlen,
                                                         dedup_ttl * 1000 if dedup_ttl else self.dedup_ttl_ms]
        for native_id, ev in events:
            if native_id:
                # Apart from message ids: a brand's webhook may give a status its message's id.
                keys.append(dedup_key(tenant, channel, "st:" + native_id))
            args.extend(("1" if native_id else "0", _event_enc.encode([ev])))
        kept = await self._record_once(keys, args)
        return [events[int(i) - 1][1] for i in kept]

    async def record(self, tenant: str, events: list[Event]) -> None:
        """Events outside a turn (a turn that could not take its conversation): one pipelined
        round trip."""
        if not events:
            return
        async with self.redis.pipeline(transaction=False) as p:
            p.xadd(events_key(tenant), {"e": _event_enc.encode(events)},
                   maxlen=self.events_maxlen, approximate=True)
            p.sadd(EVENT_INDEX, tenant)
            await p.execute()

    async def claim_timers(self, now: float, count: int = 100) -> list[tuple[str, str, str]]:
        """Up to `count` due timers, each to one caller, held for two lock lifetimes: the
        turn it starts clears or moves it; if that turn never ends, it is due again."""
        due = await self._claim((TIMERS,), (int(now * 1000), count, 2 * self.lock_ttl_ms))
        out = []
        for m in due:
            parts = (m.decode() if isinstance(m, bytes) else m).split(SEP, 2)
            if len(parts) == 3:
                out.append((parts[0], parts[1], parts[2]))
        return out

    async def drop_timer(self, tenant: str, channel: str, contact: str) -> None:
        """Forget a timer that can never run (its tenant or channel is gone)."""
        await self.redis.zrem(TIMERS, timer_member(tenant, channel, contact))

    async def pending_events(self, count: int = 200) -> list[str]:
        """Claim up to `count` tenants with events waiting (each claimed by one process)."""
        if self.fast is not None:
            tenants = await self.fast.execute(b"SPOP", EVENT_INDEX, count)
        else:
            tenants = await self.redis.spop(EVENT_INDEX, count)
        return [t.decode() if isinstance(t, bytes) else t for t in tenants or ()]

    async def read_events(self, tenants: list[str], count: int) -> dict[str, list[tuple[str, Event | None]]]:
        """The events of up to `count` oldest stream entries of each tenant, in one pipelined
        round trip, each with its id (`<entry id>` or `<entry id>/<n>` for the n-th event of a
        turn, so inserts stay idempotent); an unreadable entry comes back as None (it is
        acknowledged and dropped)."""
        if self.fast is not None:
            # Concurrent commands on the lean client leave in one write; hiredis parses the
            # replies in C (redis-py's Python parsing was most of the flusher's Redis cost).
            replies = await self.fast.pipeline([("XRANGE", events_key(t), "-", "+", "COUNT", count)
                                                for t in tenants])
        else:
            async with self.redis.pipeline(transaction=False) as p:
                for tenant in tenants:
                    p.xrange(events_key(tenant), count=count)
                replies = [[(sid, [k for kv in f.items() for k in kv]) for sid, f in rows]
                           for rows in await p.execute()]
        decode = _events_dec.decode
        out: dict[str, list[tuple[str, Event | None]]] = {}
        for tenant, rows in zip(tenants, replies):
            batch: list[tuple[str, Event | None]] = []
            for sid, fields in rows:
                sid = sid.decode() if isinstance(sid, bytes) else sid
                try:
                    # Our entries have one field, `e`; anything else is not ours to read.
                    if len(fields) != 2 or fields[0] not in (b"e", "e"):
                        raise TypeError(sid)
                    events = decode(fields[1])
                except (msgspec.DecodeError, TypeError):
                    batch.append((sid, None))
                    continue
                batch.append((sid, events[0]) if events else (sid, None))
                batch.extend((f"{sid}/{n}", e) for n, e in enumerate(events[1:], 1))
            out[tenant] = batch
        return out

    async def ack_events(self, acks: dict[str, tuple[str, bool]]) -> None:
        """Drop stored events from the streams: for each tenant, every entry up to and
        including the given id (XTRIM MINID, Redis 6.2+: one short command, where XDEL would
        carry every id); tenants with more waiting are re-queued. Stream ids only grow, so the
        entries below a read batch's last id are exactly the ones that batch read."""
        trims = []
        for tenant, (last, _) in acks.items():
            if last:
                ms, _, seq = last.split("/", 1)[0].partition("-")   # an entry id, or one of its events
                trims.append(("XTRIM", events_key(tenant), "MINID", f"{ms}-{int(seq or 0) + 1}"))
        again = [t for t, (_, more) in acks.items() if more]
        if again:
            trims.append(("SADD", EVENT_INDEX, *again))
        if not trims:
            return
        if self.fast is not None:
            # A round acknowledges up to 100 tenants: through redis-py that was milliseconds of
            # the event loop per round; the lean client packs them in C, in one write.
            await self.fast.pipeline(trims)
            return
        async with self.redis.pipeline(transaction=False) as p:
            for cmd in trims:
                p.execute_command(*cmd)
            await p.execute()

    async def purge_tenant(self, tenant: str) -> int:
        """Delete every key of a deleted tenant (sessions, dedup marks, events not yet stored,
        plugins' keys) and its entries in the shared indexes; returns how many keys went. A
        SCAN over the keyspace: tenants are deleted rarely, and no per-tenant index of keys
        is kept on the hot path for it."""
        gone, batch = 0, []
        async for key in self.redis.scan_iter(match=_glob_escape(tenant_prefix(tenant)) + "*", count=1000):
            batch.append(key)
            if len(batch) >= 500:
                gone += await self.redis.unlink(*batch)
                batch.clear()
        if batch:
            gone += await self.redis.unlink(*batch)
        await self.redis.srem(EVENT_INDEX, tenant)
        for index in (TIMERS, RESENDS):
            members = [m async for m, _ in self.redis.zscan_iter(index, match=_glob_escape(tenant + SEP) + "*")]
            if members:
                await self.redis.zrem(index, *members)
        return gone

    # --- sends to try again ---------------------------------------------------------------
    async def queue_resend(self, tenant: str, rid: str, item: bytes, due: float) -> None:
        """Keep a send the provider asked to retry later, due at `due` (epoch seconds): any
        process may send it (`claim_resends`), so it survives a restart."""
        async with self.redis.pipeline(transaction=True) as p:
            p.hset(resend_key(tenant), rid, item)
            p.expire(resend_key(tenant), RESEND_KEEP)
            p.zadd(RESENDS, {f"{tenant}{SEP}{rid}": int(due * 1000)})
            await p.execute()

    async def claim_resends(self, now: float, count: int = 100) -> list[tuple[str, str, bytes | None]]:
        """Up to `count` due sends as (tenant, id, item), each to one caller, held for
        RESEND_LEASE (a process that dies while sending leaves it due again then). Longer than a
        turn's lease: a provider that is slow again may take ~30 s a payload, and a claim that
        ran out while its sends were still going would let another process send them too."""
        lease = max(2 * self.lock_ttl_ms, RESEND_LEASE * 1000)
        due = await self._claim((RESENDS,), (int(now * 1000), count, lease))
        out = []
        for m in due:
            tenant, _, rid = (m.decode() if isinstance(m, bytes) else m).partition(SEP)
            out.append((tenant, rid, await self.redis.hget(resend_key(tenant), rid)))
        return out

    async def get_resend(self, tenant: str, rid: str) -> bytes | None:
        """A kept send as it stands now (None when sent or dropped)."""
        return await self.redis.hget(resend_key(tenant), rid)

    async def swap_resend(self, tenant: str, rid: str, seen: bytes | None, then: bytes | None,
                          due: float | None = None) -> tuple[bool, bytes | None]:
        """Replace a kept send that is still `seen` (None: absent) with `then`, due at `due`
        (None: when it was), or drop it when `then` is None, atomically (`swap_resend.lua`).
        A sender that outlived its lease and a turn queueing replies behind it can meet here:
        the loser gets (False, the kept send as it is now) to merge and try again."""
        res = await self._swap((resend_key(tenant), RESENDS),
                               (rid, seen or b"", then or b"", "" if due is None else int(due * 1000),
                                f"{tenant}{SEP}{rid}", RESEND_KEEP))
        return (True, None) if res[0] == 1 else (False, res[1] if len(res) > 1 else None)

    async def drop_resend(self, tenant: str, rid: str) -> None:
        async with self.redis.pipeline(transaction=True) as p:
            p.hdel(resend_key(tenant), rid)
            p.zrem(RESENDS, f"{tenant}{SEP}{rid}")
            await p.execute()

    def purge_later(self, tenant: str, gone: Callable[[], Awaitable[bool]]) -> None:
        """Purge `tenant` again once every lease taken before now has run out (a turn that
        entered before the deletion saves when it ends), if `gone()` still says it is gone."""
        async def run() -> None:
            await asyncio.sleep(self.lock_ttl_ms / 1000 + 1)
            try:
                if await gone():
                    await self.purge_tenant(tenant)
            except Exception as exc:     # Redis or the store is away: what is left expires
                log.warning("second purge of deleted tenant %s skipped: %s", tenant, exc)
        task = asyncio.ensure_future(run())
        self._later.add(task)
        task.add_done_callback(self._later.discard)

    async def requeue_events(self, tenants: list[str]) -> None:
        if tenants:
            await self.redis.sadd(EVENT_INDEX, *tenants)

    async def load_session(self, tenant: str, channel: str, contact: str) -> Session | None:
        raw = await self.redis.get(conv_key(tenant, channel, contact) + ":s")
        return _session_dec.decode(raw) if raw else None


def encode_session(s: Session) -> bytes:
    return _session_enc.encode(s)
