"""Settings a plugin's or channel's `Settings` Struct refuses: every problem at once, each an
RFC 9457 entry with its JSON path, over the real admin API and `causette tenants apply`;
nothing is written. Valid settings decode as before."""
import asyncio
import json
import os
import sys
from pathlib import Path

import msgspec
from causette_http.step import Settings as HttpSettings

from gateway.store import Store
from gateway.types import Problem

ROOT = Path(__file__).resolve().parents[1]
PROBLEM = "application/problem+json"


def error(path: str, code: str, message: str) -> dict:
    return {"path": path, "code": code, "message": message, "severity": "error"}


# --- PUT /tenants/{t}/plugins/{p} ------------------------------------------------------------
async def test_plugin_settings_with_three_problems_get_three_entries_and_nothing_is_written(
        gateway, demo_tenant):
    gw = await gateway(tenants=[demo_tenant])
    _, _, before = await gw.admin("GET", "/tenants/demo/plugins/http")
    status, ctype, body = await gw.admin("PUT", "/tenants/demo/plugins/http", {"settings": {
        "allowed_hosts": ["api.shop.example"], "timeout": "soon", "max_bytes": 0, "proxy": "x"}})
    assert (status, ctype, body["code"], body["title"]) == (422, PROBLEM, "validation", "Invalid request")
    assert body["type"] == "urn:causette:problem:validation"
    assert body["instance"] == "/admin/v1/tenants/demo/plugins/http"
    assert body["detail"].startswith("3 error(s) found")
    assert body["errors"] == [
        error("$.settings.timeout", "type", "Expected `float`, got `str`"),
        error("$.settings.max_bytes", "constraint", "Expected `int` >= 1"),
        error("$.settings.proxy", "unknown_field", "Object contains unknown field `proxy`"),
    ]
    _, _, after = await gw.admin("GET", "/tenants/demo/plugins/http")
    assert after == before and after["settings"]["timeout"] == 5
    assert (await gw.registry.get("demo")).settings["http"].allowed_hosts == ["127.0.0.1:8080", "localhost:8080"]


async def test_valid_plugin_settings_are_written_and_decode_as_before(gateway, demo_tenant):
    gw = await gateway(tenants=[demo_tenant])
    sent = {"allowed_hosts": ["api.shop.example"], "timeout": 2.5, "max_bytes": 4096}
    status, _, body = await gw.admin("PUT", "/tenants/demo/plugins/http", {"settings": sent})
    assert status == 200 and body["enabled"] and body["settings"] == sent
    rt = await gw.registry.get("demo")
    assert rt.settings["http"] == msgspec.convert(sent, HttpSettings, str_keys=True)
    assert rt.settings["http"].headers == {}


async def test_a_nested_struct_gives_its_first_problem_only(gateway, demo_tenant):
    gw = await gateway(tenants=[demo_tenant])
    product = {"sku": "X-1", "name": "Gant", "category": "women", "price": -1, "colour": "red"}
    status, _, body = await gw.admin("PUT", "/tenants/demo/plugins/catalogue", {"settings": {
        "products": [product], "currency": "YEN", "shipping": 5}})
    assert status == 422
    assert body["errors"] == [        # products[0].colour, its second problem, is not listed
        error("$.settings.products[0].price", "constraint", "Expected `float` >= 0.0"),
        error("$.settings.currency", "enum", "Invalid enum value 'YEN'"),
        error("$.settings.shipping", "unknown_field", "Object contains unknown field `shipping`"),
    ]


class BoundsSettings(msgspec.Struct, forbid_unknown_fields=True):
    low: int
    high: int = 10

    def __post_init__(self) -> None:
        if self.low > self.high:
            raise ValueError("low must not exceed high")


class Bounds:
    """An in-process plugin whose Settings check themselves in `__post_init__`."""
    Settings = BoundsSettings


async def test_a_post_init_refusal_is_reported_after_the_fields_are_right(gateway, demo_tenant):
    gw = await gateway(tenants=[demo_tenant], plugins=[("bounds", Bounds())])
    status, _, body = await gw.admin("PUT", "/tenants/demo/plugins/bounds",
                                 {"settings": {"high": "ten", "wide": True}})
    assert status == 422 and body["errors"] == [
        error("$.settings.high", "type", "Expected `int`, got `str`"),
        error("$.settings.wide", "unknown_field", "Object contains unknown field `wide`"),
        error("$.settings.low", "required", "Object missing required field `low`"),
    ]
    status, _, body = await gw.admin("PUT", "/tenants/demo/plugins/bounds", {"settings": {"low": 11}})
    assert status == 422 and body["errors"] == [error("$.settings", "invalid", "low must not exceed high")]
    _, _, got = await gw.admin("GET", "/tenants/demo/plugins/bounds")
    assert got["enabled"] is False
    status, _, body = await gw.admin("PUT", "/tenants/demo/plugins/bounds", {"settings": {"low": 3}})
    assert status == 201 and body["settings"] == {"low": 3}


