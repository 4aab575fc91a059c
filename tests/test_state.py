"""The two Redis round trips of a turn: dedup, per-conversation order, hand-over, leases."""
import asyncio
import time

import pytest
import redis.asyncio as aioredis

from gateway.state import Busy, Duplicate, State, conv_key
from gateway.types import Event, Session


@pytest.fixture
async def state(redis_url):
    r = aioredis.from_url(redis_url)
    await r.flushdb()
    st = State(r, lock_ttl=2.0, lock_wait=3.0)
    yield st
    await r.aclose()


@pytest.fixture
async def store_of(tmp_path):
    """make(slugs): a store holding those tenants (the flusher drops events of unknown ones)."""
    from gateway.apply import apply_tenant
    from gateway.config import TenantConfig
    from gateway.plugins import PluginHost
    from gateway.store import Store
    stores = []

    async def make(slugs):
        store = await Store.open(str(tmp_path / f"s{len(stores)}.db"), b"k")
        stores.append(store)
        host = PluginHost()
        for slug in slugs:
            await apply_tenant(store, host, TenantConfig(slug=slug, name=slug))
        return store
    yield make
    for store in stores:
        await store.close()


def ev(n):
    return Event(type="message.in", tenant="t1", channel="web", contact="c1", ts=time.time(), data={"n": n})


async def test_duplicate_delivery_is_refused_while_running_and_after(state):
    lease = await state.enter("t1", "web", "c1", "m1")
    with pytest.raises(Duplicate):
        await state.enter("t1", "web", "c1", "m1")
    assert await state.leave(lease, Session(node="a"), 60, [ev(1)])
    with pytest.raises(Duplicate):
        await state.enter("t1", "web", "c1", "m1")


async def test_waiters_get_the_conversation_in_arrival_order(state):
    first = await state.enter("t1", "web", "c1", "m0")
    order = []

    async def turn(i):
        lease = await state.enter("t1", "web", "c1", f"m{i}")
        order.append(i)
        s = lease.session
        s.vars["seen"] = s.vars.get("seen", []) + [i]
        await state.leave(lease, s, 60, [ev(i)])

    tasks = []
    for i in range(1, 6):
        tasks.append(asyncio.create_task(turn(i)))
        await asyncio.sleep(0.01)     # arrivals 1..5, in this order, while m0 holds the lock
    await state.leave(first, Session(vars={"seen": [0]}), 60, [ev(0)])
    await asyncio.gather(*tasks)
    assert order == [1, 2, 3, 4, 5]
    saved = await state.load_session("t1", "web", "c1")
    assert saved.vars["seen"] == [0, 1, 2, 3, 4, 5]
    rows = (await state.read_events(["t1"], 100))["t1"]
    assert [e.data["n"] for _, e in rows] == [0, 1, 2, 3, 4, 5]


async def test_a_dead_holder_is_skipped_after_its_lease(state):
    await state.enter("t1", "web", "c1", "m1")           # never leaves: its process "died"
    t0 = time.monotonic()
    lease = await state.enter("t1", "web", "c1", "m2")
    assert time.monotonic() - t0 >= 1.5                   # waited for the 2 s lease
    assert await state.leave(lease, Session(node="x"), 60, [])


async def test_leave_after_lost_lease_writes_nothing(state):
    lease = await state.enter("t1", "web", "c1", "m1")
    await state.redis.delete(conv_key("t1", "web", "c1") + ":l")
    assert not await state.leave(lease, Session(node="late"), 60, [ev(1)])
    assert await state.load_session("t1", "web", "c1") is None
    assert await state.read_events(["t1"], 100) == {"t1": []}


async def test_a_renewed_lease_outlasts_its_lock_lifetime_and_keeps_the_message_running(state):
    lease = await state.enter("t1", "web", "c1", "m1")
    for _ in range(3):                                   # 3 s of a 2 s lock, renewed each second
        await asyncio.sleep(1.0)
        assert await state.renew(lease)
    assert await state.redis.get("cst:{t1}:d:web:m1") == b"p"           # a retry is still refused
    with pytest.raises(Duplicate):
        await state.enter("t1", "web", "c1", "m1")
    assert await state.leave(lease, Session(node="x"), 60, [])
    await state.redis.delete(conv_key("t1", "web", "c1") + ":l")
    assert not await state.renew(lease)                  # gone: nothing to renew


