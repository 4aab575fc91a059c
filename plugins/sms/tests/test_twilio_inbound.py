"""Twilio inbound, as a table: each case is a webhook as Twilio sends it and what must come
of it (refused, unreadable, or the normalized messages). Signatures are computed here with
the documented algorithm, independently of the channel's code."""
from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import urlencode

import msgspec
import pytest
from aiohttp import web
from multidict import CIMultiDict

from causette_sms.twilio import TwilioChannel, TwilioSettings, signature
from gateway.channels import ParseError, Webhook
from gateway.types import InboundMessage

TOKEN = "tw-auth-token-0123456789"
URL = "https://chat.example.com/t/acme/channels/sms"
SETTINGS = dict(account_sid="AC0123456789abcdef0123456789abcdef", auth_token=TOKEN,
                from_number="+33700000000")


def sign(token: str, url: str, pairs: list[tuple[str, str]]) -> str:
    keys = sorted({k for k, _ in pairs})
    data = url + "".join(k + v for k in keys for v in sorted(v for kk, v in pairs if kk == k))
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def channel(**over) -> TwilioChannel:
    return TwilioChannel("acme", "sms", msgspec.convert({**SETTINGS, **over}, TwilioSettings))


def hook(pairs: list[tuple[str, str]], *, sig: str = "valid", url: str = URL, signed_url: str | None = None) -> Webhook:
    body = urlencode(pairs).encode()
    headers = CIMultiDict({"Content-Type": "application/x-www-form-urlencoded"})
    if sig == "valid":
        headers["X-Twilio-Signature"] = sign(TOKEN, signed_url or url, pairs)
    elif sig == "wrong":
        headers["X-Twilio-Signature"] = sign("another-token", url, pairs)
    return Webhook("POST", url, {}, headers, body)


SMS = [("MessageSid", "SM1f0e8ae6ade43cb3c0ce4525424e404f"), ("SmsSid", "SM1f0e8ae6ade43cb3c0ce4525424e404f"),
       ("SmsMessageSid", "SM1f0e8ae6ade43cb3c0ce4525424e404f"), ("AccountSid", SETTINGS["account_sid"]),
       ("MessagingServiceSid", "MG0123456789abcdef0123456789abcdef"), ("From", "+33611223344"),
       ("To", "+33700000000"), ("Body", "Bonjour, où est ma commande ?"), ("NumMedia", "0"),
       ("NumSegments", "1"), ("SmsStatus", "received"), ("ApiVersion", "2010-04-01"),
       ("FromCountry", "FR"), ("FromCity", "")]


def replace(pairs, **values):
    out = [(k, values.pop(k)) if k in values else (k, v) for k, v in pairs]
    return out + list(values.items())


MMS = replace(SMS, Body="Photo du colis", NumMedia="2", MediaUrl0="https://api.twilio.com/m/ME1",
              MediaContentType0="image/jpeg", MediaUrl1="https://api.twilio.com/m/ME2",
              MediaContentType1="application/pdf")
STATUS = [("MessageSid", "SMout1"), ("MessageStatus", "delivered"), ("SmsStatus", "delivered"),
          ("AccountSid", SETTINGS["account_sid"]), ("From", "+33700000000"), ("To", "+33611223344"),
          ("ApiVersion", "2010-04-01")]

BASE = {"tenant": "acme", "channel": "sms"}
TEXT_MSG = {**BASE, "native_id": "SM1f0e8ae6ade43cb3c0ce4525424e404f", "contact": "+33611223344",
            "kind": "text", "profile": {"country": "FR", "to": "+33700000000"}}

