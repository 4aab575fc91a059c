"""WhatsApp outbound, as tables: a reply -> the exact requests a fake Graph API on 127.0.0.1
sees (path, headers, JSON body); the provider's answers -> the typed SendResult."""
from __future__ import annotations

import json
import logging

import aiohttp
import pytest
from causette_whatsapp.channel import Settings, WhatsAppChannel

from gateway.conformance import FakeProvider
from gateway.types import Card, Choice, Media, Reply, TemplateRef

TO = "5511987654321"
PNID = "106540352242922"
TOKEN = "EAAG-secret-token-123"


@pytest.fixture
async def provider():
    async with FakeProvider() as fake:
        yield fake
        assert not fake.script, f"scripted answers never used: {list(fake.script)}"


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as s:
        yield s


def channel(provider=None, http=None, **kw) -> WhatsAppChannel:
    s = dict(phone_number_id=PNID, access_token=TOKEN, app_secret="app-secret-xyz",
             verify_token="vt", api_base=provider.url if provider else "http://127.0.0.1:9",
             attempts=3)
    s.update(kw)
    return WhatsAppChannel("demo", "wa", Settings(**s), http=http)


def text(body, preview=False):
    return {"type": "text", "text": {"preview_url": preview, "body": body}}


def button(cid, title):
    return {"type": "reply", "reply": {"id": cid, "title": title}}


RENDER = [
    ("plain text", Reply(text="Bonjour !"), [text("Bonjour !")]),
    ("a link turns the preview on", Reply(text="Voir https://shop.example.com"),
     [text("Voir https://shop.example.com", True)]),
    ("text over 4096 chars is cut at a word boundary",
     Reply(text=" ".join(["mot"] * 1500)),
     [text(" ".join(["mot"] * 1024)), text(" ".join(["mot"] * 476))]),
    ("up to 3 choices with short titles: reply buttons",
     Reply(text="Que cherchez-vous ?", choices=[Choice(id="w", title="Femme"),
                                                Choice(id="m", title="Homme")]),
     [{"type": "interactive", "interactive": {"type": "button", "body": {"text": "Que cherchez-vous ?"},
                                              "action": {"buttons": [button("w", "Femme"), button("m", "Homme")]}}}]),
    ("a title over 20 chars: a list row (24 chars) continued in its description",
     Reply(text="Livraison ?", choices=[Choice(id="x", title="Livraison express demain matin"),
                                        Choice(id="s", title="Standard")]),
     [{"type": "interactive", "interactive": {"type": "list", "body": {"text": "Livraison ?"}, "action": {
         "button": "Options", "sections": [{"title": "Options", "rows": [
             {"id": "x", "title": "Livraison express demai…", "description": "…n matin"},
             {"id": "s", "title": "Standard"}]}]}}}]),
    ("4 to 10 choices: a list, descriptions kept",
     Reply(text="Taille ?", choices=[Choice(id=f"s{i}", title=f"T{i}", description="stock" if i == 1 else "")
                                     for i in range(1, 5)]),
     [{"type": "interactive", "interactive": {"type": "list", "body": {"text": "Taille ?"}, "action": {
         "button": "Options", "sections": [{"title": "Options", "rows": [
             {"id": "s1", "title": "T1", "description": "stock"}, {"id": "s2", "title": "T2"},
             {"id": "s3", "title": "T3"}, {"id": "s4", "title": "T4"}]}]}}}]),
    ("more than 10 choices: numbered options in text",
     Reply(text="Pointure ?", choices=[Choice(id=f"p{i}", title=str(35 + i)) for i in range(1, 12)]),
     [text("Pointure ?\n" + "\n".join(f"{i}. {35 + i}" for i in range(1, 12)))]),
    ("choices without text get a pointer as body",
     Reply(choices=[Choice(id="y", title="Oui")]),
     [{"type": "interactive", "interactive": {"type": "button", "body": {"text": "👇"},
                                              "action": {"buttons": [button("y", "Oui")]}}}]),
    ("a body over 1024 chars before buttons: the start goes first as text",
     Reply(text="a" * 1500, choices=[Choice(id="y", title="Oui")]),
     [text("a" * 1024), {"type": "interactive", "interactive": {
         "type": "button", "body": {"text": "a" * 476}, "action": {"buttons": [button("y", "Oui")]}}}]),
    ("media by link with caption, then by id",
     Reply(media=[Media(kind="image", url="https://cdn/x.jpg", caption="Nouveau"),
                  Media(kind="file", id="778", caption="facture.pdf"), Media(kind="audio", url="https://cdn/a.ogg")]),
     [{"type": "image", "image": {"link": "https://cdn/x.jpg", "caption": "Nouveau"}},
      {"type": "document", "document": {"id": "778", "caption": "facture.pdf"}},
      {"type": "audio", "audio": {"link": "https://cdn/a.ogg"}}]),
    ("a card with buttons: image header, texts, up to 3 buttons (titles cut at 20)",
     Reply(cards=[Card(title="Bonnet", subtitle="25 €", image="https://cdn/h.jpg", url="https://shop/h",
                       buttons=[Choice(id="buy_1", title="Acheter maintenant en ligne"),
                                Choice(id="b", title="B"), Choice(id="c", title="C"), Choice(id="d", title="D")])]),
     [{"type": "interactive", "interactive": {
         "type": "button", "header": {"type": "image", "image": {"link": "https://cdn/h.jpg"}},
         "body": {"text": "Bonnet\n25 €\nhttps://shop/h"},
         "action": {"buttons": [button("buy_1", "Acheter maintenant …"), button("b", "B"), button("c", "C")]}}}]),
    ("a card without buttons: an image with a caption; without image: text",
     Reply(cards=[Card(title="Écharpe", image="https://cdn/e.jpg"), Card(title="Gants", subtitle="12 €")]),
     [{"type": "image", "image": {"link": "https://cdn/e.jpg", "caption": "Écharpe"}},
      text("Gants\n12 €")]),
    ("text, then cards, then the choices under a pointer",
     Reply(text="Nos bonnets", cards=[Card(title="Bonnet", image="https://cdn/h.jpg")],
           choices=[Choice(id="more", title="Plus"), Choice(id="stop", title="Stop")]),
     [text("Nos bonnets"), {"type": "image", "image": {"link": "https://cdn/h.jpg", "caption": "Bonnet"}},
      {"type": "interactive", "interactive": {"type": "button", "body": {"text": "👇"},
                                              "action": {"buttons": [button("more", "Plus"), button("stop", "Stop")]}}}]),
    ("template (outside the window): name, language, body parameters; text ignored",
     Reply(text="ignored", template=TemplateRef(name="order_update_v1", language="fr", params=["Ana", "A123"])),
     [{"type": "template", "template": {"name": "order_update_v1", "language": {"code": "fr"},
                                        "components": [{"type": "body", "parameters": [
                                            {"type": "text", "text": "Ana"}, {"type": "text", "text": "A123"}]}]}}]),
    ("template without parameters",
     Reply(template=TemplateRef(name="hello_world", language="en_US")),
     [{"type": "template", "template": {"name": "hello_world", "language": {"code": "en_US"}}}]),
]


