"""Facebook Messenger channel (Messenger Platform: webhooks, Send API, handover protocol).

Inbound: `GET` hub.* handshake; `POST` JSON signed with `X-Hub-Signature-256` (HMAC-SHA256
of the raw body with the app secret), `entry[].messaging[]` events batched. Echoes of our own
sends and `standby` events (another app owns the thread) are ignored.
Outbound: `POST {api_base}/{version}/{page_id}/messages` with the Page access token in an
`Authorization: Bearer` header (Graph accepts it there; unlike `?access_token=`, a header
never ends up in a URL that an error message or a proxy log could print).
"""
from __future__ import annotations

import hashlib
import hmac
import json
from typing import Annotated, Any
from urllib.parse import quote

import msgspec

from gateway.text import clip, split
from gateway.channels import (ApiBase, Attempts, CallTimeout, Capabilities, Channel, ParseError, Webhook, hub_handshake, sha256_signature_ok)
from gateway.types import (
    Card,
    Choice,
    InboundMessage,
    Location,
    Media,
    Referral,
    Reply,
    SendResult,
)

from gateway import provider

from . import wire

MAX_TEXT = 2000
MAX_QUICK_REPLIES = 13
MAX_QUICK_REPLY_TITLE = 20
MAX_PAYLOAD = 1000
MAX_ELEMENTS = 10
MAX_ELEMENT_BUTTONS = 3
MAX_ELEMENT_TEXT = 80
MAX_BUTTON_TITLE = 20
WINDOW = 24 * 3600
HUMAN_AGENT_WINDOW = 7 * 24 * 3600     # the HUMAN_AGENT tag's allowance after the last message
PAGE_INBOX_APP_ID = "263902037430900"    # Meta's Page Inbox, the usual human-agent app
THUMBS_UP_STICKERS = {369239263222822, 369239343222814, 369239383222810}

# Send API errors (developers.facebook.com/docs/messenger-platform/error-codes)
WINDOW_SUBCODES = {2018278}          # outside the 24 h window and no (valid) tag
STOPPED = {551}                      # "This person isn't available right now": blocked/left
UNREACHABLE_SUBCODES = {2018001, 2018108, 1545041}
THROTTLED = {4, 17, 32, 613}
TRANSIENT = {1, 2, 1200}
AUTH = {190, 3, 200, 230}

REFERRAL_SOURCES = {"SHORTLINK": "link", "ADS": "ad", "CUSTOMER_CHAT_PLUGIN": "widget",
                    "MESSENGER_CODE": "qr", "DISCOVER_TAB": "discover"}


# Meta app ids are numbers (Graph takes them as such); "" where the setting allows none.
AppId = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{0,32}(?!\n)$")]
# A Graph API version as it goes in every call's path: v21.0.
GraphVersion = Annotated[str, msgspec.Meta(pattern=r"^v[0-9]{1,3}\.[0-9]{1,3}(?!\n)$")]


