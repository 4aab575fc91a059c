"""The http.request step against a real aiohttp server on 127.0.0.1."""
import asyncio

import aiohttp
import msgspec
import pytest
from aiohttp import web

import causette_http
from causette_http import HttpRequest, Settings, extract
from causette_http.step import Args, check_url, host_allowed
from gateway.flows import Context
from gateway.types import Session
from yarl import URL

CATALOGUE = {"count": 2, "products": [{"name": "Pull", "price": 29}, {"name": "Jean", "price": 49}],
             "meta": {"next page": None}}


@pytest.fixture
async def api(aiohttp_server):
    seen: list[web.Request] = []
    bodies: list[object] = []
    never = asyncio.Event()

    async def catalogue(request: web.Request):
        seen.append(request)
        return web.json_response({**CATALOGUE, "query": dict(request.query),
                                  "key": request.headers.get("X-Api-Key", ""),
                                  "agent": request.headers.get("User-Agent", "")})

    async def orders(request: web.Request):
        seen.append(request)
        bodies.append(await request.json())
        return web.json_response({"id": "ord_42", "status": "created"}, status=201)

    async def missing(request):
        seen.append(request)
        return web.json_response({"error": "no such product"}, status=404)

    async def moved(request):
        seen.append(request)
        raise web.HTTPFound("/internal")

    async def internal(request):
        seen.append(request)
        return web.json_response({"secret": True})

    async def slow(request):
        seen.append(request)
        await never.wait()
        return web.json_response({})

    async def big(request):
        seen.append(request)
        return web.Response(body=b"[" + b"1," * 5000 + b"1]", content_type="application/json")

    async def html(request):
        seen.append(request)
        return web.Response(text="<html>hello</html>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/catalogue", catalogue)
    app.router.add_post("/orders", orders)
    app.router.add_get("/missing", missing)
    app.router.add_get("/moved", moved)
    app.router.add_get("/internal", internal)
    app.router.add_get("/slow", slow)
    app.router.add_get("/big", big)
    app.router.add_get("/html", html)
    server = await aiohttp_server(app, host="127.0.0.1")
    server.seen, server.bodies = seen, bodies
    yield server
    never.set()


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as s:
        yield s


def ctx_for(http, dry_run=False, **settings):
    settings.setdefault("allowed_hosts", ["127.0.0.1"])
    return Context(tenant="demo", channel="web", channel_type="webchat", contact="c1",
                   session=Session(), http=http, settings={"http": Settings(**settings)}, dry_run=dry_run)


def args(**kw):
    return msgspec.convert(kw, Args)


async def test_get_saves_json_fields(api, http):
    step = HttpRequest()
    res = await step.run(ctx_for(http, headers={"X-Api-Key": "k1", "User-Agent": "causette"}), args(
        url=str(api.make_url("/catalogue")), query={"category": "w", "limit": 3, "sale": True},
        headers={"User-Agent": "flow"},
        save={"products": "$.products", "first": "$.products[0].name", "names": "$.products[*].name",
              "count": "$.count", "page": "$.meta['next page']", "nope": "$.nothing.here"},
        save_status="status"))
    assert res.ok and res.branch == "200" and res.error == ""
    assert res.vars == {"products": CATALOGUE["products"], "first": "Pull", "names": ["Pull", "Jean"],
                        "count": 2, "page": None, "nope": None, "status": 200}
    req = api.seen[0]
    assert dict(req.query) == {"category": "w", "limit": "3", "sale": "true"}
    assert req.headers["X-Api-Key"] == "k1" and req.headers["User-Agent"] == "flow"


async def test_post_json_body(api, http):
    res = await HttpRequest().run(ctx_for(http), args(
        method="POST", url=str(api.make_url("/orders")),
        json={"email": "lea@example.fr", "items": [{"sku": "PULL-W", "qty": 1}]}, save={"order": "$.id"}))
    assert res.ok and res.branch == "201" and res.vars == {"order": "ord_42"}
    assert api.bodies == [{"email": "lea@example.fr", "items": [{"sku": "PULL-W", "qty": 1}]}]
    assert api.seen[0].headers["Content-Type"] == "application/json"


async def test_http_error_is_a_failure_with_its_status(api, http):
    res = await HttpRequest().run(ctx_for(http), args(url=str(api.make_url("/missing")),
                                                      save={"err": "$.error"}))
    assert not res.ok and res.branch == "404" and res.error == "HTTP 404"
    assert res.vars == {"err": "no such product"}


@pytest.mark.parametrize("allowed", [[], ["api.shop.example"], ["*.127.0.0.1"], ["127.0.0.1:1"]])
async def test_hosts_not_allowed_are_never_called(api, http, allowed):
    res = await HttpRequest().run(ctx_for(http, allowed_hosts=allowed),
                                  args(url=str(api.make_url("/catalogue"))))
    assert not res.ok and res.branch == "refused"
    assert "allowed_hosts" in res.error
    assert api.seen == []


