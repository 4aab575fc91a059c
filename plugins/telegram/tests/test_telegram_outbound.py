"""Telegram outbound, as a table: a reply, the fake Bot API's scripted answers, the exact
calls it must see (method path, JSON body) and the typed outcome of each send."""
from __future__ import annotations

import asyncio
import logging

import msgspec
import pytest
from multidict import CIMultiDict

from causette_telegram import TelegramChannel, TelegramSettings, callback_data, set_webhook, split_text
from gateway.channels import Webhook
from gateway.types import Card, Choice, Media, Reply, SendResult, TemplateRef

TOKEN = "123456:ABC-tg-token"
CHAT = 123456789


def ok(mid: int = 44) -> dict:
    return {"ok": True, "result": {"message_id": mid, "chat": {"id": CHAT, "type": "private"}, "date": 1}}


def fail(code: int, description: str, **params) -> dict:
    out = {"ok": False, "error_code": code, "description": description}
    if params:
        out["parameters"] = params
    return out


KB = {"inline_keyboard": [[{"text": "Femme", "callback_data": "w"}], [{"text": "Homme", "callback_data": "m"}]]}
PICK = Reply(text="Que cherchez-vous ?", choices=[Choice(id="w", title="Femme"), Choice(id="m", title="Homme")])
LONG_ID = "x" * 70
LONG = ("Paragraphe. " * 300).strip()   # 3599 chars
LONGER = LONG + "\n\n" + LONG

# Answers for FakeProvider.answer(*a): one that comes after the client's timeout, and a
# connection cut without an answer.
SLOW = (504, None, None, 5.0)
DROP = (0, None, None, 0.0, 1, True)

