"""register_routes: a plugin's routes answer only for tenants that enabled the plugin."""
from aiohttp import web

from gateway.hookspecs import hookimpl


class Status:
    @hookimpl
    def register_routes(self):
        async def status(request):
            return web.json_response({"tenant": request.match_info["tenant"]})
        return [web.get("status", status), web.post("/hello", status)]


def tenant(slug, plugins):
    return {"slug": slug, "name": slug, "plugins": plugins}


async def test_routes_mount_per_tenant_and_respect_enabling(gateway):
    gw = await gateway(tenants=[tenant("acme", {"status": {}}), tenant("other", {})],
                       plugins=[("status", Status())])
    async with gw.http.get(f"{gw.url}/t/acme/plugins/status/status") as r:
        assert r.status == 200 and (await r.json()) == {"tenant": "acme"}
    async with gw.http.post(f"{gw.url}/t/acme/hello") as r:
        assert r.status == 200
    for url in ("/t/other/plugins/status/status", "/t/ghost/plugins/status/status", "/t/other/hello"):
        async with gw.http.request("GET" if "status" in url else "POST", gw.url + url) as r:
            assert r.status == 404 and r.content_type == "application/problem+json"


async def test_first_party_catalogue_feed_route(gateway, demo_tenant):
    gw = await gateway(tenants=[demo_tenant])
    async with gw.http.get(f"{gw.url}/t/demo/catalogue.json?category=women&budget=mid&limit=5") as r:
        body = await r.json()
    assert r.status == 200 and body["count"] == 2
    assert all(p["category"] == "women" and 50 <= p["price"] < 150 for p in body["products"])


async def test_a_store_failure_while_loading_the_tenant_is_503_not_500(gateway):
    gw = await gateway(tenants=[tenant("acme", {"status": {}})], plugins=[("status", Status())])
    gw.registry.forget("acme")

    await gw.store.close()                 # the store unavailable: every read of it fails
    async with gw.http.get(f"{gw.url}/t/acme/plugins/status/status") as r:
        assert r.status == 503 and r.headers["Retry-After"] == "30"


async def test_a_route_reads_its_tenant_and_its_own_settings(gateway, demo_tenant):
    # The first-party catalogue reads its per-tenant settings through route_tenant: a tenant
    # that lists other products gets those, and the demo its own.
    import copy
    other = copy.deepcopy(demo_tenant)
    other["slug"] = "boutique"
    other["plugins"]["catalogue"] = {"currency": "CHF", "products": [
        {"sku": "B1", "name": "Pull", "category": "women", "price": 80.0}]}
    gw = await gateway(tenants=[demo_tenant, other])
    async with gw.http.get(f"{gw.url}/t/boutique/catalogue.json?category=women") as r:
        body = await r.json()
    assert r.status == 200 and body["currency"] == "CHF" and [p["sku"] for p in body["products"]] == ["B1"]
    async with gw.http.get(f"{gw.url}/t/demo/catalogue.json?category=women") as r:
        body = await r.json()
    assert r.status == 200 and "B1" not in [p["sku"] for p in body["products"]] and body["count"] > 0


def test_route_tenant_outside_a_plugin_route_says_so():
    import pytest
    from aiohttp.test_utils import make_mocked_request
    from gateway.routes import route_tenant
    with pytest.raises(LookupError, match="register_routes"):
        route_tenant(make_mocked_request("GET", "/"))