@pytest.mark.parametrize("label,reply,expected", RENDER, ids=[r[0] for r in RENDER])
def test_render(label, reply, expected):
    assert channel().render(reply) == expected


def _ok(wamid="wamid.OK1"):
    return {"messaging_product": "whatsapp", "contacts": [{"input": TO, "wa_id": TO}],
            "messages": [{"id": wamid}]}


async def test_send_exact_request(provider, http):
    provider.answer(200, _ok())
    ch = channel(provider, http)
    [payload] = ch.render(Reply(text="Que cherchez-vous ?", choices=[Choice(id="w", title="Femme")]))
    res = await ch.send(TO, payload, key="k1")
    assert res.status == "sent" and res.provider_id == "wamid.OK1"
    [req] = provider.requests
    assert (req.method, req.path) == ("POST", f"/v21.0/{PNID}/messages")
    assert req.headers["Authorization"] == f"Bearer {TOKEN}"
    assert req.headers["Content-Type"] == "application/json"
    assert req.json() == {"messaging_product": "whatsapp", "recipient_type": "individual", "to": TO,
                          "type": "interactive", "interactive": {
                              "type": "button", "body": {"text": "Que cherchez-vous ?"},
                              "action": {"buttons": [button("w", "Femme")]}}}


async def test_send_uses_the_configured_version(provider, http):
    provider.answer(200, _ok())
    await channel(provider, http, version="v19.0").send(TO, text("x"), key="k")
    assert provider.requests[0].path == f"/v19.0/{PNID}/messages"


async def test_send_without_an_access_token_fails_as_config_without_a_call(provider, http):
    res = await channel(provider, http, access_token="").send(TO, text("x"), key="k")
    assert (res.status, res.code) == ("failed", "config") and provider.requests == []


def _err(code, message="error", status=400, headers=None, details=""):
    body = {"error": {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "AbC"}}
    if details:
        body["error"]["error_data"] = {"messaging_product": "whatsapp", "details": details}
    return (status, body, headers or {})


