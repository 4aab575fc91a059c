"""A gateway that stops right after it started (a failed start-up, a test) stops cleanly."""
import asyncio
import pytest


async def test_immediate_shutdown_after_a_rejected_tenant(gateway):
    with pytest.raises(Exception) as info:
        await gateway(tenants=[{"slug": "bad", "name": "Bad", "plugins": {"no-such-plugin": {}}}])
    assert "error" in str(info.value)


async def test_immediate_shutdown(gateway):
    gw = await gateway()
    async with gw.http.get(gw.url + "/healthz") as r:
        assert (await r.json())["status"] == "ok"


async def test_without_redis_url_the_gateway_runs_its_own_redis_and_stops_it(gateway, tmp_path):
    from gateway.app import EMBEDDED
    gw = await gateway(redis_url="", data_dir=str(tmp_path / "own"))
    embedded = gw.app[EMBEDDED]
    assert embedded is not None and embedded.proc.poll() is None
    assert (tmp_path / "own" / "redis" / "url").read_text() == embedded.url
    assert await gw.redis.ping()
    await gw.runner.cleanup()
    assert embedded.proc is None and not (tmp_path / "own" / "redis" / "url").exists()


async def test_a_burst_beyond_the_redis_pool_waits_for_a_connection_instead_of_failing(gateway):
    from gateway.app import REDIS_CONNECTIONS
    gw = await gateway()
    # Each BLPOP holds its connection for 0.3 s: more of them at once than the pool has
    # connections (redis-py's default pool raised MaxConnectionsError past 100).
    n = REDIS_CONNECTIONS + 50
    got = await asyncio.gather(*(gw.redis.blpop(f"cst:{{burst}}:nothing:{i}", timeout=0.3)
                                 for i in range(n)), return_exceptions=True)
    assert got == [None] * n
