"""WeChat end to end: the whole gateway on 127.0.0.1; the first reply comes back inline as
passive XML (encrypted in safe mode), the next ones reach a fake customer-service API."""
from __future__ import annotations

import asyncio
import base64
import json
import time
import xml.etree.ElementTree as ET

import pytest
from gateway.flows import Step, StepResult
from gateway.hookspecs import hookimpl
from causette_wechat import channel as wechat_channel
from causette_wechat.crypto import MessageCrypto, signature

TOKEN = "e2e-wechat-token"
APPID = "wxe2e0000000000001"
AESKEY = base64.b64encode(bytes(range(100, 132))).decode().rstrip("=")
OA = "gh_e2e000000001"
USER = "oE2EUser_0123456789abcdefghi"
TS, NONCE = str(int(time.time())), "42"

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


@pytest.fixture(autouse=True)
def _fresh_tokens():
    wechat_channel._tokens.clear()
    yield
    wechat_channel._tokens.clear()


def tenant(provider, mode="plain"):
    return {"slug": "wechat-shop", "name": "WeChat shop", "locale": "fr", "plugins": {"tree": {}, "wechat": {}},
            "channels": [{"id": "wechat-main", "type": "wechat", "settings": {
                "token": TOKEN, "app_id": APPID, "app_secret": "e2e-app-secret",
                "encoding_aes_key": AESKEY, "mode": mode, "api_base": provider.url,
                "attempts": 2}}],
            "flows": [QUIZ]}


