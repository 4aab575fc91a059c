"""Apple Messages for Business outbound: a reply and the contact's capability-list -> the
exact requests a fake MSP gateway on 127.0.0.1 sees; its answers -> the typed SendResult."""
from __future__ import annotations

import base64
import json
import time
import uuid

import pytest
from causette_apple import AppleChannel, jwt
from causette_apple.channel import BID, CAPABILITIES, Settings, remember

from gateway.types import Card, Choice, Media, Reply

MSP = "3f9a2c1e-6b7d-4e8f-9a0b-1c2d3e4f5a6b"
SECRET_BYTES = b"demo-msp-secret-0123456789abcdef"
BIZ = "a884eddf-1234-4abc-9def-1234567890ab"
USER = "urn:mbid:AQAAuser"


def channel(provider, http, **kw) -> AppleChannel:
    s = dict(msp_id=MSP, secret=base64.b64encode(SECRET_BYTES).decode(), business_id=BIZ,
             api_base=provider.url)
    s.update(kw)
    return AppleChannel("demo", "apple-main", Settings(**s), http=http)


CHOICES2 = [Choice(id="w", title="Femme"), Choice(id="m", title="Homme")]
QUICK = {"type": "interactive", "interactiveData": {"bid": BID, "data": {
    "version": "1.0", "quick-reply": {"summaryText": "Que cherchez-vous ?", "items": [
        {"identifier": "w", "title": "Femme"}, {"identifier": "m", "title": "Homme"}]}}}}
SIX = [Choice(id=f"c{i}", title=f"Choix {i}", description="d" if i == 0 else "") for i in range(6)]


def listpicker(title, rows):
    return {"type": "interactive", "interactiveData": {
        "bid": BID,
        "data": {"version": "1.0", "listPicker": {"sections": [
            {"order": 0, "title": "", "multipleSelection": False, "items": rows}]}},
        "receivedMessage": {"title": title, "style": "icon"},
        "replyMessage": {"title": "Selected", "style": "icon"}}}


SIX_ROWS = [dict({"identifier": f"c{i}", "title": f"Choix {i}", "order": i, "style": "default"},
                 **({"subtitle": "d"} if i == 0 else {})) for i in range(6)]
NUMBERED6 = "\n".join(f"{i + 1}. Choix {i}" for i in range(6))

SEND = [
    # label, reply, the contact's capability-list, messages Apple must receive (without ids)
    ("text", Reply(text="Bonjour !"), "QUICK,LIST", [{"type": "text", "body": "Bonjour !"}]),
    ("quick reply when QUICK is allowed",
     Reply(text="Que cherchez-vous ?", choices=CHOICES2), "QUICK,LIST,TIME", [QUICK]),
    ("numbered text when the device lacks QUICK",
     Reply(text="Que cherchez-vous ?", choices=CHOICES2), "LIST",
     [{"type": "text", "body": "Que cherchez-vous ?\n1. Femme\n2. Homme"}]),
    ("numbered text when capabilities are unknown",
     Reply(text="Que cherchez-vous ?", choices=CHOICES2), None,
     [{"type": "text", "body": "Que cherchez-vous ?\n1. Femme\n2. Homme"}]),
    ("six choices: list picker", Reply(text="Votre taille ?", choices=SIX), "QUICK,LIST",
     [listpicker("Votre taille ?", SIX_ROWS)]),
    ("six choices without LIST: numbered text", Reply(text="Votre taille ?", choices=SIX), "QUICK",
     [{"type": "text", "body": "Votre taille ?\n" + NUMBERED6}]),
    ("long question goes first, then a short list bubble",
     Reply(text="Q" * 100, choices=SIX), "LIST",
     [{"type": "text", "body": "Q" * 100}, listpicker("Choose", SIX_ROWS)]),
    ("one choice is a list picker", Reply(text="OK ?", choices=CHOICES2[:1]), "LIST,QUICK",
     [listpicker("OK ?", [{"identifier": "w", "title": "Femme", "order": 0, "style": "default"}])]),
    ("cards as text, their buttons as choices",
     Reply(cards=[Card(title="Bonnet", subtitle="25 €", url="https://shop/b",
                       buttons=[Choice(id="buy_b", title="Acheter")]),
                  Card(title="Gants", buttons=[Choice(id="buy_g", title="Acheter les gants")])]),
     "LIST",
     [{"type": "text", "body": "Bonnet\n25 €\nhttps://shop/b\n\nGants"},
      listpicker("Choose", [{"identifier": "buy_b", "title": "Acheter", "order": 0, "style": "default"},
                            {"identifier": "buy_g", "title": "Acheter les gants", "order": 1,
                             "style": "default"}])]),
    ("media as a link", Reply(text="Nouveau", media=[Media(kind="image", url="https://cdn/p.jpg",
                                                           caption="La collection")]), None,
     [{"type": "text", "body": "Nouveau\n\nLa collection\nhttps://cdn/p.jpg"}]),
]


