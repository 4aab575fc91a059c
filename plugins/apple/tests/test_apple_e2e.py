"""Messages for Business end to end: the whole gateway on 127.0.0.1, JWT-signed MSP webhooks
in, the bot's replies at a fake MSP gateway, shaped by the device's capability-list."""
from __future__ import annotations

import base64
import json
import time

import pytest
from causette_apple import jwt
from causette_apple.channel import CAPABILITIES

MSP = "3f9a2c1e-6b7d-4e8f-9a0b-1c2d3e4f5a6b"
KEY = b"e2e-msp-secret-0123456789abcdefg"
BIZ = "a884eddf-1234-4abc-9def-1234567890ab"
USER = "urn:mbid:AQAAe2e-user"

QUIZ = {
    "format": 1, "id": "quiz", "name": "Quiz", "engine": "tree", "locale": "fr",
    "triggers": [{"type": "start"}], "start": "hello",
    "nodes": {
        "hello": {"type": "message", "text": "Bonjour !", "next": "pick"},
        "pick": {"type": "choice", "text": "Femme ou homme ?", "save_as": "category",
                 "choices": [{"id": "w", "title": "Femme", "next": "done"},
                             {"id": "m", "title": "Homme", "next": "done"}]},
        "done": {"type": "end", "outcome": "converted", "text": "Merci, c'est noté."},
    },
}


def tenant(provider):
    return {"slug": "apple-shop", "name": "Apple shop", "locale": "fr", "plugins": {"tree": {}, "apple": {}},
            "channels": [{"id": "apple-main", "type": "apple", "settings": {
                "msp_id": MSP, "secret": base64.b64encode(KEY).decode(), "business_id": BIZ,
                "api_base": provider.url, "attempts": 2}}],
            "flows": [QUIZ]}


def signed(body: dict, caps: str | None, key: bytes = KEY) -> tuple[bytes, dict[str, str]]:
    h = {"Content-Type": "application/json", "id": body["id"], "source-id": USER,
         "destination-id": BIZ, "device-agent": "iPhone OS",
         "Authorization": "Bearer " + jwt.encode({"aud": MSP, "iat": int(time.time())}, key)}
    if caps is not None:
        h["capability-list"] = caps
    return json.dumps(body).encode(), h


def text(mid: str, t: str) -> dict:
    return {"id": mid, "type": "text", "v": 1, "sourceId": USER, "destinationId": BIZ, "body": t,
            "locale": "fr_FR"}


async def post(gw, body, headers):
    async with gw.http.post(f"{gw.url}/t/apple-shop/channels/apple-main", data=body,
                            headers=headers) as r:
        return r.status, await r.text()


@pytest.fixture(autouse=True)
def _forget_capabilities():
    CAPABILITIES.clear()
    yield
    CAPABILITIES.clear()


async def test_apple_conversation_with_quick_replies(gateway, provider):
    gw = await gateway(tenants=[tenant(provider)])
    assert (await post(gw, *signed(text("m-1", "Bonjour"), "QUICK,LIST,TIME")))[0] == 200
    sent = [json.loads(r["body"]) for r in provider.requests]
    assert [s["type"] for s in sent] == ["text", "interactive"]
    assert sent[0]["body"] == "Bonjour !"
    quick = sent[1]["interactiveData"]["data"]["quick-reply"]
    assert quick == {"summaryText": "Femme ou homme ?", "items": [
        {"identifier": "w", "title": "Femme"}, {"identifier": "m", "title": "Homme"}]}
    for r in provider.requests:
        assert (r["headers"]["Source-Id"], r["headers"]["Destination-Id"]) == (BIZ, USER)
        assert jwt.decode(r["headers"]["Authorization"][7:], KEY, issuer=MSP, max_age=60)

    answer = {"id": "m-2", "type": "interactive", "v": 1, "sourceId": USER, "destinationId": BIZ,
              "interactiveData": {"bid": "x", "data": {"version": "1.0", "requestIdentifier":
                                  sent[1]["id"], "quick-reply": {"selectedIdentifier": "w",
                                                                 "selectedIndex": 0}}}}
    assert (await post(gw, *signed(answer, "QUICK,LIST,TIME")))[0] == 200
    assert json.loads(provider.requests[-1]["body"])["body"] == "Merci, c'est noté."


async def test_apple_device_without_quick_replies_gets_numbered_text(gateway, provider):
    gw = await gateway(tenants=[tenant(provider)])
    assert (await post(gw, *signed(text("m-1", "Bonjour"), "TIME")))[0] == 200
    assert [json.loads(r["body"])["body"] for r in provider.requests] == [
        "Bonjour !", "Femme ou homme ?\n1. Femme\n2. Homme"]
    assert (await post(gw, *signed(text("m-2", "2"), "TIME")))[0] == 200
    assert json.loads(provider.requests[-1]["body"])["body"] == "Merci, c'est noté."


@pytest.mark.parametrize("label", ["wrong key", "no Authorization"])
async def test_apple_unsigned_webhook_is_refused(gateway, provider, label):
    gw = await gateway(tenants=[tenant(provider)])
    body, headers = signed(text("m-1", "Bonjour"), "QUICK", key=b"not-the-secret")
    if label == "no Authorization":
        headers.pop("Authorization")
    assert (await post(gw, body, headers))[0] == 403
    assert provider.requests == []
    assert ("apple-shop", "apple-main", USER) not in CAPABILITIES


