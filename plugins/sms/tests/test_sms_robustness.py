"""SMS inbound with a valid signature but odd circumstances or content.

Vonage: the webhook carrying the last part of a long SMS used to delete the waiting parts
before the turn ran; when the turn failed (busy conversation: 503, Vonage retries), the
retry found no siblings and the whole message was lost. A signed `timestamp` of "nan" passed
the freshness check. Twilio: odd forms (duplicate fields, missing From, bad NumMedia)."""
from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import urlencode

import pytest
from causette_sms import twilio, vonage
from causette_sms.vonage import VonageChannel, VonageSettings

from gateway.conformance import make_webhook
from gateway.state import Busy

PHONE = "+33611223344"
VONAGE_SIG = "robust-vonage-signature-secret"
TWILIO_TOKEN = "robust-twilio-auth-token"
URL = "https://gw.example/t/demo/channels/sms"


def vonage_params(text: str, mid: str, **extra: str) -> dict[str, str]:
    p = {"msisdn": PHONE.lstrip("+"), "to": "33700000000", "messageId": mid, "text": text, "type": "unicode",
         "api-key": "robust01", "message-timestamp": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
         "timestamp": str(int(time.time())), "nonce": f"n-{mid}", **extra}
    data = "".join(f"&{k}={p[k].replace('&', '_').replace('=', '_')}" for k in sorted(p))
    p["sig"] = hmac.new(VONAGE_SIG.encode(), data.encode(), hashlib.sha256).hexdigest()
    return p


def vonage_channel() -> VonageChannel:
    return VonageChannel("demo", "vonage", VonageSettings(api_key="robust01", api_secret="x",
                                                           signature_secret=VONAGE_SIG,
                                                           from_number="+33700000000"))


@pytest.mark.parametrize("ts", ["nan", "NaN", "inf", "-inf"])
def test_vonage_non_finite_timestamp_is_not_fresh(ts):
    p = vonage_params("hi", "0N01", timestamp=ts)
    h = make_webhook(url=URL, body=urlencode(p).encode(),
                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert vonage_channel().verify(h) is False
    ok = vonage_params("hi", "0N02")
    h = make_webhook(url=URL, body=urlencode(ok).encode(),
                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert vonage_channel().verify(h) is True


async def test_vonage_long_sms_survives_a_failed_turn_on_its_last_part(gateway, demo_tenant, provider):
    provider.default = lambda seen: (200, {"message-count": "1", "messages": [
        {"to": "33611223344", "message-id": f"0R{len(provider.requests):04d}", "status": "0"}]})
    tenant = dict(demo_tenant)
    tenant["channels"] = [*demo_tenant["channels"], {"id": "vonage", "type": "vonage", "settings": {
        "api_key": "robust01", "api_secret": "robust-api-secret", "signature_secret": VONAGE_SIG,
        "from_number": "+33700000000", "api_base": provider.url, "attempts": 2}}]
    tenant["plugins"] = {**demo_tenant["plugins"], "sms": {}}
    tenant["plugins"]["http"] = {**tenant["plugins"].get("http", {}), "allowed_hosts": []}
    gw = await gateway(tenants=[tenant])
    url = f"{gw.url}/t/demo/channels/vonage"

    def part(text: str, mid: str, n: int) -> dict[str, str]:
        return vonage_params(text, mid, **{"concat": "true", "concat-ref": "77", "concat-total": "2",
                                           "concat-part": str(n)})

    async with gw.http.post(url, json=part("sol", "0Q01", 1)) as r:
        assert r.status == 200

    real = gw.pipeline.handle

    async def busy(*args, **kwargs):
        raise Busy("conversation locked")

    gw.pipeline.handle = busy                  # the turn of the whole message fails once
    try:
        async with gw.http.post(url, json=part("des", "0Q02", 2)) as r:
            assert r.status == 503             # not acknowledged: Vonage retries this part
    finally:
        gw.pipeline.handle = real
    assert provider.requests == []

    async with gw.http.post(url, json=part("des", "0Q02", 2)) as r:   # Vonage's retry
        assert r.status == 200
    await gw.pipeline.drain()
    texts = [dict(s.form)["text"] for s in provider.requests]
    assert len(texts) == 2 and texts[1].startswith("Pour qui cherchez-vous ?")   # "soldes" started it
    await vonage.settle()
    assert await gw.redis.keys("cst:{demo}:vonage:*") == []       # the parts are gone once answered

    # a redelivery of a part after that: no second answer
    async with gw.http.post(url, json=part("des", "0Q02", 2)) as r:
        assert r.status == 200
    await gw.pipeline.drain()
    assert len(provider.requests) == 2


# --- Twilio: odd forms -----------------------------------------------------------------------
def twilio_channel():
    return twilio.TwilioChannel("demo", "sms", twilio.TwilioSettings(account_sid="AC1", auth_token=TWILIO_TOKEN,
                                                                      from_number="+33700000000"))


def twilio_hook(pairs):
    return make_webhook(url=URL, body=urlencode(pairs).encode(), headers={
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": twilio.signature(TWILIO_TOKEN, URL, pairs)})


def test_twilio_odd_forms():
    ch = twilio_channel()
    base = [("MessageSid", "SM1"), ("From", PHONE), ("To", "+33700000000"), ("Body", "hi")]
    # a duplicated field is signed with every value; the last one is read
    h = twilio_hook(base + [("Body", "again")])
    assert ch.verify(h)
    [m] = ch.parse(h)
    assert (m.native_id, m.contact, m.text) == ("SM1", PHONE, "again")
    # unicode, RTL and 100 KB survive
    long = "\u202eمرحبا 😀 " + "é" * 100_000
    [m] = ch.parse(twilio_hook(base[:3] + [("Body", long)]))
    assert m.text == long
    # negative NumMedia is no media; an unreadable one is a 400, not a 500
    [m] = ch.parse(twilio_hook(base + [("NumMedia", "-3")]))
    assert m.media == [] and m.kind == "text"
    with pytest.raises(ValueError):
        ch.parse(twilio_hook(base + [("NumMedia", "1e3")]))
    with pytest.raises(ValueError):
        ch.parse(twilio_hook(base[:1] + base[2:]))      # no From
