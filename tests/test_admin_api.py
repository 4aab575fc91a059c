"""The admin API over real HTTP: auth and roles, tenants, keys, plugins, channels (secrets
write-only), problem+json everywhere, body limits, and the generated OpenAPI document."""
import json

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.admin import ROUTES, mount_admin
from gateway.appkeys import PLUGINS, STORE
from gateway.channels import Capabilities
from gateway.plugins import PluginHost
from gateway.store import Store
from gateway.testing import load_demo

TOKEN = "EAAG-admin-secret-31"
PROBLEM = "application/problem+json"


class Admin:
    def __init__(self, client: TestClient, store: Store, agency: str):
        self.client, self.store, self.agency = client, store, agency

    def h(self, key: str | None = None, **extra) -> dict:
        return {"Authorization": f"Bearer {key or self.agency}", **extra}

    async def call(self, method: str, path: str, key: str | None = None, **kw):
        headers = self.h(key, **kw.pop("headers", {}))
        async with self.client.request(method, "/admin/v1" + path, headers=headers, **kw) as r:
            body = await r.read()
            data = json.loads(body) if body and r.content_type.endswith("json") else body.decode()
            return r.status, r.content_type, data, r.headers


@pytest.fixture(scope="module")
def host():
    return PluginHost()


@pytest.fixture
async def admin(tmp_path, host):
    store = await Store.open(str(tmp_path / "c.db"), b"test-secret")
    app = web.Application()
    app[STORE], app[PLUGINS] = store, host
    mount_admin(app)
    client = TestClient(TestServer(app))
    await client.start_server()
    yield Admin(client, store, await store.create_key(None, "agency"))
    await client.close()
    await store.close()


def demo() -> dict:
    return load_demo()


async def test_no_key_or_a_bad_key_is_401_problem(admin):
    async with admin.client.get("/admin/v1/tenants") as r:
        assert r.status == 401 and r.content_type == PROBLEM
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
        body = await r.json()
        assert body["status"] == 401 and body["type"].startswith("urn:causette:problem:")
        assert body["instance"] == "/admin/v1/tenants"
    for bad in ("cst_000000000000_nope", "Basic abc", admin.agency + "x"):
        async with admin.client.get("/admin/v1/tenants", headers={"Authorization": f"Bearer {bad}"}) as r:
            assert r.status == 401


async def test_tenants_crud_by_the_agency_and_tenant_keys_see_their_own(admin):
    s, _, t, hdr = await admin.call("POST", "/tenants", json={"slug": "acme", "name": "Acme"})
    assert s == 201 and t["slug"] == "acme" and hdr["Location"].endswith("/tenants/acme")
    s, ct, p, _ = await admin.call("POST", "/tenants", json={"slug": "acme", "name": "Again"})
    assert (s, ct, p["code"]) == (409, PROBLEM, "conflict")
    await admin.call("POST", "/tenants", json={"slug": "bravo", "name": "Bravo"})
    s, _, p, _ = await admin.call("POST", "/tenants", json={"slug": "Not A Slug", "name": ""})
    assert s == 422 and p["errors"][0]["path"] in ("$.slug", "$.name")
    owner = await admin.store.create_key("acme", "owner")
    s, _, lst, _ = await admin.call("GET", "/tenants", owner)
    assert [x["slug"] for x in lst["tenants"]] == ["acme"]
    s, _, lst, _ = await admin.call("GET", "/tenants")
    assert [x["slug"] for x in lst["tenants"]] == ["acme", "bravo"]
    assert (await admin.call("POST", "/tenants", owner, json={"slug": "x1", "name": "X"}))[0] == 403
    s, _, t, _ = await admin.call("PATCH", "/tenants/acme", owner, json={"name": "Acme SA", "timezone": "UTC"})
    assert s == 200 and (t["name"], t["timezone"], t["locale"]) == ("Acme SA", "UTC", "fr")
    s, _, p, _ = await admin.call("PATCH", "/tenants/acme", owner, json={"timezone": "Mars/Olympus"})
    assert s == 422 and p["errors"][0]["code"] == "tenant.timezone"
    s, _, p, _ = await admin.call("PATCH", "/tenants/acme", owner, json={"locale": "xx_XX!", "locales": ["fr", "e n"]})
    assert s == 422 and {(e["path"], e["code"]) for e in p["errors"]} == {
        ("$.locale", "tenant.locale"), ("$.locales[1]", "tenant.locale")}
    assert (await admin.call("PATCH", "/tenants/acme", owner, json={"locales": ["fr", "en"]}))[0] == 200
    s, _, p, _ = await admin.call("PATCH", "/tenants/acme", owner, json={"locale": "de"})
    assert s == 422 and p["errors"][0]["path"] == "$.locale" and "fr, en" in p["errors"][0]["message"]
    s, _, t, _ = await admin.call("PATCH", "/tenants/acme", owner, json={"locale": "en"})
    assert s == 200 and t["locale"] == "en"
    assert (await admin.call("POST", "/tenants", json={"slug": "x2", "name": "X", "locale": "de",
                                                       "locales": ["fr"]}))[0] == 422
    assert (await admin.call("DELETE", "/tenants/acme", owner))[0] == 403
    assert (await admin.call("DELETE", "/tenants/acme"))[0] == 204
    assert (await admin.call("GET", "/tenants/acme"))[0] == 404
    assert await admin.store.check_key(owner) is None      # its keys went with it


