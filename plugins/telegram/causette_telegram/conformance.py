"""The case the channel conformance kit (gateway/conformance.py) runs Telegram with.

Shipped with the plugin so `pytest --pyargs gateway.conformance` can check the installed
Telegram channel.
"""
from __future__ import annotations

import json
import zlib
from typing import Any

from gateway.conformance import Recorded, make_webhook

from .channel import TelegramChannel

SECRET = "conformance-secret-token"


class TelegramCase:
    channel = TelegramChannel
    contact = "123456789"

    def settings(self, api_base: str) -> dict[str, Any]:
        return {"token": "123456:conformance-bot-token", "secret_token": SECRET, "bot_username": "ConfBot",
                "api_base": api_base, "attempts": 2}

    def webhook(self, text: str, *, native_id: str, signature: str = "valid"):
        # update_id is an integer: the kit's native ids map to one, stably.
        update = {"update_id": zlib.crc32(native_id.encode()), "message": {
            "message_id": 42, "date": 1717430400, "text": text,
            "from": {"id": int(self.contact), "is_bot": False, "first_name": "Ana"},
            "chat": {"id": int(self.contact), "type": "private"}}}
        headers = {"Content-Type": "application/json"}
        if signature != "missing":
            headers["X-Telegram-Bot-Api-Secret-Token"] = SECRET if signature == "valid" else "another-secret"
        return make_webhook(headers=headers, body=json.dumps(update).encode())

    def ok_answer(self, request: Recorded) -> tuple[int, Any]:
        return 200, {"ok": True, "result": {"message_id": 7, "date": 1, "chat": {"id": 123456789}}}

    def error_answer(self, status: int) -> Any:
        out: dict[str, Any] = {"ok": False, "error_code": status, "description": "conformance"}
        if status == 429:
            out["parameters"] = {"retry_after": 1}
        return out
