"""Twilio outbound, as a table: a reply, the fake API's scripted answers, the exact requests
it must see (path, auth, form body) and the typed outcome."""
from __future__ import annotations

import base64
import logging

import msgspec
import pytest

from causette_sms.twilio import TwilioChannel, TwilioSettings
from gateway.types import Choice, Media, Reply, SendResult

SID = "AC0123456789abcdef0123456789abcdef"
TOKEN = "tw-auth-token-0123456789"
PATH = f"/2010-04-01/Accounts/{SID}/Messages.json"
TO = "+33611223344"


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def created(sid: str = "SMabc") -> dict:
    return {"sid": sid, "status": "queued", "to": TO}


def error(code: int, message: str) -> dict:
    return {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": 400}


# Answers for FakeProvider.answer(*a): one that comes after the client's timeout, and a
# connection cut without an answer.
SLOW = (504, None, None, 5.0)
DROP = (0, None, None, 0.0, 1, True)

# label, settings overrides, reply, scripted answers, expected forms (one per request), outcome
CASES = [
    ("text from a number", {}, Reply(text="Bonjour !"), [(201, created("SM1"))],
     [[("To", TO), ("From", "+33700000000"), ("Body", "Bonjour !")]],
     {"status": "sent", "provider_id": "SM1"}),
    ("numbered options", {}, Reply(text="Que cherchez-vous ?", choices=[Choice(id="w", title="Femme"),
                                                                        Choice(id="m", title="Homme")]),
     [(201, created("SM2"))],
     [[("To", TO), ("From", "+33700000000"), ("Body", "Que cherchez-vous ?\n1. Femme\n2. Homme")]],
     {"status": "sent", "provider_id": "SM2"}),
    ("messaging service, status callback, MMS",
     {"messaging_service_sid": "MG0123", "status_callback": "https://chat.example.com/t/acme/channels/sms"},
     Reply(text="Votre colis", media=[Media(kind="image", url="https://cdn.example/p.jpg")]), [(201, created("SM3"))],
     [[("To", TO), ("MessagingServiceSid", "MG0123"), ("Body", "Votre colis"),
       ("MediaUrl", "https://cdn.example/p.jpg"), ("StatusCallback", "https://chat.example.com/t/acme/channels/sms")]],
     {"status": "sent", "provider_id": "SM3"}),
    ("429 then created", {}, Reply(text="Hi"), [(429, error(20429, "Too Many Requests"), {"Retry-After": "0"}),
                                              (201, created("SM4"))],
     [[("To", TO), ("From", "+33700000000"), ("Body", "Hi")]] * 2, {"status": "sent", "provider_id": "SM4"}),
    ("500 three times", {}, Reply(text="Hi"), [(500, {})] * 3,
     [[("To", TO), ("From", "+33700000000"), ("Body", "Hi")]] * 3, {"status": "retry", "code": "500"}),
    ("timeout then created", {"timeout": 0.3}, Reply(text="Hi"), [SLOW, (201, created("SM6"))],
     [[("To", TO), ("From", "+33700000000"), ("Body", "Hi")]] * 2, {"status": "sent", "provider_id": "SM6"}),
    ("connection cut then created", {}, Reply(text="Hi"), [DROP, (201, created("SM5"))],
     [[("To", TO), ("From", "+33700000000"), ("Body", "Hi")]] * 2, {"status": "sent", "provider_id": "SM5"}),
    ("long Retry-After is handed back", {}, Reply(text="Hi"),
     [(429, error(20429, "Too Many Requests"), {"Retry-After": "120"})],
     [[("To", TO), ("From", "+33700000000"), ("Body", "Hi")]],
     {"status": "retry", "retry_after": 120.0, "code": "20429", "detail": "Too Many Requests"}),
    ("21610 unsubscribed means stopped", {}, Reply(text="Promo"),
     [(400, error(21610, "Attempt to send to unsubscribed recipient"))],
     [[("To", TO), ("From", "+33700000000"), ("Body", "Promo")]],
     {"status": "stopped", "code": "21610", "detail": "Attempt to send to unsubscribed recipient"}),
    ("invalid number fails for good", {}, Reply(text="Promo"),
     [(400, error(21211, "The 'To' number is not a valid phone number."))],
     [[("To", TO), ("From", "+33700000000"), ("Body", "Promo")]],
     {"status": "failed", "code": "21211", "detail": "The 'To' number is not a valid phone number."}),
    ("bad credentials fail", {}, Reply(text="Promo"), [(401, error(20003, "Authenticate"))],
     [[("To", TO), ("From", "+33700000000"), ("Body", "Promo")]],
     {"status": "failed", "code": "20003", "detail": "Authenticate"}),
]


@pytest.mark.parametrize("label,over,reply,answers,forms,outcome", CASES, ids=[c[0] for c in CASES])
async def test_send(provider, http, caplog, label, over, reply, answers, forms, outcome):
    caplog.set_level(logging.DEBUG)
    for a in answers:
        provider.answer(*a)
    settings = msgspec.convert({"account_sid": SID, "auth_token": TOKEN, "from_number": "+33700000000",
                                "api_base": provider.url, "reply_mode": "rest", **over}, TwilioSettings)
    ch = TwilioChannel("acme", "sms", settings, http)
    payloads = ch.render(reply)
    assert len(payloads) == 1
    result = await ch.send(TO, payloads[0], key="k1:0:0")
    assert result == msgspec.convert(outcome, SendResult)
    assert [s.form for s in provider.requests] == forms
    for s in provider.requests:
        assert (s.method, s.path) == ("POST", PATH)
        assert s.headers["Authorization"] == basic(SID, TOKEN)
        assert s.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert all(TOKEN not in r.getMessage() for r in caplog.records)
    assert TOKEN not in str(msgspec.to_builtins(result))


async def test_api_key_credentials(provider, http):
    provider.answer(201, created("SM9"))
    settings = msgspec.convert({"account_sid": SID, "auth_token": TOKEN, "from_number": "+33700000000",
                                "api_key_sid": "SK0001", "api_key_secret": "sk-secret-value",
                                "api_base": provider.url}, TwilioSettings)
    ch = TwilioChannel("acme", "sms", settings, http)
    result = await ch.send(TO, ch.render(Reply(text="x"))[0], key="k")
    assert result.status == "sent"
    assert provider.requests[0].headers["Authorization"] == basic("SK0001", "sk-secret-value")


async def test_long_reply_is_cut_to_max_segments(provider, http):
    provider.answer(201, created())
    settings = msgspec.convert({"account_sid": SID, "auth_token": TOKEN, "from_number": "+33700000000",
                                "api_base": provider.url, "max_segments": 2}, TwilioSettings)
    ch = TwilioChannel("acme", "sms", settings, http)
    await ch.send(TO, ch.render(Reply(text="mot " * 200))[0], key="k")
    body = dict(provider.requests[0].form)["Body"]
    assert body.endswith("...") and len(body) <= 306
