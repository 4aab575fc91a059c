"""Apple inbound with a valid JWT but odd content: Apple's interactive JSON is free-form, so
wrong types there make a postback or empty strings, never an exception (a 500 and a log
trace); and JWTs whose freshness cannot be judged, or that nest too deep, are refused."""
from __future__ import annotations

import base64
import json
import logging
import time

import msgspec
import pytest
from causette_apple import AppleChannel, jwt
from causette_apple.channel import CAPABILITIES, Settings

from gateway.conformance import make_webhook
from gateway.types import InboundMessage

MSP = "3f9a2c1e-6b7d-4e8f-9a0b-1c2d3e4f5a6b"
KEY = b"robust-msp-secret-0123456789abcd"
BIZ = "a884eddf-1234-4abc-9def-1234567890ab"
USER = "urn:mbid:AQAArobust-user"


@pytest.fixture(autouse=True)
def _forget_capabilities():
    CAPABILITIES.clear()
    yield
    CAPABILITIES.clear()


def channel() -> AppleChannel:
    return AppleChannel("demo", "apple-main", Settings(msp_id=MSP, secret=base64.b64encode(KEY).decode(),
                                                       business_id=BIZ))


def hook(body: dict, claims: dict | None = None):
    claims = {"aud": MSP, "iat": int(time.time())} if claims is None else claims
    return make_webhook(body=json.dumps(body).encode(), headers={
        "Content-Type": "application/json", "capability-list": "QUICK,LIST",
        "Authorization": "Bearer " + jwt.encode(claims, KEY)})


def interactive(data: dict, reply: object = None, mid: str = "i-1") -> dict:
    idata: dict = {"bid": "x", "data": data}
    if reply is not None:
        idata["replyMessage"] = reply
    return {"id": mid, "type": "interactive", "v": 1, "sourceId": USER, "destinationId": BIZ,
            "interactiveData": idata}


def well_typed(msgs: list[InboundMessage]) -> list[InboundMessage]:
    """The messages survive a strict round trip: every field has its declared type."""
    return msgspec.json.decode(msgspec.json.encode(msgs), type=list[InboundMessage])


ODD_QUICK = [
    ("items is a string", {"quick-reply": {"selectedIndex": 0, "items": "abc"}}),
    ("items hold numbers", {"quick-reply": {"selectedIndex": 0, "items": [1, 2]}}),
    ("items hold null", {"quick-reply": {"selectedIndex": 0, "items": [None]}}),
    ("items hold lists", {"quick-reply": {"selectedIndex": 0, "items": [[{"identifier": "a"}]]}}),
    ("selectedIndex is a boolean", {"quick-reply": {"selectedIndex": True, "items": [{"identifier": "a"}, 5]}}),
    ("sections is an object", {"listPicker": {"sections": {"items": [{"identifier": "a"}]}}}),
    ("sections hold strings", {"listPicker": {"sections": ["abc"]}}),
    ("section items are numbers", {"listPicker": {"sections": [{"items": [1, None]}]}}),
    ("section items is an object", {"listPicker": {"sections": [{"items": {"identifier": "a"}}]}}),
]


@pytest.mark.parametrize("label,data", ODD_QUICK, ids=[c[0] for c in ODD_QUICK])
def test_odd_interactive_shapes_make_a_postback(label, data):
    ch = channel()
    h = hook(interactive(data))
    assert ch.verify(h)
    [msg] = well_typed(ch.parse(h))
    assert (msg.kind, msg.payload, msg.text, msg.contact) == ("postback", "", "", USER)


def test_null_and_numeric_identifiers_and_titles():
    ch = channel()
    # null is no identifier (not the text "None"); a number is read as its text
    [msg] = well_typed(ch.parse(hook(interactive(
        {"requestIdentifier": None, "quick-reply": {"selectedIdentifier": None}}, reply={"title": None}))))
    assert (msg.kind, msg.payload, msg.text) == ("postback", "", "")
    [msg] = well_typed(ch.parse(hook(interactive(
        {"quick-reply": {"selectedIdentifier": 7}}, reply={"title": ["not", "a", "title"]}))))
    assert (msg.kind, msg.payload, msg.text) == ("choice", "7", "")
    [msg] = well_typed(ch.parse(hook(interactive(
        {"listPicker": {"sections": [{"items": [{"identifier": "a", "title": {"x": 1}}]}]}},
        reply={"title": "Selected"}))))
    assert (msg.kind, msg.payload, msg.text) == ("choice", "a", "Selected")
    # the usual shapes still work
    [msg] = ch.parse(hook(interactive({"quick-reply": {"selectedIndex": 1, "items": [
        {"identifier": "w"}, {"identifier": "m"}]}}, reply={"title": "Homme"})))
    assert (msg.kind, msg.payload, msg.text) == ("choice", "m", "Homme")


@pytest.mark.parametrize("odd", [None, 0, 1.5, True, [], {"a": 1}])
def test_attachment_fields_of_the_wrong_type(odd):
    body = {"id": "t-1", "type": "text", "v": 1, "sourceId": USER, "destinationId": BIZ, "body": "\ufffc",
            "attachments": [{"mimeType": odd, "url": odd, "name": odd}]}
    [msg] = well_typed(channel().parse(hook(body)))
    assert msg.kind == "media" and msg.media[0].kind == "file"
    assert isinstance(msg.media[0].url, str) and isinstance(msg.media[0].mime, str)


@pytest.mark.parametrize("label,claims", [
    ("iat NaN", {"aud": MSP, "iat": float("nan")}),
    ("exp Infinity", {"aud": MSP, "exp": float("inf")}),
    ("iat a boolean", {"aud": MSP, "iat": True}),
])
def test_unjudgeable_freshness_is_refused(label, claims):
    assert not channel().verify(hook({"id": "x"}, claims=claims))


def test_deeply_nested_token_is_refused_without_raising():
    deep = jwt.b64url(b"[" * 100_000) + ".e30.e30"
    with pytest.raises(jwt.InvalidToken):
        jwt.decode(deep, KEY, audience=MSP, max_age=60)
    h = make_webhook(body=b"{}", headers={"Authorization": "Bearer " + deep})
    assert channel().verify(h) is False


# --- the same through the whole gateway ---------------------------------------------------
def tenant(provider):
    return {"slug": "apple-shop", "name": "Apple shop", "locale": "fr", "plugins": {"tree": {}, "apple": {}},
            "channels": [{"id": "apple-main", "type": "apple", "settings": {
                "msp_id": MSP, "secret": base64.b64encode(KEY).decode(), "business_id": BIZ,
                "api_base": provider.url, "attempts": 2}}],
            "flows": []}


async def test_gateway_answers_200_and_logs_no_error(gateway, provider, caplog):
    gw = await gateway(tenants=[tenant(provider)])
    url = f"{gw.url}/t/apple-shop/channels/apple-main"
    bodies = [interactive({"quick-reply": {"selectedIndex": 0, "items": "abc"}}, mid="g-1"),
              interactive({"listPicker": {"sections": ["abc"]}}, mid="g-2"),
              {"id": "g-3", "type": "text", "v": 1, "sourceId": USER, "destinationId": BIZ, "body": "x",
               "attachments": [{"mimeType": 5}]}]
    with caplog.at_level(logging.WARNING):
        for body in bodies:
            h = hook(body)
            async with gw.http.post(url, data=h.body, headers=dict(h.headers)) as r:
                assert r.status == 200, await r.text()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
