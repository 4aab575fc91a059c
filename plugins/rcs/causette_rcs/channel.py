"""Google RCS Business Messaging (RBM) channel.

Inbound: Google POSTs a Pub/Sub push envelope; the real payload is base64 in `message.data`
and `X-Goog-Signature` is base64(HMAC-SHA512(clientToken, decoded data)). The one-off
webhook verification is a POST of {"clientToken", "secret"} answered with the secret.
Outbound: `POST {api_base}/v1/phones/{E.164}/agentMessages?messageId={UUID}&agentId=...`
with an OAuth bearer token. The UUID is derived from the gateway's idempotency key, so a
retried send reuses it and Google ignores the duplicate.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import logging
import re
import uuid
from datetime import datetime
from typing import Annotated, Any

import msgspec

from gateway.text import clip, split
from gateway.channels import ApiBase, Attempts, CallTimeout, Capabilities, Channel, ParseError, Webhook, safe_equal
from gateway.state import tenant_prefix
from gateway.types import (
    Card,
    Choice,
    InboundMessage,
    Location,
    Media,
    Reply,
    SendResult,
)

from gateway import provider

from . import wire
from .auth import TOKENS, ServiceAccount, TokenError, key_problem

MAX_TEXT = 3072
MAX_SUGGESTIONS = 11
MAX_SUGGESTION_TEXT = 25
MAX_CARDS = 10
MAX_CARD_SUGGESTIONS = 4
MAX_CARD_TITLE = 200
MAX_CARD_DESCRIPTION = 2000
MAX_POSTBACK = 2048

log = logging.getLogger("causette.rcs")
_background: set[asyncio.Task] = set()
_forgetting: dict[tuple[str, str, str], asyncio.Task] = {}


async def settle() -> None:
    """Wait for pending Redis writes (tests, shutdown)."""
    while _background:
        await asyncio.gather(*list(_background), return_exceptions=True)


# Namespace of the agent message UUIDs (uuid5 of the gateway's idempotency key).
MESSAGE_NS = uuid.UUID("6f1c1a52-3c2e-5d0b-9a57-cf2b1b7f3a10")


class Settings(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Settings of one RBM agent (a channel instance)."""
    agent_id: str                      # "acme-bot@rbm.goog"
    client_token: str = ""             # webhook clientToken from the Developer Console (secret)
    access_token: str = ""             # an OAuth bearer minted elsewhere (secret)
    service_account: str = ""          # service-account key JSON; tokens minted and cached (secret)
    api_base: ApiBase = "https://rcsbusinessmessaging.googleapis.com"  # or europe-/asia- regional
    fallback_channel: str = ""         # instance id (same tenant, e.g. SMS) for users without RCS
    # message expiry as Google writes durations, e.g. "86400s"; Google keeps 30 days otherwise
    ttl: Annotated[str, msgspec.Meta(pattern=r"^([0-9]{1,9}(\.[0-9]{1,9})?s)?(?!\n)$")] = ""
    # seconds a 404 (no RCS) is remembered; 0: ask Google each time
    not_capable_ttl: Annotated[int, msgspec.Meta(ge=0, le=366 * 86400)] = 3600
    link_label: str = "Open"           # label of the action added for a card's url
    timeout: CallTimeout = 10.0              # seconds per provider call
    attempts: Attempts = 3                  # provider calls per send on 429 / 5xx / timeouts

    def __post_init__(self) -> None:
        problem = key_problem(self.service_account) if self.service_account else ""
        if problem:
            raise ValueError(f"service_account: {problem}")


def _parse_time(s: str) -> float:
    if not s:
        return 0.0
    # RFC 3339 with up to 9 fractional digits; fromisoformat takes at most 6
    s = re.sub(r"(\.\d{6})\d+", r"\1", s).replace("Z", "+00:00")
    try:
        return datetime.fromisoformat(s).timestamp()
    except ValueError:
        return 0.0


def _media_kind(mime: str) -> str:
    top = mime.split("/", 1)[0]
    return top if top in ("image", "audio", "video") else "file"


def suggestion(choice: Choice) -> dict[str, Any]:
    """A Choice as a suggested reply, or as a suggested action when its id is a URL or tel:."""
    text = clip(choice.title, MAX_SUGGESTION_TEXT)
    cid = choice.id[:MAX_POSTBACK]
    if cid.startswith(("https://", "http://")):
        return {"action": {"text": text, "postbackData": cid, "openUrlAction": {"url": choice.id}}}
    if cid.startswith("tel:"):
        return {"action": {"text": text, "postbackData": cid,
                           "dialAction": {"phoneNumber": choice.id[4:]}}}
    return {"reply": {"text": text, "postbackData": cid}}