# label, settings overrides, reply, answers, expected calls [(method, body)], outcomes
CASES = [
    ("text", {}, Reply(text="Bonjour Ana !"), [(200, ok(44))],
     [("sendMessage", {"chat_id": CHAT, "text": "Bonjour Ana !"})], [{"status": "sent", "provider_id": "44"}]),
    ("inline keyboard, one button a row", {}, PICK, [(200, ok(45))],
     [("sendMessage", {"chat_id": CHAT, "text": "Que cherchez-vous ?", "reply_markup": KB})],
     [{"status": "sent", "provider_id": "45"}]),
    ("two buttons a row", {"buttons_per_row": 2}, PICK, [(200, ok(46))],
     [("sendMessage", {"chat_id": CHAT, "text": "Que cherchez-vous ?", "reply_markup": {"inline_keyboard": [
         [{"text": "Femme", "callback_data": "w"}, {"text": "Homme", "callback_data": "m"}]]}})],
     [{"status": "sent", "provider_id": "46"}]),
    ("over-long choice id is digested to 64 bytes", {}, Reply(text="?", choices=[Choice(id=LONG_ID, title="Long")]),
     [(200, ok(47))],
     [("sendMessage", {"chat_id": CHAT, "text": "?", "reply_markup": {"inline_keyboard": [
         [{"text": "Long", "callback_data": callback_data(LONG_ID)}]]}})],
     [{"status": "sent", "provider_id": "47"}]),
    ("text over 4096 split, keyboard on the last part", {}, Reply(text=LONGER, choices=PICK.choices),
     [(200, ok(48)), (200, ok(49))],
     [("sendMessage", {"chat_id": CHAT, "text": LONG}),
      ("sendMessage", {"chat_id": CHAT, "text": LONG, "reply_markup": KB})],
     [{"status": "sent", "provider_id": "48"}, {"status": "sent", "provider_id": "49"}]),
    ("card with image and link", {}, Reply(cards=[Card(title="Robe rouge", subtitle="49 €", image="https://cdn/r.jpg",
                                                       url="https://shop/r", buttons=[Choice(id="buy-r", title="Acheter")])]),
     [(200, ok(50))],
     [("sendPhoto", {"chat_id": CHAT, "photo": "https://cdn/r.jpg", "caption": "Robe rouge\n49 €",
                     "reply_markup": {"inline_keyboard": [[{"text": "Robe rouge", "url": "https://shop/r"}],
                                                          [{"text": "Acheter", "callback_data": "buy-r"}]]}})],
     [{"status": "sent", "provider_id": "50"}]),
    ("card without image", {}, Reply(cards=[Card(title="Livraison", subtitle="Gratuite dès 50 €")]), [(200, ok(51))],
     [("sendMessage", {"chat_id": CHAT, "text": "Livraison\nGratuite dès 50 €"})], [{"status": "sent", "provider_id": "51"}]),
    ("text then document", {}, Reply(text="Votre facture", media=[Media(kind="file", url="https://cdn/f.pdf",
                                                                        caption="Facture")]),
     [(200, ok(52)), (200, ok(53))],
     [("sendMessage", {"chat_id": CHAT, "text": "Votre facture"}),
      ("sendDocument", {"chat_id": CHAT, "document": "https://cdn/f.pdf", "caption": "Facture"})],
     [{"status": "sent", "provider_id": "52"}, {"status": "sent", "provider_id": "53"}]),
    ("template params as text", {}, Reply(template=TemplateRef(name="promo", params=["-20%"])), [(200, ok(54))],
     [("sendMessage", {"chat_id": CHAT, "text": "-20%"})], [{"status": "sent", "provider_id": "54"}]),
    ("429 then ok", {}, Reply(text="Hi"),
     [(429, fail(429, "Too Many Requests: retry after 0", retry_after=0)), (200, ok(55))],
     [("sendMessage", {"chat_id": CHAT, "text": "Hi"})] * 2, [{"status": "sent", "provider_id": "55"}]),
    ("429 with a long retry_after is handed back", {}, Reply(text="Hi"),
     [(429, fail(429, "Too Many Requests: retry after 35", retry_after=35))],
     [("sendMessage", {"chat_id": CHAT, "text": "Hi"})],
     [{"status": "retry", "retry_after": 35.0, "code": "429", "detail": "Too Many Requests: retry after 35"}]),
    ("blocked by the user means stopped", {}, Reply(text="Promo"),
     [(403, fail(403, "Forbidden: bot was blocked by the user"))],
     [("sendMessage", {"chat_id": CHAT, "text": "Promo"})],
     [{"status": "stopped", "code": "403", "detail": "Forbidden: bot was blocked by the user"}]),
    ("chat not found fails for good", {}, Reply(text="Promo"), [(400, fail(400, "Bad Request: chat not found"))],
     [("sendMessage", {"chat_id": CHAT, "text": "Promo"})],
     [{"status": "failed", "code": "400", "detail": "Bad Request: chat not found"}]),
    ("500 three times", {}, Reply(text="Hi"), [(500, fail(500, "Internal Server Error"))] * 3,
     [("sendMessage", {"chat_id": CHAT, "text": "Hi"})] * 3,
     [{"status": "retry", "code": "500", "detail": "Internal Server Error"}]),
    ("timeouts twice: retry later", {"timeout": 0.3, "attempts": 2}, Reply(text="Hi"), [SLOW] * 2,
     [("sendMessage", {"chat_id": CHAT, "text": "Hi"})] * 2,
     [{"status": "retry", "code": "connection", "detail": "TimeoutError"}]),
    ("gateway error page then ok", {}, Reply(text="Hi"), [DROP, (200, ok(56))],
     [("sendMessage", {"chat_id": CHAT, "text": "Hi"})] * 2, [{"status": "sent", "provider_id": "56"}]),
    ("429 that says when in the header only", {}, Reply(text="Hi"),
     [(429, fail(429, "Too Many Requests"), {"Retry-After": "20"})],
     [("sendMessage", {"chat_id": CHAT, "text": "Hi"})],
     [{"status": "retry", "retry_after": 20.0, "code": "429", "detail": "Too Many Requests"}]),
    ("200 that is not the Bot API's answer", {}, Reply(text="Hi"), [(200, "<html>proxy</html>")],
     [("sendMessage", {"chat_id": CHAT, "text": "Hi"})],
     [{"status": "failed", "code": "bad_answer", "detail": "HTTP 200 without a Bot API answer"}]),
]


