"""Apple settings that can never work are refused by the admin API (422, code `invalid` at
`$.settings`, nothing written); a receive-only account (no business_id) is accepted, and its
sends, like any send whose JWT cannot be signed, fail with code `config` without a request."""
from __future__ import annotations

import base64
import json
import time

import msgspec
import pytest
from causette_apple import jwt
from causette_apple.channel import AppleChannel, Settings

from gateway.types import Reply

MSP = "3f9a2c1e-6b7d-4e8f-9a0b-1c2d3e4f5a6b"
KEY = b"settings-msp-secret-0123456789ab"
SECRET = base64.b64encode(KEY).decode()
BIZ = "a884eddf-1234-4abc-9def-1234567890ab"
USER = "urn:mbid:AQAAsettings-user"
NOT_BASE64 = "Ma clé secrète, pas du Base64 !"
BAD_SECRET = ('secret is not Base64 (the Messaging API secret as Apple gives it); '
              'secret_encoding "raw" uses the string\'s bytes instead')
PROBLEM = "application/problem+json"


def invalid(message: str, path: str = "$.settings") -> list[dict]:
    return [{"path": path, "code": "invalid", "message": message, "severity": "error"}]


def apple(settings: dict, id_: str = "apple-main") -> dict:
    return {"id": id_, "type": "apple", "settings": settings}


REFUSED = [
    ("secret not Base64", {"msp_id": MSP, "secret": NOT_BASE64, "business_id": BIZ}, BAD_SECRET),
    ("secret URL-safe Base64", {"msp_id": MSP, "secret": "ab-_cd", "business_id": BIZ}, BAD_SECRET),
    ("secret only padding", {"msp_id": MSP, "secret": "====", "business_id": BIZ}, BAD_SECRET),
    ("msp_id empty and secret not Base64", {"msp_id": " ", "secret": NOT_BASE64},
     "msp_id is empty; " + BAD_SECRET),
]


@pytest.mark.parametrize("label,settings,message", REFUSED, ids=[c[0] for c in REFUSED])
async def test_settings_that_never_work_are_refused_and_nothing_is_written(
        gateway, demo_tenant, label, settings, message):
    gw = await gateway(tenants=[demo_tenant])
    _, _, plugins_before = await gw.admin("GET", "/tenants/demo/plugins")
    status, ctype, body = await gw.admin("POST", "/tenants/demo/channels", apple(settings))
    assert (status, ctype, body["code"]) == (422, PROBLEM, "validation")
    assert body["errors"] == invalid(message)
    assert NOT_BASE64 not in json.dumps(body)            # a secret is never echoed
    assert (await gw.admin("GET", "/tenants/demo/channels/apple-main"))[0] == 404
    assert (await gw.admin("GET", "/tenants/demo/plugins"))[2] == plugins_before


async def test_an_empty_secret_is_a_missing_one(gateway, demo_tenant):
    # "" clears a secret in the admin API; the Struct refuses it too (`secret is empty`)
    gw = await gateway(tenants=[demo_tenant])
    status, _, body = await gw.admin("POST", "/tenants/demo/channels",
                                 apple({"msp_id": MSP, "secret": "", "business_id": BIZ}))
    assert status == 422 and body["errors"] == [{
        "path": "$.settings.secret", "code": "required",
        "message": "Object missing required field `secret`", "severity": "error"}]
    with pytest.raises(msgspec.ValidationError, match="secret is empty"):
        msgspec.convert({"msp_id": MSP, "secret": ""}, Settings)


async def test_raw_secret_encoding_takes_any_string(gateway, demo_tenant):
    gw = await gateway(tenants=[demo_tenant])
    status, _, body = await gw.admin("POST", "/tenants/demo/channels", apple(
        {"msp_id": MSP, "secret": NOT_BASE64, "business_id": BIZ, "secret_encoding": "raw"}))
    assert status == 201, body


async def test_an_update_is_checked_with_the_stored_secret(gateway, demo_tenant):
    """Switching a raw secret to base64 while keeping it (the mask) is refused: the stored
    secret is checked, and the channel stays as it was."""
    gw = await gateway(tenants=[demo_tenant])
    status, _, created = await gw.admin("POST", "/tenants/demo/channels", apple(
        {"msp_id": MSP, "secret": NOT_BASE64, "business_id": BIZ, "secret_encoding": "raw"}))
    assert status == 201
    status, _, body = await gw.admin("PUT", "/tenants/demo/channels/apple-main", {
        "type": "apple", "settings": {"msp_id": MSP, "secret": "***set***", "business_id": BIZ,
                                      "secret_encoding": "base64"}})
    assert status == 422 and body["errors"] == invalid(BAD_SECRET)
    _, _, now = await gw.admin("GET", "/tenants/demo/channels/apple-main")
    assert now["settings"] == created["settings"] and now["updated_at"] == created["updated_at"]


