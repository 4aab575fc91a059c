"""Telegram end to end: the demo tenant (tenants/demo.json) with a Telegram channel added runs
its winter-sale flow over updates posted to the whole gateway on 127.0.0.1 with the secret
token; replies reach a fake Bot API."""
from __future__ import annotations

import json

TOKEN = "123456:e2e-bot-token"
SECRET = "e2e-secret_token-01"
CHAT = 123456789
ANA = {"id": CHAT, "is_bot": False, "first_name": "Ana", "language_code": "fr"}


def demo(tenant: dict, provider, **over) -> dict:
    t = dict(tenant)
    t["channels"] = [*tenant["channels"], {"id": "tg", "type": "telegram", "settings": {
        "token": TOKEN, "secret_token": SECRET, "bot_username": "MaisonLumiereBot",
        "api_base": provider.url, "attempts": 2, **over}}]
    t["plugins"] = {**tenant["plugins"], "http": {**tenant["plugins"].get("http", {}), "allowed_hosts": []}}
    return t


def ok(provider):
    return lambda seen: (200, {"ok": True, "result": {"message_id": 100 + len(provider.requests), "date": 1,
                                                      "chat": {"id": CHAT, "type": "private"}}})


class Chat:
    def __init__(self, gw):
        self.gw, self.update_id = gw, 500000

    async def post(self, update: dict, secret: str | None = SECRET) -> tuple[int, str]:
        headers = {"Content-Type": "application/json"}
        if secret is not None:
            headers["X-Telegram-Bot-Api-Secret-Token"] = secret
        async with self.gw.http.post(f"{self.gw.url}/t/demo/channels/tg", data=json.dumps(update),
                                     headers=headers) as r:
            return r.status, await r.text()

    def next_id(self) -> int:
        self.update_id += 1
        return self.update_id

    async def say(self, text: str, update_id: int | None = None) -> tuple[int, str]:
        return await self.post({"update_id": update_id or self.next_id(), "message": {
            "message_id": self.update_id, "date": 1767600000, "from": ANA,
            "chat": {"id": CHAT, "type": "private"}, "text": text}})

    async def tap(self, data: str, keyboard: dict, update_id: int | None = None) -> tuple[int, str]:
        return await self.post({"update_id": update_id or self.next_id(), "callback_query": {
            "id": f"cbq-{self.update_id}", "from": ANA, "chat_instance": "-1", "data": data,
            "message": {"message_id": 7, "date": 1767600000, "chat": {"id": CHAT, "type": "private"},
                        "text": "…", "reply_markup": keyboard}}})


def calls(provider, start: int = 0) -> list[tuple[str, dict]]:
    return [(s.path.rsplit("/", 1)[1], s.json()) for s in provider.requests[start:]]


async def test_demo_flow_over_telegram(gateway, demo_tenant, provider):
    provider.default = ok(provider)
    gw = await gateway(tenants=[demo(demo_tenant, provider)])
    chat = Chat(gw)

    # A QR code's deep link: t.me/MaisonLumiereBot?start=soldes-sms
    assert await chat.say("/start soldes-sms") == (200, "ok")
    [(m1, hello), (m2, who)] = calls(provider)
    assert (m1, m2) == ("sendMessage", "sendMessage")
    assert hello["chat_id"] == CHAT and hello["text"].startswith("Bonjour Ana")
    assert who == {"chat_id": CHAT, "text": "Pour qui cherchez-vous ?", "reply_markup": {"inline_keyboard": [
        [{"text": "Femme", "callback_data": "women"}], [{"text": "Homme", "callback_data": "men"}],
        [{"text": "Enfant", "callback_data": "kids"}]]}}
    assert all(s.path.startswith(f"/bot{TOKEN}/") for s in provider.requests)

    # Tapping "Femme": acknowledged in the webhook response, the flow moves on.
    n = len(provider.requests)
    status, body = await chat.tap("women", who["reply_markup"], update_id=600001)
    assert status == 200 and json.loads(body) == {"method": "answerCallbackQuery", "callback_query_id": f"cbq-{chat.update_id}"}
    [(_, budget)] = calls(provider, n)
    assert budget["text"] == "Quel est votre budget ?"
    # Telegram redelivers the same update: acknowledged again, no second reply.
    assert (await chat.tap("women", who["reply_markup"], update_id=600001))[0] == 200
    assert len(provider.requests) == n + 1

    n = len(provider.requests)
    await chat.tap("low", budget["reply_markup"])
    [(_, news)] = calls(provider, n)
    assert news["text"].startswith("Voulez-vous recevoir un code")
    n = len(provider.requests)
    await chat.tap("no", news["reply_markup"])
    texts = [b["text"] for _, b in calls(provider, n)]
    assert texts == ["Toutes les offres sont sur https://boutique.example/soldes.", "Ça vous tente ?"]
    n = len(provider.requests)
    await chat.tap("order", calls(provider, n - 1)[0][1]["reply_markup"])
    [(_, done)] = calls(provider, n)
    assert done["text"].startswith("Parfait ! Finalisez votre commande ici : https://boutique.example/soldes/women")

    await gw.flush_events()
    started = await gw.store.list_events("demo", type="flow.started")
    assert started[0].data["source"] == "soldes-sms"
    ended = await gw.store.list_events("demo", type="flow.ended")
    assert [e.data["outcome"] for e in ended] == ["converted"]


