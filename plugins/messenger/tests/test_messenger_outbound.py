"""Messenger outbound, as tables: a reply -> the exact requests a fake Graph API on 127.0.0.1
sees; the provider's answers -> the typed SendResult; the handover protocol's calls."""
from __future__ import annotations

import hashlib
import hmac
import logging

import aiohttp
import pytest
from causette_messenger.channel import PAGE_INBOX_APP_ID, MessengerChannel, Settings

from gateway.conformance import FakeProvider
from gateway.types import Card, Choice, Media, Reply, TemplateRef

PSID = "6789012345678901"
PAGE = "104293835684410"
TOKEN = "EAAB-page-token-secret-123"


@pytest.fixture
async def provider():
    async with FakeProvider() as fake:
        yield fake
        assert not fake.script, f"scripted answers never used: {list(fake.script)}"


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as s:
        yield s


def channel(provider=None, http=None, **kw) -> MessengerChannel:
    s = dict(page_id=PAGE, page_access_token=TOKEN, app_secret="app-secret-xyz", verify_token="vt",
             api_base=provider.url if provider else "http://127.0.0.1:9", attempts=3)
    s.update(kw)
    return MessengerChannel("demo", "fb", Settings(**s), http=http)


def R(message, tag=""):
    return {"messaging_type": "MESSAGE_TAG", "tag": tag, "message": message} if tag else \
        {"messaging_type": "RESPONSE", "message": message}


def qr(title, payload):
    return {"content_type": "text", "title": title, "payload": payload}


def generic(*elements):
    return {"attachment": {"type": "template", "payload": {"template_type": "generic", "elements": list(elements)}}}


RENDER = [
    ("text", Reply(text="Bonjour !"), [R({"text": "Bonjour !"})]),
    ("text over 2000 chars is cut at a word boundary",
     Reply(text=" ".join(["mot"] * 600)),
     [R({"text": " ".join(["mot"] * 500)}), R({"text": " ".join(["mot"] * 100)})]),
    ("choices: quick replies on the text (titles cut at 20)",
     Reply(text="Pick a color:", choices=[Choice(id="PICK_RED", title="Red"),
                                          Choice(id="PICK_GREEN", title="Vert sapin profond des Vosges")]),
     [R({"text": "Pick a color:", "quick_replies": [qr("Red", "PICK_RED"), qr("Vert sapin profond …", "PICK_GREEN")]})]),
    ("13 choices still fit", Reply(text="?", choices=[Choice(id=f"c{i}", title=str(i)) for i in range(13)]),
     [R({"text": "?", "quick_replies": [qr(str(i), f"c{i}") for i in range(13)]})]),
    ("14 choices: numbered options in text",
     Reply(text="Pointure ?", choices=[Choice(id=f"p{i}", title=str(34 + i)) for i in range(1, 15)]),
     [R({"text": "Pointure ?\n" + "\n".join(f"{i}. {34 + i}" for i in range(1, 15))})]),
    ("choices without text get a pointer",
     Reply(choices=[Choice(id="y", title="Oui")]), [R({"text": "👇", "quick_replies": [qr("Oui", "y")]})]),
    ("cards: a generic template; postback, url and phone buttons; card url as default action",
     Reply(cards=[Card(title="Classic hat", subtitle="$25", image="https://cdn.example.com/hat.jpg",
                       url="https://shop.example.com/hat",
                       buttons=[Choice(id="BUY_HAT_1", title="Buy")]),
                  Card(title="Sun hat", subtitle="$30",
                       buttons=[Choice(id="BUY_HAT_2", title="Buy"), Choice(id="https://shop/x", title="Details"),
                                Choice(id="tel:+33123456789", title="Call"), Choice(id="no", title="4th")])]),
     [R(generic(
         {"title": "Classic hat", "subtitle": "$25", "image_url": "https://cdn.example.com/hat.jpg",
          "default_action": {"type": "web_url", "url": "https://shop.example.com/hat"},
          "buttons": [{"type": "postback", "title": "Buy", "payload": "BUY_HAT_1"},
                      {"type": "web_url", "title": "Open", "url": "https://shop.example.com/hat"}]},
         {"title": "Sun hat", "subtitle": "$30",
          "buttons": [{"type": "postback", "title": "Buy", "payload": "BUY_HAT_2"},
                      {"type": "web_url", "title": "Details", "url": "https://shop/x"},
                      {"type": "phone_number", "title": "Call", "payload": "+33123456789"}]}))]),
    ("12 cards: a carousel of 10 then 2; text first; quick replies on the last",
     Reply(text="Nos bonnets", cards=[Card(title=f"B{i}") for i in range(12)],
           choices=[Choice(id="more", title="Plus")]),
     [R({"text": "Nos bonnets"}),
      R(generic(*[{"title": f"B{i}"} for i in range(10)])),
      R({**generic({"title": "B10"}, {"title": "B11"}), "quick_replies": [qr("Plus", "more")]})]),
    ("card titles and subtitles are cut at 80",
     Reply(cards=[Card(title="T" * 100, subtitle="S" * 100)]),
     [R(generic({"title": "T" * 79 + "…", "subtitle": "S" * 79 + "…"}))]),
    ("media by url (reusable), by attachment id, caption after",
     Reply(media=[Media(kind="image", url="https://cdn/x.jpg", caption="Nouveau"), Media(kind="video", id="1857777774821032")]),
     [R({"attachment": {"type": "image", "payload": {"url": "https://cdn/x.jpg", "is_reusable": True}}}),
      R({"text": "Nouveau"}),
      R({"attachment": {"type": "video", "payload": {"attachment_id": "1857777774821032"}}})]),
    ("a tag sends outside the window with MESSAGE_TAG (agent follow-up)",
     Reply(text="Votre colis est reparti.", tag="human_agent", from_agent="lea"),
     [R({"text": "Votre colis est reparti."}, tag="HUMAN_AGENT")]),
    ("a tag applies to every message of the reply",
     Reply(text="Mise à jour", tag="POST_PURCHASE_UPDATE", choices=[Choice(id="ok", title="OK")]),
     [R({"text": "Mise à jour", "quick_replies": [qr("OK", "ok")]}, tag="POST_PURCHASE_UPDATE")]),
    ("no WhatsApp-style templates on Messenger: the text is sent",
     Reply(text="Rappel", template=TemplateRef(name="reminder")), [R({"text": "Rappel"})]),
]


