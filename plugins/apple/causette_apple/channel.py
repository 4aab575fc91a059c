"""Apple Messages for Business channel, through the MSP REST API.

Inbound: Apple POSTs JSON (possibly gzip-compressed) with the message id, the user's opaque
id and the device's `capability-list` in headers; `Authorization: Bearer <JWT HS256>` signed
with the MSP's secret authenticates it (there is no HMAC of the body).
Outbound: `POST {api_base}/v1/message` with our own HS256 JWT (iss = MSP id, iat = now) and
the id / Source-Id / Destination-Id headers.

Apple says: only send interactive types listed in the user's `capability-list`. `render`
cannot see the contact, so interactive payloads carry their plain-text fallback and `send`
picks one from the capabilities last seen for that contact: kept in memory, and in Redis
(30 days) when the gateway gives the channel its runtime, so another process or a later
campaign knows them too. Unknown capabilities mean text.
"""
from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import logging
import time
import uuid
import zlib
from collections import OrderedDict
from typing import Annotated, Any, Literal
from urllib.parse import quote

import msgspec

from gateway.text import clip, split
from gateway.channels import ApiBase, Attempts, CallTimeout, Capabilities, Channel, ParseError, Webhook
from gateway.types import Choice, InboundMessage, Media, Referral, Reply, SendResult
from gateway.state import tenant_prefix

from gateway import provider

from . import jwt

BID = ("com.apple.messages.MSMessageExtensionBalloonPlugin:0000000000:"
       "com.apple.icloud.apps.messages.business.extension")
QUICK_MIN, QUICK_MAX = 2, 5         # Apple: a quick reply offers 2 to 5 items
LIST_MAX = 20                       # our cap on list picker rows (Apple sets none we know of)
TITLE_MAX = 30
LIST_TITLE_MAX = 85
TEXT_MAX = 10000                    # no fixed maximum; bounded by the payload size
MAX_BODY = 10 * 1024 * 1024         # decompressed inbound body
MESSAGE_NS = uuid.UUID("1d0e7a3c-8f51-5b0e-a7d4-3f0c9e2b6a41")
OBJECT_REPLACEMENT = "\ufffc"       # stands for an attachment inside an inbound `body`


