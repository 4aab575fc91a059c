"""The Messages for Business case of the channel conformance kit (gateway.conformance)."""
from __future__ import annotations

import base64
import json
import time
from typing import Any

from gateway.conformance import make_webhook

from . import jwt
from .channel import AppleChannel

MSP = "6f1e2c3b-4a5d-4e7f-8a9b-0c1d2e3f4a5b"
SECRET = b"conformance-msp-secret-0123456789"


class AppleCase:
    channel = AppleChannel
    contact = "urn:mbid:AQAAconformance-user"

    def settings(self, api_base: str) -> dict[str, Any]:
        return {"msp_id": MSP, "secret": base64.b64encode(SECRET).decode(),
                "business_id": "b1a2c3d4-0000-4000-8000-000000000001", "api_base": api_base,
                "attempts": 2}

    def webhook(self, text: str, *, native_id: str, signature: str = "valid"):
        body = json.dumps({"id": native_id, "type": "text", "v": 1, "sourceId": self.contact,
                           "destinationId": "b1a2c3d4-0000-4000-8000-000000000001",
                           "body": text, "locale": "fr_FR"}).encode()
        headers = {"Content-Type": "application/json", "id": native_id, "source-id": self.contact,
                   "destination-id": "b1a2c3d4-0000-4000-8000-000000000001",
                   "capability-list": "QUICK,LIST,TIME", "device-agent": "iPhone OS"}
        if signature != "missing":
            key = SECRET if signature == "valid" else b"another-msp-secret"
            headers["Authorization"] = "Bearer " + jwt.encode(
                {"aud": MSP, "iat": int(time.time())}, key)
        return make_webhook(headers=headers, body=body)

    def error_answer(self, status: int) -> Any:
        return {"error": "conformance error"}
