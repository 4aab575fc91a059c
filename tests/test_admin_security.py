"""A tenant key can never read or change another tenant: every route of the admin API's
route table is walked with a foreign tenant's owner key (404, nothing read, nothing changed),
and every write route with a viewer key of the tenant itself (403, nothing changed)."""
import json
import re
import time

import pytest

from gateway.admin import ROUTES
from gateway.types import Event

MARK = "ACME-ONLY-7c1d"            # appears only in acme's data
SECRET = "EAAG-acme-token-5e0b"    # acme's channel secret


def flow(fid: str, text: str) -> dict:
    return {"format": 1, "id": fid, "name": f"{MARK} {fid}", "engine": "tree",
            "triggers": [{"type": "keyword", "any": [fid]}], "start": "ask",
            "nodes": {"ask": {"type": "choice", "text": text, "save_as": "x",
                              "choices": [{"id": "a", "title": "A", "next": "done"}]},
                      "done": {"type": "end", "outcome": "completed", "text": "Bye"}}}


def tenant(slug: str, mark: str, secret: str) -> dict:
    return {"slug": slug, "name": f"{mark} brand", "plugins": {"tree": {}, "whatsapp": {}, "http": {}},
            "channels": [{"id": "wa", "type": "whatsapp",
                          "settings": {"phone_number_id": f"{mark}-phone", "access_token": secret,
                                       "api_base": "http://127.0.0.1:9"}}],
            "flows": [flow("quiz", f"{mark} question?")]}


SAMPLE_BODIES = {
    ("POST", "/keys"): {"name": "backdoor"},
    ("POST", "/tenants"): {"slug": "evil", "name": "Evil"},
    ("PATCH", "/tenants/{tenant}"): {"name": "pwned"},
    ("PUT", "/tenants/{tenant}"): tenant("acme", "pwned", "stolen") | {"name": "pwned"},
    ("POST", "/tenants/{tenant}/keys"): {"role": "owner", "name": "backdoor"},
    ("PUT", "/tenants/{tenant}/plugins/{plugin}"): {"settings": {"allowed_hosts": ["evil.example"]}},
    ("POST", "/tenants/{tenant}/channels"): {"id": "wa2", "type": "whatsapp",
                                             "settings": {"phone_number_id": "666"}},
    ("PUT", "/tenants/{tenant}/channels/{channel}"): {"type": "whatsapp", "settings": {
        "phone_number_id": "666", "api_base": "http://127.0.0.1:9"}},   # the same address: secrets kept
    ("POST", "/tenants/{tenant}/flows"): flow("evil", "pwned?"),
    ("PUT", "/tenants/{tenant}/flows/{flow}"): flow("quiz", "pwned?"),
    ("POST", "/tenants/{tenant}/flows/{flow}/validate"): None,
    ("POST", "/tenants/{tenant}/flows/validate"): flow("quiz", "pwned?"),
    ("POST", "/tenants/{tenant}/flows/{flow}/publish"): {"note": "pwned"},
    ("POST", "/tenants/{tenant}/flows/{flow}/rollback"): {"version": 1},
    ("POST", "/tenants/{tenant}/flows/{flow}/simulate"): {"script": ["quiz", "a"]},
    ("POST", "/tenants/{tenant}/conversations/{channel}/{contact}/takeover"): {"agent": "mallory"},
    ("POST", "/tenants/{tenant}/conversations/{channel}/{contact}/reply"): {"text": "pwned"},
    ("POST", "/tenants/{tenant}/conversations/{channel}/{contact}/release"): {},
}


class World:
    """Two tenants with data; acme is the victim, bravo the attacker."""

    def __init__(self, gw):
        self.gw, self.store = gw, gw.store

    async def call(self, key, method, path, body=None, headers=None):
        h = {"Authorization": f"Bearer {key}", "If-Match": "*", **(headers or {})}
        kw = {"json": body} if body is not None else {}
        async with self.gw.http.request(method, self.gw.url + "/admin/v1" + path, headers=h, **kw) as r:
            return r.status, r.content_type, (await r.read()).decode()

    async def state(self, slug):
        """Everything observable about a tenant in the store."""
        snap = await self.store.tenant_snapshot(slug)
        keys = await self.store.list_keys(slug)
        flows = await self.store.list_flows(slug, include_archived=True)
        versions = {f.id: await self.store.list_versions(slug, f.id) for f in flows}
        live = sorted(k.decode() for k in await self.gw.redis.keys(f"cst:{{{slug}}}:*"))
        return json.dumps([snap, [k.id for k in keys], flows, versions, live], default=repr, sort_keys=True)


