"""WeChat settings that can never work are refused by the admin API (422, code `invalid` at
`$.settings`, nothing written): compatible or safe mode without the AppID or the
EncodingAESKey, and an EncodingAESKey that is not 43 characters of Base64. Before, they were
accepted and every encrypted message got a misleading 403 "invalid signature"."""
from __future__ import annotations

import base64
import json
import time

import pytest
from causette_wechat.crypto import MessageCrypto, signature

TOKEN = "settings-token"
APPID = "wx5f1c8e2a9b0d3c4e"
AESKEY = base64.b64encode(bytes(range(50, 82))).decode().rstrip("=")   # 43 chars
OA = "gh_settings"
USER = "oSettingsUser_0123456789abcd"
PROBLEM = "application/problem+json"

NEEDS_KEY = ('mode "{}" needs encoding_aes_key (the 43-character EncodingAESKey) to decrypt '
             "what WeChat posts")
NEEDS_APPID = ('mode "{}" needs app_id: every decrypted message ends with the AppID, and one that '
               "is not ours is refused")
NOT_BASE64 = ("encoding_aes_key is not Base64: the 43-character EncodingAESKey holds only A-Z, a-z, "
              "0-9, + and /")


def length(n: int) -> str:
    return f"encoding_aes_key must be the 43-character EncodingAESKey, not {n} characters"


def invalid(message: str, path: str = "$.settings") -> list[dict]:
    return [{"path": path, "code": "invalid", "message": message, "severity": "error"}]


def wechat(**settings) -> dict:
    return {"id": "wx", "type": "wechat", "settings": dict({"token": TOKEN}, **settings)}


BAD_KEY = AESKEY[:20] + "-_" + AESKEY[22:]         # 43 characters, URL-safe Base64
REFUSED = [
    ("safe without app_id", dict(mode="safe", encoding_aes_key=AESKEY), NEEDS_APPID.format("safe")),
    ("compat without app_id", dict(mode="compat", encoding_aes_key=AESKEY),
     NEEDS_APPID.format("compat")),
    ("safe without encoding_aes_key", dict(mode="safe", app_id=APPID), NEEDS_KEY.format("safe")),
    ("compat without either", dict(mode="compat"),
     NEEDS_KEY.format("compat") + "; " + NEEDS_APPID.format("compat")),
    ("key of 42 characters", dict(mode="safe", app_id=APPID, encoding_aes_key=AESKEY[:42]), length(42)),
    ("key of 44 characters (padded)", dict(mode="safe", app_id=APPID, encoding_aes_key=AESKEY + "="),
     length(44)),
    ("key not Base64", dict(mode="safe", app_id=APPID, encoding_aes_key=BAD_KEY), NOT_BASE64),
    ("bad key and no app_id", dict(mode="safe", encoding_aes_key=AESKEY[:42]),
     length(42) + "; " + NEEDS_APPID.format("safe")),
]


@pytest.mark.parametrize("label,settings,message", REFUSED, ids=[c[0] for c in REFUSED])
async def test_settings_that_never_work_are_refused_and_nothing_is_written(
        gateway, demo_tenant, label, settings, message):
    gw = await gateway(tenants=[demo_tenant])
    _, _, plugins_before = await gw.admin("GET", "/tenants/demo/plugins")
    status, ctype, body = await gw.admin("POST", "/tenants/demo/channels", wechat(**settings))
    assert (status, ctype, body["code"]) == (422, PROBLEM, "validation")
    assert body["errors"] == invalid(message)
    for secret in (AESKEY[:42], BAD_KEY):                # a secret is never echoed
        assert secret not in json.dumps(body)
    assert (await gw.admin("GET", "/tenants/demo/channels/wx"))[0] == 404
    assert (await gw.admin("GET", "/tenants/demo/plugins"))[2] == plugins_before


ACCEPTED = [
    ("plain, no key", dict()),
    ("plain with a key and no app_id (posts stay plain)", dict(encoding_aes_key=AESKEY)),
    # plain mode never reads the key: a bad one there did work, and still does
    ("plain with a key that is not Base64", dict(encoding_aes_key=BAD_KEY)),
    ("compat", dict(mode="compat", app_id=APPID, encoding_aes_key=AESKEY)),
    ("safe", dict(mode="safe", app_id=APPID, encoding_aes_key=AESKEY)),
    ("safe with the reference's WeCom key",
     dict(mode="safe", app_id="wx49f0ab532d5d035a",
          encoding_aes_key="kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR")),
]


