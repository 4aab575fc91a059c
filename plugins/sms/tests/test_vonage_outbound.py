"""Vonage outbound, as a table: a reply, the fake API's scripted answers, the exact requests
(path, form body) and the typed outcome."""
from __future__ import annotations

import logging

import msgspec
import pytest

from causette_sms.vonage import VonageChannel, VonageSettings
from gateway.types import Card, Choice, Reply, SendResult

SECRET = "vonage-api-secret"
TO = "+33611223344"
AUTH = [("api_key", "abcd1234"), ("api_secret", SECRET), ("from", "33700000000"), ("to", "33611223344")]


def ok(*ids: str) -> dict:
    return {"message-count": str(len(ids)), "messages": [
        {"to": "33611223344", "message-id": i, "status": "0", "remaining-balance": "15.53",
         "message-price": "0.0333", "network": "20801"} for i in ids]}


def err(status: str, text: str) -> dict:
    return {"message-count": "1", "messages": [{"status": status, "error-text": text}]}


LONG = "Nos soldes d'hiver commencent ! " * 6   # 192 GSM-7 chars: two parts

# label, settings overrides, reply, answers, expected forms, outcome
CASES = [
    ("gsm7 text", {}, Reply(text="Bonjour !"), [(200, ok("0A01"))],
     [AUTH + [("text", "Bonjour !"), ("client-ref", "turn-1:0:0")]], {"status": "sent", "provider_id": "0A01"}),
    ("ucs2 text is sent as unicode", {}, Reply(text="Fête de Noël 🎄"), [(200, ok("0A02"))],
     [AUTH + [("text", "Fête de Noël 🎄"), ("type", "unicode"), ("client-ref", "turn-1:0:0")]],
     {"status": "sent", "provider_id": "0A02"}),
    ("gsm fallback keeps gsm7", {"gsm_fallback": True}, Reply(text="Fête de Noël"), [(200, ok("0A03"))],
     [AUTH + [("text", "Fete de Noel"), ("client-ref", "turn-1:0:0")]], {"status": "sent", "provider_id": "0A03"}),
    ("two-part message, first id kept", {"status_callback": "https://chat.example.com/t/acme/channels/vonage"},
     Reply(text=LONG), [(200, ok("0A04", "0A05"))],
     [AUTH + [("text", LONG), ("callback", "https://chat.example.com/t/acme/channels/vonage"),
              ("client-ref", "turn-1:0:0")]], {"status": "sent", "provider_id": "0A04"}),
    ("options and a card", {}, Reply(text="Choisissez :", choices=[Choice(id="a", title="Robe")],
                                     cards=[Card(title="Robe", url="https://shop.example/r")]),
     [(200, ok("0A06"))],
     [AUTH + [("text", "Choisissez :\n\nRobe\nhttps://shop.example/r\n1. Robe"), ("client-ref", "turn-1:0:0")]],
     {"status": "sent", "provider_id": "0A06"}),
    ("throttled then accepted", {}, Reply(text="Hi"), [(200, err("1", "Throughput Rate Exceeded")), (200, ok("0A07"))],
     [AUTH + [("text", "Hi"), ("client-ref", "turn-1:0:0")]] * 2, {"status": "sent", "provider_id": "0A07"}),
    ("HTTP 429 with Retry-After", {}, Reply(text="Hi"), [(429, {}, {"Retry-After": "0"}), (200, ok("0A08"))],
     [AUTH + [("text", "Hi"), ("client-ref", "turn-1:0:0")]] * 2, {"status": "sent", "provider_id": "0A08"}),
    ("5xx three times", {}, Reply(text="Hi"), [(503, {})] * 3,
     [AUTH + [("text", "Hi"), ("client-ref", "turn-1:0:0")]] * 3, {"status": "retry", "code": "503"}),
    ("barred number means stopped", {}, Reply(text="Promo"), [(200, err("7", "Number barred"))],
     [AUTH + [("text", "Promo"), ("client-ref", "turn-1:0:0")]],
     {"status": "stopped", "code": "7", "detail": "Number barred"}),
    ("bad credentials fail", {}, Reply(text="Promo"), [(200, err("4", "Bad Credentials"))],
     [AUTH + [("text", "Promo"), ("client-ref", "turn-1:0:0")]],
     {"status": "failed", "code": "4", "detail": "Bad Credentials"}),
    ("second part throttled is not retried", {}, Reply(text=LONG),
     [(200, {"message-count": "2", "messages": [{"status": "0", "message-id": "0A09"},
                                               {"status": "1", "error-text": "Throttled"}]})],
     [AUTH + [("text", LONG), ("client-ref", "turn-1:0:0")]],
     {"status": "failed", "code": "1", "detail": "Throttled"}),
    ("a receive-only instance (no from_number) asks Vonage nothing", {"from_number": ""},
     Reply(text="Bonjour"), [], [],
     {"status": "failed", "code": "config", "detail": "no from_number: this instance only receives"}),
]


@pytest.mark.parametrize("label,over,reply,answers,forms,outcome", CASES, ids=[c[0] for c in CASES])
async def test_send(provider, http, caplog, label, over, reply, answers, forms, outcome):
    caplog.set_level(logging.DEBUG)
    for a in answers:
        provider.answer(*a)
    settings = msgspec.convert({"api_key": "abcd1234", "api_secret": SECRET, "signature_secret": "sig-secret-1",
                                "from_number": "+33700000000", "api_base": provider.url, **over}, VonageSettings)
    ch = VonageChannel("acme", "vonage", settings, http)
    [payload] = ch.render(reply)
    result = await ch.send(TO, payload, key="turn-1:0:0")
    assert result == msgspec.convert(outcome, SendResult)
    assert [s.form for s in provider.requests] == forms
    assert all((s.method, s.path) == ("POST", "/sms/json") for s in provider.requests)
    assert all(SECRET not in r.getMessage() for r in caplog.records)