def message(msg_id: str, content: str) -> bytes:
    return (f"<xml><ToUserName><![CDATA[{OA}]]></ToUserName><FromUserName><![CDATA[{USER}]]>"
            f"</FromUserName><CreateTime>1795683600</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            f"<Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId></xml>").encode()


def query(token: str = TOKEN) -> str:
    return f"signature={signature(token, TS, NONCE)}&timestamp={TS}&nonce={NONCE}&openid={USER}"


async def post(gw, body: bytes, qs: str):
    async with gw.http.post(f"{gw.url}/t/wechat-shop/channels/wechat-main?{qs}", data=body,
                            headers={"Content-Type": "text/xml"}) as r:
        return r.status, await r.text()


def passive(xml_text: str) -> dict[str, str]:
    return {c.tag: c.text or "" for c in ET.fromstring(xml_text)}


@pytest.fixture
def token_endpoint(provider):
    from aiohttp import web
    calls = []

    async def token(request, body):
        calls.append(dict(request.query))
        return web.json_response({"access_token": "E2E_ACCESS_TOKEN", "expires_in": 7200})

    provider.routes["/cgi-bin/token"] = token
    return calls


async def test_wechat_conversation_plain_mode(gateway, provider, token_endpoint):
    gw = await gateway(tenants=[tenant(provider)])
    status, text = await post(gw, message("1001", "你好"), query())
    assert status == 200
    x = passive(text)
    assert (x["ToUserName"], x["FromUserName"], x["MsgType"], x["Content"]) == \
        (USER, OA, "text", "Bonjour !")
    # the second reply of the turn goes through the customer-service API, after the answer
    await gw.pipeline.drain()
    [req] = provider.requests
    assert req["path"] == "/cgi-bin/message/custom/send"
    assert req["query"] == {"access_token": "E2E_ACCESS_TOKEN"}
    assert json.loads(req["body"]) == {"touser": USER, "msgtype": "text",
                                       "text": {"content": "Femme ou homme ?\n1. Femme\n2. Homme"}}
    assert len(token_endpoint) == 1

    # "1" picks the first option; WeChat's retry of the same MsgId gets no second answer
    status, text = await post(gw, message("1002", "1"), query())
    assert passive(text)["Content"] == "Merci, c'est noté."
    status, text = await post(gw, message("1002", "1"), query())
    assert (status, text) == (200, "success")
    await gw.pipeline.drain()
    assert len(provider.requests) == 1


async def test_wechat_conversation_safe_mode(gateway, provider, token_endpoint):
    gw = await gateway(tenants=[tenant(provider, mode="safe")])
    crypto = MessageCrypto(TOKEN, AESKEY, APPID)
    enc = crypto.encrypt(message("2001", "hello"))
    body = f"<xml><ToUserName><![CDATA[{OA}]]></ToUserName><Encrypt><![CDATA[{enc}]]></Encrypt></xml>"
    qs = query() + f"&encrypt_type=aes&msg_signature={signature(TOKEN, TS, NONCE, enc)}"
    status, text = await post(gw, body.encode(), qs)
    assert status == 200
    env = passive(text)
    assert env["MsgSignature"] == signature(TOKEN, env["TimeStamp"], env["Nonce"], env["Encrypt"])
    inner = passive(crypto.decrypt(env["Encrypt"]).decode())
    assert (inner["ToUserName"], inner["Content"]) == (USER, "Bonjour !")
    # safe mode refuses the plain form of the same message
    assert (await post(gw, message("2002", "hello"), query()))[0] == 403


async def test_wechat_handshake_and_refusals(gateway, provider):
    gw = await gateway(tenants=[tenant(provider)])
    url = f"{gw.url}/t/wechat-shop/channels/wechat-main"
    async with gw.http.get(f"{url}?{query()}&echostr=echo123") as r:
        assert (r.status, await r.text()) == (200, "echo123")
    async with gw.http.get(f"{url}?{query('other-token')}&echostr=echo123") as r:
        assert r.status == 403
    assert (await post(gw, message("3001", "hi"), query("other-token")))[0] == 403
    assert (await post(gw, message("3001", "hi"), f"timestamp={TS}&nonce={NONCE}"))[0] == 403
    assert provider.requests == []


async def test_wechat_demo_tenant_runs_its_flow(gateway, provider, token_endpoint, demo_tenant):
    demo_tenant["plugins"]["wechat"] = {}
    demo_tenant["channels"].append(dict(tenant(provider)["channels"][0], id="wechat"))
    gw = await gateway(tenants=[demo_tenant])

    async def say(msg_id, content):
        async with gw.http.post(f"{gw.url}/t/demo/channels/wechat?{query()}",
                                data=message(msg_id, content)) as r:
            assert r.status == 200
            return passive(await r.text())

    first = await say("5001", "soldes")
    assert first["Content"].startswith("Bonjour")
    await gw.pipeline.drain()
    [cs] = [json.loads(r["body"]) for r in provider.requests]
    assert cs["text"]["content"] == "Pour qui cherchez-vous ?\n1. Femme\n2. Homme\n3. Enfant"
    second = await say("5002", "2")
    assert second["Content"].startswith("Quel est votre budget ?\n1. Moins de 50 €")


async def test_wechat_provider_outage_is_reported_and_the_conversation_goes_on(
        gateway, provider, token_endpoint):
    gw = await gateway(tenants=[tenant(provider)])
    provider.answer(200, {"errcode": -1, "errmsg": "system error"})
    provider.answer(200, {"errcode": -1, "errmsg": "system error"})
    status, text = await post(gw, message("4001", "hi"), query())
    assert status == 200
    assert passive(text)["Content"] == "Bonjour !"      # the inline reply is not affected
    await gw.flush_events()
    [retry] = [e for e in await gw.store.list_events("wechat-shop") if e.type == "send.retry"]
    assert retry.data["code"] == "-1"
    _, text = await post(gw, message("4002", "Homme"), query())
    assert passive(text)["Content"] == "Merci, c'est noté."


class SlowLookup(Step):
    """A step that takes longer than the webhook's deadline (a CRM that answers slowly)."""
    name = "test.slow_lookup"

    async def run(self, ctx, args):
        await asyncio.sleep(0.8)
        return StepResult(vars={"points": 120})


class SlowStep:
    @hookimpl
    def register_steps(self):
        return [SlowLookup()]


SLOW = {"format": 1, "id": "points", "name": "Points", "engine": "tree", "locale": "fr",
        "triggers": [{"type": "start"}], "start": "hello",
        "nodes": {"hello": {"type": "message", "text": "Un instant, je regarde…", "next": "look"},
                  "look": {"type": "step", "step": "test.slow_lookup", "next": "done"},
                  "done": {"type": "end", "outcome": "completed", "text": "Vous avez {{points}} points."}}}


async def test_wechat_turn_past_the_deadline_answers_success_then_sends_by_api(
        gateway, provider, token_endpoint):
    # WeChat drops a webhook not answered within 5 s and its retries only get the dedup
    # answer: a slow turn must answer "success" in time and send its replies afterwards.
    t = tenant(provider)
    t["channels"][0]["settings"]["reply_deadline"] = 0.2
    t["plugins"]["slow"] = {}
    t["flows"] = [SLOW]
    gw = await gateway(tenants=[t], plugins=[("slow", SlowStep())])
    assert await post(gw, message("7001", "points"), query()) == (200, "success")
    assert await post(gw, message("7001", "points"), query()) == (200, "success")   # WeChat's retry
    for _ in range(60):
        if len(provider.requests) >= 2:
            break
        await asyncio.sleep(0.05)
    await gw.pipeline.drain()
    sent = [json.loads(r["body"])["text"]["content"] for r in provider.requests
            if r["path"] == "/cgi-bin/message/custom/send"]
    assert sent == ["Un instant, je regarde…", "Vous avez 120 points."]      # once each, in order
    await gw.flush_events()
    outs = [e.data for e in await gw.store.list_events("wechat-shop") if e.type == "message.out"]
    assert [o.get("detail") for o in outs] == [None, None]                  # none claims "inline"


async def test_wechat_quick_turn_still_answers_inline(gateway, provider, token_endpoint):
    t = tenant(provider)
    t["channels"][0]["settings"]["reply_deadline"] = 4.0
    gw = await gateway(tenants=[t])
    status, text = await post(gw, message("7101", "你好"), query())
    assert passive(text)["Content"] == "Bonjour !"


async def test_wechat_unfollow_seen_by_a_later_send_is_saved_on_the_conversation(
        gateway, provider, token_endpoint):
    # The second reply of the turn goes out after the passive answer; WeChat refuses it
    # because the user unfollowed (43004): the conversation must remember that.
    gw = await gateway(tenants=[tenant(provider)])
    provider.answer(200, {"errcode": 43004, "errmsg": "require subscribe"})
    status, text = await post(gw, message("8001", "hi"), query())
    assert status == 200 and passive(text)["Content"] == "Bonjour !"
    await gw.pipeline.drain()
    async with gw.http.get(f"{gw.url}/admin/v1/tenants/wechat-shop/conversations/wechat-main/{USER}",
                           headers=gw.admin_headers) as r:
        conv = await r.json()
    assert r.status == 200 and conv["session"]["stopped"] is True, conv["session"]
    assert conv["session"]["node"] == "pick"                  # the turn itself was kept
    await gw.flush_events()
    optout = [e.data for e in await gw.store.list_events("wechat-shop") if e.type == "consent.optout"]
    assert optout == [{"source": "provider", "code": "43004"}]


class Pause(Step):
    name = "test.pause"

    async def run(self, ctx, args):
        await asyncio.sleep(0.8)
        return StepResult()


class PauseStep:
    @hookimpl
    def register_steps(self):
        return [Pause()]


async def test_wechat_replies_after_the_passive_one_go_before_the_next_turns(gateway, provider, token_endpoint):
    # The contact answers while the turn still runs: the question the turn sends through
    # the API must reach the contact before the answer to that answer.
    from aiohttp import web
    t = tenant(provider)
    t["plugins"]["pause"] = {}
    flow = json.loads(json.dumps(QUIZ))
    flow["nodes"]["hello"]["next"] = "look"
    flow["nodes"]["look"] = {"type": "step", "step": "test.pause", "next": "pick"}
    t["flows"] = [flow]
    gw = await gateway(tenants=[t], plugins=[("pause", PauseStep())])
    seen = []

    async def custom_send(request, body):
        seen.append(json.loads(body)["text"]["content"].split("\n")[0])
        return web.json_response({"errcode": 0, "errmsg": "ok"})
    provider.routes["/cgi-bin/message/custom/send"] = custom_send

    async def say(mid, text):
        _, xml = await post(gw, message(mid, text), query())
        seen.append(passive(xml)["Content"] if xml != "success" else None)

    first = asyncio.ensure_future(say("9001", "hi"))
    await asyncio.sleep(0.3)
    await asyncio.gather(first, say("9002", "1"))
    await gw.pipeline.drain()
    assert seen.index("Femme ou homme ?") < seen.index("Merci, c'est noté."), seen


async def test_wechat_a_slow_customer_service_api_does_not_lose_the_turn(gateway, provider, token_endpoint):
    # The send after the passive reply takes longer than the conversation's lock lifetime
    # (0.5 s here for the 30 s default; WeChat's 3 tries of 10 s): the turn keeps its lease.
    gw = await gateway(tenants=[tenant(provider)], lock_ttl=0.5)
    provider.answer(200, {"errcode": 0, "errmsg": "ok"}, delay=0.8)
    status, text = await post(gw, message("5001", "hi"), query())
    assert passive(text)["Content"] == "Bonjour !"
    await gw.pipeline.drain()
    assert len(provider.requests) == 1
    async with gw.http.get(f"{gw.url}/admin/v1/tenants/wechat-shop/conversations/wechat-main/{USER}",
                           headers=gw.admin_headers) as r:
        conv = await r.json()
    assert r.status == 200 and conv["session"]["node"] == "pick", conv


async def test_a_new_follower_from_a_qr_code_starts_the_scenes_flow(gateway, provider, token_endpoint):
    # wechat.md's worked example: following the account by scanning a QR code whose scene is
    # a flow's referral ref starts that flow (the consent is recorded too).
    sale = {**QUIZ, "id": "sale", "triggers": [{"type": "referral", "ref": "winter-sale"}]}
    t = tenant(provider)
    t["flows"] = [sale]
    gw = await gateway(tenants=[t])
    subscribe = (f"<xml><ToUserName><![CDATA[{OA}]]></ToUserName><FromUserName><![CDATA[{USER}]]>"
                 f"</FromUserName><CreateTime>1795683600</CreateTime><MsgType><![CDATA[event]]>"
                 f"</MsgType><Event><![CDATA[subscribe]]></Event><EventKey><![CDATA[qrscene_winter-sale]]>"
                 f"</EventKey><Ticket><![CDATA[gQH47joAAAAAAAAAASxodHRwOi8v]]></Ticket></xml>").encode()
    status, text = await post(gw, subscribe, query())
    assert status == 200 and passive(text)["Content"] == "Bonjour !"
    await gw.pipeline.drain()
    assert json.loads(provider.requests[0]["body"])["text"]["content"].startswith("Femme ou homme ?")
    await gw.flush_events()
    types = [e.type for e in await gw.store.list_events("wechat-shop")]
    assert "consent.optin" in types and "flow.started" in types
