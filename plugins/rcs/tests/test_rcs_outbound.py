"""RBM outbound, as tables: a reply -> the exact requests a fake RBM API on 127.0.0.1 sees;
the provider's answers -> the typed SendResult."""
from __future__ import annotations

import base64
import json
import time
import uuid
from urllib.parse import parse_qs

import msgspec
import pytest
from aiohttp import web
from causette_rcs import RCSChannel
from causette_rcs.auth import TOKENS
from causette_rcs.channel import Settings
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from gateway.types import Card, Choice, Media, Reply

PHONE = "+33612345678"
AGENT = "demo-bot@rbm.goog"


def channel(provider, http, **kw) -> RCSChannel:
    s = dict(agent_id=AGENT, client_token="t", access_token="ya29.test-token",
             api_base=provider.url, attempts=3)
    s.update(kw)
    return RCSChannel("demo", "rcs-main", Settings(**s), http=http)


def reply_suggestion(t, p):
    return {"reply": {"text": t, "postbackData": p}}


RENDER = [
    ("text", Reply(text="Bonjour !"), [{"contentMessage": {"text": "Bonjour !"}}]),
    ("text with suggested replies",
     Reply(text="Que cherchez-vous ?", choices=[Choice(id="w", title="Femme"),
                                                Choice(id="m", title="Homme")]),
     [{"contentMessage": {"text": "Que cherchez-vous ?", "suggestions": [
         reply_suggestion("Femme", "w"), reply_suggestion("Homme", "m")]}}]),
    ("long titles are cut at 25 chars; url and tel ids become actions",
     Reply(text="Aide", choices=[Choice(id="x", title="Un titre beaucoup trop long pour RCS"),
                                 Choice(id="https://shop.example.com", title="Site"),
                                 Choice(id="tel:+18005551212", title="Appeler")]),
     [{"contentMessage": {"text": "Aide", "suggestions": [
         reply_suggestion("Un titre beaucoup trop l…", "x"),
         {"action": {"text": "Site", "postbackData": "https://shop.example.com",
                     "openUrlAction": {"url": "https://shop.example.com"}}},
         {"action": {"text": "Appeler", "postbackData": "tel:+18005551212",
                     "dialAction": {"phoneNumber": "+18005551212"}}}]}}]),
    ("more than 11 choices become numbered options",
     Reply(text="Taille ?", choices=[Choice(id=f"s{i}", title=f"T{i}") for i in range(1, 13)]),
     [{"contentMessage": {"text": "Taille ?\n" + "\n".join(f"{i}. T{i}" for i in range(1, 13))}}]),
    ("one card is a standalone rich card",
     Reply(cards=[Card(title="Bonnet", subtitle="25 €", image="https://cdn/h.jpg",
                       url="https://shop/h", buttons=[Choice(id="buy_1", title="Acheter")])]),
     [{"contentMessage": {"richCard": {"standaloneCard": {"cardOrientation": "VERTICAL",
       "cardContent": {"title": "Bonnet", "description": "25 €",
                       "media": {"height": "MEDIUM", "contentInfo": {"fileUrl": "https://cdn/h.jpg"}},
                       "suggestions": [reply_suggestion("Acheter", "buy_1"),
                                       {"action": {"text": "Open", "postbackData": "https://shop/h",
                                                   "openUrlAction": {"url": "https://shop/h"}}}]}}}}}]),
    ("cards become a carousel; 12 cards -> 10 + 2; choices go on the last message",
     Reply(text="Nos bonnets", cards=[Card(title=f"B{i}") for i in range(12)],
           choices=[Choice(id="more", title="Plus")]),
     [{"contentMessage": {"text": "Nos bonnets"}},
      {"contentMessage": {"richCard": {"carouselCard": {"cardWidth": "MEDIUM", "cardContents": [
          {"title": f"B{i}"} for i in range(10)]}}}},
      {"contentMessage": {"richCard": {"carouselCard": {"cardWidth": "MEDIUM", "cardContents": [
          {"title": "B10"}, {"title": "B11"}]}},
          "suggestions": [reply_suggestion("Plus", "more")]}}]),
    ("card buttons are capped at 4",
     Reply(cards=[Card(title="A", buttons=[Choice(id=str(i), title=str(i)) for i in range(6)]),
                  Card(title="B")]),
     [{"contentMessage": {"richCard": {"carouselCard": {"cardWidth": "MEDIUM", "cardContents": [
         {"title": "A", "suggestions": [reply_suggestion(str(i), str(i)) for i in range(4)]},
         {"title": "B"}]}}}}]),
    ("media, then its caption",
     Reply(media=[Media(kind="image", url="https://cdn/p.jpg", caption="Nouveau")]),
     [{"contentMessage": {"contentInfo": {"fileUrl": "https://cdn/p.jpg"}}},
      {"contentMessage": {"text": "Nouveau"}}]),
    ("choices alone get their titles as text",
     Reply(choices=[Choice(id="y", title="Oui"), Choice(id="n", title="Non")]),
     [{"contentMessage": {"text": "Oui\nNon", "suggestions": [
         reply_suggestion("Oui", "y"), reply_suggestion("Non", "n")]}}]),
]


