"""WhatsApp end to end: the whole gateway on 127.0.0.1 with the demo tenant and a WhatsApp
number added; signed webhooks in, the bot's replies at a fake Graph API."""
from __future__ import annotations

import asyncio
import json
import time

import pytest

from gateway.channels import sha256_signature as signature
from gateway.conformance import FakeProvider
from gateway.flows import Step, StepResult
from gateway.hookspecs import hookimpl
from gateway.types import Reply, TemplateRef

SECRET = "e2e-app-secret"
PNID = "106540352242922"
ANA = "33612345678"


@pytest.fixture
async def graph():
    n = 0

    def ok(request):
        nonlocal n
        n += 1
        return 200, {"messaging_product": "whatsapp", "messages": [{"id": f"wamid.out{n}"}]}

    async with FakeProvider(default=ok) as fake:
        yield fake


def with_whatsapp(tenant: dict, graph: FakeProvider) -> dict:
    tenant["channels"].append({"id": "wa", "type": "whatsapp", "settings": {
        "phone_number_id": PNID, "access_token": "EAAG-e2e-token", "app_secret": SECRET,
        "verify_token": "e2e-verify", "display_phone": "+33 1 23 45 67 89",
        "api_base": graph.url, "attempts": 2}})
    tenant["plugins"]["whatsapp"] = {}    # a channel's plugin is enabled with it
    return tenant


def body(*messages, statuses=()) -> bytes:
    value = {"messaging_product": "whatsapp",
             "metadata": {"display_phone_number": "33123456789", "phone_number_id": PNID}}
    if messages:
        value["contacts"] = [{"profile": {"name": "Ana"}, "wa_id": ANA}]
        value["messages"] = list(messages)
    if statuses:
        value["statuses"] = list(statuses)
    return json.dumps({"object": "whatsapp_business_account", "entry": [
        {"id": "1022", "changes": [{"field": "messages", "value": value}]}]}).encode()


def text(mid, t):
    return {"from": ANA, "id": mid, "timestamp": "1764147600", "type": "text", "text": {"body": t}}


def tap(mid, cid, title):
    return {"from": ANA, "id": mid, "timestamp": "1764147660", "type": "interactive",
            "interactive": {"type": "button_reply", "button_reply": {"id": cid, "title": title}}}


async def post(gw, raw: bytes, secret: str | None = SECRET, tenant="demo"):
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Hub-Signature-256"] = signature(secret, raw)
    async with gw.http.post(f"{gw.url}/t/{tenant}/channels/wa", data=raw, headers=headers) as r:
        return r.status


def sent(graph):
    return [r.json() for r in graph.requests]


def shown(req: dict) -> str | list:
    """What the contact sees of one request: a text, or (body, button titles)."""
    if req["type"] == "text":
        return req["text"]["body"]
    inter = req["interactive"]
    if inter["type"] == "button":
        return [inter["body"]["text"], *[b["reply"]["title"] for b in inter["action"]["buttons"]]]
    return [inter["body"]["text"], *[r["title"] for s in inter["action"]["sections"] for r in s["rows"]]]


