"""RBM end to end: the whole gateway on 127.0.0.1, signed Pub/Sub webhooks in, the bot's
replies at a fake RBM API; the 404 fallback through another channel instance."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

TOKEN = "e2e-client-token"
PHONE = "+33612345678"

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


def tenant(provider, **rcs_settings):
    settings = {"agent_id": "demo-bot@rbm.goog", "client_token": TOKEN,
                "access_token": "ya29.e2e-token", "api_base": provider.url, "attempts": 2}
    settings.update(rcs_settings)
    return {"slug": "rcs-shop", "name": "RCS shop", "locale": "fr", "plugins": {"tree": {}, "rcs": {}},
            "channels": [{"id": "rcs-main", "type": "rcs", "settings": settings},
                         {"id": "rcs-backup", "type": "rcs",
                          "settings": {"agent_id": "backup-bot@rbm.goog", "client_token": TOKEN,
                                       "access_token": "ya29.backup", "api_base": provider.url}}],
            "flows": [QUIZ]}


def signed(payload: dict, token: str = TOKEN) -> tuple[bytes, dict[str, str]]:
    data = json.dumps(payload).encode()
    body = json.dumps({"message": {"data": base64.b64encode(data).decode(), "messageId": "1",
                                   "publishTime": "2026-11-26T09:00:00Z"},
                       "subscription": "projects/p/subscriptions/s"}).encode()
    sig = base64.b64encode(hmac.new(token.encode(), data, hashlib.sha512).digest()).decode()
    return body, {"X-Goog-Signature": sig, "Content-Type": "application/json"}


def user_message(mid: str, **content) -> dict:
    return {"senderPhoneNumber": PHONE, "messageId": mid, "sendTime": "2026-11-26T09:00:00Z",
            "agentId": "demo-bot@rbm.goog", **content}


async def post(gw, body, headers, channel="rcs-main"):
    async with gw.http.post(f"{gw.url}/t/rcs-shop/channels/{channel}", data=body,
                            headers=headers) as r:
        return r.status, await r.text()


def texts(provider):
    return [json.loads(r["body"])["contentMessage"].get("text") for r in provider.requests]


async def test_rcs_conversation_end_to_end(gateway, provider):
    gw = await gateway(tenants=[tenant(provider)])
    assert await post(gw, *signed(user_message("u1", text="salut"))) == (200, "ok")
    assert texts(provider) == ["Bonjour !", "Femme ou homme ?"]
    ask = json.loads(provider.requests[1]["body"])["contentMessage"]
    assert ask["suggestions"] == [{"reply": {"text": "Femme", "postbackData": "w"}},
                                  {"reply": {"text": "Homme", "postbackData": "m"}}]
    r = provider.requests[0]
    assert r["path"] == f"/v1/phones/{PHONE}/agentMessages"
    assert r["query"]["agentId"] == "demo-bot@rbm.goog"
    assert r["headers"]["Authorization"] == "Bearer ya29.e2e-token"

    # the tap on a suggested reply, delivered twice by Google: one answer
    tap = signed(user_message("u2", suggestionResponse={"postbackData": "w", "text": "Femme",
                                                         "type": "REPLY"}))
    assert (await post(gw, *tap))[0] == 200
    assert (await post(gw, *tap))[0] == 200
    assert texts(provider) == ["Bonjour !", "Femme ou homme ?", "Merci, c'est noté."]

    # a read receipt is recorded, not answered
    read = signed({"senderPhoneNumber": PHONE, "eventType": "READ", "eventId": "e1",
                   "messageId": provider.requests[2]["query"]["messageId"], "agentId": "x"})
    assert (await post(gw, *read))[0] == 200
    assert len(provider.requests) == 3
    await gw.flush_events()
    events = await gw.store.list_events("rcs-shop")
    assert any(e.type == "message.status" and e.data["status"] == "read" for e in events)


@pytest.mark.parametrize("label,headers", [
    ("no signature", {}),
    ("wrong token", None),
])
async def test_rcs_bad_signature_is_refused_and_changes_nothing(gateway, provider, label, headers):
    gw = await gateway(tenants=[tenant(provider)])
    body, _ = signed(user_message("u1", text="salut"))
    if headers is None:
        headers = signed(user_message("u1", text="salut"), token="not-the-token")[1]
    assert (await post(gw, body, headers))[0] == 403
    assert provider.requests == []
    assert await gw.redis.keys("cst:*rcs-shop*") == []


async def test_rcs_webhook_verification_through_the_gateway(gateway, provider):
    gw = await gateway(tenants=[tenant(provider)])
    body = json.dumps({"clientToken": TOKEN, "secret": "8675309"}).encode()
    assert await post(gw, body, {"Content-Type": "application/json"}) == (200, "8675309")
    bad = json.dumps({"clientToken": "nope", "secret": "1"}).encode()
    assert (await post(gw, bad, {}))[0] == 403


async def test_rcs_user_without_rcs_gets_the_reply_through_the_fallback_channel(gateway, provider):
    gw = await gateway(tenants=[tenant(provider, fallback_channel="rcs-backup")])
    provider.answer(404, {"error": {"code": 404, "message": "Requested entity was not found.",
                                    "status": "NOT_FOUND"}})
    assert (await post(gw, *signed(user_message("u1", text="salut"))))[0] == 200
    agents = [r["query"]["agentId"] for r in provider.requests]
    # the first reply: 404 on the main agent, then through the fallback instance
    assert agents[:2] == ["demo-bot@rbm.goog", "backup-bot@rbm.goog"]
    assert texts(provider)[1] == "Bonjour !"
    await gw.flush_events()
    events = await gw.store.list_events("rcs-shop")
    crossed = [e for e in events if e.type == "message.out" and e.data.get("fallback_from") == "rcs-main"]
    assert crossed and crossed[0].data["fallback_code"] == "not_rcs_capable"
    # the fallback's own message id, which its delivery receipts refer to
    assert crossed[0].data["provider_id"] == provider.requests[1]["query"]["messageId"]


async def test_rcs_demo_tenant_runs_its_flow(gateway, provider, demo_tenant):
    t = tenant(provider)
    demo_tenant["plugins"]["rcs"] = {}
    demo_tenant["channels"].append(dict(t["channels"][0], id="rcs"))
    gw = await gateway(tenants=[demo_tenant])

    async def say(mid, **content):
        async with gw.http.post(f"{gw.url}/t/demo/channels/rcs",
                                data=(s := signed(user_message(mid, **content)))[0],
                                headers=s[1]) as r:
            assert r.status == 200

    await say("d1", text="soldes")
    sent = [json.loads(r["body"])["contentMessage"] for r in provider.requests]
    assert sent[0]["text"].startswith("Bonjour")
    assert sent[1]["text"] == "Pour qui cherchez-vous ?"
    assert [s["reply"]["postbackData"] for s in sent[1]["suggestions"]] == ["women", "men", "kids"]
    await say("d2", suggestionResponse={"postbackData": "women", "text": "Femme", "type": "REPLY"})
    last = json.loads(provider.requests[-1]["body"])["contentMessage"]
    assert last["text"] == "Quel est votre budget ?"
    assert [s["reply"]["text"] for s in last["suggestions"]] == ["Moins de 50 €", "50 à 150 €",
                                                                 "Plus de 150 €"]


async def test_rcs_provider_outage_is_reported_and_the_conversation_goes_on(gateway, provider):
    gw = await gateway(tenants=[tenant(provider)])
    for _ in range(2):       # the first reply x 2 attempts; the second waits behind it, in order
        provider.answer(500, {"error": {"code": 500, "message": "backend error"}})
    assert (await post(gw, *signed(user_message("u1", text="salut"))))[0] == 200
    await gw.flush_events()
    retries = [e for e in await gw.store.list_events("rcs-shop") if e.type == "send.retry"]
    assert len(retries) == 1 and retries[0].data["code"] == "500"
    tap = signed(user_message("u2", suggestionResponse={"postbackData": "w", "type": "REPLY"}))
    assert (await post(gw, *tap))[0] == 200
    assert texts(provider)[-1] == "Merci, c'est noté."


async def test_rcs_a_non_rcs_phone_is_remembered_until_it_writes_over_rcs(gateway, provider):
    from causette_rcs.channel import settle
    gw = await gateway(tenants=[tenant(provider, fallback_channel="rcs-backup")])
    provider.answer(404, {"error": {"code": 404, "status": "NOT_FOUND"}})
    assert (await post(gw, *signed(user_message("u1", text="salut"))))[0] == 200
    agents = [r["query"]["agentId"] for r in provider.requests]
    # one 404 only: the second reply goes straight to the fallback
    assert agents == ["demo-bot@rbm.goog", "backup-bot@rbm.goog", "backup-bot@rbm.goog"]
    key = f"cst:{{rcs-shop}}:rcs:rcs-main:norcs:{PHONE}"
    assert await gw.redis.ttl(key) > 0
    # an RCS message from that phone: it is RCS-capable after all
    provider.requests.clear()
    tap = signed(user_message("u2", suggestionResponse={"postbackData": "w", "type": "REPLY"}))
    assert (await post(gw, *tap))[0] == 200
    await settle()
    assert not await gw.redis.exists(key)
    assert [r["query"]["agentId"] for r in provider.requests] == ["demo-bot@rbm.goog"]


async def test_an_sms_answer_after_the_fallback_lands_in_the_sms_conversation(gateway, provider):
    # The reply went out by SMS: the contact's SMS answer reaches the SMS instance, whose
    # conversation is another session: the RCS question stays unanswered there, and the
    # flow starts anew on the SMS side by its own triggers (rcs.md, "Fallback to SMS").
    twilio = pytest.importorskip("causette_sms.twilio")
    public, sid, sms_token = "https://chat.example.com", "AC0123456789abcdef0123456789abcdef", "e2e-sms-token"
    t = tenant(provider, fallback_channel="sms")
    t["plugins"]["sms"] = {}
    t["channels"].append({"id": "sms", "type": "twilio", "settings": {
        "account_sid": sid, "auth_token": sms_token, "from_number": "+33700000000", "reply_mode": "rest",
        "api_base": provider.url, "attempts": 1}})
    gw = await gateway(tenants=[t], public_url=public)
    provider.answer(404, {"error": {"code": 404, "status": "NOT_FOUND"}})
    assert (await post(gw, *signed(user_message("u1", text="salut"))))[0] == 200
    by_sms = [dict(r.form)["Body"] for r in provider.requests if r.path.endswith("/Messages.json")]
    assert by_sms == ["Bonjour !", "Femme ou homme ?\n1. Femme\n2. Homme"]

    pairs = [("MessageSid", "SM0001"), ("AccountSid", sid), ("From", PHONE), ("To", "+33700000000"),
             ("Body", "1")]
    headers = {"Content-Type": "application/x-www-form-urlencoded",
               "X-Twilio-Signature": twilio.signature(sms_token, public + "/t/rcs-shop/channels/sms", pairs)}
    async with gw.http.post(f"{gw.url}/t/rcs-shop/channels/sms", data=pairs, headers=headers) as r:
        assert r.status == 200
    by_sms = [dict(r.form)["Body"] for r in provider.requests if r.path.endswith("/Messages.json")]
    assert by_sms[2:] == ["Bonjour !", "Femme ou homme ?\n1. Femme\n2. Homme"]   # not "Merci, c'est noté."
    rcs = await gw.pipeline.state.load_session("rcs-shop", "rcs-main", PHONE)
    sms = await gw.pipeline.state.load_session("rcs-shop", "sms", PHONE)
    assert rcs.node == sms.node == "pick"            # each waits for its own answer
    assert "category" not in rcs.vars and "category" not in sms.vars