@pytest.mark.parametrize("label,reply,caps,expected", SEND, ids=[c[0] for c in SEND])
async def test_apple_send_table(label, reply, caps, expected, provider, http):
    CAPABILITIES.pop(("demo", "apple-main", USER), None)
    if caps is not None:
        remember(("demo", "apple-main", USER), frozenset(caps.split(",")))
    ch = channel(provider, http)
    payloads = ch.render(reply)
    results = [await ch.send(USER, p, key=f"in-1:0:{i}") for i, p in enumerate(payloads)]
    assert [r.status for r in results] == ["sent"] * len(expected)
    assert len(provider.requests) == len(expected)
    for req, want, res in zip(provider.requests, expected, results):
        mid = res.provider_id
        assert uuid.UUID(mid)
        assert req["method"] == "POST" and req["path"] == "/v1/message"
        h = req["headers"]
        assert (h["id"], h["Source-Id"], h["Destination-Id"]) == (mid, BIZ, USER)
        assert h["auto-reply"] == "true"
        assert h["Content-Type"] == "application/json"
        assert h["Authorization"].startswith("Bearer ")
        claims = jwt.decode(h["Authorization"][7:], SECRET_BYTES, issuer=MSP, max_age=60)
        assert claims["iss"] == MSP and abs(claims["iat"] - time.time()) < 60
        sent = json.loads(req["body"])
        assert {k: sent.pop(k) for k in ("id", "sourceId", "destinationId", "v")} == {
            "id": mid, "sourceId": BIZ, "destinationId": USER, "v": 1}
        if sent["type"] == "interactive":      # the request id is our message id
            assert sent["interactiveData"]["data"].pop("requestIdentifier") == mid
        assert sent == want


async def test_apple_agent_reply_is_not_auto_reply_and_gzip(provider, http):
    ch = channel(provider, http, gzip=True)
    [p] = ch.render(Reply(text="Bonjour, ici Léa", from_agent="lea"))
    assert (await ch.send(USER, p, key="k")).status == "sent"
    [req] = provider.requests
    assert "auto-reply" not in req["headers"]
    assert req["headers"]["Content-Encoding"] == "gzip"
    # aiohttp's server inflates a gzip request body itself: it read valid gzip
    assert json.loads(req["body"])["body"] == "Bonjour, ici Léa"


async def test_apple_retries_use_the_same_message_id(provider, http):
    provider.answer(503)
    provider.answer(429, headers={"Retry-After": "0"})
    provider.answer(200)
    ch = channel(provider, http)
    [p] = ch.render(Reply(text="x"))
    res = await ch.send(USER, p, key="k")
    assert res.status == "sent"
    assert len({r["headers"]["id"] for r in provider.requests}) == 1
    assert len(provider.requests) == 3


ERRORS = [
    ("500 three times", [500, 500, 500], ("retry", "500"), 3),
    ("400", [400], ("failed", "bad_request"), 1),
    ("401", [401], ("failed", "unauthorized"), 1),
    ("403", [403], ("failed", "forbidden"), 1),
    ("404 unknown destination", [404], ("failed", "unknown_destination"), 1),
]


@pytest.mark.parametrize("label,statuses,expected,n", ERRORS, ids=[c[0] for c in ERRORS])
async def test_apple_provider_errors(label, statuses, expected, n, provider, http):
    for s in statuses:
        provider.answer(s)
    ch = channel(provider, http)
    res = await ch.send(USER, ch.render(Reply(text="x"))[0], key="k")
    assert (res.status, res.code) == expected
    assert len(provider.requests) == n


async def test_apple_timeouts_are_retried_then_reported(provider, http):
    provider.answer(200, delay=2)
    provider.answer(200, delay=2)
    ch = channel(provider, http, timeout=0.2, attempts=2)
    res = await ch.send(USER, ch.render(Reply(text="x"))[0], key="k")
    assert (res.status, res.code) == ("retry", "timeout")
    assert len(provider.requests) == 2