async def test_blocked_bot_and_provider_errors(gateway, demo_tenant, provider):
    gw = await gateway(tenants=[demo(demo_tenant, provider)])
    chat = Chat(gw)
    # hello: 429 (retry_after 0) then ok; the question: 500 twice -> reported as retry.
    provider.answer(429, {"ok": False, "error_code": 429, "description": "Too Many Requests: retry after 0",
                          "parameters": {"retry_after": 0}})
    provider.answer(200, {"ok": True, "result": {"message_id": 1}})
    provider.answer(500, {"ok": False, "error_code": 500, "description": "Internal Server Error"})
    provider.answer(500, {"ok": False, "error_code": 500, "description": "Internal Server Error"})
    assert await chat.say("soldes") == (200, "ok")
    assert len(provider.requests) == 4
    # The next reply: blocked by the user.
    provider.answer(403, {"ok": False, "error_code": 403, "description": "Forbidden: bot was blocked by the user"})
    await chat.say("1")
    await gw.flush_events()
    out = await gw.store.list_events("demo", type="message.out")
    retry = await gw.store.list_events("demo", type="send.retry")
    stopped = await gw.store.list_events("demo", type="send.stopped")
    assert [e.data.get("provider_id") for e in out] == ["1"]
    assert [e.data["code"] for e in retry] == ["500"]
    assert [e.data["detail"] for e in stopped] == ["Forbidden: bot was blocked by the user"]
    session = await gw.pipeline.state.load_session("demo", "tg", str(CHAT))
    assert session is not None and session.stopped
    n = len(provider.requests)
    await chat.say("soldes")
    assert len(provider.requests) == n                  # a stopped contact gets nothing

    # Unblocking is an opt-in: the conversation can start again.
    provider.default = ok(provider)
    await chat.post({"update_id": chat.next_id(), "my_chat_member": {
        "chat": {"id": CHAT, "type": "private"}, "from": ANA, "date": 1767600100,
        "old_chat_member": {"status": "kicked"}, "new_chat_member": {"status": "member"}}})
    await chat.say("soldes")
    assert len(provider.requests) == n + 2
    await gw.flush_events()
    contact = await gw.store.get_contact("demo", "tg", str(CHAT))
    assert contact is not None and contact.consent == {"tg": "optin"}


async def test_wrong_or_missing_secret_is_refused(gateway, demo_tenant, provider):
    gw = await gateway(tenants=[demo(demo_tenant, provider)])
    chat = Chat(gw)
    update = {"update_id": 1, "message": {"message_id": 1, "date": 1, "from": ANA,
                                          "chat": {"id": CHAT, "type": "private"}, "text": "soldes"}}
    assert (await chat.post(update, secret="wrong"))[0] == 401
    assert (await chat.post(update, secret=None))[0] == 401
    assert await gw.pipeline.state.load_session("demo", "tg", str(CHAT)) is None
    assert provider.requests == []
