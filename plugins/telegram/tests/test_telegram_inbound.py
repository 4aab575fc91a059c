"""Telegram inbound, as a table: each case is an Update as Telegram posts it, with or without
the secret-token header, and what must come of it."""
from __future__ import annotations

import json

import msgspec
import pytest
from aiohttp import web
from multidict import CIMultiDict

from causette_telegram import TelegramChannel, TelegramSettings
from gateway.channels import ParseError, Webhook
from gateway.types import InboundMessage

SECRET = "tg-secret_token-0123"
SETTINGS = dict(token="123456:ABC-tg-token", secret_token=SECRET, bot_username="AcmeBot")
URL = "https://chat.example.com/t/acme/channels/tg"
ANA = {"id": 123456789, "is_bot": False, "first_name": "Ana", "last_name": "Silva", "username": "ana_s",
       "language_code": "fr"}
CHAT = {"id": 123456789, "first_name": "Ana", "username": "ana_s", "type": "private"}


def channel(**over) -> TelegramChannel:
    return TelegramChannel("acme", "tg", msgspec.convert({**SETTINGS, **over}, TelegramSettings))


def hook(update: dict | bytes, *, secret: str | None = SECRET) -> Webhook:
    headers = CIMultiDict({"Content-Type": "application/json"})
    if secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    body = update if isinstance(update, bytes) else json.dumps(update).encode()
    return Webhook("POST", URL, {}, headers, body)


def message(update_id: int = 812345678, **fields) -> dict:
    return {"update_id": update_id, "message": {"message_id": 42, "from": ANA, "chat": CHAT,
                                                "date": 1717430400, **fields}}


KEYBOARD = {"inline_keyboard": [[{"text": "Femme", "callback_data": "w"}],
                                [{"text": "Homme", "callback_data": "m"}],
                                [{"text": "Un choix au nom très long", "callback_data": "#0a1b2c3d"}]]}


def callback(data: str, update_id: int = 812345679) -> dict:
    return {"update_id": update_id, "callback_query": {
        "id": "4382bfdwdsb323b2d9", "from": ANA, "chat_instance": "-5123456789012345678", "data": data,
        "message": {"message_id": 43, "from": {"id": 7000000001, "is_bot": True, "first_name": "AcmeBot"},
                    "chat": CHAT, "date": 1717430410, "text": "Que cherchez-vous ?", "reply_markup": KEYBOARD}}}


def member(old: str, new: str) -> dict:
    return {"update_id": 812345690, "my_chat_member": {
        "chat": CHAT, "from": ANA, "date": 1717430500,
        "old_chat_member": {"status": old, "user": {"id": 7000000001, "is_bot": True, "first_name": "AcmeBot"}},
        "new_chat_member": {"status": new, "user": {"id": 7000000001, "is_bot": True, "first_name": "AcmeBot"}}}}


BASE = {"tenant": "acme", "channel": "tg", "native_id": "812345678", "contact": "123456789",
        "ts": 1717430400.0, "profile": {"first_name": "Ana", "last_name": "Silva", "username": "ana_s"},
        "locale": "fr"}
CB = {**BASE, "native_id": "812345679", "ts": 1717430410.0}