# label, webhook, expected: "refused" | "unreadable" | list of normalized messages
CASES = [
    ("text", hook(SMS), [{**TEXT_MSG, "text": "Bonjour, où est ma commande ?"}]),
    ("numbered answer is plain text", hook(replace(SMS, Body="2")), [{**TEXT_MSG, "text": "2"}]),
    ("mms with two media", hook(MMS), [{**TEXT_MSG, "kind": "media", "text": "Photo du colis", "media": [
        {"kind": "image", "url": "https://api.twilio.com/m/ME1", "mime": "image/jpeg"},
        {"kind": "file", "url": "https://api.twilio.com/m/ME2", "mime": "application/pdf"}]}]),
    ("STOP keyword", hook(replace(SMS, Body="stop")),
     [{**TEXT_MSG, "kind": "optout", "text": "stop", "payload": "stop"}]),
    ("French ARRÊT keyword", hook(replace(SMS, Body=" Arrêt ! ")),
     [{**TEXT_MSG, "kind": "optout", "text": " Arrêt ! ", "payload": "stop"}]),
    ("STOP inside a sentence is text", hook(replace(SMS, Body="stop the spam please")),
     [{**TEXT_MSG, "text": "stop the spam please"}]),
    ("START keyword", hook(replace(SMS, Body="START")),
     [{**TEXT_MSG, "kind": "optin", "text": "START", "payload": "start"}]),
    ("HELP keyword", hook(replace(SMS, Body="Aide")),
     [{**TEXT_MSG, "text": "Aide", "payload": "help"}]),
    ("Advanced Opt-Out STOP", hook(replace(SMS, Body="Unsubscribe", OptOutType="STOP")),
     [{**TEXT_MSG, "kind": "optout", "text": "Unsubscribe", "payload": "provider:stop"}]),
    ("Advanced Opt-Out custom keyword", hook(replace(SMS, Body="BASTA", OptOutType="STOP")),
     [{**TEXT_MSG, "kind": "optout", "text": "BASTA", "payload": "provider:stop"}]),
    ("Advanced Opt-Out HELP", hook(replace(SMS, Body="INFO", OptOutType="HELP")),
     [{**TEXT_MSG, "text": "INFO", "payload": "provider:help"}]),
    ("status delivered", hook(STATUS), [{**BASE, "native_id": "SMout1:delivered", "contact": "+33611223344",
                                         "kind": "status", "status": "delivered", "refers_to": "SMout1"}]),
    ("status undelivered with code", hook(replace(STATUS, MessageStatus="undelivered", ErrorCode="30006")),
     [{**BASE, "native_id": "SMout1:undelivered", "contact": "+33611223344", "kind": "status",
       "status": "failed", "refers_to": "SMout1", "payload": "30006"}]),
    ("status read (OTT)", hook(replace(STATUS, MessageStatus="read")),
     [{**BASE, "native_id": "SMout1:read", "contact": "+33611223344", "kind": "status",
       "status": "read", "refers_to": "SMout1"}]),
    ("unknown extra parameters are signed too", hook(replace(SMS, AddedTomorrow="x&y=z")),
     [{**TEXT_MSG, "text": "Bonjour, où est ma commande ?"}]),
    ("repeated parameter", hook(SMS + [("Tag", "b"), ("Tag", "a")]),
     [{**TEXT_MSG, "text": "Bonjour, où est ma commande ?"}]),
    ("signed with :443 in the console URL", hook(SMS, signed_url="https://chat.example.com:443/t/acme/channels/sms"),
     [{**TEXT_MSG, "text": "Bonjour, où est ma commande ?"}]),
    ("wrong signature", hook(SMS, sig="wrong"), "refused"),
    ("missing signature", hook(SMS, sig="missing"), "refused"),
    ("signed for another URL", hook(SMS, signed_url="https://chat.example.com/t/other/channels/sms"), "refused"),
    ("no MessageSid", hook([("From", "+33611223344"), ("Body", "hi")]), "unreadable"),
    ("no From", hook([("MessageSid", "SM1"), ("Body", "hi")]), "unreadable"),
    ("NumMedia not a number", hook(replace(SMS, NumMedia="x")), "unreadable"),
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


def test_tampered_body_is_refused():
    good = hook(SMS)
    tampered = Webhook("POST", URL, {}, good.headers, good.body.replace(b"commande", b"argent"))
    assert channel().verify(tampered) is False


def test_no_auth_token_refuses_everything():
    ch = channel(auth_token="")
    assert ch.verify(hook(SMS)) is False


def test_get_webhook_signs_the_url_only():
    url = URL + "?" + urlencode(SMS)
    headers = CIMultiDict({"X-Twilio-Signature": sign(TOKEN, url, [])})
    wh = Webhook("GET", url, dict(SMS), headers, b"")
    ch = channel()
    assert ch.verify(wh)
    assert ch.parse(wh)[0].text == "Bonjour, où est ma commande ?"


def test_json_body_signed_through_body_sha256():
    body = b'{"property": "value", "boolean": true}'
    digest = hashlib.sha256(body).hexdigest()
    url = f"{URL}?bodySHA256={digest}"
    headers = CIMultiDict({"Content-Type": "application/json", "X-Twilio-Signature": sign(TOKEN, url, [])})
    assert channel().verify(Webhook("POST", url, {"bodySHA256": digest}, headers, body))
    other = Webhook("POST", url, {"bodySHA256": digest}, headers, body + b" ")
    assert not channel().verify(other)


def test_signature_matches_the_documented_algorithm():
    pairs = [("Digits", "5678"), ("Sid", "CA123"), ("Digits", "1234"), ("SidAccount", "AC123")]
    for url in ("https://a.example/x.php?foo=1&bar=2", "https://a.example:443/x.php?foo=1&bar=2"):
        assert signature("12345", url, pairs) == sign("12345", url, pairs)


def test_respond_is_twiml():
    from causette_sms.render import SmsMessage
    resp = channel().respond(hook(SMS), [SmsMessage(body="Bonjour <Ana> & co"),
                                         SmsMessage(body="Photo", media=["https://x/i.jpg?a=1&b=2"])])
    assert isinstance(resp, web.Response)
    assert resp.content_type == "text/xml"
    assert resp.text == ('<?xml version="1.0" encoding="UTF-8"?><Response>'
                         "<Message>Bonjour &lt;Ana&gt; &amp; co</Message>"
                         "<Message><Body>Photo</Body><Media>https://x/i.jpg?a=1&amp;b=2</Media></Message>"
                         "</Response>")
    assert channel().respond(hook(SMS), []).text.endswith("<Response></Response>")


def test_reply_mode_decides_inline_capability():
    assert channel().capabilities.inline > 0
    assert channel(reply_mode="rest").capabilities.inline == 0
    assert channel(mms=False).capabilities.media is False


def test_contact_link_is_an_sms_uri():
    assert channel().contact_link("soldes hiver") == "sms:+33700000000?body=soldes%20hiver"
    # a Messaging Service picks the sender from its pool: no number to link to
    assert channel(from_number="", messaging_service_sid="MG0123456789abcdef0123456789abcdef").contact_link("x") == ""


# Twilio's published test vectors (twilio-python's request-validator tests), typed in here.
SDK_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
SDK_PARAMS = [("CallSid", "CA1234567890ABCDE"), ("Caller", "+14158675309"), ("Digits", "1234"),
              ("From", "+14158675309"), ("To", "+18005551212")]


def test_known_answers():
    assert signature("12345", SDK_URL, SDK_PARAMS) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    assert signature("12345", SDK_URL.replace(".com/", ".com:443/"), SDK_PARAMS) == "kvajT1Ptam85bY51eRf/AJRuM3w="
    dup = [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234")]
    assert signature("12345", SDK_URL, dup) == "IK+Dwps556ElfBT0I3Rgjkr1wJU="
    body = b'{"property": "value", "boolean": true}'
    digest = hashlib.sha256(body).hexdigest()
    assert digest == "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
    assert signature("12345", f"{SDK_URL}&bodySHA256={digest}") == "a9nBmqA0ju/hNViExpshrM61xv4="


def test_known_answer_accepted_on_either_port_form():
    ch = TwilioChannel("acme", "sms", msgspec.convert({**SETTINGS, "auth_token": "12345"}, TwilioSettings))
    headers = CIMultiDict({"X-Twilio-Signature": "RSOYDt4T1cUTdK1PDd93/VVr8B8="})
    body = urlencode(SDK_PARAMS).encode()
    assert ch.verify(Webhook("POST", SDK_URL, {}, headers, body))
    assert ch.verify(Webhook("POST", SDK_URL.replace(".com/", ".com:443/"), {}, headers, body))


def test_twiml_drops_characters_xml_cannot_carry():
    from causette_sms.render import SmsMessage
    resp = channel().respond(hook(SMS), [SmsMessage(body="a\x0cb\x00c\nd")])
    assert "<Message>abc\nd</Message>" in resp.text