@pytest.mark.parametrize("label,over,reply,answers,calls,outcomes", CASES, ids=[c[0] for c in CASES])
async def test_send(provider, http, caplog, label, over, reply, answers, calls, outcomes):
    caplog.set_level(logging.DEBUG)
    for a in answers:
        provider.answer(*a)
    settings = msgspec.convert({"token": TOKEN, "secret_token": "s3cret-token", "api_base": provider.url, **over},
                               TelegramSettings)
    ch = TelegramChannel("acme", "tg", settings, http)
    results = [await ch.send(str(CHAT), p, key=f"k:{i}") for i, p in enumerate(ch.render(reply))]
    assert results == [msgspec.convert(o, SendResult) for o in outcomes]
    assert [(s.path, s.json()) for s in provider.requests] == [(f"/bot{TOKEN}/{m}", b) for m, b in calls]
    assert all(s.headers["Content-Type"] == "application/json" for s in provider.requests)
    assert all(TOKEN not in r.getMessage() for r in caplog.records if r.name.startswith("causette"))


def test_render_stays_within_limits():
    ch = TelegramChannel("acme", "tg", msgspec.convert({"token": TOKEN, "secret_token": "s"}, TelegramSettings))
    reply = Reply(text="é🙂" * 3000, choices=[Choice(id=f"choice-{'é' * 40}-{i}", title="t" * 100) for i in range(5)])
    for call in ch.render(reply):
        assert len(call.text.encode("utf-16-le")) // 2 <= 4096
        for row in (call.reply_markup.inline_keyboard if call.reply_markup else []):
            for b in row:
                assert len(b.callback_data.encode()) <= 64 and len(b.text) <= 64


def test_split_text_prefers_boundaries():
    parts = split_text("a" * 3500 + "\n\n" + "b" * 3000)
    assert parts == ["a" * 3500, "b" * 3000]
    assert split_text("c" * 5000) == ["c" * 4096, "c" * 904]


async def test_callback_answered_through_the_api(provider, http):
    provider.answer(200, {"ok": True, "result": True})
    settings = msgspec.convert({"token": TOKEN, "secret_token": "s3cret-token", "api_base": provider.url,
                                "answer_callbacks": "api"}, TelegramSettings)
    ch = TelegramChannel("acme", "tg", settings, http)
    body = b'{"update_id":1,"callback_query":{"id":"cbq-1","from":{"id":5},"data":"w"}}'
    resp = ch.respond(Webhook("POST", "https://x/t/acme/channels/tg", {}, CIMultiDict(), body), [])
    assert resp.text == "ok"
    await asyncio.gather(*ch._tasks)
    assert [(s.path, s.json()) for s in provider.requests] == [(f"/bot{TOKEN}/answerCallbackQuery",
                                                           {"callback_query_id": "cbq-1"})]


async def test_set_webhook_helper(provider, http):
    provider.answer(200, {"ok": True, "result": True, "description": "Webhook was set"})
    out = await set_webhook(http, TOKEN, "https://chat.example.com/t/acme/channels/tg", "s3cret-token",
                            api_base=provider.url)
    assert out["ok"] is True
    [seen] = provider.requests
    assert (seen.path, seen.json()) == (f"/bot{TOKEN}/setWebhook", {
        "url": "https://chat.example.com/t/acme/channels/tg", "secret_token": "s3cret-token",
        "allowed_updates": ["message", "callback_query", "my_chat_member"], "max_connections": 40,
        "drop_pending_updates": False})