async def test_put_tenant_is_apply_with_the_same_validation(admin):
    s, _, res, _ = await admin.call("PUT", "/tenants/demo", json=demo())      # the agency creates it
    assert s == 201 and res["tenant"] == ["created"] and res["published"] == ["soldes-hiver@1"]
    s, _, res, _ = await admin.call("PUT", "/tenants/demo", json=demo())
    assert s == 200 and res["published"] == [] and res["tenant"] == []
    owner = await admin.store.create_key("demo", "owner")
    assert (await admin.call("PUT", "/tenants/other", owner, json=demo() | {"slug": "other"}))[0] == 404
    bad = demo()
    bad["plugins"]["http"]["timeout"] = -1
    s, ct, p, _ = await admin.call("PUT", "/tenants/demo", json=bad)
    assert (s, ct) == (422, PROBLEM)
    assert [e["path"] for e in p["errors"] if e["severity"] == "error"] == ["$.plugins.http.timeout"]
    s, _, p, _ = await admin.call("PUT", "/tenants/demo", json=demo() | {"slug": "other"})
    assert s == 422 and p["errors"][0]["code"] == "tenant.slug_mismatch"


async def test_keys_are_shown_once_and_need_the_owner_role(admin):
    await admin.call("POST", "/tenants", json={"slug": "acme", "name": "Acme"})
    owner = await admin.store.create_key("acme", "owner")
    s, _, k, hdr = await admin.call("POST", "/tenants/acme/keys", owner, json={"role": "editor", "name": "ci"})
    assert s == 201 and k["key"].startswith("cst_") and hdr["Cache-Control"] == "no-store"
    s, _, lst, _ = await admin.call("GET", "/tenants/acme/keys", owner)
    assert k["key"] not in json.dumps(lst) and {x["role"] for x in lst["keys"]} == {"owner", "editor"}
    editor = k["key"]
    assert (await admin.call("POST", "/tenants/acme/keys", editor, json={"role": "owner"}))[0] == 403
    assert (await admin.call("GET", "/tenants/acme/keys", editor))[0] == 403
    s, _, p, _ = await admin.call("POST", "/tenants/acme/keys", owner, json={"role": "agency"})
    assert s == 422 and p["errors"][0]["path"] == "$.role"
    assert (await admin.call("DELETE", f"/tenants/acme/keys/{k['id']}", owner))[0] == 204
    assert (await admin.call("GET", "/tenants/acme", editor))[0] == 401


async def test_agency_keys_are_managed_by_the_agency_and_the_last_one_stays(admin):
    s, _, k, _ = await admin.call("POST", "/keys", json={"name": "ops"})
    assert s == 201 and k["role"] == "agency" and "tenant" not in k
    s, _, lst, _ = await admin.call("GET", "/keys", k["key"])
    assert len(lst["keys"]) == 2 and k["key"] not in json.dumps(lst)
    first = next(x["id"] for x in lst["keys"] if x["id"] != k["id"])
    assert (await admin.call("DELETE", f"/keys/{first}", k["key"]))[0] == 204
    assert (await admin.call("GET", "/keys"))[0] == 401            # the revoked one
    s, _, p, _ = await admin.call("DELETE", f"/keys/{k['id']}", k["key"])
    assert s == 409 and "last agency key" in p["detail"]
    await admin.call("POST", "/tenants", k["key"], json={"slug": "acme", "name": "Acme"})
    owner = await admin.store.create_key("acme", "owner")
    assert (await admin.call("GET", "/keys", owner))[0] == 403
    assert (await admin.call("POST", "/keys", owner, json={}))[0] == 403


