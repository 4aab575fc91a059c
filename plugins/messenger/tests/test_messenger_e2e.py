"""Messenger end to end: the whole gateway on 127.0.0.1 with the demo tenant and a Facebook
Page added; signed webhooks in, the bot's replies and the handover at a fake Graph API."""
from __future__ import annotations

import json

import pytest
from causette_messenger.channel import PAGE_INBOX_APP_ID

from gateway.channels import sha256_signature as signature
from gateway.conformance import FakeProvider

SECRET = "e2e-app-secret"
PAGE = "104293835684410"
PSID = "6789012345678901"


@pytest.fixture
async def graph():
    n = 0

    def ok(request):
        nonlocal n
        n += 1
        if request.path.endswith("_thread_control"):
            return 200, {"success": True}
        return 200, {"recipient_id": PSID, "message_id": f"m_out{n}"}

    async with FakeProvider(default=ok) as fake:
        yield fake


BOT_APP = "263902037430900"


def with_messenger(tenant: dict, graph: FakeProvider) -> dict:
    tenant["channels"].append({"id": "fb", "type": "messenger", "settings": {
        "page_id": PAGE, "page_access_token": "EAAB-e2e-token", "app_secret": SECRET,
        "verify_token": "e2e-verify", "page_username": "maisonlumiere", "app_id": BOT_APP,
        "api_base": graph.url, "attempts": 2}})
    tenant["plugins"]["messenger"] = {}   # a channel's plugin is enabled with it
    return tenant


def body(*events, standby=(), ts=1764147600123) -> bytes:
    entry = {"id": PAGE, "time": 1764147600500, "messaging": [
        {"sender": {"id": PSID}, "recipient": {"id": PAGE}, "timestamp": ts + i, **e}
        for i, e in enumerate(events)]}
    if standby:
        entry["standby"] = [{"sender": {"id": PSID}, "recipient": {"id": PAGE},
                             "timestamp": 1764147600999, **e} for e in standby]
    return json.dumps({"object": "page", "entry": [entry]}).encode()


def text(mid, t):
    return {"message": {"mid": mid, "text": t}}


def quick(mid, title, payload):
    return {"message": {"mid": mid, "text": title, "quick_reply": {"payload": payload}}}


async def post(gw, raw: bytes, secret: str | None = SECRET):
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Hub-Signature-256"] = signature(secret, raw)
    async with gw.http.post(f"{gw.url}/t/demo/channels/fb", data=raw, headers=headers) as r:
        return r.status


def messages(graph):
    return [r.json() for r in graph.requests if r.path.endswith("/messages")]


def shown(req):
    m = req["message"]
    return [m.get("text"), *[q["title"] for q in m.get("quick_replies", [])]]


async def test_demo_flow_over_messenger(gateway, demo_tenant, graph):
    gw = await gateway(tenants=[with_messenger(demo_tenant, graph)])
    assert await post(gw, body(text("m_in1", "promo"))) == 200
    reqs = messages(graph)
    assert reqs[0]["message"]["text"].startswith("Bonjour")
    assert shown(reqs[1]) == ["Pour qui cherchez-vous ?", "Femme", "Homme", "Enfant"]
    assert [q["payload"] for q in reqs[1]["message"]["quick_replies"]] == ["women", "men", "kids"]
    assert reqs[1]["recipient"] == {"id": PSID} and reqs[1]["messaging_type"] == "RESPONSE"
    r = graph.requests[0]
    assert (r.path, r.headers["Authorization"]) == (f"/v21.0/{PAGE}/messages", "Bearer EAAB-e2e-token")

    # the quick reply, delivered twice: one answer; our own echo: nothing
    tapped = body(quick("m_in2", "Homme", "men"))
    assert await post(gw, tapped) == 200
    assert await post(gw, tapped) == 200
    assert await post(gw, body({"message": {"mid": "m_out2", "is_echo": True, "text": "Pour qui ?"}})) == 200
    assert [shown(x) for x in messages(graph)[2:]] == [
        ["Quel est votre budget ?", "Moins de 50 €", "50 à 150 €", "Plus de 150 €"]]

    # delivery and read receipts are recorded, never answered
    n = len(graph.requests)
    assert await post(gw, body({"delivery": {"mids": ["m_out1"], "watermark": 1764147601000}},
                               {"read": {"watermark": 1764147602000}})) == 200
    assert len(graph.requests) == n
    await gw.flush_events()
    events = await gw.store.list_events("demo")
    assert {"delivered", "read"} <= {e.data.get("status") for e in events if e.type == "message.status"}


async def test_m_me_ref_starts_the_referral_flow(gateway, demo_tenant, graph):
    gw = await gateway(tenants=[with_messenger(demo_tenant, graph)])
    rt = await gw.registry.get("demo")
    assert rt.channels["fb"].contact_link("soldes-sms") == "https://m.me/maisonlumiere?ref=soldes-sms"
    assert await post(gw, body({"postback": {"mid": "m_gs", "title": "Démarrer", "payload": "GET_STARTED",
                                             "referral": {"ref": "soldes-sms", "source": "SHORTLINK",
                                                          "type": "OPEN_THREAD"}}})) == 200
    assert shown(messages(graph)[-1])[0] == "Pour qui cherchez-vous ?"