async def test_demo_flow_over_whatsapp(gateway, demo_tenant, graph):
    gw = await gateway(tenants=[with_whatsapp(demo_tenant, graph)])
    assert await post(gw, body(text("wamid.in1", "soldes"))) == 200
    reqs = sent(graph)
    assert len(reqs) == 2
    assert reqs[0]["text"]["body"].startswith("Bonjour") and "soldes d'hiver" in reqs[0]["text"]["body"]
    assert shown(reqs[1]) == ["Pour qui cherchez-vous ?", "Femme", "Homme", "Enfant"]
    r = graph.requests[0]
    assert (r.path, r.headers["Authorization"]) == (f"/v21.0/{PNID}/messages", "Bearer EAAG-e2e-token")
    assert reqs[1]["to"] == ANA and reqs[1]["messaging_product"] == "whatsapp"
    ids = [b["reply"]["id"] for b in reqs[1]["interactive"]["action"]["buttons"]]
    assert ids == ["women", "men", "kids"]

    # the button tap, delivered twice by Meta: one answer
    again = body(tap("wamid.in2", "women", "Femme"))
    assert await post(gw, again) == 200
    assert await post(gw, again) == 200
    assert [shown(x) for x in sent(graph)[2:]] == [
        ["Quel est votre budget ?", "Moins de 50 €", "50 à 150 €", "Plus de 150 €"]]

    # free text is matched tolerantly, like a tap
    assert await post(gw, body(text("wamid.in3", "moins de 50"))) == 200
    assert shown(sent(graph)[-1])[0].startswith("Voulez-vous recevoir un code")

    # to the end of the flow: no newsletter, the offers, "Je commande" -> converted
    assert await post(gw, body(tap("wamid.in4", "no", "Non merci"))) == 200
    buy = shown(sent(graph)[-1])
    assert buy[0] == "Ça vous tente ?" and "Je commande" in buy
    assert await post(gw, body(tap("wamid.in5", "order", "Je commande"))) == 200
    assert "Finalisez votre commande" in sent(graph)[-1]["text"]["body"]

    # statuses are recorded, never answered
    n = len(graph.requests)
    st = body(statuses=[{"id": "wamid.out1", "status": s, "timestamp": "1764147700",
                         "recipient_id": ANA} for s in ("delivered", "read")])
    assert await post(gw, st) == 200
    assert len(graph.requests) == n
    # Meta delivers a webhook again when it got no 200 in time: each status counts once
    assert await post(gw, st) == 200
    again = body(statuses=[{"id": "wamid.out1", "status": "read", "timestamp": "1764147701",
                            "recipient_id": ANA}, {"id": "wamid.out2", "status": "delivered",
                                                   "timestamp": "1764147701", "recipient_id": ANA}])
    assert await post(gw, again) == 200
    await gw.flush_events()
    events = await gw.store.list_events("demo", limit=1000)
    statuses = sorted((e.data["refers_to"], e.data["status"]) for e in events if e.type == "message.status")
    assert statuses == [("wamid.out1", "delivered"), ("wamid.out1", "read"), ("wamid.out2", "delivered")]
    assert any(e.type == "flow.ended" and e.data.get("outcome") == "converted" for e in events)
    outs = [e for e in events if e.type == "message.out" and e.channel == "wa"]
    assert outs and outs[0].data["provider_id"].startswith("wamid.out")


async def test_wa_me_link_ref_starts_the_referral_flow(gateway, demo_tenant, graph):
    gw = await gateway(tenants=[with_whatsapp(demo_tenant, graph)])
    rt = await gw.registry.get("demo")
    link = rt.channels["wa"].contact_link("soldes-sms")
    assert link == "https://wa.me/33123456789?text=Bonjour%20%21%20%5Bref%3Asoldes-sms%5D"
    assert await post(gw, body(text("wamid.r1", "Bonjour ! [ref:soldes-sms]"))) == 200
    assert shown(sent(graph)[1])[0] == "Pour qui cherchez-vous ?"
    await gw.flush_events()
    ins = [e for e in await gw.store.list_events("demo") if e.type == "message.in"]
    assert ins and "[ref:" not in json.dumps(ins[0].data)


@pytest.mark.parametrize("label,secret", [("no signature", None), ("wrong secret", "not-the-secret")])
async def test_bad_signature_is_refused_and_changes_nothing(gateway, demo_tenant, graph, label, secret):
    gw = await gateway(tenants=[with_whatsapp(demo_tenant, graph)])
    before = set(await gw.redis.keys("cst:*"))
    assert await post(gw, body(text("wamid.bad", "soldes")), secret=secret) == 403
    assert graph.requests == []
    assert set(await gw.redis.keys("cst:*")) == before
    # the same message, properly signed, is then handled (it was never marked as seen)
    assert await post(gw, body(text("wamid.bad", "soldes"))) == 200
    assert len(graph.requests) == 2


async def test_handshake_through_the_gateway(gateway, demo_tenant, graph):
    gw = await gateway(tenants=[with_whatsapp(demo_tenant, graph)])
    url = f"{gw.url}/t/demo/channels/wa"
    q = {"hub.mode": "subscribe", "hub.challenge": "1158201444", "hub.verify_token": "e2e-verify"}
    async with gw.http.get(url, params=q) as r:
        assert (r.status, await r.text()) == (200, "1158201444")
    async with gw.http.get(url, params={**q, "hub.verify_token": "guess"}) as r:
        assert r.status == 403