@pytest.mark.parametrize("label,reply,expected", RENDER, ids=[r[0] for r in RENDER])
def test_render(label, reply, expected):
    assert channel().render(reply) == expected


async def test_send_exact_request(provider, http):
    provider.answer(200, {"recipient_id": PSID, "message_id": "m_sent_1"})
    ch = channel(provider, http)
    [payload] = ch.render(Reply(text="Pick a color:", choices=[Choice(id="PICK_RED", title="Red")]))
    res = await ch.send(PSID, payload, key="k1")
    assert (res.status, res.provider_id) == ("sent", "m_sent_1")
    [req] = provider.requests
    assert (req.method, req.path, req.query) == ("POST", f"/v21.0/{PAGE}/messages", {})
    assert req.headers["Authorization"] == f"Bearer {TOKEN}"
    assert req.headers["Content-Type"] == "application/json"
    assert req.json() == {"recipient": {"id": PSID}, "messaging_type": "RESPONSE",
                          "message": {"text": "Pick a color:", "quick_replies": [qr("Red", "PICK_RED")]}}
    assert list(req.json()) == ["recipient", "messaging_type", "message"]


async def test_send_without_a_page_token_fails_as_config_without_a_call(provider, http):
    res = await channel(provider, http, page_access_token="").send(PSID, {"message": {"text": "x"}}, key="k")
    assert (res.status, res.code) == ("failed", "config") and provider.requests == []


async def test_send_with_appsecret_proof(provider, http):
    provider.answer(200, {"recipient_id": PSID, "message_id": "m"})
    ch = channel(provider, http, appsecret_proof=True)
    await ch.send(PSID, ch.render(Reply(text="x"))[0], key="k")
    proof = hmac.new(b"app-secret-xyz", TOKEN.encode(), hashlib.sha256).hexdigest()
    assert provider.requests[0].query == {"appsecret_proof": proof}


async def test_send_to_a_chat_plugin_visitor(provider, http):
    provider.answer(200, {"message_id": "m"})
    ch = channel(provider, http)
    await ch.send("ref:ur-42", ch.render(Reply(text="x"))[0], key="k")
    assert provider.requests[0].json()["recipient"] == {"user_ref": "ur-42"}


def _err(code, subcode=0, message="error", status=400, headers=None):
    e = {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "AbC"}
    if subcode:
        e["error_subcode"] = subcode
    return (status, {"error": e}, headers or {})