async def test_handoff_passes_the_thread_to_the_page_inbox(gateway, demo_tenant, graph):
    gw = await gateway(tenants=[with_messenger(demo_tenant, graph)])
    assert await post(gw, body(text("h1", "soldes"))) == 200
    # answers nothing the bot understands at "who": after the retries, the advisor node
    for i in range(3):
        assert await post(gw, body(text(f"h{i + 2}", "qwxz"))) == 200
    await gw.pipeline.drain()
    control = [r for r in graph.requests if r.path.endswith("pass_thread_control")]
    assert len(control) == 1
    assert control[0].json()["recipient"] == {"id": PSID}
    assert control[0].json()["target_app_id"] == int(PAGE_INBOX_APP_ID)
    assert json.loads(control[0].json()["metadata"])["queue"] == "sales"
    # the handoff text goes out while the bot's app still owns the thread, then the thread
    # is passed: Meta may refuse sends from an app that has given the thread away
    order = [("pass" if r.path.endswith("pass_thread_control") else r.json()["message"].get("text", ""))
             for r in graph.requests]
    assert "conseiller" in order[-2] and order[-1] == "pass"
    # while the inbox owns the thread, the customer's messages come as standby: no bot answer
    n = len(graph.requests)
    assert await post(gw, body(standby=[text("h9", "allo ?")])) == 200
    assert len(graph.requests) == n
    # the agent is done: the inbox passes the thread back to the bot's app, the bot is back
    back = {"pass_thread_control": {"new_owner_app_id": BOT_APP,
                                    "previous_owner_app_id": PAGE_INBOX_APP_ID, "metadata": "done"}}
    assert await post(gw, body(back)) == 200
    assert await post(gw, body(back)) == 200          # Meta delivering it again: released once
    session = await gw.pipeline.state.load_session("demo", "fb", PSID)
    assert session.human == ""
    assert await post(gw, body(text("h10", "soldes"))) == 200
    assert any("Pour qui cherchez-vous" in t for t in
               (m["message"].get("text", "") for m in messages(graph)[-3:]))
    # a handback for a conversation no agent holds releases nothing
    later = {"pass_thread_control": {"new_owner_app_id": BOT_APP, "previous_owner_app_id": PAGE_INBOX_APP_ID}}
    assert await post(gw, body(later, ts=1764147699000)) == 200
    assert not [r for r in graph.requests if r.path.endswith("take_thread_control")]   # we own it already
    # an agent of ours takes over and releases through the admin API: the thread is taken back,
    # and that is recorded with the release
    base = "/tenants/demo/conversations/fb/" + PSID
    assert (await gw.admin("POST", base + "/takeover", {"agent": "julie"}))[0] == 200
    status, _, conv = await gw.admin("POST", base + "/release", {"agent": "julie"})
    assert status == 200 and [e["type"] for e in conv["events"]] == ["handoff.released", "handover.taken"]
    assert len([r for r in graph.requests if r.path.endswith("take_thread_control")]) == 1
    await gw.flush_events()
    released = [e for e in await gw.store.list_events("demo", limit=500) if e.type == "handoff.released"]
    assert [e.data["agent"] for e in released] == ["messenger:inbox", "julie"]


@pytest.mark.parametrize("label,secret", [("no signature", None), ("wrong secret", "not-the-secret")])
async def test_bad_signature_is_refused_and_changes_nothing(gateway, demo_tenant, graph, label, secret):
    gw = await gateway(tenants=[with_messenger(demo_tenant, graph)])
    before = set(await gw.redis.keys("cst:*"))
    assert await post(gw, body(text("m_bad", "promo")), secret=secret) == 403
    assert graph.requests == []
    assert set(await gw.redis.keys("cst:*")) == before


async def test_handshake_through_the_gateway(gateway, demo_tenant, graph):
    gw = await gateway(tenants=[with_messenger(demo_tenant, graph)])
    q = {"hub.mode": "subscribe", "hub.challenge": "CHALLENGE_ACCEPTED", "hub.verify_token": "e2e-verify"}
    async with gw.http.get(f"{gw.url}/t/demo/channels/fb", params=q) as r:
        assert (r.status, await r.text()) == (200, "CHALLENGE_ACCEPTED")


async def test_an_instagram_webhook_is_answered_and_dropped(gateway, demo_tenant, graph):
    # Instagram is not supported yet (messenger.md): its entry names the IG account, which is
    # not the instance's page_id, so nothing runs and nothing is sent.
    gw = await gateway(tenants=[with_messenger(demo_tenant, graph)])
    ig = json.dumps({"object": "instagram", "entry": [{"id": "17841400000000001", "time": 1764147600500,
                     "messaging": [{"sender": {"id": "1234567890123456"}, "recipient": {"id": "17841400000000001"},
                                    "timestamp": 1764147600123, "message": {"mid": "ig_1", "text": "soldes"}}]}]}).encode()
    assert await post(gw, ig) == 200
    await gw.pipeline.drain()
    assert graph.requests == []
    assert await gw.redis.keys("cst:{demo}:c:fb:*") == []