async def test_provider_outage_is_reported_and_the_conversation_goes_on(gateway, demo_tenant, graph):
    gw = await gateway(tenants=[with_whatsapp(demo_tenant, graph)])
    graph.answer(500, {"error": {"code": 131000, "message": "Something went wrong"}}, times=4)
    assert await post(gw, body(text("wamid.o1", "soldes"))) == 200
    await gw.flush_events()
    events = await gw.store.list_events("demo")
    # The first payload is tried (2 attempts), then kept for later with the one behind it,
    # in order: the second is not sent ahead of it.
    assert [e.data.get("code") for e in events if e.type == "send.retry"] == ["131000"]
    # Meta is back: the next message goes through and the conversation continues
    assert await post(gw, body(tap("wamid.o2", "men", "Homme"))) == 200
    assert shown(sent(graph)[-1])[0] == "Quel est votre budget ?"


# --- the 24-hour window, known to the gateway from the channel's capabilities ----------------
class TemplateStep(Step):
    """A step that answers with an approved template (what a reminder campaign would send)."""
    name = "test.order_template"

    async def run(self, ctx, args):
        return StepResult(replies=[Reply(template=TemplateRef(name="order_update_v1", language="fr",
                                                               params=["Ana", "A123"]))])


class TemplatePlugin:
    @hookimpl
    def register_steps(self):
        return [TemplateStep()]


REMINDER = {"format": 1, "id": "reminder", "name": "Reminder", "engine": "tree", "locale": "fr",
            "triggers": [{"type": "keyword", "any": ["rappel"]}], "start": "tpl",
            "nodes": {"tpl": {"type": "step", "step": "test.order_template", "next": "bye"},
                      "bye": {"type": "end", "outcome": "completed", "text": "Merci !"}}}


async def test_outside_the_window_only_the_template_goes_out(gateway, demo_tenant, graph):
    tenant = with_whatsapp(demo_tenant, graph)
    tenant["plugins"]["wintpl"] = {}
    tenant["flows"].append(REMINDER)
    gw = await gateway(tenants=[tenant], plugins=[("wintpl", TemplatePlugin())])
    rt = await gw.registry.get("demo")
    # a campaign reaches a customer who has never written: no open window
    assert await gw.pipeline.start_flow(rt, rt.channels["wa"], "33699999999", "reminder", key="c1")
    await gw.flush_events()
    assert sent(graph) == [{"messaging_product": "whatsapp", "recipient_type": "individual",
                            "to": "33699999999", "type": "template", "template": {
                                "name": "order_update_v1", "language": {"code": "fr"},
                                "components": [{"type": "body", "parameters": [
                                    {"type": "text", "text": "Ana"}, {"type": "text", "text": "A123"}]}]}}]
    held = [e for e in await gw.store.list_events("demo") if e.type == "message.held"]
    assert [(e.data["reason"], e.data["text"]) for e in held] == [("outside_window", "Merci !")]
    # once the customer answers, the window is open and free text flows again
    assert await post(gw, body({**text("wamid.w1", "rappel"), "from": "33699999999"})) == 200
    assert [r.get("text", {}).get("body") for r in sent(graph)[1:]] == [None, "Merci !"]


async def test_a_message_id_is_remembered_for_meta_s_seven_days_of_redelivery(gateway, demo_tenant, graph):
    # Meta redelivers an unanswered webhook for up to 7 days (reference, WhatsApp): a retry
    # that comes after the gateway's default 24 h must still be recognised.
    gw = await gateway(tenants=[with_whatsapp(demo_tenant, graph)])
    assert await post(gw, body(text("wamid.week", "soldes"))) == 200
    ttl = await gw.redis.ttl("cst:{demo}:d:wa:wamid.week")
    assert 7 * 24 * 3600 < ttl <= 8 * 24 * 3600
    await gw.redis.expire("cst:{demo}:d:wa:wamid.week", 7 * 24 * 3600 - 25 * 3600)  # 25 h later
    before = len(graph.requests)
    assert await post(gw, body(text("wamid.week", "soldes"))) == 200
    assert len(graph.requests) == before                      # answered once



async def test_a_send_meta_wants_later_goes_out_when_due_in_order(gateway, demo_tenant, graph):
    # A 429 whose Retry-After outlasts the call's own retries comes back as `retry`: the
    # gateway keeps the turn's replies and sends them, in order, once due.
    gw = await gateway(tenants=[with_whatsapp(demo_tenant, graph)])
    busy = {"error": {"code": 130429, "message": "Rate limit hit"}}
    graph.answer(429, busy, headers={"Retry-After": "0.4"}, times=2)
    assert await post(gw, body(text("wamid.rl1", "soldes"))) == 200
    assert graph.requests and all(r.json()["text"]["body"].startswith("Bonjour") for r in graph.requests)
    for _ in range(100):
        if len(graph.requests) >= 4:
            break
        await asyncio.sleep(0.05)
    later = sent(graph)[2:]
    assert later[0]["text"]["body"].startswith("Bonjour")
    assert shown(later[1]) == ["Pour qui cherchez-vous ?", "Femme", "Homme", "Enfant"]
    await asyncio.sleep(0.2)
    assert len(graph.requests) == 4                                  # once each
    await gw.flush_events()
    kinds = [e.type for e in await gw.store.list_events("demo") if e.type.startswith(("send.", "message.out"))]
    assert kinds == ["send.retry", "message.out", "message.out"]
    assert await gw.redis.zcard("cst:resends") == 0 and not await gw.redis.exists("cst:{demo}:rs")


