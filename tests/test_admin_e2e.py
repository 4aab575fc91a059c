"""The admin API inside the whole gateway: a flow published over HTTP is what the next
conversation gets, in this process and (through Redis pub/sub) in another one."""
import asyncio
import time
import uuid

from gateway.console import ConsoleChannel
from gateway.registry import Registry
from gateway.types import InboundMessage


def say(text: str, contact: str) -> InboundMessage:
    return InboundMessage(tenant="demo", channel="console", native_id=uuid.uuid4().hex, contact=contact,
                          kind="text", ts=time.time(), text=text)


async def test_a_publish_over_http_reaches_live_conversations(gateway, demo_tenant):
    gw = await gateway(tenants=[demo_tenant])
    base, h = gw.url + "/admin/v1/tenants/demo", gw.admin_headers
    other = Registry(gw.store, gw.host, gw.redis)          # another process's cache
    await other.start()
    try:
        assert (await other.get("demo")).flows["soldes-hiver"].version == 1
        rt = await gw.registry.get("demo")
        ch = ConsoleChannel("demo", "console", ConsoleChannel.Settings())
        first = await gw.pipeline.handle(rt, ch, [say("soldes", "c1")])
        assert first and "Nouveau" not in first[0]

        async with gw.http.get(base + "/flows/soldes-hiver", headers=h) as r:
            etag, flow = r.headers["ETag"], (await r.json())["draft"]
        start = flow["start"]
        flow["nodes"][start]["text"] = "Nouveau : -60 % sur tout !"
        async with gw.http.put(base + "/flows/soldes-hiver", json=flow, headers={**h, "If-Match": etag}) as r:
            assert r.status == 200
        async with gw.http.post(base + "/flows/soldes-hiver/publish", json={"note": "v2"}, headers=h) as r:
            assert r.status == 201 and (await r.json())["version"] == 2

        rt = await gw.registry.get("demo")
        assert rt.flows["soldes-hiver"].version == 2
        fresh = await gw.pipeline.handle(rt, ch, [say("soldes", "c2")])
        assert fresh[0].startswith("Nouveau : -60 %")
        for _ in range(200):       # the other process drops its copy when the message arrives
            if (await other.get("demo")).flows["soldes-hiver"].version == 2:
                break
            await asyncio.sleep(0.02)
        assert (await other.get("demo")).flows["soldes-hiver"].version == 2
        # nothing the admin API did was recorded as conversation events
        await gw.flush_events()
        assert await gw.store.count_events("demo", "flow.started") == 2
    finally:
        await other.stop()