async def test_plugins_list_schemas_and_validate_settings(admin, host):
    await admin.call("POST", "/tenants", json={"slug": "acme", "name": "Acme"})
    s, _, inst, _ = await admin.call("GET", "/plugins")
    names = {p["name"] for p in inst["plugins"]}
    assert {"tree", "http", "webchat"} <= names
    http = next(p for p in inst["plugins"] if p["name"] == "http")
    assert "timeout" in json.dumps(http["settings_schema"]) and http["registers"] == {"step": ["http.request"]}
    s, _, p, _ = await admin.call("PUT", "/tenants/acme/plugins/http", json={"settings": {"timeout": 99}})
    assert s == 422 and p["errors"][0]["path"] == "$.settings.timeout"
    s, _, p, _ = await admin.call("PUT", "/tenants/acme/plugins/http", json={"settings": {"allowed_hosts": ["a.b"]}})
    assert s == 201 and p["enabled"] and p["settings"] == {"allowed_hosts": ["a.b"]}
    assert (await admin.call("PUT", "/tenants/acme/plugins/http", json={}))[0] == 200
    assert (await admin.call("PUT", "/tenants/acme/plugins/nope", json={}))[0] == 404
    s, _, tp, _ = await admin.call("GET", "/tenants/acme/plugins")
    assert tp["enabled"] == {"http": {}} and any(p["name"] == "tree" and not p["enabled"] for p in tp["available"])
    assert (await admin.call("DELETE", "/tenants/acme/plugins/http"))[0] == 204
    assert (await admin.call("DELETE", "/tenants/acme/plugins/http"))[0] == 404


async def test_channel_secrets_are_write_only(admin, tmp_path):
    await admin.call("POST", "/tenants", json={"slug": "acme", "name": "Acme"})
    wa = {"id": "wa", "type": "whatsapp", "settings": {"phone_number_id": "106", "access_token": TOKEN}}
    s, _, ch, hdr = await admin.call("POST", "/tenants/acme/channels", json=wa)   # enables its plugin
    assert s == 201 and ch["settings"] == {"phone_number_id": "106", "access_token": "***set***"}
    assert ch["webhook"] == "/t/acme/channels/wa" and ch["plugin"] == "whatsapp"
    assert ch["capabilities"]["buttons"] == 3
    # every limit, the defaults too: a client need not know the gateway's defaults
    assert ch["capabilities"]["button_title"] == 20 and ch["capabilities"]["typing"] is False
    assert set(ch["capabilities"]) == set(Capabilities.__struct_fields__)
    assert (await admin.call("GET", "/tenants/acme/plugins/whatsapp"))[2]["enabled"]
    assert (await admin.call("POST", "/tenants/acme/channels", json=wa))[0] == 409
    for path in ("/tenants/acme/channels", "/tenants/acme/channels/wa"):
        s, _, body, _ = await admin.call("GET", path)
        assert s == 200 and TOKEN not in json.dumps(body) and "***set***" in json.dumps(body)
    # PUT without the secret (or with the mask) keeps it; the runtime still gets it
    s, _, ch, _ = await admin.call("PUT", "/tenants/acme/channels/wa",
                                   json={"type": "whatsapp", "settings": {"phone_number_id": "107",
                                                                          "access_token": "***set***"}})
    assert s == 200 and ch["settings"]["phone_number_id"] == "107"
    snap = await admin.store.tenant_snapshot("acme")
    assert snap.channels[0].settings["access_token"] == TOKEN
    s, _, p, _ = await admin.call("PUT", "/tenants/acme/channels/wa",
                                  json={"type": "whatsapp", "settings": {"phone_number_id": 5}})
    assert s == 422 and p["errors"][0]["path"] == "$.settings.phone_number_id"
    assert (await admin.call("DELETE", "/tenants/acme/plugins/whatsapp"))[0] == 409   # in use
    assert (await admin.call("DELETE", "/tenants/acme/channels/wa"))[0] == 204
    assert (await admin.call("GET", "/tenants/acme/channels/wa"))[0] == 404
    db = b"".join(p.read_bytes() for p in tmp_path.glob("c.db*"))
    assert TOKEN.encode() not in db