# --- channel instances -----------------------------------------------------------------------
async def test_channel_create_and_update_list_every_settings_problem_and_write_nothing(
        gateway, demo_tenant):
    gw = await gateway(tenants=[demo_tenant])
    _, _, plugins_before = await gw.admin("GET", "/tenants/demo/plugins")
    status, ctype, body = await gw.admin("POST", "/tenants/demo/channels", {
        "id": "wx", "type": "wechat", "settings": {"mode": "loud", "reply_deadline": 9}})
    assert (status, ctype) == (422, PROBLEM)
    assert body["errors"] == [
        error("$.settings.mode", "enum", "Invalid enum value 'loud'"),
        error("$.settings.reply_deadline", "constraint", "Expected `float` <= 4.5"),
        error("$.settings.token", "required", "Object missing required field `token`"),
    ]
    assert (await gw.admin("GET", "/tenants/demo/channels/wx"))[0] == 404
    assert (await gw.admin("GET", "/tenants/demo/plugins"))[2] == plugins_before   # wechat not enabled

    status, _, created = await gw.admin("POST", "/tenants/demo/channels", {
        "id": "wx", "type": "wechat", "settings": {
            "token": "tok-1", "mode": "compat", "max_age": 60, "app_id": "wx1",
            "encoding_aes_key": "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR"}})
    assert status == 201 and created["settings"] == {"token": "***set***", "mode": "compat", "max_age": 60,
                                                     "app_id": "wx1", "encoding_aes_key": "***set***"}

    status, _, body = await gw.admin("PUT", "/tenants/demo/channels/wx", {
        "type": "wechat", "settings": {"token": 5, "max_age": "long", "colour": "green"}})
    assert status == 422
    assert sorted(body["errors"], key=lambda e: e["path"]) == [     # secrets are checked last
        error("$.settings.colour", "unknown_field", "Object contains unknown field `colour`"),
        error("$.settings.max_age", "type", "Expected `int`, got `str`"),
        error("$.settings.token", "type", "Expected `str`, got `int`"),
    ]
    _, _, now = await gw.admin("GET", "/tenants/demo/channels/wx")
    assert now["settings"] == created["settings"] and now["updated_at"] == created["updated_at"]


# --- PUT /tenants/{t} and `causette tenants apply` -------------------------------------------
def broken(demo: dict) -> dict:
    demo["plugins"]["http"].update(timeout="soon", max_bytes=0, proxy="x")
    demo["channels"].append({"id": "wx", "type": "wechat", "settings": {"mode": "loud", "reply_deadline": 9}})
    return demo


TENANT_ERRORS = [
    ("$.plugins.http.timeout", "type"),
    ("$.plugins.http.max_bytes", "constraint"),
    ("$.plugins.http.proxy", "unknown_field"),
    ("$.channels[1].settings.mode", "enum"),
    ("$.channels[1].settings.reply_deadline", "constraint"),
    ("$.channels[1].settings.token", "required"),
]


async def test_tenant_put_lists_every_settings_problem_of_every_plugin_and_channel(gateway, demo_tenant):
    gw = await gateway(tenants=[demo_tenant])
    before = await gw.store.plugin_settings("demo", "http")
    status, ctype, body = await gw.admin("PUT", "/tenants/demo", broken(demo_tenant))
    assert (status, ctype, body["title"]) == (422, PROBLEM, "Invalid tenant 'demo'")
    assert [(e["path"], e["code"]) for e in body["errors"] if e["severity"] == "error"] == TENANT_ERRORS
    assert await gw.store.plugin_settings("demo", "http") == before
    assert await gw.store.get_channel("demo", "wx") is None


async def test_tenants_apply_lists_every_settings_problem_with_the_files_name(tmp_path, redis_url, demo_tenant):
    f = tmp_path / "demo.json"
    f.write_text(json.dumps(broken(demo_tenant)))
    env = dict(os.environ, CAUSETTE_DATA=str(tmp_path / "var"), REDIS_URL=redis_url)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", "tenants", "apply", str(f), cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 2, err
    lines = err.decode().splitlines()
    for path, code in TENANT_ERRORS:
        assert any(f"demo.json:{path}  [{code}]" in line for line in lines), (path, lines)
    db = tmp_path / "var" / "causette.db"
    assert db.exists()                       # the store was opened: nothing was written to it
    store = await Store.open(str(db), b"unused")
    try:
        assert await store.list_tenant_slugs() == []
    finally:
        await store.close()


class Tagged(msgspec.Struct, tag=True, forbid_unknown_fields=True):
    low: int
    high: int = 10


def test_what_field_by_field_cannot_explain_is_msgspecs_first_error():
    from gateway.validation import settings_problems
    assert settings_problems({"type": "Tagged", "low": "one", "high": "ten"}, Tagged, "$.settings") == [
        msgspec.convert(error("$.settings.low", "type", "Expected `int`, got `str`"), Problem)]
    assert settings_problems({"low": 1}, Tagged, "$.settings") == []
