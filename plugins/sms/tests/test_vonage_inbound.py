"""Vonage inbound, as a table: signed form and JSON webhooks (every signing method), inbound
SMS, concatenated parts, delivery receipts, and what is refused. Signatures are computed here
with the documented algorithm, independently of the channel's code."""
from __future__ import annotations

import hashlib
import hmac
import json
import time
from urllib.parse import urlencode

import msgspec
import pytest
from multidict import CIMultiDict

from causette_sms.vonage import VonageChannel, VonageSettings, signature
from gateway.channels import ParseError, Webhook
from gateway.types import InboundMessage

SECRET = "vonage-signature-secret"
SETTINGS = dict(api_key="abcd1234", api_secret="vonage-api-secret", signature_secret=SECRET,
                from_number="+33700000000")
URL = "https://chat.example.com/t/acme/channels/vonage"
NOW = str(int(time.time()))


def sign(params: dict, method: str = "sha256", secret: str = SECRET) -> str:
    data = ""
    for k in sorted(params):
        if k != "sig":
            data += "&" + k + "=" + str(params[k]).replace("&", "_").replace("=", "_")
    if method == "md5hash":
        return hashlib.md5((data + secret).encode()).hexdigest()
    return hmac.new(secret.encode(), data.encode(), getattr(hashlib, method)).hexdigest()


def channel(**over) -> VonageChannel:
    return VonageChannel("acme", "vonage", msgspec.convert({**SETTINGS, **over}, VonageSettings))


def hook(params: dict, *, sig: str = "valid", method: str = "sha256", as_json: bool = False) -> Webhook:
    params = dict(params)
    if sig == "valid":
        params["sig"] = sign(params, method)
    elif sig == "wrong":
        params["sig"] = sign(params, method, "another-secret")
    elif sig == "upper":
        params["sig"] = sign(params, method).upper()
    if as_json:
        return Webhook("POST", URL, {}, CIMultiDict({"Content-Type": "application/json"}),
                       json.dumps(params).encode())
    return Webhook("POST", URL, {}, CIMultiDict({"Content-Type": "application/x-www-form-urlencoded"}),
                   urlencode(params).encode())


SMS = {"msisdn": "33611223344", "to": "33700000000", "messageId": "0C000000217B7F02",
       "text": "Où est ma commande ?", "type": "unicode", "keyword": "OU", "api-key": "abcd1234",
       "message-timestamp": "2025-01-15 10:00:00", "timestamp": NOW,
       "nonce": "8b1f3f3a-6a59-4a4c-9d47-2f1e8c0a7b11"}
DLR = {"msisdn": "33611223344", "to": "33700000000", "network-code": "20801", "messageId": "0A0000001",
       "price": "0.03330000", "status": "delivered", "scts": "2501151001", "err-code": "0",
       "client-ref": "turn-1:0:0", "message-timestamp": "2025-01-15 10:01:00", "api-key": "abcd1234",
       "timestamp": NOW, "nonce": "0b3e"}

BASE = {"tenant": "acme", "channel": "vonage", "contact": "+33611223344"}
MSG = {**BASE, "native_id": "0C000000217B7F02", "kind": "text", "text": "Où est ma commande ?",
       "ts": 1736935200.0, "profile": {"to": "33700000000"}}

# label, webhook, expected: "refused" | "unreadable" | list of normalized messages
CASES = [
    ("text, form, sha256", hook(SMS), [MSG]),
    ("text, JSON body", hook(SMS, as_json=True), [MSG]),
    ("md5hash method", hook(SMS, method="md5hash"), "md5hash", [MSG]),
    ("HMAC-MD5 method", hook(SMS, method="md5"), "md5", [MSG]),
    ("HMAC-SHA1 method", hook(SMS, method="sha1"), "sha1", [MSG]),
    ("HMAC-SHA512 method", hook(SMS, method="sha512"), "sha512", [MSG]),
    ("uppercase hex signature", hook(SMS, sig="upper"), [MSG]),
    ("& and = in the text", hook({**SMS, "text": "a=1&b=2"}), [{**MSG, "text": "a=1&b=2"}]),
    ("STOP keyword", hook({**SMS, "text": "STOP", "keyword": "STOP"}),
     [{**MSG, "kind": "optout", "text": "STOP", "payload": "stop"}]),
    ("ARRET keyword", hook({**SMS, "text": "arret", "keyword": "ARRET"}),
     [{**MSG, "kind": "optout", "text": "arret", "payload": "stop"}]),
    ("HELP keyword", hook({**SMS, "text": "HELP", "keyword": "HELP"}), [{**MSG, "text": "HELP", "payload": "help"}]),
    ("delivery receipt", hook(DLR), [{**BASE, "native_id": "0A0000001:delivered", "kind": "status",
                                      "status": "delivered", "refers_to": "0A0000001", "payload": "0",
                                      "ts": 1736935260.0}]),
    ("failed receipt", hook({**DLR, "status": "rejected", "err-code": "6"}),
     [{**BASE, "native_id": "0A0000001:rejected", "kind": "status", "status": "failed",
       "refers_to": "0A0000001", "payload": "6", "ts": 1736935260.0}]),
    ("binary message ignored", hook({**SMS, "type": "binary"}), []),
    ("wrong signature", hook(SMS, sig="wrong"), "refused"),
    ("missing signature", hook(SMS, sig="missing"), "refused"),
    ("other method than configured", hook(SMS, method="md5"), "refused"),
    ("stale timestamp", hook({**SMS, "timestamp": str(int(time.time()) - 26 * 3600)}), "refused"),
    ("no timestamp", hook({k: v for k, v in SMS.items() if k != "timestamp"}), "refused"),
    ("another account's api-key", hook({**SMS, "api-key": "zzzz9999"}), "refused"),
    ("no messageId", hook({k: v for k, v in SMS.items() if k != "messageId"}), "unreadable"),
]
CASES = [(c[0], c[1], "sha256", c[2]) if len(c) == 3 else c for c in CASES]