async def test_a_send_kept_for_later_is_dropped_when_the_contact_has_written_since(gateway, demo_tenant, graph):
    gw = await gateway(tenants=[with_whatsapp(demo_tenant, graph)])
    graph.answer(429, {"error": {"code": 130429, "message": "Rate limit hit"}},
                 headers={"Retry-After": "1"}, times=2)
    assert await post(gw, body(text("wamid.sp1", "soldes"))) == 200
    assert await post(gw, body(text("wamid.sp2", "soldes"))) == 200     # the contact writes again
    n = len(graph.requests)
    await asyncio.sleep(1.5)
    assert len(graph.requests) == n                                  # the old replies stay unsent
    await gw.flush_events()
    held = [e.data for e in await gw.store.list_events("demo") if e.type == "message.held"]
    assert [h["reason"] for h in held] == ["superseded", "superseded"]


async def test_a_send_the_provider_never_takes_is_given_up(gateway, demo_tenant, graph, monkeypatch):
    from gateway import pipeline
    monkeypatch.setattr(pipeline, "MAX_RESENDS", 3)
    monkeypatch.setattr(pipeline, "RESEND_BACKOFF", 0.05)
    gw = await gateway(tenants=[with_whatsapp(demo_tenant, graph)])
    graph.answer(429, {"error": {"code": 130429, "message": "Rate limit hit"}},
                 headers={"Retry-After": "0.1"}, times=6)
    assert await post(gw, body(text("wamid.gu1", "soldes"))) == 200
    for _ in range(100):
        if await gw.redis.zcard("cst:resends") == 0 and len(graph.requests) >= 6:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)
    assert len(graph.requests) == 6                                  # 3 tries of 2 attempts
    await gw.flush_events()
    failed = [e.data for e in await gw.store.list_events("demo") if e.type == "send.failed"]
    assert [(f["code"], f["attempts"]) for f in failed] == [("gave_up", 3), ("gave_up", 3)]


async def test_two_gateways_send_a_kept_reply_once(gateway, demo_tenant, graph):
    # A provider slow again (here 1.6 s, past two lock lifetimes): the other gateway must not
    # claim the kept send while the first is still sending it.
    gw1 = await gateway(tenants=[with_whatsapp(demo_tenant, graph)], lock_ttl=0.5)
    await gateway(lock_ttl=0.5)
    busy = {"error": {"code": 130429, "message": "Rate limit hit"}}
    graph.answer(429, busy, headers={"Retry-After": "0.3"}, times=2)
    graph.answer(200, {"messaging_product": "whatsapp", "messages": [{"id": "wamid.slow"}]}, delay=1.6)
    assert await post(gw1, body(text("wamid.d1", "soldes"))) == 200
    for _ in range(100):
        if len(graph.requests) >= 4 and await gw1.redis.zcard("cst:resends") == 0:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(1.0)
    texts = [shown(r) for r in sent(graph)]
    assert len(texts) == 4, texts            # 2 refused, then each reply once
    assert texts[2].startswith("Bonjour") and texts[3][0] == "Pour qui cherchez-vous ?"


async def test_an_endless_retry_after_keeps_the_replies_for_the_longest_wait(gateway, demo_tenant, graph):
    gw = await gateway(tenants=[with_whatsapp(demo_tenant, graph)])
    graph.answer(429, {"error": {"code": 130429, "message": "Rate limit hit"}},
                 headers={"Retry-After": "inf"}, times=2)
    assert await post(gw, body(text("wamid.i1", "soldes"))) == 200
    [(member, due)] = await gw.redis.zrange("cst:resends", 0, -1, withscores=True)
    assert 0 < due / 1000 - time.time() <= 1800        # capped at 30 min


