"""The WeChat case of the channel conformance kit (gateway.conformance), in plain mode."""
from __future__ import annotations

import time
from typing import Any
from xml.sax.saxutils import escape

from gateway.conformance import make_webhook

from .channel import WeChatChannel
from .crypto import signature as sha1_signature

TOKEN = "conformance-token"


class WeChatCase:
    channel = WeChatChannel
    contact = "oConformanceUser_0123456789ab"

    def settings(self, api_base: str) -> dict[str, Any]:
        return {"token": TOKEN, "app_id": "wxconformance0001",
                "access_token": "conformance-access-token", "api_base": api_base, "attempts": 2}

    def webhook(self, text: str, *, native_id: str, signature: str = "valid"):
        digits = "".join(str(ord(c) % 10) for c in native_id)   # MsgId is numeric
        body = (f"<xml><ToUserName><![CDATA[gh_conformance]]></ToUserName>"
                f"<FromUserName><![CDATA[{self.contact}]]></FromUserName>"
                f"<CreateTime>1795683600</CreateTime><MsgType><![CDATA[text]]></MsgType>"
                f"<Content>{escape(text)}</Content><MsgId>{digits}</MsgId></xml>").encode()
        q = {"timestamp": str(int(time.time())), "nonce": "314159", "openid": self.contact}
        if signature != "missing":
            token = TOKEN if signature == "valid" else "another-token"
            q["signature"] = sha1_signature(token, q["timestamp"], q["nonce"])
        return make_webhook(headers={"Content-Type": "text/xml"}, body=body, query=q)

    def error_answer(self, status: int) -> Any:
        return {"errcode": -1, "errmsg": "system error"}
