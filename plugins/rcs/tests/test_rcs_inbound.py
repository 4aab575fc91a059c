"""RBM inbound, as a table: label, decoded payload -> normalized messages.

Each case is signed the way Google signs (base64 HMAC-SHA512 over the decoded data) and
wrapped in a Pub/Sub push envelope, then goes through verify -> parse -> respond.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest
from causette_rcs import RCSChannel
from causette_rcs.channel import Settings

from gateway.channels import ParseError, Webhook
from gateway.types import InboundMessage, Location, Media

TOKEN = "TESTCLIENTTOKEN1"
PHONE = "+33612345678"
URL = "https://gw.example.com/t/demo/channels/rcs-main"


def channel(**kw) -> RCSChannel:
    return RCSChannel("demo", "rcs-main", Settings(agent_id="demo-bot@rbm.goog",
                                                   client_token=kw.pop("client_token", TOKEN), **kw))


def envelope(data: bytes, attributes: dict | None = None) -> bytes:
    msg = {"data": base64.b64encode(data).decode(), "messageId": "1415", "publishTime":
           "2026-11-26T09:00:00.200Z"}
    if attributes:
        msg["attributes"] = attributes
    return json.dumps({"message": msg, "subscription": "projects/p/subscriptions/s"}).encode()


def sign(data: bytes, token: str = TOKEN) -> str:
    return base64.b64encode(hmac.new(token.encode(), data, hashlib.sha512).digest()).decode()


def hook(data: bytes, signature: str | None = "auto", attributes: dict | None = None) -> Webhook:
    headers = {"Content-Type": "application/json"}
    if signature == "auto":
        headers["X-Goog-Signature"] = sign(data)
    elif signature is not None:
        headers["X-Goog-Signature"] = signature
    return Webhook("POST", URL, {}, headers, envelope(data, attributes))


def msg(**fields) -> bytes:
    base = {"senderPhoneNumber": PHONE, "messageId": "MsG1", "sendTime": "2026-11-26T09:00:00.5Z",
            "agentId": "demo-bot@rbm.goog"}
    base.update(fields)
    return json.dumps(base).encode()


def event(kind: str, **fields) -> bytes:
    base = {"senderPhoneNumber": PHONE, "eventType": kind, "eventId": f"EV-{kind}",
            "messageId": "6c3b1f0e-0000-5000-8000-000000000001", "agentId": "demo-bot@rbm.goog",
            "sendTime": "2026-11-26T09:00:01Z"}
    base.update(fields)
    return json.dumps(base).encode()


T0 = 1795683600.5   # 2026-11-26T09:00:00.5Z
T1 = 1795683601.0
COMMON = dict(tenant="demo", channel="rcs-main", contact=PHONE)

INBOUND = [
    ("text", msg(text="Bonjour"), [InboundMessage(native_id=f"{PHONE}/MsG1", kind="text",
                                                  text="Bonjour", ts=T0, **COMMON)]),
    ("suggested reply tap",
     msg(suggestionResponse={"postbackData": "w", "text": "Femme", "type": "REPLY"}),
     [InboundMessage(native_id=f"{PHONE}/MsG1", kind="choice", payload="w", text="Femme", ts=T0,
                     **COMMON)]),
    ("suggested action tap",
     msg(suggestionResponse={"postbackData": "open_site", "text": "Open site", "type": "ACTION"}),
     [InboundMessage(native_id=f"{PHONE}/MsG1", kind="postback", payload="open_site",
                     text="Open site", ts=T0, **COMMON)]),
    ("location", msg(location={"latitude": 48.8566, "longitude": 2.3522}),
     [InboundMessage(native_id=f"{PHONE}/MsG1", kind="location", ts=T0,
                     location=Location(lat=48.8566, lon=2.3522), **COMMON)]),
    ("user file", msg(userFile={
        "thumbnail": {"mimeType": "image/jpeg", "fileSizeBytes": 100, "fileUri": "https://rcs/t.jpg"},
        "payload": {"mimeType": "image/jpeg", "fileSizeBytes": 9000, "fileUri": "https://rcs/f.jpg",
                    "fileName": "photo.jpg"}}),
     [InboundMessage(native_id=f"{PHONE}/MsG1", kind="media", ts=T0, **COMMON, media=[
         Media(kind="image", url="https://rcs/f.jpg", mime="image/jpeg", caption="photo.jpg")])]),
    ("pdf file", msg(userFile={"payload": {"mimeType": "application/pdf", "fileUri": "https://rcs/x"}}),
     [InboundMessage(native_id=f"{PHONE}/MsG1", kind="media", ts=T0, **COMMON, media=[
         Media(kind="file", url="https://rcs/x", mime="application/pdf")])]),
    ("nanosecond time", msg(text="x", sendTime="2026-11-26T09:00:00.500000123Z"),
     [InboundMessage(native_id=f"{PHONE}/MsG1", kind="text", text="x", ts=T0, **COMMON)]),
    ("delivered", event("DELIVERED"),
     [InboundMessage(native_id="EV-DELIVERED", kind="status", status="delivered", ts=T1,
                     refers_to="6c3b1f0e-0000-5000-8000-000000000001", **COMMON)]),
    ("read", event("READ"),
     [InboundMessage(native_id="EV-READ", kind="status", status="read", ts=T1,
                     refers_to="6c3b1f0e-0000-5000-8000-000000000001", **COMMON)]),
    ("typing", event("IS_TYPING", messageId=""),
     [InboundMessage(native_id="EV-IS_TYPING", kind="status", status="typing", ts=T1, **COMMON)]),
    ("unsubscribe", event("UNSUBSCRIBE", messageId=""),
     [InboundMessage(native_id="EV-UNSUBSCRIBE", kind="optout", ts=T1, **COMMON)]),
    ("subscribe", event("SUBSCRIBE", messageId=""),
     [InboundMessage(native_id="EV-SUBSCRIBE", kind="optin", ts=T1, **COMMON)]),
    ("server event: expiry revoked",
     json.dumps({"phoneNumber": PHONE, "eventType": "TTL_EXPIRATION_REVOKED", "eventId": "S1",
                 "messageId": "m-1", "sendTime": "2026-11-26T09:00:01Z"}).encode(),
     [InboundMessage(native_id="S1", kind="status", status="expired", refers_to="m-1", ts=T1,
                     **COMMON)]),
    ("unknown content kind", msg(richMessageClassification={"x": 1}), []),
    ("unknown event type", event("SOMETHING_NEW"), []),
]


@pytest.mark.parametrize("label,data,expected", INBOUND, ids=[c[0] for c in INBOUND])
def test_rcs_inbound_table(label, data, expected):
    ch = channel()
    h = hook(data)
    assert ch.verify(h)
    assert ch.parse(h) == expected
    assert ch.respond(h, []).status == 200


def test_rcs_agent_launch_event_is_accepted_and_ignored():
    ch = channel()
    h = hook(json.dumps({"agentId": "a", "eventType": "AGENT_LAUNCHED"}).encode(),
             attributes={"type": "agent_launch_event"})
    assert ch.verify(h) and ch.parse(h) == []


def test_rcs_reference_signature_vector():
    """Section 3.2 of the reference, rebuilt from its inputs."""
    data = json.dumps({"senderPhoneNumber": "+12223334444", "messageId": "MxQ9a8bGxRQ3sBPkAjdNq7",
                       "sendTime": "2025-01-15T10:00:00.123Z", "agentId": "acme-bot@rbm.goog",
                       "text": "Hi"}, separators=(",", ":")).encode()
    expected = ("uN14VCPi97AcO1Jcfn9fu7U+1+e2tOIYiSGEiIdl4Pp/rQ04iiQOt1jc0RWV7Sf+54tf8E1kNrdkK936AKflFw==")
    assert RCSChannel.signature("SJENCPGJESMGUFPY", data) == expected
    ch = channel(client_token="SJENCPGJESMGUFPY")
    h = hook(data, signature=expected)
    assert ch.verify(h)
    [m] = ch.parse(h)
    assert (m.contact, m.text, m.native_id) == ("+12223334444", "Hi",
                                                "+12223334444/MxQ9a8bGxRQ3sBPkAjdNq7")


REFUSED = [
    ("missing signature", lambda d: hook(d, signature=None)),
    ("wrong signature", lambda d: hook(d, signature=sign(d, "another-token"))),
    ("signature of the whole body", lambda d: hook(d, signature=sign(envelope(d)))),
    ("signature, hex instead of base64",
     lambda d: hook(d, signature=hmac.new(TOKEN.encode(), d, hashlib.sha512).hexdigest())),
    ("data tampered after signing", lambda d: Webhook(
        "POST", URL, {}, {"X-Goog-Signature": sign(d)}, envelope(d.replace(b"Bonjour", b"Bonsoir")))),
    ("not json", lambda d: Webhook("POST", URL, {}, {"X-Goog-Signature": sign(d)}, b"<xml/>")),
    ("data not base64", lambda d: Webhook(
        "POST", URL, {}, {"X-Goog-Signature": sign(d)},
        json.dumps({"message": {"data": "%%%"}}).encode())),
]


@pytest.mark.parametrize("label,make", REFUSED, ids=[c[0] for c in REFUSED])
def test_rcs_refused(label, make):
    assert not channel().verify(make(msg(text="Bonjour")))


def test_rcs_refuses_everything_without_client_token():
    data = msg(text="Bonjour")
    assert not channel(client_token="").verify(hook(data, signature=sign(data, "")))


def test_rcs_signed_but_malformed_payload_is_a_parse_error():
    data = b"{not json"
    ch = channel()
    h = hook(data)
    assert ch.verify(h)
    with pytest.raises(ParseError):
        ch.parse(h)


def test_rcs_webhook_verification_answers_the_secret():
    ch = channel()
    body = json.dumps({"clientToken": TOKEN, "secret": "1234567890"}).encode()
    h = Webhook("POST", URL, {}, {}, body)
    assert ch.verify(h)
    assert ch.parse(h) == []
    resp = ch.respond(h, [])
    assert resp.status == 200 and resp.text == "1234567890"
    bad = Webhook("POST", URL, {}, {}, json.dumps({"clientToken": "NOPE", "secret": "1"}).encode())
    assert not ch.verify(bad)
