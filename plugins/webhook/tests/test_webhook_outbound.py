"""Outbound: rendering within the capabilities, and sends to a callback on 127.0.0.1."""
from __future__ import annotations

import json

import aiohttp
import msgspec
import pytest

from causette_webhook import Settings, WebhookChannel, sign
from gateway.conformance import FakeProvider
from gateway.types import Card, Choice, Reply

SECRET = "s3cret"


@pytest.fixture
async def callback():
    """The brand's endpoint: the conformance kit's fake provider (records each request,
    answers from a script)."""
    async with FakeProvider() as fake:
        yield fake


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as s:
        yield s


def channel(http=None, **settings) -> WebhookChannel:
    return WebhookChannel("acme", "hook", msgspec.convert({"secret": SECRET, **settings}, Settings), http)


RENDER = [
    ("text", Reply(text="Bonjour"), [{"text": "Bonjour"}]),
    ("buttons", Reply(text="Pick", choices=[Choice(id="w", title="Femme"), Choice(id="m", title="Homme")]),
     [{"text": "Pick", "choices": [{"id": "w", "title": "Femme"}, {"id": "m", "title": "Homme"}]}]),
    ("too many buttons become numbered options",
     Reply(text="Pick", choices=[Choice(id=str(i), title=f"T{i}") for i in range(11)]),
     [{"text": "Pick\n" + "\n".join(f"{i + 1}. T{i}" for i in range(11))}]),
    ("long button titles clipped", Reply(text="x", choices=[Choice(id="a", title="A" * 50)]),
     [{"text": "x", "choices": [{"id": "a", "title": "A" * 39 + "…"}]}]),
    ("long text split, buttons on the last part",
     Reply(text=("word " * 1000).strip(), choices=[Choice(id="a", title="A")]), "split"),
    ("cards beyond ten make a second carousel",
     Reply(cards=[Card(title=f"c{i}") for i in range(12)]),
     [{"cards": [{"title": f"c{i}"} for i in range(10)]}, {"cards": [{"title": "c10"}, {"title": "c11"}]}]),
    ("card buttons capped at three",
     Reply(cards=[Card(title="c", buttons=[Choice(id=str(i), title=str(i)) for i in range(5)])]),
     [{"cards": [{"title": "c", "buttons": [{"id": str(i), "title": str(i)} for i in range(3)]}]}]),
]


@pytest.mark.parametrize("label,reply,expected", RENDER, ids=[r[0] for r in RENDER])
def test_render(label, reply, expected):
    out = msgspec.to_builtins(channel().render(reply))
    if expected == "split":
        assert len(out) == 2
        assert all(len(p["text"]) <= 4096 for p in out)
        assert "choices" not in out[0] and out[1]["choices"] == [{"id": "a", "title": "A"}]
        assert " ".join(p["text"] for p in out) == reply.text
    else:
        assert out == expected


async def test_send_posts_a_signed_reply_with_idempotency_key(callback, http):
    callback.answer(200, {"id": "brand-42"})
    ch = channel(http, callback_url=callback.url + "/cb")
    payload = ch.render(Reply(text="Hi", choices=[Choice(id="a", title="A")]))[0]
    res = await ch.send("u1", payload, key="m1:0:0")
    assert res.status == "sent" and res.provider_id == "brand-42"
    (req,) = callback.requests
    assert req["headers"]["X-Causette-Signature"] == sign(SECRET, req["body"])
    assert req["headers"]["Idempotency-Key"] == "m1:0:0"
    assert json.loads(req["body"]) == {"to": "u1", "key": "m1:0:0",
                                       "reply": {"text": "Hi", "choices": [{"id": "a", "title": "A"}]}}


SEND = [
    ("retry on 500 then sent", [(500, {}, {}), (200, {}, {})], "sent", 2, ""),
    ("429 with short Retry-After then sent", [(429, {}, {"Retry-After": "0"}), (200, {}, {})], "sent", 2, ""),
    ("429 with long Retry-After handed back", [(429, {}, {"Retry-After": "120"})], "retry", 1, "429"),
    ("5xx three times", [(503, {}, {})] * 3, "retry", 3, "503"),
    ("410 means the contact is gone", [(410, {}, {})], "stopped", 1, "410"),
    ("400 is final", [(400, {"error": "bad"}, {})], "failed", 1, "400"),
]


@pytest.mark.parametrize("label,answers,status,calls,code", SEND, ids=[s[0] for s in SEND])
async def test_send_outcomes(callback, http, label, answers, status, calls, code):
    for st, body, headers in answers:
        callback.answer(st, body, headers)
    ch = channel(http, callback_url=callback.url + "/cb", retry_wait_cap=1.0)
    res = await ch.send("u1", Reply(text="x"), key="k")
    assert res.status == status
    assert len(callback.requests) == calls
    assert res.code == code
    # every retry of one reply carries the same idempotency key
    assert {r["headers"]["Idempotency-Key"] for r in callback.requests} == {"k"}


async def test_send_timeout_is_retried_then_handed_back(callback, http):
    for _ in range(2):
        callback.answer(200, {}, {}, delay=1.0)
    ch = channel(http, callback_url=callback.url + "/cb", timeout=0.1, attempts=2)
    res = await ch.send("u1", Reply(text="x"), key="k")
    assert res.status == "retry" and res.code == "timeout"


async def test_send_connection_refused_is_retry(http):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ch = channel(http, callback_url=f"http://127.0.0.1:{port}/cb", attempts=1)
    res = await ch.send("u1", Reply(text="x"), key="k")
    assert res.status == "retry" and res.code == "connection"


async def test_send_without_callback_fails_cleanly():
    res = await channel().send("u1", Reply(text="x"), key="k")
    assert res.status == "failed" and res.code == "no_callback"


async def test_secret_never_reaches_the_callback_or_logs(callback, http, caplog):
    callback.answer(500)
    callback.answer(400, {"error": "no"})
    ch = channel(http, callback_url=callback.url + "/cb")
    res = await ch.send("u1", Reply(text="x"), key="k")
    assert SECRET not in repr(res)
    assert all(SECRET.encode() not in r["body"] and SECRET not in json.dumps(r["headers"])
               for r in callback.requests)
    assert SECRET not in caplog.text
