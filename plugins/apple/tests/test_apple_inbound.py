"""Apple Messages for Business inbound, as a table: label, body, headers -> normalized messages;
and the JWT checks that refuse what Apple did not sign."""
from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import json
import time

import pytest
from causette_apple import AppleChannel, jwt
from causette_apple.channel import BID, CAPABILITIES, Settings

from gateway.channels import ParseError, Webhook
from gateway.types import InboundMessage, Media, Referral

MSP = "3f9a2c1e-6b7d-4e8f-9a0b-1c2d3e4f5a6b"
SECRET_BYTES = b"demo-msp-secret-0123456789abcdef"
SECRET = base64.b64encode(SECRET_BYTES).decode()
BIZ = "a884eddf-1234-4abc-9def-1234567890ab"
USER = "urn:mbid:AQAAY2x1ZXN0ZXIuZXhhbXBsZS51c2VyLm9wYXF1ZS5pZA=="
URL = "https://gw.example.com/t/demo/channels/apple-main"


def channel(**kw) -> AppleChannel:
    s = dict(msp_id=MSP, secret=SECRET, business_id=BIZ)
    s.update(kw)
    return AppleChannel("demo", "apple-main", Settings(**s))


def token(claims: dict | None = None, key: bytes = SECRET_BYTES, alg: str = "HS256") -> str:
    claims = {"aud": MSP, "iat": int(time.time())} if claims is None else claims
    head = jwt.b64url(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    body = jwt.b64url(json.dumps(claims).encode())
    sig = jwt.b64url(hmac.new(key, f"{head}.{body}".encode(), hashlib.sha256).digest())
    return f"{head}.{body}.{sig}"


def hook(body: dict | bytes, auth: str | None = "auto", caps: str | None = "QUICK,LIST,TIME",
         **headers: str) -> Webhook:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    h = {"Content-Type": "application/json", "id": "hdr-id", "source-id": USER,
         "destination-id": BIZ, "device-agent": "iPhone OS"}
    if caps is not None:
        h["capability-list"] = caps
    if auth == "auto":
        h["Authorization"] = "Bearer " + token()
    elif auth is not None:
        h["Authorization"] = auth
    h.update(headers)
    return Webhook("POST", URL, {}, h, raw)


def body(type_: str, **fields) -> dict:
    b = {"id": "3f1c2d4e-8b7a-4c6d-9e0f-1a2b3c4d5e6f", "type": type_, "v": 1, "sourceId": USER,
         "destinationId": BIZ, "locale": "fr_FR"}
    b.update(fields)
    return b


PROFILE = {"capabilities": "QUICK,LIST,TIME", "device": "iPhone OS"}
COMMON = dict(tenant="demo", channel="apple-main", contact=USER,
              native_id="3f1c2d4e-8b7a-4c6d-9e0f-1a2b3c4d5e6f", locale="fr-FR", profile=PROFILE)


def interactive(data: dict, reply_title: str = "") -> dict:
    d = {"bid": BID, "data": dict({"version": "1.0", "requestIdentifier": "req-1"}, **data)}
    if reply_title:
        d["replyMessage"] = {"title": reply_title, "style": "icon"}
    return body("interactive", interactiveData=d)


INBOUND = [
    ("text", body("text", body="Bonjour, où est ma commande ?"), {},
     [InboundMessage(kind="text", text="Bonjour, où est ma commande ?", **COMMON)]),
    ("text from a Messages for Business link (intent, group)",
     body("text", body="Bonjour", intent="soldes", group="paris"), {},
     [InboundMessage(kind="text", text="Bonjour", referral=Referral(source="link", ref="soldes"),
                     **dict(COMMON, profile=dict(PROFILE, group="paris")))]),
    ("gzip-compressed body", gzip.compress(json.dumps(body("text", body="zip")).encode()),
     {"Content-Encoding": "gzip"}, [InboundMessage(kind="text", text="zip", **COMMON)]),
    ("gzip without the header (sniffed)", gzip.compress(json.dumps(body("text", body="z")).encode()),
     {}, [InboundMessage(kind="text", text="z", **COMMON)]),
    ("attachment", body("text", body="\ufffc", attachments=[
        {"name": "IMG_1.jpg", "mimeType": "image/jpeg", "size": 2048, "url": "https://p/x",
         "key": "00ab", "owner": "o", "signature-base64": "c2ln"}]), {},
     [InboundMessage(kind="media", media=[Media(kind="image", url="https://p/x", mime="image/jpeg",
                                                caption="IMG_1.jpg")], **COMMON)]),
    ("quick reply answer", interactive({"quick-reply": {"selectedIdentifier": "w",
                                                        "selectedIndex": 0}}, "Femme"), {},
     [InboundMessage(kind="choice", payload="w", text="Femme", **COMMON)]),
    ("quick reply answer by index only", interactive({"quick-reply": {
        "selectedIndex": 1, "items": [{"identifier": "w", "title": "Femme"},
                                      {"identifier": "m", "title": "Homme"}]}}), {},
     [InboundMessage(kind="choice", payload="m", **COMMON)]),
    ("list picker answer", interactive({"listPicker": {"sections": [{"order": 0, "items": [
        {"identifier": "m", "order": 1, "title": "Homme", "style": "default"}]}]}}, "Selected"), {},
     [InboundMessage(kind="choice", payload="m", text="Homme", **COMMON)]),
    ("time picker answer is a postback", interactive({"event": {"timeslots": []}}), {},
     [InboundMessage(kind="postback", payload="req-1", **COMMON)]),
    ("close: the user deleted the conversation", body("close"), {},
     [InboundMessage(kind="optout", **COMMON)]),
    ("typing start", body("typing_start"), {}, []),
    ("typing end", body("typing_end"), {}, []),
]


@pytest.mark.parametrize("label,payload,headers,expected", INBOUND, ids=[c[0] for c in INBOUND])
def test_apple_inbound_table(label, payload, headers, expected):
    ch = channel()
    h = hook(payload, **headers)
    assert ch.verify(h)
    assert ch.parse(h) == expected


def test_apple_capabilities_are_kept_per_contact():
    ch = channel()
    ch.parse(hook(body("text", body="a"), caps="QUICK"))
    assert CAPABILITIES[("demo", "apple-main", USER)] == {"QUICK"}
    ch.parse(hook(body("text", body="b"), caps="LIST,QUICK,AUTH2"))
    assert CAPABILITIES[("demo", "apple-main", USER)] == {"LIST", "QUICK", "AUTH2"}
    [m] = ch.parse(hook(body("text", body="c"), caps=None))
    assert "capabilities" not in m.profile
    assert CAPABILITIES[("demo", "apple-main", USER)] == {"LIST", "QUICK", "AUTH2"}


def test_apple_reference_jwt_vector():
    """Section 4.2 of the reference, rebuilt from its inputs (decoded-key variant)."""
    key = jwt.key_bytes(base64.b64encode(b"example-msp-secret-0123456789abcd").decode())
    t = jwt.encode({"iss": "0c3d1e7a-5b1f-4a7e-9d2a-6f1e2c3b4a5d", "iat": 1700000000}, key)
    assert t == ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiIwYzNkMWU3YS01YjFmLTRhN2UtOWQy"
                 "YS02ZjFlMmMzYjRhNWQiLCJpYXQiOjE3MDAwMDAwMDB9.c4Shy65Th7WhhEjnJxUf0woQ_rH-2HTk64FWQqF2k4I")
    assert jwt.decode(t, key, issuer="0c3d1e7a-5b1f-4a7e-9d2a-6f1e2c3b4a5d", max_age=60,
                      now=1700000010)["iat"] == 1700000000
    # an outbound token (iss, no aud) is not an inbound one
    with pytest.raises(jwt.InvalidToken):
        jwt.decode(t, key, audience="0c3d1e7a-5b1f-4a7e-9d2a-6f1e2c3b4a5d", max_age=60,
                   now=1700000010)