OK = (200, {"recipient_id": PSID, "message_id": "m_ok"}, {})
OUTCOMES = [
    ("429 with Retry-After, then accepted", [_err(613, status=429, headers={"Retry-After": "0.05"}), OK], ("sent", "", 2)),
    ("500 then accepted", [_err(2, status=500), OK], ("sent", "", 2)),
    ("500 every time: retry later", [_err(2, status=500)] * 3, ("retry", "2", 3)),
    ("page-level throttling in a 400 (613): retried", [_err(613), OK], ("sent", "", 2)),
    ("app rate limit (4) every time: retry later", [_err(4)] * 3, ("retry", "4", 3)),
    ("429 asking for a long pause: handed back at once", [_err(613, status=429, headers={"Retry-After": "600"})],
     ("retry", "613", 1)),
    ("outside the window (10/2018278): failed, asks for a tag",
     [_err(10, 2018278, "(#10) This message is sent outside of allowed window.")], ("failed", "10.2018278", 1)),
    ("the person isn't available (551): stopped",
     [_err(551, 1545041, "This person isn't available right now.")], ("stopped", "551.1545041", 1)),
    ("no matching user (100/2018001): failed", [_err(100, 2018001, "No matching user found")],
     ("failed", "100.2018001", 1)),
    ("expired token (190): failed", [_err(190, 463, "Error validating access token", status=401)], ("failed", "190.463", 1)),
]


@pytest.mark.parametrize("label,answers,expected", OUTCOMES, ids=[o[0] for o in OUTCOMES])
async def test_send_outcomes(label, answers, expected, provider, http, caplog):
    caplog.set_level(logging.DEBUG)
    for status, body, headers in answers:
        provider.answer(status, body, headers)
    ch = channel(provider, http)
    res = await ch.send(PSID, ch.render(Reply(text="Bonjour"))[0], key="k")
    assert (res.status, res.code, len(provider.requests)) == expected, res
    if res.status == "retry":
        assert res.retry_after > 0
    if "2018278" in res.code:
        assert "tag" in res.detail
    assert len({r.body for r in provider.requests}) == 1
    assert TOKEN not in res.detail + "".join(r.getMessage() for r in caplog.records)


async def test_timeouts_are_retried_then_reported(provider, http):
    for _ in range(2):
        provider.answer(200, {"message_id": "late"}, delay=1.0)
    ch = channel(provider, http, timeout=0.1, attempts=2)
    res = await ch.send(PSID, ch.render(Reply(text="x"))[0], key="k")
    assert (res.status, res.code, len(provider.requests)) == ("retry", "timeout", 2)


# --- handover protocol ------------------------------------------------------------------
HANDOVER = [
    ("pass to the Page Inbox by default", "pass_thread_control", {}, {
        "recipient": {"id": PSID}, "target_app_id": int(PAGE_INBOX_APP_ID)}),
    ("pass to a helpdesk app with metadata", "pass_thread_control",
     {"target_app_id": "1234567890", "metadata": '{"queue": "sales"}'},
     {"recipient": {"id": PSID}, "target_app_id": 1234567890, "metadata": '{"queue": "sales"}'}),
    ("take it back", "take_thread_control", {"metadata": "bot"},
     {"recipient": {"id": PSID}, "metadata": "bot"}),
    ("ask the primary receiver for it", "request_thread_control", {},
     {"recipient": {"id": PSID}}),
]


@pytest.mark.parametrize("label,method,kw,body", HANDOVER, ids=[h[0] for h in HANDOVER])
async def test_handover_requests(label, method, kw, body, provider, http):
    provider.answer(200, {"success": True})
    res = await getattr(channel(provider, http), method)(PSID, **kw)
    assert res.status == "sent"
    [req] = provider.requests
    assert (req.method, req.path) == ("POST", f"/v21.0/{PAGE}/{method}")
    assert req.headers["Authorization"] == f"Bearer {TOKEN}"
    assert req.json() == body


async def test_handover_refused_is_a_typed_failure(provider, http):
    provider.answer(400, {"error": {"message": "(#10) Only the primary receiver can take thread control",
                                    "type": "OAuthException", "code": 10, "error_subcode": 2018300}})
    res = await channel(provider, http).take_thread_control(PSID)
    assert (res.status, res.code) == ("failed", "10.2018300")


def test_capabilities():
    caps = MessengerChannel.capabilities
    assert (caps.window_hours, caps.templates, caps.buttons, caps.button_title, caps.cards,
            caps.card_buttons, caps.text_length) == (24, False, 13, 20, 10, 3, 2000)


@pytest.mark.parametrize("action", ["typing_on", "mark_seen"])
async def test_sender_action(action, provider, http):
    provider.answer(200, {"recipient_id": PSID})
    assert (await channel(provider, http).sender_action(PSID, action)).status == "sent"
    assert provider.requests[0].json() == {"recipient": {"id": PSID}, "sender_action": action}