class Settings(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Settings of one Facebook Page (a channel instance)."""
    page_id: str                       # the Page's numeric id
    page_access_token: str = ""        # Page token with pages_messaging (secret)
    app_secret: str = ""               # the Meta app's secret: signs webhooks (secret)
    verify_token: str = ""             # your own string, pasted in the webhook settings (secret)
    page_username: str = ""            # for m.me links (falls back to page_id)
    link_label: str = "Open"           # label of the button added for a card's url
    handover_app_id: AppId = PAGE_INBOX_APP_ID   # who gets the thread on a handoff ("" = keep it)
    app_id: AppId = ""                 # this bot's Meta app id: the inbox passing the thread
                                       # to it hands the conversation back to the bot
    human_agent_tag: bool = True       # agents' replies after 24 h go out tagged HUMAN_AGENT (7 days)
    appsecret_proof: bool = False      # the app requires appsecret_proof on Graph calls
    api_base: ApiBase = "https://graph.facebook.com"
    version: GraphVersion = "v21.0"
    timeout: CallTimeout = 10.0              # seconds per provider call
    attempts: Attempts = 3                  # provider calls per send on 429 / 5xx / throttling


def _referral(r: wire.Referral) -> Referral:
    return Referral(source=REFERRAL_SOURCES.get(r.source, r.source.lower()),
                    ref=r.ref or r.ad_id, url=r.referer_uri)


def _button(c: Choice) -> dict[str, Any]:
    if c.id.startswith(("https://", "http://")):
        return {"type": "web_url", "title": clip(c.title, MAX_BUTTON_TITLE), "url": c.id}
    if c.id.startswith("tel:"):
        return {"type": "phone_number", "title": clip(c.title, MAX_BUTTON_TITLE), "payload": c.id[4:]}
    return {"type": "postback", "title": clip(c.title, MAX_BUTTON_TITLE), "payload": c.id[:MAX_PAYLOAD]}


class MessengerChannel(Channel):
    type = "messenger"
    Settings = Settings
    secrets = ("page_access_token", "app_secret", "verify_token")
    # Meta retries until it gets a 200, at an undocumented cadence: WhatsApp's 8 days
    dedup_ttl = 8 * 24 * 3600
    capabilities = Capabilities(
        text_length=MAX_TEXT, buttons=MAX_QUICK_REPLIES, button_title=MAX_QUICK_REPLY_TITLE,
        list_rows=0, cards=MAX_ELEMENTS, card_buttons=MAX_ELEMENT_BUTTONS, media=True,
        templates=False, inline=0, window_hours=24, typing=True)
    refusal_status = 403
    settings: Settings

    # --- inbound -----------------------------------------------------------------------
    async def handshake(self, hook: Webhook):
        return hub_handshake(hook, self.settings.verify_token)

    def verify(self, hook: Webhook) -> bool:
        return sha256_signature_ok(hook.body, hook.headers.get("X-Hub-Signature-256", ""),
                                   self.settings.app_secret)

    def parse(self, hook: Webhook) -> list[InboundMessage]:
        try:
            env = wire.ENVELOPE.decode(hook.body)
        except msgspec.DecodeError as e:
            raise ParseError(f"not a Messenger webhook body: {e}") from e
        if env.object not in ("page", "instagram"):
            raise ParseError(f"unexpected object {env.object!r}")
        out: list[InboundMessage] = []
        for entry in env.entry:
            if self.settings.page_id and entry.id and entry.id != self.settings.page_id:
                continue                       # another Page of the same app: not this instance
            for ev in entry.messaging:
                out.extend(self._event(ev))
        return out

    def _event(self, ev: wire.Messaging) -> list[InboundMessage]:
        contact = ev.sender.id or (f"ref:{ev.sender.user_ref}" if ev.sender.user_ref else "")
        if not contact:
            return []
        base = dict(tenant=self.tenant, channel=self.instance_id, contact=contact,
                    ts=ev.timestamp / 1000)
        when = f"{contact}:{ev.timestamp}"
        if ev.message is not None:
            m = ev.message
            if m.is_echo:
                return []                      # our own sends, echoed back
            # No mid (never seen from Meta, but "" would make every such message one
            # duplicate of the first): the sender and time name it, as for postbacks.
            return [self._message(m, base, m.mid or f"message:{when}")]
        if ev.postback is not None:
            p = ev.postback
            msg = InboundMessage(native_id=p.mid or f"postback:{when}", kind="postback",
                                 payload=p.payload, text=p.title, **base)
            if p.referral is not None:         # Get Started reached through an m.me?ref= link
                msg.referral = _referral(p.referral)
            return [msg]
        if ev.referral is not None:            # an existing thread opened from a link or an ad
            return [InboundMessage(native_id=f"referral:{when}", kind="referral",
                                   referral=_referral(ev.referral), **base)]
        if ev.delivery is not None:
            d = ev.delivery
            if not d.mids:
                return [InboundMessage(native_id=f"delivered:{contact}:{d.watermark}", kind="status",
                                       status="delivered", payload=str(d.watermark), **base)]
            return [InboundMessage(native_id=f"{mid}:delivered", kind="status", status="delivered",
                                   refers_to=mid, **base) for mid in d.mids]
        if ev.read is not None:
            # a watermark: everything we sent before it has been read
            return [InboundMessage(native_id=f"read:{contact}:{ev.read.watermark}", kind="status",
                                   status="read", payload=str(ev.read.watermark), **base)]
        if ev.optin is not None:
            o = ev.optin
            kind = "optout" if o.notification_messages_status == "STOP_NOTIFICATIONS" else "optin"
            return [InboundMessage(native_id=f"{kind}:{when}", kind=kind,  # type: ignore[arg-type]
                                   text=f"messenger:{o.type or 'optin'}", payload=o.payload or o.ref,
                                   **base)]
        for name in ("pass_thread_control", "take_thread_control", "request_thread_control"):
            tc = getattr(ev, name)
            if tc is not None:                 # handover protocol
                # The inbox passing the thread to us hands the conversation back to the bot.
                # Graph sends the app ids as strings or as numbers: compare their text.
                back = name == "pass_thread_control" and bool(tc.new_owner_app_id) \
                    and str(tc.new_owner_app_id) == self.settings.app_id
                return [InboundMessage(native_id=f"{name}:{when}", kind="status",
                                       status="handback" if back else name,
                                       payload=str(tc.new_owner_app_id or tc.requested_owner_app_id
                                                   or tc.previous_owner_app_id),
                                       text=tc.metadata, **base)]
        return []

    def _message(self, m: wire.Message, base: dict[str, Any], native_id: str) -> InboundMessage:
        msg = InboundMessage(native_id=native_id, text=m.text, **base)
        if m.quick_reply is not None:
            msg.kind, msg.payload = "choice", m.quick_reply.payload
        elif m.attachments:
            media: list[Media] = []
            for a in m.attachments:
                p = a.payload or wire.AttachmentPayload()
                if a.type == "location" and p.coordinates is not None:
                    msg.kind = "location"
                    msg.location = Location(lat=p.coordinates.lat, lon=p.coordinates.long,
                                            name=p.title or a.title)
                elif p.sticker_id in THUMBS_UP_STICKERS and not m.text:
                    msg.text = "👍"            # the Like button: a word, not an image
                elif p.sticker_id:
                    media.append(Media(kind="sticker", url=p.url, id=str(p.sticker_id)))
                elif a.type in ("image", "audio", "video", "file"):
                    media.append(Media(kind=a.type, url=p.url))  # type: ignore[arg-type]
                elif a.type == "fallback" and p.url:   # a shared link
                    msg.text = " ".join(x for x in (m.text, p.url) if x)
            if media:
                msg.kind, msg.media = "media", media
        if m.referral is not None:
            msg.referral = _referral(m.referral)
        return msg

    # --- outbound ----------------------------------------------------------------------
    def render(self, reply: Reply) -> list[Any]:
        messages: list[dict[str, Any]] = []
        for m in reply.media:
            kind = m.kind if m.kind in ("image", "audio", "video", "file") else "image"
            payload = {"url": m.url, "is_reusable": True} if m.url else {"attachment_id": m.id}
            messages.append({"attachment": {"type": kind, "payload": payload}})
            if m.caption:
                messages.append({"text": clip(m.caption, MAX_TEXT)})
        for i in range(0, len(reply.cards), MAX_ELEMENTS):
            messages.append({"attachment": {"type": "template", "payload": {
                "template_type": "generic",
                "elements": [self._element(c) for c in reply.cards[i:i + MAX_ELEMENTS]]}}})
        text, choices = reply.text, reply.choices
        if len(choices) > MAX_QUICK_REPLIES:
            lines = [f"{i}. {c.title}" for i, c in enumerate(choices, 1)]
            text, choices = "\n".join([text, *lines] if text else lines), []
        # text goes before cards and media: a question, then what it is about
        texts = [{"text": t} for t in split(text, MAX_TEXT)] if text else []
        messages = texts + messages
        if choices:
            if not messages:
                messages.append({"text": "👇"})
            messages[-1]["quick_replies"] = [
                {"content_type": "text", "title": clip(c.title, MAX_QUICK_REPLY_TITLE),
                 "payload": c.id[:MAX_PAYLOAD]} for c in choices]
        if not messages:
            messages.append({"text": "…"})
        tag = reply.tag.upper()
        envelope: dict[str, Any] = ({"messaging_type": "MESSAGE_TAG", "tag": tag} if tag
                                    else {"messaging_type": "RESPONSE"})
        return [{**envelope, "message": m} for m in messages]

    def _element(self, card: Card) -> dict[str, Any]:
        e: dict[str, Any] = {"title": clip(card.title or "…", MAX_ELEMENT_TEXT)}
        if card.subtitle:
            e["subtitle"] = clip(card.subtitle, MAX_ELEMENT_TEXT)
        if card.image:
            e["image_url"] = card.image
        buttons = [_button(b) for b in card.buttons[:MAX_ELEMENT_BUTTONS]]
        if card.url:
            e["default_action"] = {"type": "web_url", "url": card.url}
            if len(buttons) < MAX_ELEMENT_BUTTONS:
                buttons.append({"type": "web_url", "title": clip(self.settings.link_label, MAX_BUTTON_TITLE),
                                "url": card.url})
        if buttons:
            e["buttons"] = buttons
        return e

    # --- Graph calls -------------------------------------------------------------------
    def _url(self, edge: str) -> str:
        s = self.settings
        return f"{s.api_base.rstrip('/')}/{s.version}/{s.page_id or 'me'}/{edge}"

    def _params(self) -> dict[str, str] | None:
        s = self.settings
        if not s.appsecret_proof:
            return None
        proof = hmac.new(s.app_secret.encode(), s.page_access_token.encode(), hashlib.sha256).hexdigest()
        return {"appsecret_proof": proof}

    @staticmethod
    def recipient(contact: str) -> dict[str, str]:
        if contact.startswith("ref:"):         # a chat-plugin visitor known by user_ref
            return {"user_ref": contact[4:]}
        return {"id": contact}

    async def _post(self, edge: str, body: dict[str, Any]) -> provider.Outcome:
        s = self.settings
        return await provider.call(
            self.http, "POST", self._url(edge), params=self._params(),
            data=json.dumps(body, ensure_ascii=False).encode(),
            timeout=s.timeout, attempts=s.attempts, retryable=_retryable,
            headers={"Authorization": f"Bearer {s.page_access_token}",
                     "Content-Type": "application/json"})

    async def send(self, contact: str, payload: Any, *, key: str) -> SendResult:
        if not self.settings.page_access_token:    # no call that can only come back 401
            return SendResult(status="failed", code="config", detail="page_access_token is not set")
        out = await self._post("messages", {"recipient": self.recipient(contact), **payload})
        return self._result(out)

    def _result(self, out: provider.Outcome) -> SendResult:
        if 200 <= out.status < 300:
            try:
                mid = wire.SEND_ANSWER.decode(out.body).message_id
            except msgspec.DecodeError:
                mid = ""
            return SendResult(status="sent", provider_id=mid)
        if out.status == 0:
            return SendResult(status="retry", retry_after=5.0, code=out.error,
                              detail=f"no answer after {out.attempts} attempts")
        err = _error(out.body)
        code = str(err.code or out.status) + (f".{err.error_subcode}" if err.error_subcode else "")
        detail = err.message[:300]
        if err.code in STOPPED:
            return SendResult(status="stopped", code=code, detail=detail)
        if err.error_subcode in WINDOW_SUBCODES:
            return SendResult(status="failed", code=code,
                              detail="outside the 24 h window: use a message tag. " + detail)
        if out.retryable:
            return SendResult(status="retry", retry_after=out.retry_after or 30.0, code=code,
                              detail=detail)
        if err.error_subcode in UNREACHABLE_SUBCODES:
            return SendResult(status="failed", code=code, detail="undeliverable: " + detail)
        if err.code in AUTH or out.status in (401, 403):
            return SendResult(status="failed", code=code,
                              detail="check page_access_token and its permissions: " + detail)
        return SendResult(status="failed", code=code, detail=detail)

    async def sender_action(self, contact: str, action: str = "typing_on") -> SendResult:
        """`typing_on`, `typing_off` or `mark_seen` in the contact's thread."""
        out = await self._post("messages", {"recipient": self.recipient(contact),
                                            "sender_action": action})
        return SendResult(status="sent") if 200 <= out.status < 300 else self._result(out)

    # --- handover protocol -------------------------------------------------------------
    async def pass_thread_control(self, contact: str, target_app_id: str = "",
                                  metadata: str = "") -> SendResult:
        """Give the thread to another app (a human-agent inbox). The bot's app keeps getting
        the messages as `standby` events, which parse ignores, until control comes back."""
        target = target_app_id or self.settings.handover_app_id
        body: dict[str, Any] = {"recipient": self.recipient(contact)}
        if target:
            body["target_app_id"] = int(target) if target.isdigit() else target
        if metadata:
            body["metadata"] = metadata[:1000]
        return self._control(await self._post("pass_thread_control", body))

    async def take_thread_control(self, contact: str, metadata: str = "") -> SendResult:
        """Take the thread back (this app must be the Page's primary receiver)."""
        body: dict[str, Any] = {"recipient": self.recipient(contact)}
        if metadata:
            body["metadata"] = metadata[:1000]
        return self._control(await self._post("take_thread_control", body))

    async def request_thread_control(self, contact: str, metadata: str = "") -> SendResult:
        """Ask the primary receiver for the thread (when this app is a secondary receiver)."""
        body: dict[str, Any] = {"recipient": self.recipient(contact)}
        if metadata:
            body["metadata"] = metadata[:1000]
        return self._control(await self._post("request_thread_control", body))

    def _control(self, out: provider.Outcome) -> SendResult:
        if 200 <= out.status < 300:
            return SendResult(status="sent")
        res = self._result(out)
        return res if res.status != "stopped" else SendResult(status="failed", code=res.code,
                                                              detail=res.detail)

    def contact_link(self, ref: str = "") -> str:
        who = self.settings.page_username or self.settings.page_id
        if not who:
            return ""
        return f"https://m.me/{who}" + (f"?ref={quote(ref)}" if ref else "")


def _error(body: bytes) -> wire.GraphError:
    try:
        return wire.ERROR.decode(body).error
    except msgspec.DecodeError:
        return wire.GraphError()


def _retryable(status: int, body: bytes) -> bool:
    err = _error(body)
    if err.code in STOPPED or err.error_subcode in WINDOW_SUBCODES:
        return False
    if status == 0 or status in provider.RETRY_STATUSES or status >= 500:
        return True
    return err.code in (THROTTLED | TRANSIENT)