async def test_allowed_with_its_port(api, http):
    res = await HttpRequest().run(ctx_for(http, allowed_hosts=[f"127.0.0.1:{api.port}"]),
                                  args(url=str(api.make_url("/catalogue"))))
    assert res.ok


async def test_redirects_are_not_followed(api, http):
    res = await HttpRequest().run(ctx_for(http), args(url=str(api.make_url("/moved")),
                                                      save_status="status"))
    assert not res.ok and res.branch == "302" and res.vars == {"status": 302}
    assert [r.path for r in api.seen] == ["/moved"]


async def test_timeout(api, http):
    res = await HttpRequest().run(ctx_for(http), args(url=str(api.make_url("/slow")), timeout=0.2))
    assert not res.ok and res.branch == "timeout" and "no answer" in res.error


async def test_unreachable(http):
    res = await HttpRequest().run(ctx_for(http), args(url="http://127.0.0.1:1/x"))
    assert not res.ok and res.branch == "unreachable"


async def test_too_large(api, http):
    res = await HttpRequest().run(ctx_for(http, max_bytes=1000), args(url=str(api.make_url("/big"))))
    assert not res.ok and "larger than 1000" in res.error


async def test_save_from_a_non_json_answer_fails(api, http):
    res = await HttpRequest().run(ctx_for(http), args(url=str(api.make_url("/html")), save={"x": "$.x"}))
    assert not res.ok and res.error == "the answer is not JSON"
    res = await HttpRequest().run(ctx_for(http), args(url=str(api.make_url("/html"))))
    assert res.ok


async def test_without_a_shared_session(api):
    ctx = ctx_for(None)
    res = await HttpRequest().run(ctx, args(url=str(api.make_url("/catalogue")), save={"n": "$.count"}))
    assert res.ok and res.vars == {"n": 2}


async def test_settings_as_a_plain_dict(api, http):
    ctx = Context(tenant="demo", channel="web", channel_type="webchat", contact="c1", session=Session(),
                  http=http, settings={"http": {"allowed_hosts": ["127.0.0.1"]}})
    assert (await HttpRequest().run(ctx, args(url=str(api.make_url("/catalogue"))))).ok


async def test_dry_run_calls_nothing(api, http):
    step = HttpRequest()
    res = await step.dry_run(ctx_for(http, dry_run=True), args(url=str(api.make_url("/orders")), method="POST"))
    assert res.ok and res.vars == {}
    res = await step.dry_run(ctx_for(http, dry_run=True, allowed_hosts=[]), args(url=str(api.make_url("/orders"))))
    assert not res.ok and res.branch == "refused"
    assert api.seen == []


@pytest.mark.parametrize("url,reason", [
    ("ftp://127.0.0.1/x", "only absolute http(s)"),
    ("/relative/path", "only absolute http(s)"),
    ("http://user:pw@127.0.0.1/x", "credentials"),
    ("http://169.254.169.254/latest/meta-data", "not in this tenant"),
    ("http://localhost/x", "not in this tenant"),
])
def test_urls_refused(url, reason):
    got = check_url(url, Settings(allowed_hosts=["127.0.0.1", "*.shop.example"]))
    assert isinstance(got, str) and reason in got


@pytest.mark.parametrize("url,allowed,ok", [
    ("https://api.shop.example/x", ["api.shop.example"], True),
    ("https://API.Shop.Example./x", ["api.shop.example"], True),
    ("https://eu.api.shop.example/x", ["*.shop.example"], True),
    ("https://shop.example/x", ["*.shop.example"], False),
    ("https://evilshop.example/x", ["*.shop.example"], False),
    ("https://api.shop.example.evil.io/x", ["api.shop.example"], False),
    ("http://127.0.0.1:8080/x", ["127.0.0.1:8080"], True),
    ("http://127.0.0.1:8081/x", ["127.0.0.1:8080"], False),
    ("http://[::1]:8080/x", ["[::1]:8080"], True),
    ("http://[::1]:9/x", ["[::1]:8080"], False),
])
def test_host_allowed(url, allowed, ok):
    assert host_allowed(URL(url), allowed) is ok


@pytest.mark.parametrize("path,value", [
    ("$", CATALOGUE), ("$.count", 2), ("$.products[1].price", 49), ("$.products[9].price", None),
    ("$.products[*].price", [29, 49]), ("$['meta']['next page']", None), ('$["products"][0].name', "Pull"),
    ("$.count.deeper", None),
])
def test_extract(path, value):
    assert extract(CATALOGUE, path) == value


@pytest.mark.parametrize("path", ["count", "$..count", "$.products[", "$.a b"])
def test_extract_rejects_other_paths(path):
    with pytest.raises(ValueError):
        extract(CATALOGUE, path)


def test_plugin_registers_the_step():
    steps = causette_http.register_steps()
    assert [s.name for s in steps] == ["http.request"]
    assert steps[0].Args is Args and causette_http.Settings is Settings
