"""The webchat channel's case for the channel conformance kit (gateway/conformance.py).

Webchat has no provider and no webhook: visitors come in over the WebSocket and `send`
writes to Redis. So the kit's webhook checks (signature accepted, parse) and its send
checks against a fake provider API do not apply; `skip` names them. The rendering and
settings checks apply as they are.
"""
from __future__ import annotations

from gateway.channels import Webhook

from .channel import WebchatChannel


class WebchatCase:
    channel = WebchatChannel
    contact = "v_conformance-visitor-0001"
    # verify/parse: a POST to the webhook URL is always refused (403), nothing to accept or
    # parse; send: delivery goes through Redis (tested in test_webchat_units/_socket);
    # api_base: no provider to point at.
    skip = ("verify", "parse", "send", "api_base")

    def settings(self, api_base: str) -> dict:
        return {"title": "Conformance", "color": "#123456"}

    def webhook(self, text: str, *, native_id: str, signature: str = "valid") -> Webhook:
        body = ('{"type":"text","id":"%s","text":"%s"}' % (native_id, text)).encode()
        return Webhook("POST", "http://127.0.0.1/t/conformance/channels/conf", {},
                       {"Content-Type": "application/json"}, body)