async def test_apple_our_own_outbound_token_is_refused_inbound(gateway, provider):
    """Inbound tokens must carry aud = MSP id. The tokens Causette signs for Apple carry
    iss = MSP id with the same secret: taking iss for aud made each of them a valid inbound
    token for max_token_age, for anyone who saw one."""
    gw = await gateway(tenants=[tenant(provider)])
    assert (await post(gw, *signed(text("m-1", "Bonjour"), "QUICK,LIST,TIME")))[0] == 200
    sent_auth = provider.requests[0]["headers"]["Authorization"]     # what went to Apple
    assert "aud" not in jwt.decode(sent_auth[7:], KEY, issuer=MSP, max_age=60)
    n = len(provider.requests)

    body, headers = signed(text("m-2", "Homme"), "QUICK,LIST,TIME")
    for label, auth in [
            ("replayed outbound token", sent_auth),
            ("built like one", "Bearer " + jwt.encode({"iss": MSP, "iat": int(time.time())}, KEY))]:
        status, answer = await post(gw, body, dict(headers, Authorization=auth))
        assert status == 403, (label, answer)
    assert len(provider.requests) == n                 # nothing ran, nothing was sent
    # the same message with aud = MSP id passes, and the conversation goes on from where it was
    assert (await post(gw, body, headers))[0] == 200
    assert json.loads(provider.requests[-1]["body"])["body"] == "Merci, c'est noté."


async def test_apple_close_is_an_optout(gateway, provider):
    gw = await gateway(tenants=[tenant(provider)])
    close = {"id": "m-9", "type": "close", "v": 1, "sourceId": USER, "destinationId": BIZ}
    assert (await post(gw, *signed(close, None)))[0] == 200
    assert provider.requests == []
    await gw.flush_events()
    assert any(e.type == "consent.optout" for e in await gw.store.list_events("apple-shop"))


async def test_apple_demo_tenant_runs_its_flow(gateway, provider, demo_tenant):
    demo_tenant["plugins"]["apple"] = {}
    demo_tenant["channels"].append(dict(tenant(provider)["channels"][0], id="apple"))
    gw = await gateway(tenants=[demo_tenant])
    url = f"{gw.url}/t/demo/channels/apple"
    body, headers = signed(text("d-1", "soldes"), "QUICK,LIST")
    async with gw.http.post(url, data=body, headers=headers) as r:
        assert r.status == 200
    sent = [json.loads(r["body"]) for r in provider.requests]
    assert sent[0]["body"].startswith("Bonjour")
    quick = sent[1]["interactiveData"]["data"]["quick-reply"]
    assert quick["summaryText"] == "Pour qui cherchez-vous ?"
    assert [i["identifier"] for i in quick["items"]] == ["women", "men", "kids"]
    answer = {"id": "d-2", "type": "interactive", "v": 1, "sourceId": USER, "destinationId": BIZ,
              "interactiveData": {"bid": "x", "data": {"version": "1.0", "requestIdentifier": "r",
                                  "quick-reply": {"selectedIdentifier": "men"}}}}
    body, headers = signed(answer, "QUICK,LIST")
    async with gw.http.post(url, data=body, headers=headers) as r:
        assert r.status == 200
    last = json.loads(provider.requests[-1]["body"])
    assert last["interactiveData"]["data"]["quick-reply"]["summaryText"] == "Quel est votre budget ?"


async def test_apple_capabilities_reach_other_processes_through_redis(gateway, provider):
    from causette_apple.channel import caps_key, settle
    gw = await gateway(tenants=[tenant(provider)])
    assert (await post(gw, *signed(text("m-1", "Bonjour"), "LIST,QUICK")))[0] == 200
    await settle()
    assert await gw.redis.get(caps_key("apple-shop", "apple-main", USER)) == b"LIST,QUICK"
    CAPABILITIES.clear()              # as in another process, or after a restart
    provider.requests.clear()
    rt = await gw.registry.get("apple-shop")
    assert await gw.pipeline.start_flow(rt, rt.channels["apple-main"], USER, "quiz", key="camp-1")
    assert [json.loads(r["body"])["type"] for r in provider.requests] == ["text", "interactive"]


async def test_apple_provider_outage_is_reported_and_the_conversation_goes_on(gateway, provider):
    gw = await gateway(tenants=[tenant(provider)])
    for _ in range(2):       # the first reply x 2 attempts; the second waits behind it, in order
        provider.answer(503)
    assert (await post(gw, *signed(text("m-1", "Bonjour"), "TIME")))[0] == 200
    await gw.flush_events()
    retries = [e for e in await gw.store.list_events("apple-shop") if e.type == "send.retry"]
    assert [e.data["code"] for e in retries] == ["503"]
    assert (await post(gw, *signed(text("m-2", "Femme"), "TIME")))[0] == 200
    assert json.loads(provider.requests[-1]["body"])["body"] == "Merci, c'est noté."


async def test_apple_gzip_body_with_its_header_is_read_over_http(gateway, provider):
    # Apple may gzip what it posts and say so; the HTTP server inflates such a body first.
    import gzip
    gw = await gateway(tenants=[tenant(provider)])
    raw, headers = signed(text("m-gz", "Bonjour"), "QUICK,LIST,TIME")
    status, answer = await post(gw, gzip.compress(raw), {**headers, "Content-Encoding": "gzip"})
    assert status == 200, answer
    assert json.loads(provider.requests[0]["body"])["body"] == "Bonjour !"
    # and a body gzipped without the header is still sniffed
    raw, headers = signed(text("m-gz2", "Bonjour"), "QUICK,LIST,TIME")
    assert (await post(gw, gzip.compress(raw), headers))[0] == 200