async def test_an_agent_reply_does_not_overtake_replies_kept_for_later(gateway, demo_tenant, graph):
    gw = await gateway(tenants=[with_whatsapp(demo_tenant, graph)])
    graph.answer(429, {"error": {"code": 130429, "message": "Rate limit hit"}},
                 headers={"Retry-After": "0.6"}, times=2)
    assert await post(gw, body(text("wamid.ag1", "soldes"))) == 200
    conv_url = f"{gw.url}/admin/v1/tenants/demo/conversations/wa/{ANA}"
    async with gw.http.post(conv_url + "/reply", json={"agent": "julie", "text": "Ici Julie."},
                            headers=gw.admin_headers) as r:
        conv = await r.json()
    assert r.status == 200 and [e["type"] for e in conv["events"]] == ["send.queued"], conv
    assert conv["session"]["resend"] == conv["events"][0]["data"]["behind"]
    assert len(graph.requests) == 2                                  # the two refused tries only
    for _ in range(100):
        if len(graph.requests) >= 5 and await gw.redis.zcard("cst:resends") == 0:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)
    later = [shown(r) for r in sent(graph)[2:]]
    assert len(later) == 3, later
    assert later[0].startswith("Bonjour") and later[1][0] == "Pour qui cherchez-vous ?"
    assert later[2] == "Ici Julie."
    async with gw.http.get(conv_url, headers=gw.admin_headers) as r:
        assert (await r.json())["session"].get("resend", "") == ""       # nothing waits any more
    assert not await gw.redis.exists("cst:{demo}:rs")


async def agent_reply(gw, text: str) -> dict:
    url = f"{gw.url}/admin/v1/tenants/demo/conversations/wa/{ANA}/reply"
    async with gw.http.post(url, json={"agent": "julie", "text": text}, headers=gw.admin_headers) as r:
        assert r.status == 200
        return await r.json()


async def settled(gw, graph, n: int) -> list:
    for _ in range(100):
        if len(graph.requests) >= n and await gw.redis.zcard("cst:resends") == 0:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    return [shown(r) for r in sent(graph)]


async def test_a_contact_message_drops_the_bots_kept_replies_but_not_the_agents(gateway, demo_tenant, graph):
    gw = await gateway(tenants=[with_whatsapp(demo_tenant, graph)])
    graph.answer(429, {"error": {"code": 130429, "message": "Rate limit hit"}},
                 headers={"Retry-After": "0.6"}, times=2)
    assert await post(gw, body(text("wamid.sa1", "soldes"))) == 200
    conv = await agent_reply(gw, "Ici Julie.")
    assert [e["type"] for e in conv["events"]] == ["send.queued"]
    assert await post(gw, body(text("wamid.sa2", "zut"))) == 200        # the contact writes
    texts = await settled(gw, graph, 4)
    assert texts.count("Ici Julie.") == 1 and not any(
        isinstance(t, str) and t.startswith("Bonjour") for t in texts[2:3]), texts
    await gw.flush_events()
    held = [e.data["text"] for e in await gw.store.list_events("demo") if e.type == "message.held"]
    assert len(held) == 2 and "Ici Julie." not in held                 # the bot's two replies


async def test_a_turn_waiting_for_the_lease_finds_the_send_its_turn_kept(gateway, demo_tenant, graph):
    # Keeping the send is slow here (as another gateway would see the gap): the agent's
    # reply, waiting for the conversation, must still queue behind it, not overtake it.
    gw = await gateway(tenants=[with_whatsapp(demo_tenant, graph)])
    graph.answer(429, {"error": {"code": 130429, "message": "Rate limit hit"}},
                 headers={"Retry-After": "0.3"}, times=2)
    keep = gw.pipeline._queue_resend

    async def slowly(*args):
        await asyncio.sleep(0.3)
        await keep(*args)
    gw.pipeline._queue_resend = slowly
    turn = asyncio.ensure_future(post(gw, body(text("wamid.gap1", "soldes"))))
    await asyncio.sleep(0.15)
    await agent_reply(gw, "Ici Julie.")
    assert await turn == 200
    texts = await settled(gw, graph, 5)
    assert texts[-1] == "Ici Julie." and len(texts) == 5, texts