class Settings(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Settings of one Messages for Business account (a channel instance)."""
    msp_id: str                        # the MSP id Apple gave you (JWT iss out, aud in)
    secret: str                        # the Base64 "Messaging API secret" (secret)
    business_id: str = ""              # the business id: Source-Id of what we send
    api_base: ApiBase = "https://mspgw.push.apple.com"   # staging: https://mspgw-int.push.apple.com
    secret_encoding: Literal["base64", "raw"] = "base64"
    max_token_age: Annotated[float, msgspec.Meta(gt=0)] = 3600.0  # seconds an inbound JWT's iat may be old
    gzip: bool = False                 # gzip outbound bodies (Content-Encoding: gzip)
    list_label: str = "Choose"         # list picker bubble title when the reply has no short text
    selected_label: str = "Selected"   # the bubble the user sends back after picking
    timeout: CallTimeout = 10.0
    attempts: Attempts = 3

    def __post_init__(self) -> None:
        # Refuse what can never work (the admin API reports it as `invalid` at
        # `$.settings`): a secret that does not decode would answer every inbound
        # message 403 and fail every send. `business_id` stays optional: without it the
        # channel receives, and send fails with code `config` (docs/channels/apple.md).
        problems = []
        if not self.msp_id.strip():
            problems.append("msp_id is empty")
        if not self.secret:
            problems.append("secret is empty")
        else:
            try:
                key = jwt.key_bytes(self.secret, self.secret_encoding)
            except jwt.InvalidToken:
                problems.append('secret is not Base64 (the Messaging API secret as Apple gives '
                                'it); secret_encoding "raw" uses the string\'s bytes instead')
            else:
                if not key:
                    problems.append("secret decodes to no bytes")
        if problems:
            raise ValueError("; ".join(problems))


# --- wire shapes -----------------------------------------------------------------------

class InteractiveData(msgspec.Struct, rename="camel"):
    bid: str = ""
    data: dict[str, Any] = {}
    received_message: dict[str, Any] = {}
    reply_message: dict[str, Any] = {}


class Inbound(msgspec.Struct, rename="camel"):
    id: str = ""
    type: str = ""
    v: int = 1
    source_id: str = ""
    destination_id: str = ""
    locale: str = ""
    intent: str = ""
    group: str = ""
    body: str = ""
    attachments: list[dict[str, Any]] = []
    interactive_data: InteractiveData | None = None
    interactive_data_ref: dict[str, Any] | None = None


INBOUND = msgspec.json.Decoder(Inbound)

# Per-process memory of each contact's capability-list: (tenant, instance, contact) -> caps.
CAPABILITIES: OrderedDict[tuple[str, str, str], frozenset[str]] = OrderedDict()
CAPABILITIES_MAX = 100_000
CAPABILITIES_TTL = 30 * 24 * 3600
_writes: set[asyncio.Task] = set()
log = logging.getLogger("causette.apple")


def remember(key: tuple[str, str, str], caps: frozenset[str]) -> None:
    CAPABILITIES[key] = caps
    CAPABILITIES.move_to_end(key)
    while len(CAPABILITIES) > CAPABILITIES_MAX:
        CAPABILITIES.popitem(last=False)


def caps_key(tenant: str, instance: str, contact: str) -> str:
    return f"{tenant_prefix(tenant)}apple:{instance}:caps:{contact}"


async def settle() -> None:
    """Wait for pending capability writes to Redis (tests, shutdown)."""
    while _writes:
        await asyncio.gather(*list(_writes), return_exceptions=True)


def _gunzip(body: bytes) -> bytes:
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = d.decompress(body, MAX_BODY)
    if d.unconsumed_tail:
        raise ParseError("decompressed body too large")
    return out


def _numbered(text: str, choices: list[Choice]) -> str:
    lines = [f"{i}. {c.title}" for i, c in enumerate(choices, 1)]
    return "\n".join([text, *lines] if text else lines)


class AppleChannel(Channel):
    type = "apple"
    Settings = Settings
    secrets = ("secret",)
    capabilities = Capabilities(
        text_length=TEXT_MAX, buttons=QUICK_MAX, button_title=TITLE_MAX, list_rows=LIST_MAX,
        list_title=TITLE_MAX, cards=0, card_buttons=0, media=False, templates=False,
        inline=0, window_hours=0, typing=False)
    refusal_status = 403
    settings: Settings

    # --- inbound -----------------------------------------------------------------------
    def verify(self, hook: Webhook) -> bool:
        auth = hook.headers.get("Authorization", "")
        token = auth[7:].strip() if auth[:7].lower() == "bearer " else auth.strip()
        if not token or not self.settings.secret:
            return False
        try:
            jwt.decode(token, jwt.key_bytes(self.settings.secret, self.settings.secret_encoding),
                       audience=self.settings.msp_id, max_age=self.settings.max_token_age)
        except jwt.InvalidToken:
            return False
        return True

    def _body(self, hook: Webhook) -> bytes:
        body = hook.body
        # By the magic bytes only: aiohttp's server has already inflated a body sent with
        # `Content-Encoding: gzip` (within the gateway's body limit), so the header says
        # nothing about what reaches us; inflating it again refused every such message.
        if body[:2] == b"\x1f\x8b":
            try:
                body = _gunzip(body)
            except (zlib.error, EOFError) as e:
                raise ParseError(f"bad gzip body: {e}") from e
        return body

    def parse(self, hook: Webhook) -> list[InboundMessage]:
        try:
            m = INBOUND.decode(self._body(hook))
        except msgspec.DecodeError as e:
            raise ParseError(f"not an MSP message: {e}") from e
        h = hook.headers
        contact = m.source_id or h.get("source-id", "")
        native = m.id or h.get("id", "")
        if not contact or not native:
            raise ParseError("missing sourceId or id")
        profile: dict[str, str] = {}
        caps = h.get("capability-list")
        if caps is not None:
            profile["capabilities"] = caps
            known = frozenset(c.strip().upper() for c in caps.split(",") if c.strip())
            if CAPABILITIES.get((self.tenant, self.instance_id, contact)) != known:
                remember((self.tenant, self.instance_id, contact), known)
                self._store_caps(contact, known)
        if h.get("device-agent"):
            profile["device"] = h["device-agent"]
        if m.group:
            profile["group"] = m.group
        msg = InboundMessage(tenant=self.tenant, channel=self.instance_id, native_id=native,
                             contact=contact, profile=profile,
                             locale=m.locale.replace("_", "-"))
        if m.intent or m.group:                # the Messages for Business link the user opened
            msg.referral = Referral(source="link", ref=m.intent or m.group)
        if m.type == "text":
            msg.text = m.body.replace(OBJECT_REPLACEMENT, "").strip()
            msg.media = [Media(kind=_kind(_str(a.get("mimeType"))), url=_str(a.get("url")),  # type: ignore[arg-type]
                               mime=_str(a.get("mimeType")), caption=_str(a.get("name")))
                         for a in m.attachments]
            if msg.media and not msg.text:
                msg.kind = "media"
            elif not msg.text and msg.referral is not None:
                msg.kind = "referral"
        elif m.type == "interactive":
            self._interactive(m, msg)
        elif m.type == "close":                # the user deleted the conversation
            msg.kind = "optout"
        else:
            return []                          # typing_start / typing_end and the unknown
        return [msg]

    def _store_caps(self, contact: str, caps: frozenset[str]) -> None:
        redis = getattr(self.runtime, "redis", None) if self.runtime is not None else None
        if redis is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return

        async def write() -> None:
            try:
                await redis.set(caps_key(self.tenant, self.instance_id, contact),
                                ",".join(sorted(caps)), ex=CAPABILITIES_TTL)
            except Exception as exc:  # noqa: BLE001 -- memory still has them; Redis is a bonus
                log.warning("apple: could not store capabilities: %s", type(exc).__name__)

        task = loop.create_task(write())
        _writes.add(task)
        task.add_done_callback(_writes.discard)

    async def _caps(self, contact: str) -> frozenset[str]:
        key = (self.tenant, self.instance_id, contact)
        if key in CAPABILITIES:
            return CAPABILITIES[key]
        redis = getattr(self.runtime, "redis", None) if self.runtime is not None else None
        caps: frozenset[str] = frozenset()
        if redis is not None:
            try:
                raw = await redis.get(caps_key(*key))
            except Exception as exc:  # noqa: BLE001 -- unknown capabilities mean text
                log.warning("apple: could not read capabilities: %s", type(exc).__name__)
                raw = None
            if raw:
                text = raw.decode() if isinstance(raw, bytes) else str(raw)
                caps = frozenset(c for c in text.split(",") if c)
                remember(key, caps)
        return caps

    @staticmethod
    def _interactive(m: Inbound, msg: InboundMessage) -> None:
        if m.interactive_data is None:
            # over 10 KB Apple sends interactiveDataRef (fetch + decrypt): not supported yet
            msg.kind, msg.payload = "postback", "interactive_data_ref"
            return
        # Free-form JSON that Apple echoes back: every value is checked before it is used,
        # so an odd shape makes a postback, never an exception (a 500 Apple would retry).
        data = m.interactive_data.data
        reply = m.interactive_data.reply_message or {}
        quick = data.get("quick-reply") or data.get("quickReply")
        picked = ""
        title = _str(reply.get("title"))
        if isinstance(quick, dict):
            picked = _str(quick.get("selectedIdentifier"))
            items = _list(quick.get("items"))
            idx = quick.get("selectedIndex")
            if not picked and type(idx) is int and 0 <= idx < len(items):
                picked = _str(_dict(items[idx]).get("identifier"))
        elif isinstance(data.get("listPicker"), dict):
            # the answer lists the selected items only
            for section in _list(data["listPicker"].get("sections")):
                for item in _list(_dict(section).get("items")):
                    item = _dict(item)
                    if not picked:
                        picked, title = _str(item.get("identifier")), _str(item.get("title")) or title
        if picked:
            msg.kind, msg.payload, msg.text = "choice", picked, title
        else:                                  # time picker, forms, Apple Pay, auth
            msg.kind = "postback"
            msg.payload = _str(data.get("requestIdentifier"))
            msg.text = title

    # --- outbound ----------------------------------------------------------------------
    def render(self, reply: Reply) -> list[Any]:
        s = self.settings
        auto = not reply.from_agent
        text = reply.text
        choices = list(reply.choices)
        lines = []
        for c in reply.cards:                  # rich links need uploaded images: cards as text
            lines.append("\n".join(x for x in (c.title, c.subtitle, c.url) if x))
            choices.extend(c.buttons)
        for m in reply.media:                  # attachments need an encrypted upload: links
            lines.append("\n".join(x for x in (m.caption, m.url) if x))
        out: list[dict[str, Any]] = []

        def text_msg(t: str) -> dict[str, Any]:
            return {"message": {"type": "text", "body": t}, "autoReply": auto}

        if lines:
            out.extend(text_msg(t) for t in split("\n\n".join(([text] if text else []) + lines),
                                                   TEXT_MAX))
            text = ""
        if not choices:
            out.extend(text_msg(t) for t in split(text, TEXT_MAX))
            return out
        fallback = _numbered(text, choices)
        items = [{"identifier": c.id, "title": clip(c.title, TITLE_MAX)} for c in choices]
        if QUICK_MIN <= len(choices) <= QUICK_MAX and text:
            data = {"version": "1.0", "quick-reply": {"summaryText": text, "items": items}}
            out.append({"message": {"type": "interactive", "interactiveData": {"bid": BID, "data": data}},
                        "requires": "QUICK", "fallback": {"type": "text", "body": fallback},
                        "autoReply": auto})
            return out
        if len(choices) > LIST_MAX:
            out.append(text_msg(fallback))
            return out
        if len(text) > TEXT_MAX:               # keep the end of a very long question with the choices
            *head, text = split(text, TEXT_MAX)
            out.extend(text_msg(t) for t in head)
        asked_apart = bool(text) and len(text) > LIST_TITLE_MAX
        if asked_apart:
            out.append(text_msg(text))         # the question first, then a short bubble
        title = text if text and not asked_apart else s.list_label
        rows = [dict(it, order=i, style="default", **({"subtitle": c.description}
                                                      if c.description else {}))
                for i, (it, c) in enumerate(zip(items, choices))]
        data = {"version": "1.0", "listPicker": {"sections": [
            {"order": 0, "title": "", "multipleSelection": False, "items": rows}]}}
        msg = {"type": "interactive", "interactiveData": {
            "bid": BID, "data": data,
            "receivedMessage": {"title": title, "style": "icon"},
            "replyMessage": {"title": s.selected_label, "style": "icon"}}}
        fb_text = _numbered("", choices) if asked_apart else fallback
        out.append({"message": msg, "requires": "LIST",
                    "fallback": {"type": "text", "body": fb_text}, "autoReply": auto})
        return out

    def message_id(self, contact: str, payload: Any, key: str) -> str:
        digest = hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False)
                                .encode()).hexdigest()
        return str(uuid.uuid5(MESSAGE_NS, "\x1f".join(
            (self.tenant, self.instance_id, contact, key, digest))))

    async def choose(self, contact: str, payload: dict[str, Any]) -> dict[str, Any]:
        """The interactive message if this contact's device supports it, else its fallback."""
        need = payload.get("requires")
        if not need:
            return payload["message"]
        return payload["message"] if need in await self._caps(contact) else payload["fallback"]

    async def send(self, contact: str, payload: Any, *, key: str) -> SendResult:
        s = self.settings
        if not s.business_id:                  # receive-only: nothing to send as
            return SendResult(status="failed", code="config",
                              detail="no business_id: this channel can only receive")
        try:
            token = jwt.encode({"iss": s.msp_id, "iat": int(time.time())},
                               jwt.key_bytes(s.secret, s.secret_encoding))
        except Exception as exc:  # noqa: BLE001 -- a bad configuration fails this send, never the turn
            # InvalidToken's own words name no secret; anything else shows its type only.
            why = str(exc) if isinstance(exc, jwt.InvalidToken) else type(exc).__name__
            return SendResult(status="failed", code="config", detail=f"cannot sign the JWT: {why}")
        mid = self.message_id(contact, payload, key)
        msg = dict(await self.choose(contact, payload))
        if msg.get("type") == "interactive":   # requestIdentifier stable across retries
            idata = dict(msg["interactiveData"])
            idata["data"] = dict(idata["data"], requestIdentifier=mid)
            msg["interactiveData"] = idata
        body = {"id": mid, "sourceId": s.business_id, "destinationId": contact, "v": 1, **msg}
        raw = json.dumps(body, ensure_ascii=False).encode()
        headers = {"Authorization": "Bearer " + token, "id": mid, "Source-Id": s.business_id,
                   "Destination-Id": contact, "Content-Type": "application/json"}
        if payload.get("autoReply", True):
            headers["auto-reply"] = "true"
        if s.gzip:
            raw = gzip.compress(raw, mtime=0)
            headers["Content-Encoding"] = "gzip"
        out = await provider.call(self.http, "POST", f"{s.api_base.rstrip('/')}/v1/message",
                               data=raw, headers=headers, timeout=s.timeout, attempts=s.attempts)
        if 200 <= out.status < 300:
            return SendResult(status="sent", provider_id=mid)
        if out.status == 0:
            return SendResult(status="retry", retry_after=5.0, code=out.error,
                              detail=f"no answer after {out.attempts} attempts")
        detail = out.body[:300].decode("utf-8", "replace")
        if out.retryable:
            return SendResult(status="retry", retry_after=out.retry_after or 30.0,
                              code=str(out.status), detail=detail)
        code = {400: "bad_request", 401: "unauthorized", 403: "forbidden",
                404: "unknown_destination"}.get(out.status, str(out.status))
        return SendResult(status="failed", code=code, detail=detail)

    def contact_link(self, ref: str = "") -> str:
        """The Messages for Business link; `ref` arrives back as the message's `intent`."""
        if not self.settings.business_id:
            return ""
        link = f"https://bcrw.apple.com/urn:biz:{quote(self.settings.business_id, safe='')}"
        return link + (f"?biz-intent-id={quote(ref, safe='')}" if ref else "")


def _str(v: Any) -> str:
    """A string of Apple's untyped JSON: a number as its text, anything else (null, lists,
    objects) as empty."""
    if isinstance(v, str):
        return v
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return str(v)
    return ""


def _list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else []


def _dict(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def _kind(mime: str) -> str:
    top = mime.split("/", 1)[0]
    return top if top in ("image", "audio", "video") else "file"