class RCSChannel(Channel):
    type = "rcs"
    Settings = Settings
    secrets = ("client_token", "access_token", "service_account")
    dedup_ttl = 8 * 24 * 3600    # the provider redelivers for 7 days: a day more
    capabilities = Capabilities(
        text_length=MAX_TEXT, buttons=MAX_SUGGESTIONS, button_title=MAX_SUGGESTION_TEXT,
        list_rows=0, cards=MAX_CARDS, card_buttons=MAX_CARD_SUGGESTIONS, media=True,
        templates=False, inline=0, window_hours=0, typing=False)
    refusal_status = 403
    # a 404 from RBM: the phone is not RCS-capable; the gateway re-sends the reply through
    # the `fallback_channel` instance (usually SMS) when one is set
    fallback_codes = ("not_rcs_capable",)
    settings: Settings

    # --- inbound -----------------------------------------------------------------------
    @staticmethod
    def signature(client_token: str, data: bytes) -> str:
        return base64.b64encode(
            hmac.new(client_token.encode(), data, hashlib.sha512).digest()).decode()

    def _envelope(self, hook: Webhook) -> wire.Envelope:
        try:
            return wire.ENVELOPE.decode(hook.body)
        except msgspec.DecodeError as e:
            raise ParseError(f"not an RBM webhook body: {e}") from e

    def verify(self, hook: Webhook) -> bool:
        token = self.settings.client_token
        if not token:
            return False                       # never accept unsigned traffic
        try:
            env = wire.ENVELOPE.decode(hook.body)
        except msgspec.DecodeError:
            return False
        if env.client_token is not None and env.message is None:
            return safe_equal(env.client_token, token)   # the webhook verification POST
        given = hook.headers.get("X-Goog-Signature", "")
        if not given or env.message is None or not env.message.data:
            return False
        try:
            data = base64.b64decode(env.message.data, validate=True)
        except (binascii.Error, ValueError):
            return False
        return safe_equal(self.signature(token, data), given)

    def parse(self, hook: Webhook) -> list[InboundMessage]:
        env = self._envelope(hook)
        if env.message is None:
            return []                          # verification request: answered by respond()
        if env.message.attributes.get("type") == "agent_launch_event":
            return []
        try:
            p = wire.PAYLOAD.decode(base64.b64decode(env.message.data))
        except (binascii.Error, ValueError, msgspec.DecodeError) as e:
            raise ParseError(f"message.data is not a base64 RBM payload: {e}") from e
        contact = p.sender_phone_number or p.phone_number
        if not contact:
            raise ParseError("no senderPhoneNumber")
        base = dict(tenant=self.tenant, channel=self.instance_id, contact=contact,
                    ts=_parse_time(p.send_time))
        if p.event_type:
            return self._event(p, base)
        self._forget_not_capable(contact)     # it just wrote to us over RCS
        # Google: the same (messageId, senderPhoneNumber) pair is the same message
        # Without a messageId, the Pub/Sub message's id (the same on Google's redeliveries)
        # keeps such messages apart rather than all one duplicate.
        mid = p.message_id or f"pubsub:{env.message.message_id}"
        m = InboundMessage(native_id=f"{contact}/{mid}", **base)
        if p.suggestion_response is not None:
            sr = p.suggestion_response
            m.kind = "postback" if sr.type == "ACTION" else "choice"
            m.payload, m.text = sr.postback_data, sr.text
        elif p.location is not None:
            m.kind = "location"
            m.location = Location(lat=p.location.latitude, lon=p.location.longitude)
        elif p.user_file is not None and p.user_file.payload is not None:
            f = p.user_file.payload
            m.kind = "media"
            m.media = [Media(kind=_media_kind(f.mime_type), url=f.file_uri, mime=f.mime_type,  # type: ignore[arg-type]
                             caption=f.file_name)]
        elif p.text is not None:
            m.text = p.text
        else:
            return []                          # a content kind we do not know yet
        return [m]

    def _event(self, p: wire.Payload, base: dict[str, Any]) -> list[InboundMessage]:
        native = p.event_id or f"{p.event_type}/{p.message_id}"
        et = p.event_type
        if et in ("DELIVERED", "READ"):
            return [InboundMessage(native_id=native, kind="status", status=et.lower(),
                                   refers_to=p.message_id, **base)]
        if et == "IS_TYPING":
            return [InboundMessage(native_id=native, kind="status", status="typing", **base)]
        if et == "UNSUBSCRIBE":
            return [InboundMessage(native_id=native, kind="optout", **base)]
        if et == "SUBSCRIBE":
            return [InboundMessage(native_id=native, kind="optin", **base)]
        if et == "TTL_EXPIRATION_REVOKED":     # never delivered, revoked at its expiry
            return [InboundMessage(native_id=native, kind="status", status="expired",
                                   refers_to=p.message_id, **base)]
        return []

    def respond(self, hook: Webhook, inline: list[Any]):  # type: ignore[override]
        from aiohttp import web
        try:
            env = wire.ENVELOPE.decode(hook.body)
        except msgspec.DecodeError:
            env = wire.Envelope()
        if env.message is None and env.secret is not None:
            return web.Response(text=env.secret, content_type="text/plain")
        return web.Response(text="ok")

    # --- outbound ----------------------------------------------------------------------
    def _card(self, card: Card) -> dict[str, Any]:
        c: dict[str, Any] = {}
        if card.title:
            c["title"] = clip(card.title, MAX_CARD_TITLE)
        if card.subtitle:
            c["description"] = clip(card.subtitle, MAX_CARD_DESCRIPTION)
        if card.image:
            c["media"] = {"height": "MEDIUM", "contentInfo": {"fileUrl": card.image}}
        sugg = [suggestion(b) for b in card.buttons[:MAX_CARD_SUGGESTIONS]]
        if card.url and len(sugg) < MAX_CARD_SUGGESTIONS:
            sugg.append(suggestion(Choice(id=card.url, title=self.settings.link_label)))
        if sugg:
            c["suggestions"] = sugg
        return c

    def _rich(self, cards: list[Card]) -> list[dict[str, Any]]:
        """Carousels of at most 10 cards; a group of one becomes a standalone card."""
        out = []
        for i in range(0, len(cards), MAX_CARDS):
            group = [self._card(c) for c in cards[i:i + MAX_CARDS]]
            if len(group) == 1:
                out.append({"richCard": {"standaloneCard": {
                    "cardOrientation": "VERTICAL", "cardContent": group[0]}}})
            else:
                out.append({"richCard": {"carouselCard": {
                    "cardWidth": "MEDIUM", "cardContents": group}}})
        return out

    def render(self, reply: Reply) -> list[Any]:
        text = reply.text
        chips: list[dict[str, Any]] = []
        if len(reply.choices) > MAX_SUGGESTIONS:
            # too many for suggestion chips: numbered options the flow matches by number
            lines = [f"{i}. {c.title}" for i, c in enumerate(reply.choices, 1)]
            text = "\n".join([text, *lines] if text else lines)
        else:
            chips = [suggestion(c) for c in reply.choices]
        msgs: list[dict[str, Any]] = [{"text": t} for t in split(text, MAX_TEXT)] if text else []
        for m in reply.media:
            if m.url:
                msgs.append({"contentInfo": {"fileUrl": m.url}})
                if m.caption:
                    msgs.append({"text": clip(m.caption, MAX_TEXT)})
        msgs.extend(self._rich(reply.cards))
        if chips:
            if not msgs:
                msgs.append({"text": "\n".join(c.title for c in reply.choices)})
            msgs[-1]["suggestions"] = chips
        out = []
        for m in msgs:
            payload: dict[str, Any] = {"contentMessage": m}
            if self.settings.ttl:
                payload["ttl"] = self.settings.ttl
            out.append(payload)
        return out

    def message_id(self, contact: str, payload: Any, key: str) -> str:
        """A UUID stable across retries of one payload: Google drops a reused messageId."""
        digest = hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False)
                                .encode()).hexdigest()
        return str(uuid.uuid5(MESSAGE_NS, "\x1f".join(
            (self.tenant, self.instance_id, contact, key, digest))))

    async def _bearer(self, refresh: bool = False) -> str:
        s = self.settings
        if s.service_account:
            sa = msgspec.json.decode(s.service_account, type=ServiceAccount)
            if refresh:
                TOKENS.forget(sa)
            return await TOKENS.get(self.http, sa, timeout=s.timeout)
        return s.access_token

    # --- phones known not to be RCS-capable ----------------------------------------------
    # Without this memory every reply to an SMS-only phone costs a 404 per payload before the
    # fallback; with it the next replies go straight to the fallback channel. An inbound RCS
    # message from the phone clears it. Kept in Redis (shared by processes) when the gateway
    # gives the channel its runtime.
    def _not_capable_key(self, contact: str) -> str:
        return f"{tenant_prefix(self.tenant)}rcs:{self.instance_id}:norcs:{contact}"

    def _redis(self) -> Any:
        return getattr(self.runtime, "redis", None) if self.runtime is not None else None

    async def _known_not_capable(self, contact: str) -> bool:
        redis = self._redis()
        if redis is None or not self.settings.not_capable_ttl:
            return False
        pending = _forgetting.get((self.tenant, self.instance_id, contact))
        if pending is not None:               # the phone just wrote over RCS: let that land
            await asyncio.gather(pending, return_exceptions=True)
        try:
            return bool(await redis.exists(self._not_capable_key(contact)))
        except Exception:  # noqa: BLE001 -- without the memory we just ask Google
            return False

    async def _remember_not_capable(self, contact: str) -> None:
        redis = self._redis()
        if redis is None or not self.settings.not_capable_ttl:
            return
        try:
            await redis.set(self._not_capable_key(contact), "1", ex=self.settings.not_capable_ttl)
        except Exception as exc:  # noqa: BLE001
            log.warning("rcs: could not remember a non-RCS phone: %s", type(exc).__name__)

    def _forget_not_capable(self, contact: str) -> None:
        redis = self._redis()
        if redis is None or not self.settings.not_capable_ttl:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return

        async def forget() -> None:
            try:
                await redis.delete(self._not_capable_key(contact))
            except Exception as exc:  # noqa: BLE001
                log.warning("rcs: could not forget a non-RCS phone: %s", type(exc).__name__)

        task = loop.create_task(forget())
        k = (self.tenant, self.instance_id, contact)
        _background.add(task)
        _forgetting[k] = task
        task.add_done_callback(_background.discard)
        task.add_done_callback(lambda t: _forgetting.pop(k, None) if _forgetting.get(k) is t else None)

    async def send(self, contact: str, payload: Any, *, key: str) -> SendResult:
        s = self.settings
        if await self._known_not_capable(contact):
            fb = s.fallback_channel
            return SendResult(status="failed", code="not_rcs_capable",
                              detail=(f"fallback={fb}" if fb else "user not RCS-capable") + " (remembered)")
        mid = self.message_id(contact, payload, key)
        url = f"{s.api_base.rstrip('/')}/v1/phones/{contact}/agentMessages"
        body = json.dumps(payload, ensure_ascii=False).encode()
        out = None
        for refresh in (False, True):          # one retry with a fresh token after a 401
            try:
                token = await self._bearer(refresh)
            except (TokenError, msgspec.DecodeError) as e:
                o = getattr(e, "outcome", None)
                if o is not None and o.retryable:
                    return SendResult(status="retry", retry_after=o.retry_after or 30.0,
                                      code="token_unavailable", detail=str(e))
                return SendResult(status="failed", code="auth", detail=f"access token: {e}")
            out = await provider.call(
                self.http, "POST", url, data=body, timeout=s.timeout, attempts=s.attempts,
                params={"messageId": mid, "agentId": s.agent_id},
                headers={"Authorization": f"Bearer {token}",
                         "Content-Type": "application/json; charset=utf-8"})
            if out.status != 401 or not s.service_account:
                break
        assert out is not None
        res = self._result(out, mid)
        if res.code == "not_rcs_capable":
            await self._remember_not_capable(contact)
        return res

    def _result(self, out: provider.Outcome, mid: str) -> SendResult:
        if 200 <= out.status < 300:
            return SendResult(status="sent", provider_id=mid)
        if out.status == 0:
            return SendResult(status="retry", retry_after=5.0, code=out.error,
                              detail=f"no answer after {out.attempts} attempts")
        try:
            err = wire.ERROR.decode(out.body).error
        except msgspec.DecodeError:
            err = wire.GoogleError(code=out.status)
        detail = err.message[:300]
        if out.retryable:
            return SendResult(status="retry", retry_after=out.retry_after or 30.0,
                              code=str(out.status), detail=detail)
        if out.status == 404:
            # the user's phone is not reachable over RCS: see `fallback_codes`
            fb = self.settings.fallback_channel
            return SendResult(status="failed", code="not_rcs_capable",
                              detail=f"fallback={fb}" if fb else "user not RCS-capable")
        if out.status == 403:
            return SendResult(status="failed", code="agent_not_launched",
                              detail=detail or "agent not launched on this carrier")
        return SendResult(status="failed", code=err.status or str(out.status), detail=detail)

    def contact_link(self, ref: str = "") -> str:
        # sms:<agent> deep links need the agent's phone number, which RBM does not give us
        return ""