async def test_a_slow_kept_send_keeps_its_conversation_and_the_agent_follows_it(gateway, demo_tenant, graph):
    # The provider takes 1.6 s to accept the kept send, past three lock lifetimes: the sender
    # keeps the conversation meanwhile, so the agent's reply waits, then goes after it.
    gw = await gateway(tenants=[with_whatsapp(demo_tenant, graph)], lock_ttl=0.5)
    graph.answer(429, {"error": {"code": 130429, "message": "Rate limit hit"}},
                 headers={"Retry-After": "0.3"}, times=2)
    graph.answer(200, {"messaging_product": "whatsapp", "messages": [{"id": "wamid.slow"}]}, delay=1.6)
    assert await post(gw, body(text("wamid.ol1", "soldes"))) == 200
    for _ in range(100):                  # the kept send is being sent, slowly ...
        if len(graph.requests) >= 3:
            break
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.7)              # ... longer than a lock lifetime
    assert [e["type"] for e in (await agent_reply(gw, "Ici Julie."))["events"]] == ["message.out"]
    texts = await settled(gw, graph, 5)
    assert len(texts) == 5 and texts[-1] == "Ici Julie.", texts
    assert texts[2].startswith("Bonjour") and texts[3][0] == "Pour qui cherchez-vous ?"


async def test_an_agents_kept_reply_is_not_overtaken_by_the_next_once_the_contact_writes(
        gateway, demo_tenant, graph):
    gw = await gateway(tenants=[with_whatsapp(demo_tenant, graph)])
    assert await post(gw, body(text("wamid.h1", "soldes"))) == 200
    async with gw.http.post(f"{gw.url}/admin/v1/tenants/demo/conversations/wa/{ANA}/takeover",
                            json={"agent": "julie"}, headers=gw.admin_headers) as r:
        assert r.status == 200
    graph.answer(429, {"error": {"code": 130429, "message": "Rate limit hit"}},
                 headers={"Retry-After": "0.6"}, times=2)
    assert (await agent_reply(gw, "Premier message."))["session"]["resend"]
    assert await post(gw, body(text("wamid.h2", "allo ?"))) == 200    # the bot stays silent
    assert [e["type"] for e in (await agent_reply(gw, "Second message."))["events"]] == ["send.queued"]
    texts = await settled(gw, graph, 5)
    assert [t for t in texts if isinstance(t, str) and t.endswith("message.")] == \
        ["Premier message.", "Premier message.", "Premier message.", "Second message."], texts


async def lose_the_lease_mid_send(gw, graph, mid: str) -> bytes:
    """Post a message and, once its first send is at the (slow) fake API, take the
    conversation's lock from the turn, as another process does once a stalled one's lock ran
    out. Returns the lock's key, after the webhook answered."""
    turn = asyncio.ensure_future(post(gw, body(text(mid, "soldes"))))
    for _ in range(100):
        if graph.requests:
            break
        await asyncio.sleep(0.02)
    [lock] = [k async for k in gw.redis.scan_iter("cst:{demo}:c:wa:*:l")]
    await gw.redis.set(lock, "another-process", px=5000)
    assert await turn == 200
    return lock


async def test_a_turn_that_loses_its_lease_mid_send_sends_nothing_more(gateway, demo_tenant, graph):
    # The first reply's send takes 1.2 s; meanwhile the lock is taken from the turn (as when
    # this process stalled past its lock lifetime and another one went ahead): the turn's
    # next reply must not go out, and the turn is not saved.
    gw = await gateway(tenants=[with_whatsapp(demo_tenant, graph)], lock_ttl=0.5)
    graph.answer(200, {"messaging_product": "whatsapp", "messages": [{"id": "wamid.slow"}]}, delay=1.2)
    lock = await lose_the_lease_mid_send(gw, graph, "wamid.lost1")
    await asyncio.sleep(0.5)
    assert [shown(r) for r in sent(graph)] == [shown(sent(graph)[0])]    # the first one only
    assert shown(sent(graph)[0]).startswith("Bonjour")
    assert await gw.redis.get(lock.replace(b":l", b":s")) is None      # nothing saved


async def test_a_turn_that_loses_its_lease_keeps_nothing_for_later(gateway, demo_tenant, graph):
    # The same, the slow send being refused (429): a turn that is not saved keeps no send
    # for later either, or its reply would come after the next turn's.
    gw = await gateway(tenants=[with_whatsapp(demo_tenant, graph)], lock_ttl=0.5)
    graph.answer(429, {"error": {"code": 130429, "message": "Rate limit hit"}},
                 headers={"Retry-After": "0.2"}, delay=0.6, times=2)
    await lose_the_lease_mid_send(gw, graph, "wamid.lost2")
    assert await gw.redis.zcard("cst:resends") == 0
    await asyncio.sleep(0.8)
    assert len(graph.requests) == 2                      # the two refused tries, nothing after
