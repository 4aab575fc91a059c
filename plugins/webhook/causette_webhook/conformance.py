"""The case the channel conformance kit (gateway/conformance.py) runs the webhook channel with.

With `api_base` set the instance POSTs replies to it (the brand's callback), which is what
the kit's fake provider stands in for.
"""
from __future__ import annotations

import json
from typing import Any

from gateway.conformance import make_webhook

from .channel import SIGNATURE_HEADER, WebhookChannel, sign

SECRET = "conformance-webhook-secret"


class WebhookCase:
    channel = WebhookChannel
    contact = "customer-4242"

    def settings(self, api_base: str) -> dict[str, Any]:
        return {"secret": SECRET, "api_base": api_base, "attempts": 2, "retry_wait_cap": 1.0}

    def webhook(self, text: str, *, native_id: str, signature: str = "valid"):
        raw = json.dumps({"id": native_id, "from": self.contact, "text": text}).encode()
        headers = {"Content-Type": "application/json"}
        if signature != "missing":
            headers[SIGNATURE_HEADER] = sign(SECRET if signature == "valid" else "another-secret", raw)
        return make_webhook(headers=headers, body=raw)

    def ok_answer(self, request) -> tuple[int, Any]:
        return 200, {"id": "brand-msg-1"}