# label, webhook, expected: "refused" | "unreadable" | list of normalized messages
CASES = [
    ("text", hook(message(text="Bonjour")), [{**BASE, "text": "Bonjour"}]),
    ("bare /start", hook(message(text="/start")), [{**BASE, "text": "/start"}]),
    ("/start deep link", hook(message(text="/start sms-jan")),
     [{**BASE, "kind": "referral", "referral": {"source": "link", "ref": "sms-jan"}}]),
    ("/start@bot deep link in a group", hook(message(text="/start@AcmeBot qr_vitrine")),
     [{**BASE, "kind": "referral", "referral": {"source": "link", "ref": "qr_vitrine"}}]),
    ("button tap", hook(callback("w")), [{**CB, "kind": "choice", "payload": "w", "text": "Femme"}]),
    ("tap on an over-long id comes back as its title", hook(callback("#0a1b2c3d")),
     [{**CB, "text": "Un choix au nom très long"}]),
    ("tap on a button no longer shown", hook(callback("gone")), [{**CB, "kind": "choice", "payload": "gone"}]),
    ("photo with caption, largest size", hook(message(caption="Mon colis", photo=[
        {"file_id": "small", "file_unique_id": "a", "width": 90, "height": 90},
        {"file_id": "large", "file_unique_id": "b", "width": 800, "height": 800}])),
     [{**BASE, "kind": "media", "text": "Mon colis", "media": [{"kind": "image", "id": "large", "caption": "Mon colis"}]}]),
    ("voice note", hook(message(voice={"file_id": "v1", "file_unique_id": "u", "duration": 3, "mime_type": "audio/ogg"})),
     [{**BASE, "kind": "media", "media": [{"kind": "audio", "id": "v1", "mime": "audio/ogg"}]}]),
    ("document", hook(message(document={"file_id": "d1", "file_unique_id": "u", "file_name": "cv.pdf",
                                        "mime_type": "application/pdf"})),
     [{**BASE, "kind": "media", "media": [{"kind": "file", "id": "d1", "mime": "application/pdf"}]}]),
    ("location", hook(message(location={"latitude": 48.8566, "longitude": 2.3522})),
     [{**BASE, "kind": "location", "location": {"lat": 48.8566, "lon": 2.3522, "name": ""}}]),
    ("venue", hook(message(location={"latitude": 48.86, "longitude": 2.33},
                           venue={"location": {"latitude": 48.86, "longitude": 2.33}, "title": "Louvre",
                                  "address": "Rue de Rivoli"})),
     [{**BASE, "kind": "location", "location": {"lat": 48.86, "lon": 2.33, "name": "Louvre"}}]),
    ("shared contact", hook(message(contact={"phone_number": "+33611223344", "first_name": "Ana"})),
     [{**BASE, "text": "+33611223344", "profile": {**BASE["profile"], "phone": "+33611223344"}}]),
    ("blocked the bot", hook(member("member", "kicked")),
     [{**BASE, "native_id": "812345690", "ts": 1717430500.0, "kind": "optout"}]),
    ("unblocked the bot", hook(member("kicked", "member")),
     [{**BASE, "native_id": "812345690", "ts": 1717430500.0, "kind": "optin"}]),
    ("service message carries nothing", hook(message(new_chat_title="x")), []),
    ("edited message ignored", hook({"update_id": 1, "edited_message": {"message_id": 1, "chat": CHAT, "date": 1,
                                                                        "text": "edit"}}), []),
    ("unknown update type ignored", hook({"update_id": 2, "poll": {"id": "p"}}), []),
    ("wrong secret", hook(message(text="x"), secret="not-the-secret"), "refused"),
    ("missing secret", hook(message(text="x"), secret=None), "refused"),
    ("empty secret header", hook(message(text="x"), secret=""), "refused"),
    ("not JSON", hook(b"<xml/>"), "unreadable"),
    ("no update_id", hook({"message": {"text": "x"}}), "unreadable"),
]


@pytest.mark.parametrize("label,webhook,expected", CASES, ids=[c[0] for c in CASES])
def test_inbound(label, webhook, expected):
    ch = channel()
    if expected == "refused":
        assert ch.verify(webhook) is False
        return
    assert ch.verify(webhook) is True
    if expected == "unreadable":
        with pytest.raises(ParseError):
            ch.parse(webhook)
        return
    assert ch.parse(webhook) == [msgspec.convert(e, InboundMessage) for e in expected]


def test_update_id_is_the_dedup_key():
    a, b = channel().parse(hook(message(text="x"))), channel().parse(hook(message(text="x")))
    assert a[0].native_id == b[0].native_id == "812345678"


def test_no_secret_configured_refuses_everything():
    # The settings refuse an empty secret (and anything setWebhook would not take)...
    for bad in ("", "bad secret!", "a" * 257):
        with pytest.raises(msgspec.ValidationError, match=r"\$\.secret_token"):
            channel(secret_token=bad)
    # ...and a channel built around them (a Struct made in code is not validated) still refuses.
    unset = TelegramChannel("acme", "tg", TelegramSettings(**{**SETTINGS, "secret_token": ""}))
    assert unset.verify(hook(message(text="x"), secret="")) is False


def test_callback_is_answered_in_the_webhook_response():
    resp = channel().respond(hook(callback("w")), [])
    assert isinstance(resp, web.Response)
    assert json.loads(resp.body) == {"method": "answerCallbackQuery", "callback_query_id": "4382bfdwdsb323b2d9"}
    assert channel().respond(hook(message(text="x")), []).text == "ok"


def test_contact_link():
    assert channel().contact_link("sms-jan") == "https://t.me/AcmeBot?start=sms-jan"
    assert channel().contact_link("soldes hiver/2027") == "https://t.me/AcmeBot?start=soldes_hiver_2027"
    assert channel().contact_link() == "https://t.me/AcmeBot"
    assert channel(bot_username="").contact_link("x") == ""
