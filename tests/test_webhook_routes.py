"""The webhook's route table (registry.routes): one lookup from the request path to its tenant
and channel instance. It must only ever hold the exact paths of loaded, enabled instances, and
every other path (query string, escapes, not loaded yet) must reach the same instance the
slow way."""
import copy

from tests.support.wire import WirePlugin, sign, wire_body
from tests.test_pipeline_e2e import SECRET, post, tenant


async def _post_path(gw, path, item):
    body = wire_body(item)
    async with gw.http.post(f"{gw.url}{path}", data=body, headers=sign(SECRET, body)) as r:
        return r.status


async def test_routes_hold_each_loaded_instance_under_its_own_path(gateway, provider):
    gw = await gateway(tenants=[tenant("acme", provider), tenant("globex", provider)],
                       plugins=[("wire", WirePlugin())])
    assert gw.registry.routes == {}            # nothing loaded before the first webhook
    assert (await post(gw, "acme", {"id": "a1", "sender": "ca", "text": "salut"}))[0] == 200
    assert (await post(gw, "globex", {"id": "g1", "sender": "cg", "text": "salut"}))[0] == 200
    routes = gw.registry.routes
    assert sorted(routes) == ["/t/acme/channels/wire", "/t/globex/channels/wire"]
    for path, (rt, ch) in routes.items():
        assert path == f"/t/{rt.slug}/channels/{ch.instance_id}" and ch.tenant == rt.slug
        assert rt.channels[ch.instance_id] is ch
    # Each path's turns land in its own tenant's keys.
    assert await gw.redis.exists("cst:{acme}:c:wire:ca:s") == 1
    assert await gw.redis.exists("cst:{globex}:c:wire:cg:s") == 1
    assert await gw.redis.exists("cst:{acme}:c:wire:cg:s", "cst:{globex}:c:wire:ca:s") == 0


async def test_paths_outside_the_table_reach_the_same_instance(gateway, provider):
    gw = await gateway(tenants=[tenant("acme", provider)], plugins=[("wire", WirePlugin())])
    assert await _post_path(gw, "/t/acme/channels/wire?source=ad", {"id": "q1", "sender": "c1", "text": "salut"}) == 200
    assert await _post_path(gw, "/t/%61cme/channels/wire", {"id": "q2", "sender": "c2", "text": "salut"}) == 200
    assert await _post_path(gw, "/t/acme/channels/wire", {"id": "q3", "sender": "c3", "text": "salut"}) == 200
    assert provider.texts("c1") == provider.texts("c2") == provider.texts("c3") == ["Bonjour !", "Femme ou homme ?"]
    assert list(gw.registry.routes) == ["/t/acme/channels/wire"]
    # An unknown channel of a loaded tenant is still a 404, and adds nothing.
    assert await _post_path(gw, "/t/acme/channels/other", {"id": "q4", "sender": "c4", "text": "salut"}) == 404
    assert list(gw.registry.routes) == ["/t/acme/channels/wire"]


async def test_a_removed_or_disabled_instance_leaves_the_table(gateway, provider):
    gw = await gateway(tenants=[tenant("acme", provider)], plugins=[("wire", WirePlugin())])
    assert (await post(gw, "acme", {"id": "r1", "sender": "c1", "text": "salut"}))[0] == 200
    assert "/t/acme/channels/wire" in gw.registry.routes

    # Renamed: the old path answers 404 at once, the new one works.
    renamed = tenant("acme", provider)
    renamed["channels"][0]["id"] = "wire2"
    await gw.apply(renamed)
    assert gw.registry.routes == {}
    assert (await post(gw, "acme", {"id": "r2", "sender": "c1", "text": "salut"}))[0] == 404
    assert (await post(gw, "acme", {"id": "r3", "sender": "c2", "text": "salut"}, channel="wire2"))[0] == 200
    assert list(gw.registry.routes) == ["/t/acme/channels/wire2"]

    # Disabled: 404, and no entry comes back on later webhooks.
    disabled = copy.deepcopy(renamed)
    disabled["channels"][0]["enabled"] = False
    await gw.apply(disabled)
    for n in range(2):
        assert (await post(gw, "acme", {"id": f"r4{n}", "sender": "c2", "text": "salut"}, channel="wire2"))[0] == 404
    assert gw.registry.routes == {}
    assert provider.texts("c1") == ["Bonjour !", "Femme ou homme ?"]


async def test_a_change_during_a_load_is_not_lost_to_the_cache(gateway, provider):
    """A tenant changed while a process reads it must not stay cached as it was: a rotated
    secret or a removed channel would go on being accepted until the next change."""
    import asyncio
    gw = await gateway(tenants=[tenant("acme", provider)], plugins=[("wire", WirePlugin())])
    store, registry = gw.store, gw.registry
    real = store.tenant_snapshot
    reading, go_on = asyncio.Event(), asyncio.Event()
    calls = []

    async def slow_first_read(slug):
        snap = await real(slug)          # the tenant as it is now: channel "wire"
        calls.append(slug)
        if len(calls) == 1:
            reading.set()
            await go_on.wait()           # ... and the change lands before this load ends
        return snap
    store.tenant_snapshot = slow_first_read
    try:
        first = asyncio.ensure_future(registry.get("acme"))
        await reading.wait()
        renamed = tenant("acme", provider)
        renamed["channels"][0]["id"] = "wire2"
        await gw.apply(renamed)          # invalidates: forget() runs while the load waits
        # A newer load, not the stale one (which would wait for go_on: the guard fails it).
        second = await asyncio.wait_for(registry.get("acme"), 10)
        go_on.set()
        await first
    finally:
        store.tenant_snapshot = real
    assert list(second.channels) == ["wire2"]
    assert list(registry.cached("acme").channels) == ["wire2"]
    assert list(registry.routes) == ["/t/acme/channels/wire2"]
    assert (await post(gw, "acme", {"id": "x1", "sender": "c1", "text": "salut"}))[0] == 404
    assert (await post(gw, "acme", {"id": "x2", "sender": "c1", "text": "salut"}, channel="wire2"))[0] == 200


async def test_changes_of_other_tenants_do_not_keep_a_tenant_from_its_cache(gateway, provider):
    """Only a change of the tenant being loaded makes its load read again: an agency rolling
    changes out to other brands must not leave this one uncached."""
    import asyncio
    gw = await gateway(tenants=[tenant("acme", provider), tenant("globex", provider)],
                       plugins=[("wire", WirePlugin())])
    store, registry = gw.store, gw.registry
    real = store.tenant_snapshot
    reads = []
    gate = asyncio.Event()

    async def slow(slug):
        reads.append(slug)
        await gate.wait()
        return await real(slug)
    store.tenant_snapshot = slow
    try:
        load = asyncio.ensure_future(registry.get("acme"))
        while not reads:
            await asyncio.sleep(0)
        for _ in range(5):
            registry.forget("globex")          # another tenant changes meanwhile
        gate.set()
        rt = await asyncio.wait_for(load, 10)
    finally:
        store.tenant_snapshot = real
    assert reads == ["acme"] and registry.cached("acme") is rt
    assert "/t/acme/channels/wire" in registry.routes
    assert registry._changed == {} and registry._running == {}    # nothing left behind