async def test_a_kept_send_changes_only_from_what_its_writer_saw(state):
    ok, now = await state.swap_resend("t1", "r1", None, b"v1", due=time.time() + 60)
    assert ok and now is None
    assert await state.swap_resend("t1", "r1", None, b"v2") == (False, b"v1")     # not absent
    assert await state.swap_resend("t1", "r1", b"v0", None) == (False, b"v1")     # not what it is
    assert await state.swap_resend("t1", "r1", b"v1", b"v2") == (True, None)      # due kept
    [(member, due)] = await state.redis.zrange("cst:resends", 0, -1, withscores=True)
    assert member == b"t1\x1fr1" and due / 1000 > time.time() + 50
    assert await state.swap_resend("t1", "r1", b"v2", None) == (True, None)
    assert not await state.redis.exists("cst:{t1}:rs") and not await state.redis.zcard("cst:resends")
    assert await state.swap_resend("t1", "r1", b"v2", b"v3") == (False, None)     # gone


async def test_busy_gives_up_and_forgets_the_message_for_the_retry(state):
    st = State(state.redis, lock_ttl=30.0, lock_wait=0.2)
    await st.enter("t1", "web", "c1", "m1")
    with pytest.raises(Busy):
        await st.enter("t1", "web", "c1", "m2")
    assert not await state.redis.exists("cst:{t1}:d:web:m2")   # the provider's retry will run


async def test_timers_are_claimed_once(state):
    lease = await state.enter("t1", "web", "c1", "m1")
    await state.leave(lease, Session(node="w"), 60, [], timer_due=time.time() - 1)
    a, b = await asyncio.gather(state.claim_timers(time.time()), state.claim_timers(time.time()))
    assert sorted(a + b) == [("t1", "web", "c1")]


async def test_a_claimed_timer_is_due_again_when_its_turn_never_ends(state):
    """A process that claims a timer and dies before the turn ends loses nothing: the claim is
    a lease of two lock lifetimes (4 s with this fixture's 2 s lock)."""
    lease = await state.enter("t1", "web", "c1", "m1")
    await state.leave(lease, Session(node="w"), 60, [], timer_due=time.time() - 1)
    now = time.time()
    assert await state.claim_timers(now) == [("t1", "web", "c1")]
    assert await state.claim_timers(now + 3.9) == []                  # still leased
    assert await state.claim_timers(now + 4.1) == [("t1", "web", "c1")]  # the holder died


async def test_the_turn_of_a_claimed_timer_clears_or_moves_it(state):
    for contact, next_due in (("c1", None), ("c2", 100.0)):
        lease = await state.enter("t1", "web", contact, "m-" + contact)
        await state.leave(lease, Session(node="w"), 60, [], timer_due=time.time() - 1)
        now = time.time()
        assert await state.claim_timers(now) == [("t1", "web", contact)]
        turn = await state.enter("t1", "web", contact, "timer-" + contact)   # the fired turn
        await state.leave(turn, Session(node="w"), 60, [],
                          timer_due=now + next_due if next_due else None, clear_timer=not next_due)
        assert await state.claim_timers(now + 10) == []        # neither the lease nor the timer
        assert await state.claim_timers(now + 101) == ([] if next_due is None else [("t1", "web", contact)])


async def test_keys_carry_the_tenant(state):
    lease = await state.enter("t1", "web", "c1", "m1")
    await state.leave(lease, Session(node="a"), 60, [ev(1)], timer_due=time.time() + 60)
    keys = sorted(k.decode() for k in await state.redis.keys("*"))
    assert all(k.startswith("cst:{t1}:") or k in ("cst:evq", "cst:timers") for k in keys), keys


async def test_flush_moves_many_tenants_events_in_rounds_and_requeues_the_rest(state, store_of):
    from gateway.background import ROUND, flush_events
    slugs = [f"t{i:03d}" for i in range(30)]
    store = await store_of(slugs)
    big = [Event(type="message.in", tenant="t000", channel="web", contact="c", ts=1.0,
                 data={"n": n}) for n in range(ROUND + 50)]
    for ev in big:                         # one stream entry each, like ROUND+50 turns
        await state.record("t000", [ev])
    for slug in slugs[1:]:
        await state.record(slug, [Event(type="message.in", tenant=slug, channel="web",
                                        contact="c", ts=1.0)])
    # an event claiming another tenant in t001's stream is dropped, never stored as t001's
    await state.record("t001", [Event(type="message.in", tenant="t002", channel="web",
                                      contact="intruder", ts=1.0)])
    rounds = 0
    while await flush_events(state, store):
        rounds += 1
    assert rounds >= 2                       # t000's backlog took more than one round
    assert await store.count_events("t000") == ROUND + 50
    assert all([await store.count_events(s) == 1 for s in slugs[1:]])
    assert [e.contact for e in await store.list_events("t002")] == ["c"]
    assert await state.redis.scard("cst:evq") == 0


