"""A generic signed-JSON webhook channel: a brand's own app, site or backend talks to its bot.

Inbound: `POST /t/{tenant}/channels/{id}` with a JSON object (or a list of them)
`{"id", "from", "text" | "payload", ...}` and `X-Causette-Signature: sha256=<hex>`, the
HMAC-SHA256 of the raw body under the instance's secret. Replies come back either inline, as
the JSON list in the HTTP response (no `callback_url`), or POSTed one by one to the
`callback_url`, signed the same way. docs/channels/webhook.md is the specification.
"""
from __future__ import annotations

import asyncio
import random
from typing import Annotated, Any, Literal

import aiohttp
import msgspec
from aiohttp import web

from gateway.text import clip, split
from gateway.channels import Attempts, CallTimeout, CallbackUrl, Capabilities, Channel, ParseError, Webhook, safe_equal, sha256_signature
from gateway.types import Card, Choice, InboundMessage, Media, Referral, Reply, SendResult

SIGNATURE_HEADER = "X-Causette-Signature"
MAX_INLINE = 10
RETRY_STATUSES = frozenset({408, 425, 429})

Kind = Literal["text", "choice", "postback", "media", "location", "referral", "status",
               "optout", "optin", "open"]
NonEmpty = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]


class Settings(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """One webhook channel instance."""
    secret: str = ""                 # HMAC-SHA256 key shared with the brand's system (secret)
    previous_secret: str = ""        # still accepted on inbound while a rotation rolls out (secret)
    callback_url: CallbackUrl = ""   # empty: replies go inline in the HTTP response
    api_base: CallbackUrl = ""       # same as callback_url (every channel has one); callback_url wins
    signature_header: str = SIGNATURE_HEADER
    timeout: CallTimeout = 10.0            # seconds per callback call
    attempts: Attempts = 3                # callback calls per reply on 408/429/5xx/timeouts
    retry_wait_cap: float = 3.0      # a longer Retry-After is handed back as status "retry"


class MediaIn(msgspec.Struct, omit_defaults=True):
    url: str = ""
    kind: Literal["image", "audio", "video", "file", "sticker"] = "file"
    mime: str = ""
    caption: str = ""


class Inbound(msgspec.Struct, omit_defaults=True):
    """One message of the brand's system, as it POSTs it."""
    id: NonEmpty                                     # unique per message: retries reuse it
    sender: NonEmpty = msgspec.field(name="from")    # the contact's id in the brand's system
    text: str = ""
    payload: str = ""                                # a choice id (button press)
    kind: Kind | None = None                         # default: "choice" with payload, else "text"
    ts: float = 0.0
    name: str = ""
    locale: str = ""
    ref: str = ""                                    # where the contact came from (referral)
    media: list[MediaIn] = []
    status: str = ""                                 # kind="status": delivered, read, failed
    refers_to: str = ""


_decoder = msgspec.json.Decoder(Inbound | list[Inbound])
_encoder = msgspec.json.Encoder()
_JSON = {"Content-Type": "application/json"}


class Outbound(msgspec.Struct, omit_defaults=True):
    """What the callback receives for each reply."""
    to: str
    key: str                         # idempotency key: the same on every retry of one reply
    reply: Reply


def sign(secret: str | bytes, body: bytes) -> str:
    """The signature header value for `body`: `sha256=<hex HMAC-SHA256>`."""
    return sha256_signature(secret, body)


class _Capabilities:
    """`capabilities` of the class, or of one instance (a callback instance answers nothing
    inline). The instance has no dictionary to hold its own: see `WebhookChannel.__slots__`."""

    def __init__(self, default: Capabilities):
        self.default = default

    def __get__(self, obj: "WebhookChannel | None", cls: type | None = None) -> Capabilities:
        return self.default if obj is None else obj._caps


class WebhookChannel(Channel):
    type = "webhook"
    Settings = Settings
    secrets = ("secret", "previous_secret")
    endpoints = ("callback_url", "api_base")
    capabilities = _Capabilities(Capabilities(  # type: ignore[assignment]
        text_length=4096, buttons=10, button_title=40, list_rows=0, cards=10, card_buttons=3,
        media=True, templates=False, inline=MAX_INLINE, window_hours=0))
    # No instance dictionary: with thousands of tenants a webhook reads this object alone,
    # not a second block of attribute values (docs/benchmarks.md, item 14).
    __slots__ = ("callback", "_caps", "_header", "_key", "_old")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # A subclass that declares its own Capabilities keeps the per-instance narrowing.
        super().__init_subclass__(**kwargs)
        caps = cls.__dict__.get("capabilities")
        if isinstance(caps, Capabilities):
            cls.capabilities = _Capabilities(caps)  # type: ignore[assignment]
    refusal_status = 401
    bad_request_status = 400
    settings: Settings

    def __init__(self, tenant: str, instance_id: str, settings: msgspec.Struct,
                 http: aiohttp.ClientSession | None = None):
        super().__init__(tenant, instance_id, settings, http)
        s: Settings = settings  # type: ignore[assignment]
        self.callback = s.callback_url or s.api_base
        caps = type(self).capabilities
        # With a callback, replies go to the brand's endpoint; the webhook is answered at once.
        self._caps = msgspec.structs.replace(caps, inline=0) if self.callback else caps
        self._header = s.signature_header
        keys = [k.encode() for k in (s.secret, s.previous_secret) if k]
        self._key: bytes | None = keys[0] if keys else None
        self._old: bytes | None = keys[1] if len(keys) > 1 else None

    # --- inbound -----------------------------------------------------------------------
    def verify(self, hook: Webhook) -> bool:
        given = hook.headers.get(self._header, "")
        if not given or self._key is None:
            return False                      # never accept unsigned traffic
        given = given.lower()
        if not given.startswith("sha256="):
            given = "sha256=" + given         # the bare hex digest is accepted too
        ok = safe_equal(sha256_signature(self._key, hook.body), given)
        if self._old is not None:             # no early exit: same work either way
            ok |= safe_equal(sha256_signature(self._old, hook.body), given)
        return ok

    def parse(self, hook: Webhook) -> list[InboundMessage]:
        try:
            decoded = _decoder.decode(hook.body)
        except msgspec.ValidationError as exc:
            why = str(exc)
            # msgspec names the path of nested errors only: a top-level one is at `$`.
            raise ParseError(why if " - at `$" in why else f"{why} - at `$`") from exc
        except msgspec.DecodeError as exc:
            raise ParseError(f"not JSON: {exc}") from exc
        items = decoded if isinstance(decoded, list) else [decoded]
        return [self._message(m) for m in items]

    def _message(self, m: Inbound) -> InboundMessage:
        kind = m.kind or ("choice" if m.payload else "media" if m.media else
                          "referral" if m.ref and not m.text else "text")
        msg = InboundMessage(tenant=self.tenant, channel=self.instance_id, native_id=m.id,
                             contact=m.sender, kind=kind, ts=m.ts, text=m.text, payload=m.payload,
                             locale=m.locale, status=m.status, refers_to=m.refers_to)
        if m.name:
            msg.profile = {"name": m.name}
        if m.ref:
            msg.referral = Referral(source="webhook", ref=m.ref)
        if m.media:
            msg.media = [Media(kind=x.kind, url=x.url, mime=x.mime, caption=x.caption) for x in m.media]
        return msg

    def respond(self, hook: Webhook, inline: list[Any]):  # type: ignore[override]
        return web.Response(body=_encoder.encode(inline), headers=_JSON)

    # --- outbound ----------------------------------------------------------------------
    def render(self, reply: Reply) -> list[Any]:
        caps = self.capabilities
        text, choices = reply.text, reply.choices
        if len(choices) > caps.buttons:
            lines = [f"{i}. {c.title}" for i, c in enumerate(choices, 1)]
            text, choices = "\n".join([text, *lines] if text else lines), []
        elif choices and max([len(c.title) for c in choices]) > caps.button_title:
            choices = [Choice(id=c.id, title=clip(c.title, caps.button_title),
                              description=c.description) for c in choices]
        parts = [text] if len(text) <= caps.text_length else split(text, caps.text_length)
        out: list[Any] = []
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            r = Reply(text=part, from_agent=reply.from_agent, tag=reply.tag,
                      template=reply.template if i == 0 else None)
            if last:
                r.choices = list(choices)
                if reply.cards:
                    r.cards = [_card(c, caps.card_buttons) for c in reply.cards]
                if reply.media:
                    r.media = list(reply.media)
            if r.text or r.choices or r.cards or r.media or r.template:
                out.append(r)
        # Cards beyond the limit become further carousels of at most `cards` each.
        if out and len(out[-1].cards) > caps.cards:
            cards = out[-1].cards
            out[-1].cards = cards[:caps.cards]
            for j in range(caps.cards, len(cards), caps.cards):
                out.append(Reply(cards=cards[j:j + caps.cards]))
        return out

    async def send(self, contact: str, payload: Any, *, key: str) -> SendResult:
        if not self.callback:
            # Reached for whatever the open webhook request cannot carry: a human agent's
            # reply, a timer's or a campaign's, replies past the inline limit.
            return SendResult(status="failed", code="no_callback",
                              detail="no callback_url and no open webhook request to answer inline: "
                                     "agent replies, timers and replies past the inline limit "
                                     "need a callback_url")
        body = _encoder.encode(Outbound(to=contact, key=key, reply=payload))
        headers = {"Content-Type": "application/json", "Idempotency-Key": key,
                   self.settings.signature_header: sign(self.settings.secret, body)}
        own = self.http is None
        http = aiohttp.ClientSession() if own else self.http
        s = self.settings
        try:
            status, text, retry_after = 0, "", 0.0
            for attempt in range(max(1, s.attempts)):
                try:
                    async with http.post(self.callback, data=body, headers=headers,  # type: ignore[union-attr]
                                         timeout=aiohttp.ClientTimeout(total=s.timeout)) as r:
                        status, raw = r.status, await r.read()
                        retry_after = _retry_after(r.headers.get("Retry-After"))
                except TimeoutError:
                    status, raw, text = 0, b"", "timeout"
                except aiohttp.ClientError as exc:
                    status, raw, text = 0, b"", f"connection: {type(exc).__name__}"
                if 200 <= status < 300:
                    return SendResult(status="sent", provider_id=_provider_id(raw))
                if status == 410:
                    return SendResult(status="stopped", code="410", detail="the callback says gone")
                if status and status not in RETRY_STATUSES and status < 500:
                    return SendResult(status="failed", code=str(status),
                                      detail=raw[:200].decode("utf-8", "replace"))
                if attempt == s.attempts - 1:
                    break
                delay = retry_after or 0.2 * (2 ** attempt) * (1 + random.random() / 2)
                if delay > s.retry_wait_cap:
                    break
                await asyncio.sleep(delay)
            return SendResult(status="retry", retry_after=retry_after or 30.0,
                              code=str(status) if status else text.split(":")[0],
                              detail=text or f"HTTP {status}")
        finally:
            if own:
                await http.close()  # type: ignore[union-attr]


def _provider_id(raw: bytes) -> str:
    try:
        data = msgspec.json.decode(raw) if raw else None
    except msgspec.DecodeError:
        return ""
    return str(data.get("id", "")) if isinstance(data, dict) else ""


def _retry_after(value: str | None) -> float:
    try:
        return max(0.0, float(value)) if value else 0.0
    except ValueError:
        return 0.0


def _card(c: Card, max_buttons: int) -> Card:
    if len(c.buttons) <= max_buttons:
        return c
    return Card(title=c.title, subtitle=c.subtitle, image=c.image, url=c.url,
                buttons=c.buttons[:max_buttons])