@pytest.mark.parametrize("label,webhook,method,expected", CASES, ids=[c[0] for c in CASES])
def test_inbound(label, webhook, method, expected):
    ch = channel(signature_method=method)
    if expected == "refused":
        assert ch.verify(webhook) is False
        return
    assert ch.verify(webhook) is True
    if expected == "unreadable":
        with pytest.raises(ParseError):
            ch.parse(webhook)
        return
    assert ch.parse(webhook) == [msgspec.convert(e, InboundMessage) for e in expected]


def test_tampered_body_is_refused():
    good = hook(SMS)
    bad = Webhook("POST", URL, {}, good.headers, good.body.replace(b"commande", b"argent"))
    assert channel().verify(bad) is False


def test_concatenated_parts_make_one_message():
    ch = channel()
    ref = f"ref-{time.time_ns()}"
    parts = {n: {**SMS, "messageId": f"0C0000000{n}", "text": t, "concat": "true", "concat-ref": ref,
                 "concat-total": "3", "concat-part": str(n)}
             for n, t in ((1, "Bonjour, je voudrais "), (2, "savoir où en est "), (3, "ma commande."))}
    # Parts arrive out of order; a retried part changes nothing.
    for n in (2, 3, 3):
        wh = hook(parts[n])
        assert ch.verify(wh) and ch.parse(wh) == []
    wh = hook(parts[1])
    [msg] = ch.parse(wh)
    assert (msg.native_id, msg.text) == ("0C00000001", "Bonjour, je voudrais savoir où en est ma commande.")


def test_concat_part_out_of_range_is_unreadable():
    wh = hook({**SMS, "concat": "true", "concat-ref": "9", "concat-total": "2", "concat-part": "3"})
    with pytest.raises(ParseError):
        channel().parse(wh)


def test_signature_matches_the_documented_algorithm():
    params = {"param1": "value&1", "param2": "value=2", "timestamp": 1234567890}
    for method in ("md5hash", "md5", "sha1", "sha256", "sha512"):
        assert signature("s3cret", params, method) == sign(params, method, "s3cret")


def test_no_signature_secret_refuses_everything():
    assert channel(signature_secret="").verify(hook(SMS)) is False


@pytest.mark.parametrize("max_age,kept", [(None, 26 * 3600), (0, 26 * 3600), (3600, 26 * 3600),
                                           (3 * 86400, 3 * 86400 + 3600)])
def test_message_ids_are_kept_longer_than_a_signed_request_is_valid(max_age, kept):
    # Vonage retries for 24 h; a signed request is accepted for `max_age` (25 h by default):
    # the gateway's default 24 h of dedup would let a late replay be answered twice.
    assert VonageChannel.dedup_ttl == 26 * 3600 > channel().settings.max_age == 25 * 3600
    ch = channel() if max_age is None else channel(max_age=max_age)
    assert ch.dedup_ttl == kept and ch.dedup_ttl > ch.settings.max_age


def test_known_answers():
    """Vonage's published test vectors (vonage-python-sdk's auth tests), typed in here; the
    SDK's "md5" is HMAC-MD5."""
    secret = "signature_secret"
    params = {"param1": "value1", "param2": "value2", "timestamp": 1234567890}
    assert signature(secret, params, "sha256") == "280c4320703dbc98bfa22db676655ed2acfbfe8792b062ff7622e67f1183c287"
    assert signature(secret, params, "md5") == "724c2bf6ca423c36e20631b11d1c5753"
    escaped = {"param1": "value&1", "param2": "value=2", "timestamp": 1234567890}
    assert signature(secret, escaped, "md5") == "2bbf0abafb2c55e5af6231513896a2ac"
    valid = {"param": "value", "timestamp": 1234567890, "sig": "655a4d0b7f064dff438defc52b012cf5"}
    assert signature(secret, valid, "md5") == valid["sig"]
