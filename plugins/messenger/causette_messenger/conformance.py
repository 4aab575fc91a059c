"""The case the channel conformance kit (gateway/conformance.py) runs Messenger with."""
from __future__ import annotations

import json
from typing import Any

from gateway.channels import sha256_signature as signature
from gateway.conformance import Recorded, make_webhook

from .channel import MessengerChannel

PAGE_ID = "104293835684410"


class MessengerCase:
    channel = MessengerChannel
    contact = "6789012345678901"

    def settings(self, api_base: str) -> dict[str, Any]:
        return {"page_id": PAGE_ID, "page_access_token": "EAAB-conformance-page-token",
                "app_secret": "conformance-app-secret", "verify_token": "conformance-verify",
                "api_base": api_base, "attempts": 2}

    def webhook(self, text: str, *, native_id: str, signature: str = "valid"):
        body = json.dumps({"object": "page", "entry": [{
            "id": PAGE_ID, "time": 1717430400500, "messaging": [{
                "sender": {"id": self.contact}, "recipient": {"id": PAGE_ID},
                "timestamp": 1717430400123, "message": {"mid": native_id, "text": text}}]}]}).encode()
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
        return 200, {"recipient_id": self.contact, "message_id": "m_conformance"}

    def error_answer(self, status: int) -> Any:
        code = 613 if status == 429 else 2
        return {"error": {"message": "conformance", "type": "OAuthException", "code": code,
                          "fbtrace_id": "Aconf"}}


sign = signature
