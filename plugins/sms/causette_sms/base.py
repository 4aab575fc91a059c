"""What Twilio and Vonage share: rendering, consent keywords, capabilities from settings."""
from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import quote

from gateway.channels import Capabilities, Channel
from gateway.types import InboundMessage, Reply

from . import keywords
from .render import SmsMessage, render

# Twilio refuses bodies over 1600 characters; Vonage splits anything, but more than 10
# parts is rarely delivered whole by carriers.
MAX_CHARS = 1600


class SmsChannel(Channel):
    capabilities: ClassVar[Capabilities] = Capabilities(text_length=MAX_CHARS, buttons=0, media=False)
    mms: ClassVar[bool] = False

    def __init__(self, tenant: str, instance_id: str, settings: Any, http: Any = None):
        super().__init__(tenant, instance_id, settings, http)
        # Per-instance view: TwiML mode answers inline, REST mode does not; MMS is a setting.
        self.capabilities = self.instance_capabilities(settings)

    @classmethod
    def instance_capabilities(cls, settings: Any) -> Capabilities:
        return cls.capabilities

    # --- inbound ---------------------------------------------------------------------------
    def consent(self, msg: InboundMessage, reported: str = "") -> InboundMessage:
        """Tag a consent keyword. `reported` is the provider's own classification (Twilio's
        OptOutType), which wins and means the provider already answered the contact: the
        payload then reads "provider:stop" rather than "stop"."""
        word = (reported or "").lower() or keywords.classify(msg.text)
        if word not in ("stop", "start", "help"):
            return msg
        msg.payload = f"provider:{word}" if reported else word
        if word == "stop":
            msg.kind = "optout"
        elif word == "start":
            msg.kind = "optin"
        return msg

    # --- outbound --------------------------------------------------------------------------
    def render(self, reply: Reply) -> list[SmsMessage]:
        s = self.settings
        return render(reply, max_segments=s.max_segments, mms=self.mms and s.mms,
                      gsm_fallback=s.gsm_fallback)

    def sender(self) -> str:
        return getattr(self.settings, "from_number", "")

    def contact_link(self, ref: str = "") -> str:
        """An `sms:` link that opens the phone's SMS app on the brand's number with `ref`
        typed in, for QR codes and web pages (a keyword trigger of the flow picks it up)."""
        number = self.sender()
        if not number:
            return ""
        return f"sms:{number}" + (f"?body={quote(ref)}" if ref else "")


def as_message(payload: Any) -> SmsMessage:
    if isinstance(payload, SmsMessage):
        return payload
    if isinstance(payload, dict):
        return SmsMessage(body=payload.get("body", ""), media=list(payload.get("media", [])))
    return SmsMessage(body=str(payload))
