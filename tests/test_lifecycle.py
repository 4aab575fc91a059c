"""A gateway that stops right after it started (a failed start-up, a test) stops cleanly."""
import pytest


async def test_immediate_shutdown_after_a_rejected_tenant(gateway):
    with pytest.raises(Exception) as info:
        await gateway(tenants=[{"slug": "bad", "name": "Bad", "plugins": {"no-such-plugin": {}}}])
    assert "error" in str(info.value)


async def test_immediate_shutdown(gateway):
    gw = await gateway()
    async with gw.http.get(gw.url + "/healthz") as r:
        assert (await r.json())["status"] == "ok"