NOW = int(time.time())
REFUSED = [
    ("no Authorization", None),
    ("empty bearer", "Bearer "),
    ("garbage", "Bearer abc.def"),
    ("wrong key", "Bearer " + token(key=b"another-secret")),
    ("raw secret string used as key", "Bearer " + token(key=SECRET.encode())),
    ("alg none", "Bearer " + token(alg="none").rsplit(".", 1)[0] + "."),
    ("alg HS512", "Bearer " + token(alg="HS512")),
    ("audience of another MSP", "Bearer " + token({"aud": "other-msp", "iat": NOW})),
    ("no aud and iss of another MSP", "Bearer " + token({"iss": "other-msp", "iat": NOW})),
    # shaped like the tokens Causette sends Apple: every one of them would pass otherwise
    ("no aud, iss = this MSP (an outbound token)", "Bearer " + token({"iss": MSP, "iat": NOW})),
    ("aud null, iss = this MSP", "Bearer " + token({"aud": None, "iss": MSP, "iat": NOW})),
    ("aud an empty list, iss = this MSP", "Bearer " + token({"aud": [], "iss": MSP, "iat": NOW})),
    ("stale iat", "Bearer " + token({"aud": MSP, "iat": NOW - 7200})),
    ("iat in the future", "Bearer " + token({"aud": MSP, "iat": NOW + 3600})),
    ("expired", "Bearer " + token({"aud": MSP, "exp": NOW - 3600})),
    ("no iat nor exp", "Bearer " + token({"aud": MSP})),
]


@pytest.mark.parametrize("label,auth", REFUSED, ids=[c[0] for c in REFUSED])
def test_apple_refused(label, auth):
    assert not channel().verify(hook(body("text", body="x"), auth=auth))


ACCEPTED = [
    ("aud", {"aud": MSP, "iat": NOW}),
    ("aud as a list", {"aud": ["x", MSP], "iat": NOW}),
    ("aud with any iss", {"aud": MSP, "iss": "apple", "iat": NOW}),
    ("exp only", {"aud": MSP, "exp": NOW + 600}),
]


@pytest.mark.parametrize("label,claims", ACCEPTED, ids=[c[0] for c in ACCEPTED])
def test_apple_accepted(label, claims):
    assert channel().verify(hook(body("text", body="x"), auth="Bearer " + token(claims)))


def test_apple_raw_secret_encoding():
    ch = channel(secret="plain-secret", secret_encoding="raw")
    assert ch.verify(hook(body("text", body="x"), auth="Bearer " + token(key=b"plain-secret")))
    assert not ch.verify(hook(body("text", body="x")))


@pytest.mark.parametrize("raw", [b"{not json", b"[]", json.dumps({"type": "text"}).encode(),
                                 b"\x1f\x8b\x08garbage"])
def test_apple_malformed_bodies_are_parse_errors(raw):
    ch = channel()
    h = Webhook("POST", URL, {}, {"Authorization": "Bearer " + token()}, raw)
    assert ch.verify(h)
    with pytest.raises(ParseError):
        ch.parse(h)


def test_apple_contact_link_carries_the_ref_as_intent():
    assert channel().contact_link("soldes") == f"https://bcrw.apple.com/urn:biz:{BIZ}?biz-intent-id=soldes"
    assert channel().contact_link() == f"https://bcrw.apple.com/urn:biz:{BIZ}"
    assert channel(business_id="").contact_link("x") == ""