@pytest.mark.parametrize("label,reply,expected", RENDER, ids=[c[0] for c in RENDER])
async def test_rcs_send_table(label, reply, expected, provider, http):
    ch = channel(provider, http)
    payloads = ch.render(reply)
    assert payloads == expected
    for i, p in enumerate(payloads):
        res = await ch.send(PHONE, p, key=f"in-1:0:{i}")
        assert res.status == "sent"
        assert res.provider_id == ch.message_id(PHONE, p, f"in-1:0:{i}")
    assert len(provider.requests) == len(expected)
    for req, p, i in zip(provider.requests, expected, range(99)):
        assert req["method"] == "POST"
        assert req["path"] == f"/v1/phones/{PHONE}/agentMessages"
        assert req["query"] == {"messageId": ch.message_id(PHONE, p, f"in-1:0:{i}"), "agentId": AGENT}
        assert uuid.UUID(req["query"]["messageId"])
        assert req["headers"]["Authorization"] == "Bearer ya29.test-token"
        assert req["headers"]["Content-Type"].startswith("application/json")
        assert json.loads(req["body"]) == p


def test_rcs_long_text_is_split_at_word_boundaries():
    ch = RCSChannel("demo", "rcs-main", Settings(agent_id=AGENT))
    text = ("mot " * 1000).strip()
    parts = [p["contentMessage"]["text"] for p in ch.render(Reply(text=text))]
    assert len(parts) == 2 and all(len(p) <= 3072 for p in parts)
    assert " ".join(parts) == text


def test_rcs_ttl_setting():
    ch = RCSChannel("demo", "rcs-main", Settings(agent_id=AGENT, ttl="3600s"))
    assert ch.render(Reply(text="x")) == [{"contentMessage": {"text": "x"}, "ttl": "3600s"}]


def test_rcs_message_ids_are_stable_uuids_per_key():
    ch = RCSChannel("demo", "rcs-main", Settings(agent_id=AGENT))
    p = {"contentMessage": {"text": "x"}}
    a = ch.message_id(PHONE, p, "k1")
    assert a == ch.message_id(PHONE, dict(p), "k1")                  # a retry reuses it
    assert a != ch.message_id(PHONE, p, "k2")
    assert a != ch.message_id("+33700000000", p, "k1")
    assert a != ch.message_id(PHONE, {"contentMessage": {"text": "y"}}, "k1")
    assert uuid.UUID(a).version == 5


ERRORS = [
    # label, scripted answers, expected (status, code), requests made
    ("429 then ok", [(429, {}, {"Retry-After": "0"}), (200, {}, {})], ("sent", ""), 2),
    ("500, 503 then ok", [(500, {}, {}), (503, {}, {}), (200, {}, {})], ("sent", ""), 3),
    ("500 three times", [(500, {"error": {"code": 500, "message": "boom"}}, {})] * 3,
     ("retry", "500"), 3),
    ("429 asking for a long pause is handed back at once",
     [(429, {}, {"Retry-After": "120"})], ("retry", "429"), 1),
    ("404: the user is not RCS-capable",
     [(404, {"error": {"code": 404, "message": "Requested entity was not found.",
                       "status": "NOT_FOUND"}}, {})], ("failed", "not_rcs_capable"), 1),
    ("403: agent not launched on that carrier",
     [(403, {"error": {"code": 403, "message": "Agent is not launched.",
                       "status": "PERMISSION_DENIED"}}, {})], ("failed", "agent_not_launched"), 1),
    ("400: bad request, with Google's status",
     [(400, {"error": {"code": 400, "message": "Invalid suggestion", "status": "INVALID_ARGUMENT"}},
       {})], ("failed", "INVALID_ARGUMENT"), 1),
]