async def test_ack_trims_what_was_read_and_keeps_what_came_after(state):
    for n in range(5):
        await state.record("t1", [ev(n)])
    rows = (await state.read_events(["t1"], 3))["t1"]
    assert [e.data["n"] for _, e in rows] == [0, 1, 2]
    await state.record("t1", [ev(5)])           # a turn that lands while the batch is written
    await state.ack_events({"t1": (rows[-1][0], True)})
    left = (await state.read_events(["t1"], 100))["t1"]
    assert [e.data["n"] for _, e in left] == [3, 4, 5]
    assert await state.redis.sismember("cst:evq", "t1")


async def test_an_entry_that_is_not_ours_is_dropped_not_fatal(state):
    await state.redis.xadd("cst:{t1}:ev", {"x": "1"})
    await state.redis.xadd("cst:{t1}:ev", {"e": b"\xc1not msgpack"})
    await state.record("t1", [ev(7), ev(8)])
    rows = (await state.read_events(["t1"], 100))["t1"]
    assert [e is None for _, e in rows] == [True, True, False, False]
    assert [e.data["n"] for _, e in rows[2:]] == [7, 8]
    assert rows[3][0] == rows[2][0] + "/1"


async def test_a_busy_process_flushes_in_short_rounds_an_idle_one_in_long_ones(state, store_of):
    from gateway.background import ROUND, ROUND_IDLE, event_loop, flush_events
    store = await store_of(["t1"])
    for n in range(ROUND * 3):
        await state.record("t1", [ev(n)])
    assert await flush_events(state, store, ROUND) == ROUND          # while turns run
    assert await flush_events(state, store, ROUND_IDLE) == ROUND * 2  # the rest at once
    assert await store.count_events("t1") == ROUND * 3
    # the loop asks `busy` before each round and stops on `stop`
    for n in range(5):
        await state.record("t1", [ev(1000 + n)])
    asked, stop = [], asyncio.Event()

    def busy():
        asked.append(1)
        return True
    loop = asyncio.create_task(event_loop(state, store, 0.01, stop, busy=busy))
    for _ in range(200):
        if await store.count_events("t1") == ROUND * 3 + 5:
            break
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(loop, 5)
    assert await store.count_events("t1") == ROUND * 3 + 5 and asked


async def test_events_read_and_trimmed_through_redis_py_too(state):
    """Without the lean client (TLS, unix socket) the flusher reads through redis-py."""
    st = State(state.redis, fast=False)
    assert st.fast is None
    for n in range(3):
        await st.record("t1", [ev(n), ev(10 + n)])
    rows = (await st.read_events(["t1"], 2))["t1"]
    assert [e.data["n"] for _, e in rows] == [0, 10, 1, 11]
    await st.ack_events({"t1": (rows[-1][0], True)})
    assert [e.data["n"] for _, e in (await st.read_events(["t1"], 10))["t1"]] == [2, 12]


async def test_a_burst_spread_over_many_tenants_is_claimed_in_wide_rounds(state, store_of):
    from gateway.background import ROUND, TENANTS, _round
    slugs = [f"w{i:03d}" for i in range(150)]
    store = await store_of(slugs)
    for slug in slugs:
        await state.record(slug, [Event(type="message.in", tenant=slug, channel="web",
                                        contact="c", ts=1.0)])
    # Not knowing better, a round claims a few tenants and expects several entries each...
    read, more, claimed = await _round(state, store, ROUND)
    assert (read, claimed) == (10, 10) and more
    # ... once rounds have brought one entry per tenant, it claims as many as a round holds.
    read, more, claimed = await _round(state, store, ROUND, per_tenant=1.0)
    assert read == claimed == min(TENANTS, ROUND)
    read, more, claimed = await _round(state, store, ROUND, per_tenant=1.0)
    assert read == claimed == 40 and not more
    assert sum([await store.count_events(s) for s in slugs]) == 150
    assert await state.redis.scard("cst:evq") == 0


async def test_a_lock_that_ran_out_is_taken_back_only_when_nothing_waits_for_it(state):
    lock = conv_key("t1", "web", "c1") + ":l"
    lease = await state.enter("t1", "web", "c1", "m1")
    await state.redis.delete(lock, "cst:{t1}:d:web:m1")    # ran out, running mark too: a stall
    assert await state.renew(lease)                      # nobody came meanwhile: ours again
    assert await state.redis.get(lock) == lease.token.encode()
    with pytest.raises(Duplicate):                        # a retry of m1 is refused again
        await state.enter("t1", "web", "c1", "m1")
    await state.redis.delete(lock)
    waiter = asyncio.create_task(state.enter("t1", "web", "c1", "m2"))
    await asyncio.sleep(0.05)                             # m2 queued behind us, polling
    assert not await state.renew(lease)                  # it goes ahead, not us
    assert not await state.leave(lease, Session(node="late"), 60, [])
    second = await waiter
    assert await state.leave(second, Session(node="m2"), 60, [])
    assert (await state.load_session("t1", "web", "c1")).node == "m2"