# provider answers (in order) -> (status, code, calls made)
OUTCOMES = [
    ("429 with Retry-After, then accepted", [_err(130429, status=429, headers={"Retry-After": "0.05"}), (200, _ok(), {})],
     ("sent", "", 2)),
    ("500 twice then accepted", [_err(131000, status=500), _err(131000, status=500), (200, _ok(), {})],
     ("sent", "", 3)),
    ("500 three times: retry later", [_err(131000, status=500)] * 3, ("retry", "131000", 3)),
    ("throttled in a 400 body (130429): retried", [_err(130429), (200, _ok(), {})], ("sent", "", 2)),
    ("pair rate limit (131056) every time: retry later", [_err(131056)] * 3, ("retry", "131056", 3)),
    ("429 asking for a long pause: handed back at once", [_err(130429, status=429, headers={"Retry-After": "120"})],
     ("retry", "130429", 1)),
    ("re-engagement (131047): failed, never retried", [_err(131047, "Re-engagement message")],
     ("failed", "131047", 1)),
    ("undeliverable (131026): failed", [_err(131026, "Message undeliverable")], ("failed", "131026", 1)),
    ("user stopped marketing (131050): stopped", [_err(131050, "User stopped")], ("stopped", "131050", 1)),
    ("expired token (190): failed, names the setting", [_err(190, "Error validating access token", status=401)],
     ("failed", "190", 1)),
    ("template does not exist (132001): failed", [_err(132001, "Template name does not exist", details="x")],
     ("failed", "132001", 1)),
    ("a 500 without a JSON body: retry later", [(502, "<html>bad gateway</html>", {})] * 3, ("retry", "502", 3)),
]


@pytest.mark.parametrize("label,answers,expected", OUTCOMES, ids=[o[0] for o in OUTCOMES])
async def test_send_outcomes(label, answers, expected, provider, http, caplog):
    caplog.set_level(logging.DEBUG)
    for status, body, headers in answers:
        provider.answer(status, body, headers)
    res = await channel(provider, http).send(TO, text("Bonjour"), key="k")
    assert (res.status, res.code, len(provider.requests)) == expected, res
    if res.status == "retry":
        assert res.retry_after > 0
    if res.code == "131047":
        assert "template" in res.detail
    # every attempt is the same request
    assert len({r.body for r in provider.requests}) == 1
    assert TOKEN not in res.detail + "".join(r.getMessage() for r in caplog.records)


async def test_timeouts_are_retried_then_reported(provider, http):
    for _ in range(2):
        provider.answer(200, _ok(), delay=1.0)
    res = await channel(provider, http, timeout=0.1, attempts=2).send(TO, text("x"), key="k")
    assert (res.status, res.code) == ("retry", "timeout")
    assert len(provider.requests) == 2


async def test_connection_refused_is_retry_later(http):
    res = await channel(None, http, api_base="http://127.0.0.1:9", attempts=1).send(TO, text("x"), key="k")
    assert res.status == "retry" and res.code.startswith("connection")


async def test_send_without_shared_session_opens_its_own(provider):
    provider.answer(200, _ok("wamid.own"))
    res = await channel(provider, None).send(TO, text("x"), key="k")
    assert res.provider_id == "wamid.own"


def test_capabilities_declare_window_and_templates():
    caps = WhatsAppChannel.capabilities
    assert (caps.window_hours, caps.templates, caps.buttons, caps.button_title,
            caps.list_rows, caps.list_title, caps.text_length) == (24, True, 3, 20, 10, 24, 4096)


def test_payload_is_json_serialisable():
    for _, reply, _ in RENDER:
        json.dumps(channel().render(reply))


async def test_mark_read_with_typing_indicator(provider, http):
    provider.answer(200, {"success": True})
    res = await channel(provider, http).mark_read("wamid.IN1", typing=True)
    assert res.status == "sent"
    [req] = provider.requests
    assert req.path == f"/v21.0/{PNID}/messages"
    assert req.json() == {"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.IN1",
                          "typing_indicator": {"type": "text"}}


async def test_media_url(provider, http):
    provider.answer(200, {"messaging_product": "whatsapp", "url": "https://lookaside.fbsbx.com/x?mid=1",
                          "mime_type": "image/jpeg", "id": "1479537139650973"})
    provider.answer(404, {"error": {"code": 100, "message": "Unsupported get request"}})
    ch = channel(provider, http)
    assert await ch.media_url("1479537139650973") == "https://lookaside.fbsbx.com/x?mid=1"
    assert await ch.media_url("gone") == ""
    req = provider.requests[0]
    assert (req.method, req.path, req.headers["Authorization"]) == (
        "GET", "/v21.0/1479537139650973", f"Bearer {TOKEN}")
