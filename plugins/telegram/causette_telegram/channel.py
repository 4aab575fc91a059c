"""Telegram Bot API channel: secret-token webhooks, updates, inline keyboards, sends.

Inbound: one Update per POST, authenticated by X-Telegram-Bot-Api-Secret-Token (the
`secret_token` given to setWebhook), compared in constant time; `update_id` is the
dedup key. Button taps (callback_query) are acknowledged with answerCallbackQuery, in
the webhook's own response by default (no extra request, the spinner stops at once).
Outbound: {api_base}/bot<token>/<method> with a JSON body; 429 honours
parameters.retry_after; 403 (blocked, deactivated) means the contact stopped us.
"""
from __future__ import annotations

import asyncio
import math
import hashlib
import logging
import random
import re
from typing import Annotated, Any, ClassVar, Literal

import aiohttp
import msgspec
from aiohttp import web

from gateway.channels import ApiBase, Attempts, CallTimeout, Capabilities, Channel, ParseError, Webhook, safe_equal
from gateway.types import Card, InboundMessage, Location, Media, Referral, Reply, SendResult

from . import wire

log = logging.getLogger("causette.telegram")

TEXT_LIMIT = 4096          # UTF-16 code units, after entity parsing
CAPTION_LIMIT = 1024
CALLBACK_DATA_LIMIT = 64   # bytes
MAX_BUTTONS = 100          # buttons of one inline keyboard
START_PAYLOAD = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class TelegramSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    # from @BotFather: "123456:ABC..."; it goes in every call's path (/bot<token>/...)
    token: Annotated[str, msgspec.Meta(min_length=1, pattern=r"^[^/?#\s]+(?!\n)$")]
    # given to setWebhook, which takes 1-256 of these characters only
    secret_token: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,256}(?!\n)$")]
    # without "@", for t.me links (Telegram usernames: letters, digits, _)
    bot_username: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_]{0,32}(?!\n)$")] = ""
    buttons_per_row: Annotated[int, msgspec.Meta(ge=1, le=8)] = 1   # Telegram shows 8 a row at most
    answer_callbacks: Literal["webhook", "api"] = "webhook"
    api_base: ApiBase = "https://api.telegram.org"
    timeout: CallTimeout = 10.0
    attempts: Attempts = 3


def _seconds(header: str) -> float:
    """A Retry-After header's delay in seconds (0 when absent or not a number of seconds)."""
    try:
        wait = float(header)
    except ValueError:
        return 0.0
    return min(wait, 86400.0) if wait > 0 and math.isfinite(wait) else 0.0


_decode_update = msgspec.json.Decoder(wire.Update)
_decode_callback = msgspec.json.Decoder(wire.CallbackOnly)
_decode_response = msgspec.json.Decoder(wire.ApiResponse)

MEDIA_METHOD = {"image": ("sendPhoto", "photo"), "video": ("sendVideo", "video"),
                "audio": ("sendAudio", "audio"), "file": ("sendDocument", "document"),
                "sticker": ("sendSticker", "sticker")}


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def split_text(text: str, limit: int = TEXT_LIMIT) -> list[str]:
    """Cut a long text into messages of at most `limit` UTF-16 units, at a paragraph, line
    or word boundary when one is in the last fifth of the chunk."""
    out = []
    while utf16_len(text) > limit:
        n = limit
        while utf16_len(text[:n]) > limit:
            n -= 1
        cut = -1
        for sep in ("\n\n", "\n", " "):
            i = text.rfind(sep, 0, n)
            if i >= n * 4 // 5:
                cut = i
                break
        head, text = (text[:cut], text[cut:].lstrip()) if cut > 0 else (text[:n], text[n:])
        out.append(head.rstrip())
    if text:
        out.append(text)
    return out


def callback_data(choice_id: str) -> str:
    """The choice id when it fits Telegram's 64 bytes, else "#" + a digest: the tap then
    comes back as the button's title, which the flow matches like typed text."""
    if 0 < len(choice_id.encode()) <= CALLBACK_DATA_LIMIT and not choice_id.startswith("#"):
        return choice_id
    return "#" + hashlib.sha256(choice_id.encode()).hexdigest()[:40]


