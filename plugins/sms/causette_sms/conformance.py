"""The cases the channel conformance kit (gateway/conformance.py) runs Twilio and Vonage with.

Shipped with the plugin so `pytest --pyargs gateway.conformance` can check the installed
SMS channels.
"""
from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlencode

from gateway.conformance import Recorded, make_webhook

from . import twilio, vonage

URL = "https://gw.example/t/conformance/channels/conf"


def _strings(payload: Any) -> list[str]:
    """What the contact sees of a rendered SMS: its body and media links."""
    return [payload.body, *payload.media]


class TwilioCase:
    channel = twilio.TwilioChannel
    contact = "+33611223344"

    def settings(self, api_base: str) -> dict[str, Any]:
        return {"account_sid": "AC0123456789abcdef0123456789abcdef", "auth_token": "conformance-auth-token",
                "from_number": "+33700000000", "api_base": api_base, "attempts": 2}

    def webhook(self, text: str, *, native_id: str, signature: str = "valid"):
        pairs = [("MessageSid", native_id), ("AccountSid", "AC0123456789abcdef0123456789abcdef"),
                 ("From", self.contact), ("To", "+33700000000"), ("Body", text), ("NumMedia", "0"),
                 ("SmsStatus", "received"), ("ApiVersion", "2010-04-01")]
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if signature != "missing":
            token = "conformance-auth-token" if signature == "valid" else "another-auth-token"
            headers["X-Twilio-Signature"] = twilio.signature(token, URL, pairs)
        return make_webhook(url=URL, headers=headers, body=urlencode(pairs).encode())

    strings = staticmethod(_strings)

    def ok_answer(self, request: Recorded) -> tuple[int, Any]:
        return 201, {"sid": "SMconformance", "status": "queued"}

    def error_answer(self, status: int) -> Any:
        return {"code": 20429 if status == 429 else 20500, "message": "conformance", "status": status}


class VonageCase:
    channel = vonage.VonageChannel
    contact = "+33611223344"

    def settings(self, api_base: str) -> dict[str, Any]:
        return {"api_key": "abcd1234", "api_secret": "conformance-api-secret",
                "signature_secret": "conformance-signature-secret", "from_number": "+33700000000",
                "api_base": api_base, "attempts": 2}

    def webhook(self, text: str, *, native_id: str, signature: str = "valid"):
        params = {"msisdn": self.contact.lstrip("+"), "to": "33700000000", "messageId": native_id,
                  "text": text, "type": "unicode", "api-key": "abcd1234",
                  "message-timestamp": "2025-01-15 10:00:00", "timestamp": str(int(time.time())),
                  "nonce": "conformance-nonce"}
        if signature != "missing":
            secret = "conformance-signature-secret" if signature == "valid" else "another-secret"
            params["sig"] = vonage.signature(secret, params, "sha256")
        return make_webhook(url=URL, headers={"Content-Type": "application/x-www-form-urlencoded"},
                            body=urlencode(params).encode())

    strings = staticmethod(_strings)

    def ok_answer(self, request: Recorded) -> tuple[int, Any]:
        return 200, {"message-count": "1", "messages": [{"to": "33611223344", "message-id": "0Aconf",
                                                         "status": "0"}]}

    def error_answer(self, status: int) -> Any:
        return {"type": "https://developer.vonage.com/api-errors", "title": "conformance"}
