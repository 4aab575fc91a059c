"""The webchat channel: replies rendered as JSON frames and pushed to the visitor's sockets.

There is no provider: `send` numbers the frame, keeps it in the visitor's outbox (for
resume) and publishes it through Redis, so the socket may sit on any gateway process.
Inbound frames arrive over the WebSocket (routes.py), not as webhooks.
"""
from __future__ import annotations

import hashlib
import re
import time
from typing import Annotated, Any, Literal

import msgspec

from gateway.channels import Capabilities, Channel, Webhook
from gateway.types import Card, Choice, InboundMessage, Reply, SendResult
from redis.exceptions import RedisError

from . import outbox as ob
from .frames import Message, encoder

MAX_TEXT = 4000
MAX_CHOICES = 10
MAX_TITLE = 40
MAX_CARDS = 10
MAX_CARD_BUTTONS = 3
MAX_HISTORY = 500     # frames a visitor's outbox may keep (the `history` setting's ceiling)
VISITOR = re.compile(r"^v_[A-Za-z0-9_-]{16,40}$")
COLOR = re.compile(r"#[0-9a-fA-F]{6}")      # fullmatch: "$" would let a newline through


class Settings(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Settings of one web chat widget (a channel instance)."""
    title: Annotated[str, msgspec.Meta(max_length=60)] = ""     # panel header; default: the tenant's name
    subtitle: Annotated[str, msgspec.Meta(max_length=120)] = ""  # under the title ("Réponse en quelques secondes")
    # Brand colour, #rrggbb: checked in __post_init__ (in words), the pattern is for the schema.
    color: Annotated[str, msgspec.Meta(extra_json_schema={
        "pattern": "^#[0-9a-fA-F]{6}$", "description": "a colour written #rrggbb"})] = "#4338ca"
    greeting: Annotated[str, msgspec.Meta(max_length=500)] = ""  # shown before the first message, never stored
    locale: Literal["", "fr", "en"] = ""    # widget language; "" = the browser's, else the tenant's
    position: Literal["right", "left"] = "right"
    allowed_origins: list[str] = []         # pages allowed to open the socket; [] = any page
    history: Annotated[int, msgspec.Meta(ge=1, le=MAX_HISTORY)] = 50     # frames kept for resume
    history_ttl: Annotated[int, msgspec.Meta(ge=60)] = 7 * 24 * 3600  # seconds the outbox lives idle
    rate: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 30       # visitor frames per minute per socket
    demo_page: bool = False                 # serve /t/TENANT/demo (a made-up sale page) for this widget

    def __post_init__(self) -> None:
        # A pattern constraint would show its regex to whoever set the colour; this says it in
        # words (the admin API reports it as `invalid` at `$.settings`, so it names the field).
        if not COLOR.fullmatch(self.color):
            raise ValueError(f"`color` must be a colour written #rrggbb, such as #4338ca "
                             f"(six hexadecimal digits after #), not {self.color[:40]!r}")


def _cut(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1].rstrip() + "…"


def _choice(c: Choice) -> Choice:
    return Choice(id=c.id, title=_cut(c.title, MAX_TITLE), description=_cut(c.description, 80))


class WebchatChannel(Channel):
    type = "webchat"
    Settings = Settings
    capabilities = Capabilities(text_length=MAX_TEXT, buttons=MAX_CHOICES, button_title=MAX_TITLE,
                                cards=MAX_CARDS, card_buttons=MAX_CARD_BUTTONS, media=True,
                                typing=True)
    outbox = 50
    settings: Settings

    # Inbound comes over the WebSocket; a POST to the webhook URL is refused.
    # The widget talks over its socket; a POST to the webhook URL is someone's mistake.
    refusal_text = "a webchat channel takes no webhook: the widget connects to /t/{tenant}/plugins/webchat/ws"

    def verify(self, hook: Webhook) -> bool:
        return False

    def parse(self, hook: Webhook) -> list[InboundMessage]:
        return []

    def render(self, reply: Reply) -> list[Any]:
        text = _cut(reply.text, MAX_TEXT)
        choices = [_choice(c) for c in reply.choices[:MAX_CHOICES]]
        # Past the limit, choices become numbered lines: the tree engine matches "11" to the 11th.
        extra = reply.choices[MAX_CHOICES:]
        if extra:
            lines = "\n".join(f"{MAX_CHOICES + i + 1}. {c.title}" for i, c in enumerate(extra))
            text = f"{text}\n{lines}" if text else lines
        cards = [Card(title=_cut(c.title, 80), subtitle=_cut(c.subtitle, 200), image=c.image, url=c.url,
                      buttons=[_choice(b) for b in c.buttons[:MAX_CARD_BUTTONS]])
                 for c in reply.cards[:MAX_CARDS]]
        if not text and not choices and not cards and not reply.media:
            if reply.template:   # no templates on the web: show its parameters rather than nothing
                text = " ".join(reply.template.params)
            if not text:
                return []
        return [Message(id="", role="agent" if reply.from_agent else "bot", text=text,
                        choices=choices, cards=cards, media=list(reply.media), agent=reply.from_agent)]

    async def send(self, contact: str, payload: Any, *, key: str) -> SendResult:
        if not VISITOR.match(contact):
            return SendResult(status="failed", code="bad_contact", detail="not a webchat visitor id")
        if self.runtime is None:
            return SendResult(status="failed", code="no_runtime", detail="channel not attached to a gateway")
        try:
            frame = payload if isinstance(payload, Message) else msgspec.convert(payload, Message)
        except msgspec.ValidationError as exc:
            return SendResult(status="failed", code="bad_payload", detail=str(exc)[:200])
        # The id derives from the gateway's idempotency key: a retried send is stored once.
        mid = hashlib.sha256(f"{self.instance_id}|{key}".encode()).hexdigest()[:20]
        frame = msgspec.structs.replace(frame, id=mid, ts=frame.ts or round(time.time(), 3))
        s = self.settings
        try:
            seq, _fresh = await ob.append(self.runtime.redis,
                                          ob.conv_base(self.tenant, self.instance_id, contact),
                                          encoder.encode(frame), keep=s.history, ttl=s.history_ttl,
                                          once=mid)
        except (RedisError, OSError) as exc:
            return SendResult(status="retry", retry_after=1.0, code="redis", detail=type(exc).__name__)
        # The frame id is the provider id: a read receipt (`seen`) refers to it.
        return SendResult(status="sent", provider_id=mid)
