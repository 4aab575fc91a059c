"""The lean Redis client against the real Redis of the test session."""
from __future__ import annotations

import asyncio
import uuid

import pytest
import redis.asyncio as aioredis

from gateway.leanredis import LeanRedis, ReplyError


@pytest.fixture
async def lean(redis_url):
    client = LeanRedis.from_url(redis_url)
    yield client
    await client.close()


@pytest.fixture
def prefix():
    return f"test:lean:{uuid.uuid4().hex}:"


async def test_basic_commands(lean, prefix):
    assert await lean.ping() == b"PONG"
    assert await lean.execute("SET", prefix + "a", b"\x00\xffbin") == b"OK"
    assert await lean.get(prefix + "a") == b"\x00\xffbin"
    assert await lean.get(prefix + "missing") is None
    assert await lean.execute("INCRBY", prefix + "n", 5) == 5
    assert await lean.mget(prefix + "a", prefix + "missing") == [b"\x00\xffbin", None]
    await lean.set(prefix + "t", "x", px=60_000)
    assert 0 < await lean.execute("PTTL", prefix + "t") <= 60_000
    assert await lean.delete(prefix + "a", prefix + "n", prefix + "t") == 3


async def test_error_reply_raises_and_connection_goes_on(lean, prefix):
    await lean.set(prefix + "s", "text")
    with pytest.raises(ReplyError, match="WRONGTYPE"):
        await lean.execute("LPUSH", prefix + "s", "x")
    assert await lean.get(prefix + "s") == b"text"


async def test_concurrent_commands_share_the_connection_in_order(lean, prefix):
    n = 2000
    results = await asyncio.gather(*(lean.execute("INCR", prefix + str(i % 7)) for i in range(n)))
    # replies come back to the caller that asked, in order: the k-th INCR of key j sees k
    seen: dict[int, int] = {}
    for i, r in enumerate(results):
        seen[i % 7] = seen.get(i % 7, 0) + 1
        assert r == seen[i % 7]
    info = await lean.execute("CLIENT", "INFO")
    assert b"cmd=client" in info
    assert lean.reconnects == 0


async def test_cancelled_caller_does_not_shift_replies(lean, prefix):
    await lean.set(prefix + "x", "1")
    slow = asyncio.ensure_future(lean.execute("BLPOP", prefix + "never", "0.2"))
    await asyncio.sleep(0.01)
    slow.cancel()
    with pytest.raises(asyncio.CancelledError):
        await slow
    # the BLPOP's own reply (nil) still arrives first and must be skipped, not handed to us
    assert await lean.get(prefix + "x") == b"1"


async def test_script_evalsha_falls_back_to_eval_after_flush(lean, prefix):
    script = lean.register_script("return {KEYS[1], ARGV[1], redis.call('INCR', KEYS[1])}")
    assert await script([prefix + "k"], ["a"]) == [prefix.encode() + b"k", b"a", 1]
    await lean.execute("SCRIPT", "FLUSH")
    assert await lean.execute("SCRIPT", "EXISTS", script.sha) == [0]
    assert await script([prefix + "k"], ["b"]) == [prefix.encode() + b"k", b"b", 2]
    # EVAL loaded it again: the next call goes through EVALSHA
    assert await lean.execute("SCRIPT", "EXISTS", script.sha) == [1]


async def test_script_errors_are_raised(lean):
    script = lean.register_script("return redis.call('NOSUCHCOMMAND')")
    with pytest.raises(ReplyError):
        await script()


async def test_reconnects_after_the_server_drops_the_connection(lean, redis_url, prefix):
    await lean.set(prefix + "r", "1")
    my_id = await lean.execute("CLIENT", "ID")
    admin = aioredis.from_url(redis_url)
    try:
        blocked = asyncio.ensure_future(lean.execute("BLPOP", prefix + "never", "5"))
        await asyncio.sleep(0.05)
        await admin.execute_command("CLIENT", "KILL", "ID", my_id)
        with pytest.raises(ConnectionError):
            await blocked           # in flight when the connection died: failed, not hung
    finally:
        await admin.aclose()
    assert await lean.get(prefix + "r") == b"1"
    assert await lean.execute("CLIENT", "ID") != my_id
    assert lean.reconnects == 1


async def test_selects_the_database_of_the_url(redis_url, prefix):
    from urllib.parse import urlsplit
    # REDIS_URL may name a database or not (redis://host:6379): database 3 of that server
    db3 = urlsplit(redis_url)._replace(path="/3").geturl()
    client = LeanRedis.from_url(db3)
    try:
        await client.set(prefix + "db", "three")
        assert await client.execute("CLIENT", "INFO") is not None
        other = aioredis.from_url(db3)
        try:
            assert await other.get(prefix + "db") == b"three"
            await other.delete(prefix + "db")
        finally:
            await other.aclose()
    finally:
        await client.close()


async def test_connection_refused_raises(prefix):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = LeanRedis("127.0.0.1", port)
    with pytest.raises(OSError):
        await client.ping()
    await client.close()


async def test_pipeline_sends_commands_together_and_answers_in_order(lean, prefix):
    replies = await lean.pipeline([("SET", prefix + "p", "1"), ("INCR", prefix + "p"),
                                   ("GET", prefix + "p"), ("GET", prefix + "none")])
    assert replies == [b"OK", 2, b"2", None]
    assert await lean.pipeline([]) == []
    with pytest.raises(ReplyError, match="WRONGTYPE"):
        await lean.pipeline([("INCR", prefix + "p"), ("LPUSH", prefix + "p", "x"),
                             ("INCR", prefix + "p")])
    # every command ran and the connection is still in step
    assert await lean.get(prefix + "p") == b"4"


async def test_pipeline_among_single_commands_and_cancelled_keeps_replies_in_step(lean, prefix):
    """A pipeline's replies gather into one future: single commands sent around it, and a
    pipeline whose caller gave up, still get exactly their own replies."""
    before = asyncio.ensure_future(lean.execute("SET", prefix + "a", "A"))
    batch = asyncio.ensure_future(lean.pipeline([("GET", prefix + "a"), ("SET", prefix + "b", "B"),
                                                 ("GET", prefix + "b")]))
    after = asyncio.ensure_future(lean.execute("GET", prefix + "b"))
    assert await asyncio.gather(before, batch, after) == [b"OK", [b"A", b"OK", b"B"], b"B"]
    gone = asyncio.ensure_future(lean.pipeline([("INCR", prefix + "n")] * 50))
    mine = asyncio.ensure_future(lean.execute("GET", prefix + "a"))
    await asyncio.sleep(0)          # both are written, then the first caller leaves
    gone.cancel()
    assert await mine == b"A"
    assert await lean.get(prefix + "n") == b"50"     # the cancelled batch still ran


async def test_pipeline_in_flight_fails_when_the_connection_dies(lean, redis_url, prefix):
    my_id = await lean.execute("CLIENT", "ID")
    admin = aioredis.from_url(redis_url)
    try:
        batch = asyncio.ensure_future(lean.pipeline([("SET", prefix + "x", "1"),
                                                     ("BLPOP", prefix + "never", "5")]))
        await asyncio.sleep(0.05)
        await admin.execute_command("CLIENT", "KILL", "ID", my_id)
        with pytest.raises(ConnectionError):
            await batch
    finally:
        await admin.aclose()
    assert await lean.pipeline([("GET", prefix + "x")]) == [b"1"]