@pytest.mark.parametrize("label,settings", ACCEPTED, ids=[c[0] for c in ACCEPTED])
async def test_valid_settings_are_written(gateway, demo_tenant, label, settings):
    gw = await gateway(tenants=[demo_tenant])
    status, _, body = await gw.admin("POST", "/tenants/demo/channels", wechat(**settings))
    assert status == 201, body


async def test_switching_to_safe_mode_is_checked_with_the_stored_key(gateway, demo_tenant):
    """A plain channel whose stored key is kept (the mask) may move to safe mode only with
    its AppID; the refused change leaves the channel as it was."""
    gw = await gateway(tenants=[demo_tenant])
    status, _, created = await gw.admin("POST", "/tenants/demo/channels",
                                    wechat(encoding_aes_key=AESKEY))
    assert status == 201
    status, _, body = await gw.admin("PUT", "/tenants/demo/channels/wx", {
        "type": "wechat", "settings": {"token": "***set***", "encoding_aes_key": "***set***",
                                       "mode": "safe"}})
    assert status == 422 and body["errors"] == invalid(NEEDS_APPID.format("safe"))
    _, _, now = await gw.admin("GET", "/tenants/demo/channels/wx")
    assert now["settings"] == created["settings"] and now["updated_at"] == created["updated_at"]
    status, _, body = await gw.admin("PUT", "/tenants/demo/channels/wx", {
        "type": "wechat", "settings": {"token": "***set***", "encoding_aes_key": "***set***",
                                       "mode": "safe", "app_id": APPID}})
    assert status == 200, body


async def test_a_tenant_file_names_the_channel(gateway, demo_tenant):
    gw = await gateway(tenants=[demo_tenant])
    n = len(demo_tenant["channels"])
    demo_tenant["plugins"]["wechat"] = {}
    demo_tenant["channels"].append(wechat(mode="safe", encoding_aes_key=AESKEY))
    status, _, body = await gw.admin("PUT", "/tenants/demo", demo_tenant)
    assert status == 422
    assert [e for e in body["errors"] if e["severity"] == "error"] == invalid(
        NEEDS_APPID.format("safe"), f"$.channels[{n}].settings")
    assert await gw.store.get_channel("demo", "wx") is None


async def test_a_safe_channel_created_through_the_api_takes_encrypted_messages(gateway, demo_tenant):
    """What the refused settings never managed: an encrypted post, verified and answered."""
    gw = await gateway(tenants=[demo_tenant])
    status, _, body = await gw.admin("POST", "/tenants/demo/channels",
                                 wechat(mode="safe", app_id=APPID, encoding_aes_key=AESKEY))
    assert status == 201, body
    crypto = MessageCrypto(TOKEN, AESKEY, APPID)
    inner = (f"<xml><ToUserName><![CDATA[{OA}]]></ToUserName><FromUserName><![CDATA[{USER}]]>"
             f"</FromUserName><CreateTime>1795683600</CreateTime><MsgType><![CDATA[text]]>"
             f"</MsgType><Content><![CDATA[Bonjour]]></Content><MsgId>7001</MsgId></xml>").encode()
    enc = crypto.encrypt(inner)
    ts, nonce = str(int(time.time())), "161803"
    q = {"signature": signature(TOKEN, ts, nonce), "timestamp": ts, "nonce": nonce,
         "openid": USER, "encrypt_type": "aes", "msg_signature": signature(TOKEN, ts, nonce, enc)}
    outer = f"<xml><ToUserName><![CDATA[{OA}]]></ToUserName><Encrypt><![CDATA[{enc}]]></Encrypt></xml>"
    async with gw.http.post(f"{gw.url}/t/demo/channels/wx", params=q, data=outer.encode(),
                            headers={"Content-Type": "text/xml"}) as r:
        assert r.status == 200, await r.text()
    await gw.flush_events()
    assert any(e.type == "message.in" for e in await gw.store.list_events("demo"))