@pytest.fixture
async def world(gateway):
    gw = await gateway()
    store = gw.store
    w = World(gw)
    for slug, mark, secret in (("acme", MARK, SECRET), ("bravo", "BRAVO", "bravo-secret")):
        await gw.apply(tenant(slug, mark, secret))
    # acme gets a second version, so diffs between real versions exist
    f = await store.get_flow("acme", "quiz")
    await store.save_draft("acme", "quiz", flow("quiz", f"{MARK} question, v2?"), f.etag)
    await store.publish("acme", "quiz")
    # a conversation of acme's, so that reading it is a real read (and a marked one)
    await gw.pipeline.state.record("acme", [Event(type="message.in", tenant="acme", channel="wa",
                                                  contact="+33600000001", ts=time.time(),
                                                  data={"text": f"{MARK} hello"})])
    await gw.flush_events()
    w.acme_owner = await store.create_key("acme", "owner")
    w.acme_viewer = await store.create_key("acme", "viewer")
    w.bravo_owner = await store.create_key("bravo", "owner")
    w.params = {"tenant": "acme", "flow": "quiz", "channel": "wa", "plugin": "http",
                "key": w.acme_owner.split("_", 2)[1], "version": "1", "a": "1", "b": "2",
                "contact": "%2B33600000001"}
    yield w


def fill(path: str, params: dict) -> str:
    return re.sub(r"{(\w+)}", lambda m: params[m.group(1)], path)


def test_every_route_with_a_body_has_a_sample():
    for r in ROUTES:
        if r.body is not None:
            assert (r.method, r.path) in SAMPLE_BODIES, f"add a sample body for {r.method} {r.path}"


async def test_a_foreign_tenant_key_can_neither_read_nor_change_another_tenant(world):
    before = await world.state("acme")
    walked = set()
    for r in ROUTES:
        path = fill(r.path, world.params)
        status, ctype, text = await world.call(world.bravo_owner, r.method, path, SAMPLE_BODIES.get((r.method, r.path)))
        walked.add((r.method, r.path))
        where = f"{r.method} {path} -> {status} {text[:200]}"
        assert MARK not in text and SECRET not in text, where
        if "{tenant}" in r.path:
            assert status == 404 and ctype == "application/problem+json", where
        elif r.access == "agency":
            assert status == 403, where
        else:
            assert status == 200, where
    assert walked == {(r.method, r.path) for r in ROUTES}
    assert await world.state("acme") == before
    assert await world.store.list_tenant_slugs() == ["acme", "bravo"]
    # and a made-up tenant looks exactly like a real foreign one
    s, _, text = await world.call(world.bravo_owner, "GET", "/tenants/acme/flows")
    s2, _, text2 = await world.call(world.bravo_owner, "GET", "/tenants/nosuch/flows")
    assert (s, json.loads(text)["detail"]) == (s2, json.loads(text2)["detail"])


async def test_a_viewer_cannot_change_its_own_tenant(world):
    before = await world.state("acme")
    writes = [r for r in ROUTES if r.writes and "{tenant}" in r.path]
    assert len(writes) >= 15
    for r in writes:
        path = fill(r.path, world.params)
        status, ctype, text = await world.call(world.acme_viewer, r.method, path, SAMPLE_BODIES.get((r.method, r.path)))
        assert status == 403 and ctype == "application/problem+json", f"{r.method} {path} -> {status} {text[:200]}"
    assert await world.state("acme") == before
    s, _, text = await world.call(world.acme_viewer, "POST", "/tenants/acme/flows/quiz/simulate",
                                  {"script": ["quiz"], "live_steps": True})
    assert s == 403


async def test_the_walk_reaches_real_resources_with_the_right_key(world):
    """The foreign-key walk proves something only if the same requests work for the owner."""
    order = sorted(ROUTES, key=lambda r: (r.method == "DELETE", r.path.endswith("{key}")))
    for r in order:
        path = fill(r.path, world.params)
        status, _, text = await world.call(world.acme_owner, r.method, path, SAMPLE_BODIES.get((r.method, r.path)))
        where = f"{r.method} {path} -> {status} {text[:300]}"
        assert status < 500, where
        if r.access == "agency":
            assert status == 403, where
        elif r.method == "POST" and r.path in ("/tenants/{tenant}/flows", "/tenants/{tenant}/channels"):
            assert status in (201, 409), where
        else:
            assert status in (200, 201, 204), where
