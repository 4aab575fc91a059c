"""Deleting a tenant deletes its state in Redis too: a tenant created later under the same
slug starts with nothing of the old one (conversations, transcripts, events in flight)."""
import asyncio

from gateway.state import EVENT_INDEX, RESENDS, SEP, TIMERS
from tests.support.wire import WirePlugin
from tests.test_pipeline_e2e import post, tenant


async def keys(gw, slug):
    return sorted(k.decode() for k in await gw.redis.keys(f"cst:{{{slug}}}:*"))


async def test_deleting_a_tenant_deletes_its_redis_state_and_nobody_elses(gateway, provider):
    gw = await gateway(tenants=[tenant("acme", provider), tenant("globex", provider)],
                       plugins=[("wire", WirePlugin())], flush_interval=60)
    for slug in ("acme", "globex"):
        assert (await post(gw, slug, {"id": f"{slug}-1", "sender": "c1", "text": "salut"}))[0] == 200
        # what a plugin keeps under the tenant, and the shared indexes' references to it
        await gw.redis.set(f"cst:{{{slug}}}:wc:web:v_1:o", b"transcript")
        await gw.redis.zadd(TIMERS, {f"{slug}{SEP}wire{SEP}c1": 1.0})
        await gw.redis.zadd(RESENDS, {f"{slug}{SEP}r1": 9e12})
    assert await gw.redis.sismember(EVENT_INDEX, "acme")       # events not stored yet
    globex_before = await keys(gw, "globex")
    assert any(k.endswith(":s") for k in await keys(gw, "acme"))

    async with gw.http.delete(f"{gw.url}/admin/v1/tenants/acme", headers=gw.admin_headers) as r:
        assert r.status == 204
    assert await keys(gw, "acme") == []
    assert not await gw.redis.sismember(EVENT_INDEX, "acme")
    assert [m.decode() for m in await gw.redis.zrange(TIMERS, 0, -1)] == [f"globex{SEP}wire{SEP}c1"]
    assert [m.decode() for m in await gw.redis.zrange(RESENDS, 0, -1)] == [f"globex{SEP}r1"]
    assert await keys(gw, "globex") == globex_before             # the other tenant keeps all

    # The same slug again, another brand: the old contact starts afresh, nothing resumed.
    provider.sent.clear()
    async with gw.http.put(f"{gw.url}/admin/v1/tenants/acme", json=tenant("acme", provider),
                           headers=gw.admin_headers) as r:
        assert r.status == 201
    assert (await post(gw, "acme", {"id": "acme-1", "sender": "c1", "payload": "w"}))[0] == 200
    assert provider.texts("c1") == ["Bonjour !", "Femme ou homme ?"]   # the start, not step two
    await gw.flush_events()
    events = await gw.store.list_events("acme")
    assert {e.data.get("id") for e in events if e.type == "message.in"} == {"acme-1"}


async def test_a_turn_that_ends_after_the_deletion_is_purged_once_its_lease_has_run_out(gateway, provider):
    gw = await gateway(tenants=[tenant("acme", provider)], plugins=[("wire", WirePlugin())],
                       lock_ttl=0.5)
    async with gw.http.delete(f"{gw.url}/admin/v1/tenants/acme", headers=gw.admin_headers) as r:
        assert r.status == 204
    # A turn that entered before the deletion saves when it ends, after the first purge.
    await gw.redis.set("cst:{acme}:c:wire:late:s", b"saved late")
    for _ in range(60):
        if not await keys(gw, "acme"):
            break
        await asyncio.sleep(0.1)
    assert await keys(gw, "acme") == []


async def test_the_second_purge_spares_a_tenant_created_again_meanwhile(gateway, provider):
    gw = await gateway(tenants=[tenant("acme", provider)], plugins=[("wire", WirePlugin())],
                       lock_ttl=0.5)
    async with gw.http.delete(f"{gw.url}/admin/v1/tenants/acme", headers=gw.admin_headers) as r:
        assert r.status == 204
    async with gw.http.put(f"{gw.url}/admin/v1/tenants/acme", json=tenant("acme", provider),
                           headers=gw.admin_headers) as r:
        assert r.status == 201
    assert (await post(gw, "acme", {"id": "n1", "sender": "c9", "text": "salut"}))[0] == 200
    await asyncio.sleep(2.0)       # past the lease (0.5 s) and the second purge
    assert "cst:{acme}:c:wire:c9:s" in await keys(gw, "acme")


async def test_events_in_flight_from_a_deleted_tenant_never_reach_one_created_again(gateway, provider):
    # A flusher read the old tenant's events just before the deletion and writes them after
    # the slug was created again: Redis stamped them before the new tenant existed.
    from gateway.types import Event
    gw = await gateway(tenants=[tenant("acme", provider)], plugins=[("wire", WirePlugin())],
                       flush_interval=60)
    seconds, micros = await gw.redis.time()          # Redis' clock, as XADD stamps entries
    old_sid = f"{seconds * 1000 + micros // 1000}-0"
    async with gw.http.delete(f"{gw.url}/admin/v1/tenants/acme", headers=gw.admin_headers) as r:
        assert r.status == 204
    await asyncio.sleep(2.1)      # past the margin for Redis' clock against the store's
    async with gw.http.put(f"{gw.url}/admin/v1/tenants/acme", json=tenant("acme", provider),
                           headers=gw.admin_headers) as r:
        assert r.status == 201
    stale = Event(type="message.in", tenant="acme", channel="wire", contact="old", ts=1.0)
    seconds, micros = await gw.redis.time()
    fresh = Event(type="message.in", tenant="acme", channel="wire", contact="new", ts=1.0)
    fresh_sid = f"{seconds * 1000 + micros // 1000}-0"
    assert await gw.store.insert_events([(old_sid, stale), (fresh_sid, fresh)]) == 1
    assert [e.contact for e in await gw.store.list_events("acme")] == ["new"]
