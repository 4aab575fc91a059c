"""A kept send that a sender and a turn both wrote (the sender had outlived its lease): what
the sender stores when it settles keeps what the turn did, merged by each reply's key."""
import types

import msgspec
import pytest
import redis.asyncio as aioredis

from gateway.pipeline import Pipeline, _decode_resend, _stamp, _superseded
from gateway.state import State
from gateway.types import Reply, Resend, Session


@pytest.fixture
async def state(redis_url):
    r = aioredis.from_url(redis_url)
    await r.flushdb()
    yield State(r, lock_ttl=2.0, lock_wait=3.0)
    await r.aclose()


async def settle(state, raw, sent, then):
    """Pipeline._settle_resend as the sender runs it (it uses nothing else of the pipeline)."""
    pipe = types.SimpleNamespace(state=state, _resend_due=Pipeline._resend_due)
    ctx = types.SimpleNamespace(session=Session(resend="r1"))
    await Pipeline._settle_resend(pipe, types.SimpleNamespace(slug="t1"), ctx, "r1", raw, sent, then)
    return ctx.session.resend, _decode_resend(await state.get_resend("t1", "r1"))


async def test_a_contact_message_meanwhile_drops_the_bots_reply_and_keeps_its_own(state):
    bot1, agent2, bot3 = Reply(text="bot1"), Reply(text="agent2", from_agent="julie"), Reply(text="bot3")
    v1 = Resend(channel="wa", contact="c1", replies=[bot1, agent2], keys=["k1", "k2"], since=100.0)
    raw1 = _stamp(v1)
    await state.queue_resend("t1", "r1", raw1, 10**10)
    refused = (msgspec.structs.replace(v1, attempt=2), 0.0)       # bot1 refused again
    # Meanwhile the contact wrote: bot1 dropped, agent2 kept, the new turn's bot3 behind it.
    left, _ = _superseded(v1, "superseded")
    raw2 = _stamp(msgspec.structs.replace(left, since=200.0))
    assert (await state.swap_resend("t1", "r1", raw1, raw2))[0]
    v3 = msgspec.structs.replace(_decode_resend(raw2), replies=[agent2, bot3], keys=["k2", "k3"])
    assert (await state.swap_resend("t1", "r1", raw2, _stamp(v3)))[0]
    pointer, kept = await settle(state, raw1, v1, refused)
    assert [r.text for r in kept.replies] == ["agent2", "bot3"] and kept.keys == ["k2", "k3"]
    assert kept.attempt == 2 and pointer == "r1"


async def test_replies_queued_behind_a_send_that_went_out_are_kept_on_their_own(state):
    v1 = Resend(channel="wa", contact="c1", replies=[Reply(text="bot1")], keys=["k1"], attempt=3)
    raw1 = _stamp(v1)
    await state.queue_resend("t1", "r1", raw1, 10**10)
    v2 = msgspec.structs.replace(v1, replies=v1.replies + [Reply(text="reminder")], keys=["k1", "k2"])
    assert (await state.swap_resend("t1", "r1", raw1, _stamp(v2)))[0]
    pointer, kept = await settle(state, raw1, v1, None)                # bot1 went out
    assert [r.text for r in kept.replies] == ["reminder"] and kept.attempt == 1 and kept.first == 0
    assert pointer == "r1"                                             # still something waits


def test_a_send_kept_without_a_provider_wait_is_not_tried_again_at_once():
    import time
    from gateway.pipeline import _provider_wait
    from gateway.types import SendResult
    # a 5xx or a throttled account with no Retry-After and no estimate from the channel
    assert _provider_wait(SendResult(status="retry", code="500")) == 30.0
    assert _provider_wait(SendResult(status="retry", retry_after=2.0)) == 2.0   # the provider's wait wins
    first = Resend(channel="sms", contact="c1", replies=[Reply(text="x")], keys=["k1"])
    now = time.time()
    # 0 from the pipeline itself (replies queued behind a send that went out): due now
    assert Pipeline._resend_due(first, 0.0) - now <= 1
    later = msgspec.structs.replace(first, attempt=3)
    assert 59 <= Pipeline._resend_due(later, 0.0) - now <= 61                 # the doubling floor