@pytest.mark.parametrize("label,answers,expected,n", ERRORS, ids=[c[0] for c in ERRORS])
async def test_rcs_provider_errors(label, answers, expected, n, provider, http):
    for status, body, headers in answers:
        provider.answer(status, body, headers)
    ch = channel(provider, http, fallback_channel="sms-main")
    payload = ch.render(Reply(text="Bonjour"))[0]
    res = await ch.send(PHONE, payload, key="in-9:0:0")
    assert (res.status, res.code) == expected
    assert len(provider.requests) == n
    # every attempt carries the same messageId: Google drops the duplicates
    assert len({r["query"]["messageId"] for r in provider.requests}) == 1
    if expected[0] == "retry":
        assert res.retry_after > 0
    if label.startswith("429 asking"):
        assert res.retry_after == 120
    if expected[1] == "not_rcs_capable":
        assert res.detail == "fallback=sms-main"


async def test_rcs_timeout_is_retried_then_reported(provider, http):
    provider.answer(200, {}, delay=2)
    provider.answer(200, {}, delay=2)
    ch = channel(provider, http, timeout=0.2, attempts=2)
    res = await ch.send(PHONE, {"contentMessage": {"text": "x"}}, key="k")
    assert (res.status, res.code) == ("retry", "timeout")
    assert len(provider.requests) == 2


async def test_rcs_connection_refused_is_retry(http):
    ch = RCSChannel("demo", "rcs-main", Settings(agent_id=AGENT, access_token="t",
                                                 api_base="http://127.0.0.1:9", attempts=2), http=http)
    res = await ch.send(PHONE, {"contentMessage": {"text": "x"}}, key="k")
    assert res.status == "retry" and res.code.startswith("connection")


# --- service-account tokens ---------------------------------------------------------------

@pytest.fixture
def service_account(provider):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    minted: list[dict] = []

    async def token(request: web.Request, body: bytes) -> web.Response:
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        assert form["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
        head, claims, sig = form["assertion"].split(".")
        pad = lambda s: base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
        key.public_key().verify(pad(sig), f"{head}.{claims}".encode(), padding.PKCS1v15(),
                                hashes.SHA256())
        c = json.loads(pad(claims))
        minted.append(c)
        return web.json_response({"access_token": f"ya29.minted-{len(minted)}",
                                  "expires_in": 3599, "token_type": "Bearer"})

    provider.routes["/token"] = token
    TOKENS._tokens.clear()
    sa = {"type": "service_account", "client_email": "rbm@demo.iam.gserviceaccount.com",
          "private_key": pem, "private_key_id": "kid1", "token_uri": provider.url + "/token"}
    yield json.dumps(sa), minted
    TOKENS._tokens.clear()


async def test_rcs_service_account_token_is_minted_once_and_cached(provider, http, service_account):
    sa, minted = service_account
    ch = channel(provider, http, access_token="", service_account=sa)
    for i in range(3):
        assert (await ch.send(PHONE, {"contentMessage": {"text": str(i)}}, key=f"k{i}")).status == "sent"
    assert len(minted) == 1
    c = minted[0]
    assert c["iss"] == "rbm@demo.iam.gserviceaccount.com"
    assert c["scope"] == "https://www.googleapis.com/auth/rcsbusinessmessaging"
    assert c["aud"] == provider.url + "/token" and c["exp"] - c["iat"] == 3600
    assert abs(c["iat"] - time.time()) < 600
    assert {r["headers"]["Authorization"] for r in provider.requests} == {"Bearer ya29.minted-1"}


async def test_rcs_401_refreshes_the_token_once(provider, http, service_account):
    sa, _ = service_account
    provider.answer(401, {"error": {"code": 401, "status": "UNAUTHENTICATED"}})
    provider.answer(200, {})
    ch = channel(provider, http, access_token="", service_account=sa)
    res = await ch.send(PHONE, {"contentMessage": {"text": "x"}}, key="k")
    assert res.status == "sent"
    assert [r["headers"]["Authorization"] for r in provider.requests] == [
        "Bearer ya29.minted-1", "Bearer ya29.minted-2"]


async def test_rcs_static_token_401_is_failed_auth(provider, http):
    provider.answer(401, {"error": {"code": 401, "message": "bad token", "status": "UNAUTHENTICATED"}})
    res = await channel(provider, http).send(PHONE, {"contentMessage": {"text": "x"}}, key="k")
    assert (res.status, res.code) == ("failed", "UNAUTHENTICATED")


def test_rcs_settings_schema_names_its_secrets():
    schema = msgspec.json.schema(Settings)
    assert "agent_id" in json.dumps(schema)
    assert set(RCSChannel.secrets) <= set(Settings.__struct_fields__)
