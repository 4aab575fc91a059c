"""Write-only secrets stay where they were meant to go: an update that moves an address the
secrets are sent to (a channel's `api_base`, a webhook's callback, the hosts the http step
may call) must give them again, else anyone allowed to edit settings could point the address
at themselves and read the secrets off the wire. And the http step's headers are secrets."""
import copy

import pytest

from gateway.apply import apply_tenant
from gateway.problems import ProblemError
from tests.test_admin_api import PROBLEM, admin, demo, host  # noqa: F401  (fixtures)
from tests.test_store_apply import cfg

TOKEN = "EAAG-endpoint-secret-5"
WA = {"type": "whatsapp", "settings": {"phone_number_id": "106", "access_token": TOKEN, "app_secret": "s1"}}


async def _stored(admin, slug, cid):
    return await admin.store.channel_settings(slug, cid)


async def test_moving_api_base_needs_the_secrets_again(admin):
    await admin.call("POST", "/tenants", json={"slug": "acme", "name": "Acme"})
    assert (await admin.call("PUT", "/tenants/acme/channels/wa", json=WA))[0] == 201
    owner = await admin.store.create_key("acme", "owner")
    moved = {"type": "whatsapp", "settings": {"phone_number_id": "106", "api_base": "http://127.0.0.1:18991"}}
    s, ct, p, _ = await admin.call("PUT", "/tenants/acme/channels/wa", owner, json=moved)
    assert (s, ct) == (422, PROBLEM)
    assert [(e["path"], e["code"]) for e in p["errors"]] == [("$.settings.api_base", "secrets.endpoint_changed")]
    assert "access_token, app_secret" in p["errors"][0]["message"]
    assert (await _stored(admin, "acme", "wa")).get("api_base") is None          # nothing written
    # "***set***" keeps them too, so it is refused the same way
    masked = copy.deepcopy(moved)
    masked["settings"].update(access_token="***set***", app_secret="***set***")
    assert (await admin.call("PUT", "/tenants/acme/channels/wa", owner, json=masked))[0] == 422
    # Given again (or cleared), the move is the owner's to make.
    again = copy.deepcopy(moved)
    again["settings"].update(access_token="EAAG-new", app_secret="s2")
    assert (await admin.call("PUT", "/tenants/acme/channels/wa", owner, json=again))[0] == 200
    assert (await _stored(admin, "acme", "wa"))["access_token"] == "EAAG-new"
    cleared = {"type": "whatsapp", "settings": {"phone_number_id": "106", "api_base": "http://127.0.0.1:1",
                                                "access_token": "", "app_secret": ""}}
    assert (await admin.call("PUT", "/tenants/acme/channels/wa", owner, json=cleared))[0] == 200
    # Other settings change freely with the secrets left out; the default written out is no move.
    await admin.call("PUT", "/tenants/acme/channels/wa", json=WA)
    same = {"type": "whatsapp", "settings": {"phone_number_id": "107", "api_base": "https://graph.facebook.com"}}
    assert (await admin.call("PUT", "/tenants/acme/channels/wa", owner, json=same))[0] == 200
    assert (await _stored(admin, "acme", "wa"))["access_token"] == TOKEN


async def test_a_tenant_file_that_moves_an_address_must_carry_the_secrets(admin, host):
    d = demo()
    d["plugins"]["whatsapp"] = {}
    d["channels"].append({"id": "wa", **WA})
    await apply_tenant(admin.store, host, cfg(d))
    d["channels"][1]["settings"] = {"phone_number_id": "106", "api_base": "http://127.0.0.1:18991"}
    with pytest.raises(ProblemError) as exc:
        await apply_tenant(admin.store, host, cfg(d))
    assert [(e.path, e.code) for e in exc.value.errors] == \
        [("$.channels[1].settings.api_base", "secrets.endpoint_changed")]


async def test_the_http_steps_headers_are_write_only_and_bound_to_its_hosts(admin):
    await admin.call("PUT", "/tenants/demo", json=demo())
    viewer = await admin.store.create_key("demo", "viewer")
    settings = {"allowed_hosts": ["crm.example"], "headers": {"Authorization": "Bearer CRM-TOKEN"}}
    assert (await admin.call("PUT", "/tenants/demo/plugins/http", json={"settings": settings}))[0] == 200
    for path in ("/tenants/demo/plugins/http", "/tenants/demo/plugins"):
        s, _, body, _ = await admin.call("GET", path, viewer)
        assert s == 200 and "CRM-TOKEN" not in str(body)
    assert (await admin.call("GET", "/tenants/demo/plugins/http", viewer))[2]["settings"]["headers"] == "***set***"
    # a timeout change keeps them; a new host without them is refused
    s, _, _, _ = await admin.call("PUT", "/tenants/demo/plugins/http",
                                  json={"settings": {"allowed_hosts": ["crm.example"], "timeout": 2}})
    assert s == 200 and (await admin.store.plugin_settings("demo", "http"))["headers"] == settings["headers"]
    s, _, p, _ = await admin.call("PUT", "/tenants/demo/plugins/http",
                                  json={"settings": {"allowed_hosts": ["evil.example"]}})
    assert s == 422 and p["errors"][0]["path"] == "$.settings.allowed_hosts"


async def test_headers_stored_in_clear_before_they_were_secret_are_masked(admin):
    await admin.call("PUT", "/tenants/demo", json=demo())
    # a row written by an earlier version, headers among the plain settings
    await admin.store.set_plugin("demo", "http", {"allowed_hosts": ["crm.example"],
                                                  "headers": {"X-Key": "OLD-CLEAR"}}, {})
    s, _, body, _ = await admin.call("GET", "/tenants/demo/plugins/http")
    assert s == 200 and body["settings"]["headers"] == "***set***" and "OLD-CLEAR" not in str(body)
