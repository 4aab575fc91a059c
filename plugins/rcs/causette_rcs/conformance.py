"""The RBM case of the channel conformance kit (gateway.conformance)."""
from __future__ import annotations

import base64
import json
from typing import Any

from gateway.conformance import make_webhook

from .channel import RCSChannel


class RCSCase:
    channel = RCSChannel
    contact = "+33612345678"
    client_token = "conformance-client-token"

    def settings(self, api_base: str) -> dict[str, Any]:
        return {"agent_id": "conformance@rbm.goog", "client_token": self.client_token,
                "access_token": "ya29.conformance-access-token", "api_base": api_base,
                "attempts": 2}

    def webhook(self, text: str, *, native_id: str, signature: str = "valid"):
        data = json.dumps({"senderPhoneNumber": self.contact, "messageId": native_id,
                           "sendTime": "2026-11-26T09:00:00Z", "agentId": "conformance@rbm.goog",
                           "text": text}).encode()
        body = json.dumps({"message": {"data": base64.b64encode(data).decode(),
                                       "messageId": "1", "publishTime": "2026-11-26T09:00:00Z"},
                           "subscription": "projects/p/subscriptions/s"}).encode()
        headers = {"Content-Type": "application/json"}
        if signature != "missing":
            token = self.client_token if signature == "valid" else "another-client-token"
            headers["X-Goog-Signature"] = RCSChannel.signature(token, data)
        return make_webhook(headers=headers, body=body)

    def error_answer(self, status: int) -> Any:
        return {"error": {"code": status, "message": "conformance error",
                          "status": "RESOURCE_EXHAUSTED" if status == 429 else "INTERNAL"}}
