"""The webhook channel through the whole gateway: real Redis, real HTTP, the tree engine."""
from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from causette_webhook import sign

SECRET = "e2e-webhook-secret"


def brand(**settings):
    return {
        "slug": "acme", "name": "Acme", "locale": "fr", "plugins": {"tree": {}, "webhook": {}},
        "channels": [{"id": "app", "type": "webhook", "settings": {"secret": SECRET, **settings}}],
        "flows": [{
            "format": 1, "id": "hello", "name": "Hello", "engine": "tree", "locale": "fr",
            "triggers": [{"type": "keyword", "any": ["bonjour"]}, {"type": "start"}],
            "start": "pick",
            "nodes": {
                "pick": {"type": "choice", "text": "Que cherchez-vous ?", "save_as": "category",
                         "choices": [{"id": "w", "title": "Femme", "next": "done"},
                                     {"id": "m", "title": "Homme", "next": "done"}]},
                "done": {"type": "end", "outcome": "converted", "text": "Merci ({{category}}) !"}}}],
    }


async def post(gw, payload, secret=SECRET, raw=None):
    raw = raw if raw is not None else json.dumps(payload).encode()
    async with gw.http.post(gw.url + "/t/acme/channels/app", data=raw,
                            headers={"Content-Type": "application/json",
                                     "X-Causette-Signature": sign(secret, raw)}) as r:
        return r.status, (await r.json() if r.content_type == "application/json" else await r.text())


async def test_inline_conversation_with_buttons(gateway):
    gw = await gateway(tenants=[brand()])
    status, replies = await post(gw, {"id": "m1", "from": "c1", "text": "bonjour"})
    assert status == 200
    assert replies == [{"text": "Que cherchez-vous ?",
                        "choices": [{"id": "w", "title": "Femme"}, {"id": "m", "title": "Homme"}]}]
    status, replies = await post(gw, {"id": "m2", "from": "c1", "text": "Femme", "payload": "w"})
    assert status == 200 and replies == [{"text": "Merci (w) !"}]


async def test_bad_signature_and_bad_body_change_nothing(gateway):
    gw = await gateway(tenants=[brand()])
    status, _ = await post(gw, {"id": "m1", "from": "c1", "text": "bonjour"}, secret="wrong")
    assert status == 401
    status, text = await post(gw, None, raw=b'{"from": "c1"}')
    assert status == 400 and "id" in text
    assert await gw.redis.keys("cst:{acme}:c:*") == []
    # the refused message id was not remembered: the genuine delivery still gets its answer
    status, replies = await post(gw, {"id": "m1", "from": "c1", "text": "bonjour"})
    assert status == 200 and replies[0]["text"] == "Que cherchez-vous ?"


async def test_retried_delivery_answers_once(gateway):
    gw = await gateway(tenants=[brand()])
    body = {"id": "same", "from": "c2", "text": "bonjour"}
    results = await asyncio.gather(*(post(gw, body) for _ in range(3)))
    assert all(s == 200 for s, _ in results)
    answered = [r for _, r in results if r]
    assert len(answered) == 1 and answered[0][0]["text"] == "Que cherchez-vous ?"


async def test_callback_mode_posts_signed_replies(gateway):
    got: list[tuple[dict, bytes]] = []

    async def cb(request: web.Request) -> web.Response:
        raw = await request.read()
        got.append((dict(request.headers), raw))
        return web.json_response({"id": f"brand-{len(got)}"})
    app = web.Application()
    app.router.add_post("/cb", cb)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        gw = await gateway(tenants=[brand(callback_url=str(server.make_url("/cb")))])
        status, replies = await post(gw, {"id": "m1", "from": "c3", "text": "bonjour"})
        assert status == 200 and replies == []
        (headers, raw), = got
        assert headers["X-Causette-Signature"] == sign(SECRET, raw)
        assert headers["Idempotency-Key"] == "m1:0:0"
        assert json.loads(raw)["to"] == "c3"
        assert json.loads(raw)["reply"]["text"] == "Que cherchez-vous ?"
        await gw.flush_events()
        outs = await gw.store.list_events("acme", type="message.out")
        assert [e.data.get("provider_id") for e in outs] == ["brand-1"]
    finally:
        await server.close()


@pytest.mark.parametrize("secret_field", ["secret", "previous_secret"])
async def test_secrets_are_write_only(gateway, secret_field):
    t = brand(**({"previous_secret": "old-secret-value"} if secret_field == "previous_secret" else {}))
    gw = await gateway(tenants=[t])
    async with gw.http.get(gw.url + "/admin/v1/tenants/acme/channels", headers=gw.admin_headers) as r:
        text = await r.text()
    assert r.status == 200
    assert SECRET not in text and "old-secret-value" not in text


async def test_an_agent_reply_on_an_inline_instance_needs_a_callback_url(gateway):
    gw = await gateway(tenants=[brand()])
    status, _ = await post(gw, {"id": "m1", "from": "c1", "text": "bonjour"})
    assert status == 200
    async with gw.http.post(gw.url + "/admin/v1/tenants/acme/conversations/app/c1/reply",
                            json={"agent": "julie", "text": "Bonjour, ici Julie."},
                            headers=gw.admin_headers) as r:
        assert r.status == 200
        conv = await r.json()
    [event] = conv["events"]
    assert (event["type"], event["data"]["code"]) == ("send.failed", "no_callback")
    assert event["data"]["detail"].startswith("no callback_url and no open webhook request")