async def test_malformed_oversized_and_wrong_type_bodies_are_problems(admin):
    s, ct, p, _ = await admin.call("POST", "/tenants", data=b'{"slug": "acme",',
                                   headers={"Content-Type": "application/json"})
    assert (s, ct, p["code"]) == (400, PROBLEM, "malformed-json")
    s, ct, p, _ = await admin.call("POST", "/tenants", data=b"slug=acme",
                                   headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert (s, ct) == (415, PROBLEM)
    big = b'{"slug": "acme", "name": "' + b"x" * (3 * 1024 * 1024) + b'"}'
    s, ct, p, _ = await admin.call("POST", "/tenants", data=big, headers={"Content-Type": "application/json"})
    assert (s, ct) == (413, PROBLEM)
    s, ct, p, _ = await admin.call("POST", "/tenants", data=b"", headers={"Content-Type": "application/json"})
    assert (s, ct) == (400, PROBLEM)
    s, ct, p, _ = await admin.call("GET", "/no/such/route")
    assert (s, ct) == (404, PROBLEM)
    async with admin.client.get("/admin/v1") as r:          # the prefix itself
        assert (r.status, r.headers["Content-Type"]) == (404, PROBLEM)
    s, ct, p, hdr = await admin.call("HEAD", "/tenants")
    assert s == 405 and "GET" in hdr["Allow"]
    s, ct, p, hdr = await admin.call("DELETE", "/plugins")
    assert (s, ct) == (405, PROBLEM) and "GET" in hdr["Allow"]
    assert await admin.store.list_tenant_slugs() == []


async def test_openapi_is_generated_from_the_route_table(admin):
    async with admin.client.get("/admin/v1/openapi.json") as r:     # public
        assert r.status == 200
        doc = await r.json()
    assert doc["openapi"].startswith("3.1")
    for route in ROUTES:
        op = doc["paths"][route.path][route.method.lower()]
        assert op["summary"] == route.summary
    schemas = doc["components"]["schemas"]
    assert {"SimulateIn", "SimulateOut", "FlowDiff", "ProblemDoc", "TenantConfig", "ChannelOut"} <= set(schemas)

    def refs(node):
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "$ref":
                    yield v
                else:
                    yield from refs(v)
        elif isinstance(node, list):
            for v in node:
                yield from refs(v)
    for ref in refs(doc):
        assert ref.removeprefix("#/components/schemas/") in schemas, ref
    put = doc["paths"]["/tenants/{tenant}/flows/{flow}"]["put"]
    assert {"412", "428", "422", "404", "403"} <= set(put["responses"])
    assert doc["paths"]["/openapi.json"]["get"]["security"] == []


@pytest.mark.parametrize("kind, settings, path", [
    ("whatsapp", {"phone_number_id": ""}, "$.settings.phone_number_id"),
    ("whatsapp", {"phone_number_id": "106", "api_base": "ftp:/nope"}, "$.settings.api_base"),
    ("whatsapp", {"phone_number_id": "106", "list_button": "x" * 21}, "$.settings.list_button"),
    ("messenger", {"attempts": 0}, "$.settings.attempts"),
    ("telegram", {"token": "1:a", "secret_token": "bad secret!"}, "$.settings.secret_token"),
    ("telegram", {"token": "1:a", "secret_token": "pasted-with-its-newline\n"}, "$.settings.secret_token"),
    ("telegram", {"token": "1:a", "secret_token": "ok", "buttons_per_row": 0}, "$.settings.buttons_per_row"),
    ("telegram", {"token": "1:a", "secret_token": "ok", "timeout": -1}, "$.settings.timeout"),
    ("wechat", {"token": "t", "max_age": -1}, "$.settings.max_age"),
    ("webhook", {"secret": "s", "callback_url": "ftp://brand.example/hook"}, "$.settings.callback_url"),
    ("messenger", {"page_id": "1", "version": "21.0"}, "$.settings.version"),
    ("messenger", {"page_id": "1", "handover_app_id": "Page Inbox"}, "$.settings.handover_app_id"),
    ("rcs", {"agent_id": "a@rbm.goog", "ttl": "tomorrow"}, "$.settings.ttl"),
    ("rcs", {"agent_id": "a@rbm.goog", "not_capable_ttl": -1}, "$.settings.not_capable_ttl"),
])
async def test_channel_settings_that_could_never_work_are_refused_at_their_path(admin, kind, settings, path):
    await admin.call("POST", "/tenants", json={"slug": "acme", "name": "Acme"})
    s, ct, p, _ = await admin.call("POST", "/tenants/acme/channels",
                                   json={"id": "c", "type": kind, "settings": settings})
    assert (s, ct) == (422, PROBLEM) and p["errors"][0]["path"] == path
    assert (await admin.call("GET", "/tenants/acme/channels/c"))[0] == 404     # nothing saved