def start_payload(ref: str) -> str:
    """A deep-link payload Telegram accepts (1-64 of [A-Za-z0-9_-]); other characters become _."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", ref)[:64]


class TelegramChannel(Channel):
    type: ClassVar[str] = "telegram"
    Settings: ClassVar[type[msgspec.Struct]] = TelegramSettings
    secrets: ClassVar[tuple[str, ...]] = ("token", "secret_token")
    capabilities: ClassVar[Capabilities] = Capabilities(
        text_length=TEXT_LIMIT, buttons=MAX_BUTTONS, button_title=64, cards=10, card_buttons=3,
        media=True, inline=0, window_hours=0)
    refusal_status: ClassVar[int] = 401

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._tasks: set[asyncio.Task] = set()

    # --- inbound ---------------------------------------------------------------------------
    def verify(self, hook: Webhook) -> bool:
        want = self.settings.secret_token
        given = hook.headers.get("X-Telegram-Bot-Api-Secret-Token", "")
        # No secret configured means anyone could post updates: refuse everything.
        return bool(want) and bool(given) and safe_equal(given, want)

    def parse(self, hook: Webhook) -> list[InboundMessage]:
        try:
            up = _decode_update.decode(hook.body)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise ParseError(f"not a Telegram update: {exc}") from None
        nid = str(up.update_id)
        if up.message is not None:
            msg = self._message(nid, up.message)
            return [msg] if msg else []
        if up.callback_query is not None:
            return [self._callback(nid, up.callback_query)]
        if up.my_chat_member is not None:
            msg = self._membership(nid, up.my_chat_member)
            return [msg] if msg else []
        return []   # edited messages, channel posts, other update types

    def _base(self, nid: str, chat: wire.Chat, user: wire.User | None, ts: int) -> InboundMessage:
        profile: dict[str, str] = {}
        locale = ""
        if user is not None:
            profile = {k: v for k, v in (("first_name", user.first_name), ("last_name", user.last_name),
                                         ("username", user.username)) if v}
            locale = user.language_code
        return InboundMessage(tenant=self.tenant, channel=self.instance_id, native_id=nid,
                              contact=str(chat.id), ts=float(ts), profile=profile, locale=locale)

    def _message(self, nid: str, m: wire.Message) -> InboundMessage | None:
        msg = self._base(nid, m.chat, m.from_, m.date)
        if m.text:
            cmd, _, arg = m.text.partition(" ")
            if cmd.split("@", 1)[0] == "/start" and arg.strip():
                msg.kind = "referral"
                msg.referral = Referral(source="link", ref=arg.strip())
                return msg
            msg.text = m.text
            return msg
        if m.location is not None or m.venue is not None:
            geo = m.venue.location if m.venue else m.location
            assert geo is not None
            msg.kind = "location"
            msg.location = Location(lat=geo.latitude, lon=geo.longitude, name=m.venue.title if m.venue else "")
            return msg
        if m.contact is not None:
            msg.text = m.contact.phone_number
            msg.profile = {**msg.profile, "phone": m.contact.phone_number}
            return msg
        media = self._media(m)
        if media is None:
            return None     # service messages (members joined, pinned...) carry nothing to answer
        msg.kind = "media"
        msg.media = [media]
        msg.text = m.caption
        return msg

    @staticmethod
    def _media(m: wire.Message) -> Media | None:
        if m.photo:
            best = max(m.photo, key=lambda p: p.width * p.height)
            return Media(kind="image", id=best.file_id, caption=m.caption)
        for field, kind in (("video", "video"), ("animation", "video"), ("video_note", "video"),
                            ("voice", "audio"), ("audio", "audio"), ("sticker", "sticker"),
                            ("document", "file")):
            f = getattr(m, field)
            if f is not None:
                return Media(kind=kind, id=f.file_id, mime=f.mime_type, caption=m.caption)
        return None

    def _callback(self, nid: str, q: wire.CallbackQuery) -> InboundMessage:
        chat = q.message.chat if q.message else wire.Chat(id=q.from_.id)
        msg = self._base(nid, chat, q.from_, q.message.date if q.message else 0)
        title = ""
        if q.message and q.message.reply_markup:
            for row in q.message.reply_markup.inline_keyboard:
                for b in row:
                    if b.callback_data == q.data:
                        title = b.text
        if q.data.startswith("#"):      # a digest of an over-long id: the title stands for it
            msg.text = title
            return msg
        msg.kind, msg.payload, msg.text = "choice", q.data, title
        return msg

    def _membership(self, nid: str, u: wire.ChatMemberUpdated) -> InboundMessage | None:
        """Blocking the bot arrives as my_chat_member with status "kicked" in the private
        chat: an opt-out the contact gave without a word. Unblocking is an opt-in."""
        if u.chat.type != "private" or u.new_chat_member is None:
            return None
        new = u.new_chat_member.status
        old = u.old_chat_member.status if u.old_chat_member else ""
        msg = self._base(nid, u.chat, u.from_, u.date)
        if new == "kicked":
            msg.kind = "optout"
        elif old == "kicked" and new == "member":
            msg.kind = "optin"
        else:
            return None
        return msg

    def respond(self, hook: Webhook, inline: list[Any]) -> web.StreamResponse:
        try:
            q = _decode_callback.decode(hook.body).callback_query
        except (msgspec.DecodeError, msgspec.ValidationError):
            q = None
        if q is None:
            return web.Response(text="ok")
        if self.settings.answer_callbacks == "api":
            task = asyncio.get_running_loop().create_task(self.answer_callback(q.id))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return web.Response(text="ok")
        # Telegram accepts a method call as the webhook's response body.
        return web.json_response({"method": "answerCallbackQuery", "callback_query_id": q.id})

    async def answer_callback(self, query_id: str, text: str = "") -> SendResult:
        body: dict[str, Any] = {"callback_query_id": query_id}
        if text:
            body["text"] = text
        return await self.call("answerCallbackQuery", body)

    # --- outbound --------------------------------------------------------------------------
    def keyboard(self, buttons: list[wire.InlineButton]) -> wire.InlineKeyboard | None:
        if not buttons:
            return None
        n = max(1, self.settings.buttons_per_row)
        return wire.InlineKeyboard([buttons[i:i + n] for i in range(0, len(buttons), n)])

    def render(self, reply: Reply) -> list[wire.Call]:
        calls: list[wire.Call] = []
        text = reply.text
        if not text and reply.template is not None:
            text = " ".join(reply.template.params)     # no templates on Telegram
        buttons = [wire.InlineButton(text=c.title[:64], callback_data=callback_data(c.id))
                   for c in reply.choices]
        if buttons and not text:
            text = "…"                                   # sendMessage needs a text to carry buttons
        chunks = split_text(text) if text else []
        # More buttons than one keyboard holds: the rest follow in messages of their own.
        boards = [buttons[i:i + MAX_BUTTONS] for i in range(0, len(buttons), MAX_BUTTONS)] or [[]]
        for i, chunk in enumerate(chunks):
            last = i == len(chunks) - 1
            calls.append(wire.Call(method="sendMessage", text=chunk,
                                   reply_markup=self.keyboard(boards[0]) if last else None))
        for board in boards[1:]:
            calls.append(wire.Call(method="sendMessage", text="…", reply_markup=self.keyboard(board)))
        for m in reply.media:
            calls.append(self._media_call(m))
        for card in reply.cards[: self.capabilities.cards]:
            calls.append(self._card_call(card))
        return calls

    @staticmethod
    def _media_call(m: Media) -> wire.Call:
        method, field = MEDIA_METHOD.get(m.kind, MEDIA_METHOD["file"])
        call = wire.Call(method=method, caption=m.caption[:CAPTION_LIMIT])
        setattr(call, field, m.url or m.id)
        return call

    def _card_call(self, card: Card) -> wire.Call:
        buttons = []
        if card.url:
            buttons.append(wire.InlineButton(text=card.title[:64], url=card.url))
        buttons += [wire.InlineButton(text=b.title[:64], callback_data=callback_data(b.id))
                    for b in card.buttons[: self.capabilities.card_buttons]]
        text = "\n".join(x for x in (card.title, card.subtitle) if x)
        if card.image:
            return wire.Call(method="sendPhoto", photo=card.image, caption=text[:CAPTION_LIMIT],
                             reply_markup=self.keyboard(buttons))
        return wire.Call(method="sendMessage", text=text[:TEXT_LIMIT], reply_markup=self.keyboard(buttons))

    async def send(self, contact: str, payload: Any, *, key: str) -> SendResult:
        if isinstance(payload, wire.Call):
            body = msgspec.to_builtins(payload)
        else:
            body = dict(payload)
        method = body.pop("method", "sendMessage")
        chat: int | str = int(contact) if contact.lstrip("-").isdigit() else contact
        result = await self.call(method, {"chat_id": chat, **body})
        if result.status != "sent":
            log.warning("telegram %s for tenant %s channel %s: %s %s", method, self.tenant,
                        self.instance_id, result.status, result.code)
        return result

    async def call(self, method: str, body: dict[str, Any]) -> SendResult:
        """One Bot API call with bounded retries; a typed outcome, never an exception."""
        s = self.settings
        url = f"{s.api_base.rstrip('/')}/bot{s.token}/{method}"
        result = SendResult(status="retry")
        for n in range(max(1, s.attempts)):
            result = await self._once(url, body)
            if result.status != "retry" or n + 1 >= s.attempts or result.retry_after > 5.0:
                return result
            backoff = min(5.0, 0.25 * 2 ** n) * (0.5 + random.random() / 2)
            await asyncio.sleep(max(result.retry_after, backoff))
        return result

    async def _once(self, url: str, body: dict[str, Any]) -> SendResult:
        own = self.http is None
        http = aiohttp.ClientSession() if own else self.http
        assert http is not None
        try:
            async with http.post(url, data=msgspec.json.encode(body),
                                 headers={"Content-Type": "application/json"},
                                 timeout=aiohttp.ClientTimeout(total=self.settings.timeout)) as resp:
                status, raw = resp.status, await resp.read()
                header_wait = resp.headers.get("Retry-After", "")
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            # The URL holds the bot token: never let it reach a log line.
            return SendResult(status="retry", code="connection", detail=type(exc).__name__)
        finally:
            if own:
                await http.close()
        try:
            ans = _decode_response.decode(raw)
        except (msgspec.DecodeError, msgspec.ValidationError):
            if 200 <= status < 300:     # not the Bot API answering (a proxy's page?): not sent
                return SendResult(status="failed", code="bad_answer",
                                  detail=f"HTTP {status} without a Bot API answer")
            ans = wire.ApiResponse(error_code=status, description=f"HTTP {status}")
        if 200 <= status < 300 and ans.ok:
            mid = ans.result.get("message_id", "") if isinstance(ans.result, dict) else ""
            return SendResult(status="sent", provider_id=str(mid))
        code = ans.error_code or status
        detail = ans.description[:200]
        if code == 429 or status == 429:
            # Telegram says when in the body; a proxy in front of a local Bot API server may
            # say it in the header only.
            wait = ans.parameters.retry_after if ans.parameters else _seconds(header_wait)
            return SendResult(status="retry", retry_after=float(wait), code="429", detail=detail)
        if status >= 500 or code >= 500:
            return SendResult(status="retry", code=str(code), detail=detail)
        if code == 403:
            return SendResult(status="stopped", code="403", detail=detail)
        return SendResult(status="failed", code=str(code), detail=detail)

    def contact_link(self, ref: str = "") -> str:
        name = self.settings.bot_username.lstrip("@")
        if not name:
            return ""
        payload = start_payload(ref) if ref else ""
        return f"https://t.me/{name}" + (f"?start={payload}" if payload else "")