async def test_a_tenant_file_names_the_channel(gateway, demo_tenant):
    gw = await gateway(tenants=[demo_tenant])
    n = len(demo_tenant["channels"])
    demo_tenant["plugins"]["apple"] = {}
    demo_tenant["channels"].append(apple({"msp_id": MSP, "secret": NOT_BASE64, "business_id": BIZ}))
    status, _, body = await gw.admin("PUT", "/tenants/demo", demo_tenant)
    assert status == 422
    assert [e for e in body["errors"] if e["severity"] == "error"] == invalid(
        BAD_SECRET, f"$.channels[{n}].settings")
    assert await gw.store.get_channel("demo", "apple-main") is None


# --- receive-only: no business_id ------------------------------------------------------------
def signed(mid: str, text: str) -> tuple[bytes, dict[str, str]]:
    body = {"id": mid, "type": "text", "v": 1, "sourceId": USER, "destinationId": BIZ, "body": text}
    return json.dumps(body).encode(), {
        "Content-Type": "application/json", "capability-list": "QUICK,LIST",
        "Authorization": "Bearer " + jwt.encode({"aud": MSP, "iat": int(time.time())}, KEY)}


async def test_without_business_id_the_channel_receives_and_its_sends_fail_as_config(
        gateway, provider, demo_tenant):
    gw = await gateway(tenants=[demo_tenant])
    status, _, created = await gw.admin("POST", "/tenants/demo/channels", apple(
        {"msp_id": MSP, "secret": SECRET, "api_base": provider.url}))
    assert status == 201 and "business_id" not in created["settings"]
    body, headers = signed("r-1", "Bonjour")
    async with gw.http.post(f"{gw.url}/t/demo/channels/apple-main", data=body, headers=headers) as r:
        assert r.status == 200, await r.text()
    await gw.flush_events()
    events = await gw.store.list_events("demo")
    assert any(e.type == "message.in" for e in events)
    failed = [e for e in events if e.type == "send.failed"]
    assert failed and {e.data["code"] for e in failed} == {"config"}
    assert provider.requests == []                       # nothing went to Apple


# --- send never raises on signing ------------------------------------------------------------
def channel(provider, http, **kw) -> AppleChannel:
    s = dict(msp_id=MSP, secret=SECRET, business_id=BIZ, api_base=provider.url)
    s.update(kw)
    return AppleChannel("demo", "apple-main", Settings(**s), http=http)


async def test_send_without_business_id_fails_without_a_request(provider, http):
    ch = channel(provider, http, business_id="")
    res = await ch.send(USER, ch.render(Reply(text="x"))[0], key="k")
    assert (res.status, res.code) == ("failed", "config")
    assert "business_id" in res.detail
    assert provider.requests == []


async def test_send_with_a_secret_that_cannot_key_the_jwt_fails_without_a_request(provider, http):
    # settings stored before the check, or changed after it: the Struct no longer vouches
    s = Settings(msp_id=MSP, secret=SECRET, business_id=BIZ, api_base=provider.url)
    s.secret = NOT_BASE64
    ch = AppleChannel("demo", "apple-main", s, http=http)
    res = await ch.send(USER, ch.render(Reply(text="x"))[0], key="k")
    assert (res.status, res.code, res.detail) == ("failed", "config",
                                                  "cannot sign the JWT: the secret is not Base64")
    assert NOT_BASE64 not in res.detail
    assert provider.requests == []


async def test_send_fails_whatever_breaks_the_signing(provider, http, monkeypatch):
    def broken(claims, key):
        raise RuntimeError(f"key {key!r} rejected")      # its words are not repeated
    monkeypatch.setattr(jwt, "encode", broken)
    ch = channel(provider, http)
    res = await ch.send(USER, ch.render(Reply(text="x"))[0], key="k")
    assert (res.status, res.code, res.detail) == ("failed", "config", "cannot sign the JWT: RuntimeError")
    assert provider.requests == []


async def test_valid_settings_still_send(provider, http):
    ch = channel(provider, http)
    res = await ch.send(USER, ch.render(Reply(text="x"))[0], key="k")
    assert res.status == "sent"
    [req] = provider.requests
    assert jwt.decode(req["headers"]["Authorization"][7:], KEY, issuer=MSP, max_age=60)
