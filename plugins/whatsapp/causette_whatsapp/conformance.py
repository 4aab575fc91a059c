"""The case the channel conformance kit (gateway/conformance.py) runs WhatsApp with.

Shipped with the plugin so `pytest --pyargs gateway.conformance` can check an installed
WhatsApp channel; it is also the model for a third party's case.
"""
from __future__ import annotations

import json
from typing import Any

from gateway.channels import sha256_signature as signature
from gateway.conformance import Recorded, make_webhook

from .channel import WhatsAppChannel

PHONE_NUMBER_ID = "106540352242922"


class WhatsAppCase:
    channel = WhatsAppChannel
    contact = "33612345678"

    def settings(self, api_base: str) -> dict[str, Any]:
        return {"phone_number_id": PHONE_NUMBER_ID, "access_token": "EAAG-conformance-token",
                "app_secret": "conformance-app-secret", "verify_token": "conformance-verify",
                "display_phone": "+33 1 23 45 67 89", "api_base": api_base, "attempts": 2}

    def webhook(self, text: str, *, native_id: str, signature: str = "valid"):
        body = json.dumps({"object": "whatsapp_business_account", "entry": [{
            "id": "102290129340398", "changes": [{"field": "messages", "value": {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "33123456789",
                             "phone_number_id": PHONE_NUMBER_ID},
                "contacts": [{"profile": {"name": "Ana"}, "wa_id": self.contact}],
                "messages": [{"from": self.contact, "id": native_id, "timestamp": "1717430400",
                              "type": "text", "text": {"body": text}}]}}]}]}).encode()
        headers = {"Content-Type": "application/json"}
        if signature != "missing":
            secret = "conformance-app-secret" if signature == "valid" else "another-secret"
            headers["X-Hub-Signature-256"] = sign(secret, body)
        return make_webhook(body=body, headers=headers)

    def handshake(self, valid: bool):
        token = "conformance-verify" if valid else "a-guess"
        return make_webhook("GET", "https://gw.example/t/conformance/channels/conf?hub.mode=subscribe"
                            f"&hub.challenge=1158201444&hub.verify_token={token}")

    def ok_answer(self, request: Recorded) -> tuple[int, Any]:
        to = request.json().get("to", "")
        return 200, {"messaging_product": "whatsapp", "contacts": [{"input": to, "wa_id": to}],
                     "messages": [{"id": "wamid.conformance"}]}

    def error_answer(self, status: int) -> Any:
        code = 130429 if status == 429 else 131000
        return {"error": {"message": "conformance", "type": "OAuthException", "code": code,
                          "fbtrace_id": "Aconf"}}


sign = signature
