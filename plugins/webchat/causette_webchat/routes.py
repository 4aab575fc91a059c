"""HTTP side of the widget: the script, the demo page, and the WebSocket.

    GET /t/{tenant}/widget.js                       the widget, with the tenant's webchat settings
    GET /t/{tenant}/demo                            a demo landing page with the widget on it
                                                    (only for channels with `demo_page` on)
    GET /t/{tenant}/plugins/webchat/ws?channel=ID   the visitor's socket (frames.py)
"""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import html
import json
import logging
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgspec
from aiohttp import WSCloseCode, WSMsgType, web
from redis.exceptions import RedisError

from gateway.appkeys import PIPELINE, REGISTRY, SETTINGS, WEBSOCKETS
from gateway.state import Busy
from gateway.types import InboundMessage, Referral

from . import outbox as ob
from .channel import WebchatChannel
from .frames import (CLIENT_ID, MAX_FRAME, Ack, Error, Hello, Message, Open, Pick, Ping, Pong,
                     Ready, Seen, Text, client_decoder, encoder, frame_seq)
from .hub import Conn, hub_for
from .tokens import check_token, new_visitor, visitor_token

log = logging.getLogger("causette.webchat")
STATIC = Path(__file__).parent / "static"
WIDGET = (STATIC / "widget.js").read_text()     # read once: served on every page view
DEMO = (STATIC / "demo.html").read_text()
HELLO_TIMEOUT = 15.0
INBOX = 32            # client frames waiting for their turn on one socket
DRAIN_TIMEOUT = 30.0  # seconds a closed socket's received frames may still take
GONE = 4404           # close code: the tenant, the plugin or this channel was removed meanwhile
ORIGIN_REFUSED = 4401  # close code: this page's origin is not in the channel's allowed_origins


_TITLES = {400: "Bad Request", 403: "Forbidden", 404: "Not Found"}


def _problem(status: int, detail: str) -> web.Response:
    body = {"type": "about:blank", "title": _TITLES.get(status, "Error"), "status": status,
            "detail": detail}
    return web.Response(status=status, text=json.dumps(body), content_type="application/problem+json")


def _frame(obj: Any) -> str:
    return encoder.encode(obj).decode()


def _locale(raw: str) -> str:
    return raw.split("-", 1)[0].split("_", 1)[0].lower()[:2] if raw else ""


# --- origins ---------------------------------------------------------------------------------
def _origin(url: str) -> str:
    parts = urlsplit(url.strip().lower())
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else url.strip().lower()


def origin_allowed(allowed: list[str], origin: str | None, own: tuple[str, ...] = ()) -> bool:
    """A page may open the socket when its Origin is listed (exactly, or `https://*.brand.com`
    for subdomains), is the gateway's own (the demo page), or when nothing is listed.
    Requests without an Origin are not from a browser page and are let through."""
    if not origin or not allowed:
        return True
    o = _origin(origin)
    if o in own:
        return True
    for entry in allowed:
        a = entry.strip().lower().rstrip("/")
        if a == "*" or _origin(a) == o:
            return True
        if "://*." in a:
            scheme, domain = a.split("://*.", 1)
            if o.startswith(scheme + "://") and o.endswith("." + domain):
                return True
    return False


def _own_origins(request: web.Request) -> tuple[str, ...]:
    own = [f"{request.scheme}://{request.host}".lower()]
    public = request.config_dict[SETTINGS].public_url
    if public:
        own.append(_origin(public))
    return tuple(own)


async def _channels(request: web.Request) -> tuple[Any, dict[str, WebchatChannel]]:
    rt = await request.config_dict[REGISTRY].get(request.match_info["tenant"])
    if rt is None:
        return None, {}
    return rt, {cid: ch for cid, ch in rt.channels.items() if isinstance(ch, WebchatChannel)}


# --- widget.js and the demo page ------------------------------------------------------------
async def widget_js(request: web.Request) -> web.StreamResponse:
    rt, chans = await _channels(request)
    if rt is None:
        return _problem(404, "no such tenant")
    config = {"tenant": rt.slug, "name": rt.snapshot.name, "locale": rt.snapshot.locale,
              "channels": {cid: {"title": ch.settings.title or rt.snapshot.name,
                                 "subtitle": ch.settings.subtitle, "color": ch.settings.color,
                                 "greeting": ch.settings.greeting, "locale": ch.settings.locale,
                                 "position": ch.settings.position}
                           for cid, ch in chans.items()}}
    # "</" never appears inside the JSON literal, so a title cannot close a <script> early.
    literal = json.dumps(config, ensure_ascii=False).replace("</", "<\\/")
    body = WIDGET.replace("/*__CONFIG__*/null", literal).encode()
    etag = '"' + hashlib.sha256(body).hexdigest()[:24] + '"'
    headers = {"ETag": etag, "Cache-Control": "public, max-age=300",
               "Access-Control-Allow-Origin": "*", "X-Content-Type-Options": "nosniff"}
    if request.headers.get("If-None-Match") == etag:
        return web.Response(status=304, headers=headers)
    resp = web.Response(body=body, headers=headers, content_type="application/javascript",
                        charset="utf-8")
    resp.enable_compression()   # 42 KB -> 13 KB, on every page view of the brand's site
    return resp


async def demo_page(request: web.Request) -> web.StreamResponse:
    """A made-up sale page under the brand's name: served only for a channel whose settings
    turn `demo_page` on (a brand's real site must not get fake prices published in its name)."""
    rt, chans = await _channels(request)
    demos = [cid for cid, ch in chans.items() if ch.settings.demo_page]
    if rt is None or not demos:
        return _problem(404, "this tenant has no webchat demo page")
    channel = request.query.get("channel") or demos[0]
    if channel not in demos:
        return _problem(404, "no demo page for this webchat channel")
    page = DEMO
    for key, value in (("{{brand}}", html.escape(rt.snapshot.name)),
                       ("{{tenant}}", html.escape(rt.slug)),
                       ("{{channel}}", html.escape(channel)),
                       ("{{lang}}", html.escape(rt.snapshot.locale or "fr"))):
        page = page.replace(key, value)
    return web.Response(text=page, content_type="text/html", charset="utf-8",
                        headers={"Cache-Control": "no-cache"})


# --- the socket ------------------------------------------------------------------------------
async def socket(request: web.Request) -> web.StreamResponse:
    rt, chans = await _channels(request)
    ch = chans.get(request.query.get("channel", ""))
    ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=4 * MAX_FRAME)
    upgrade = ws.can_prepare(request).ok
    refused: tuple[int, str, str] | None = None
    if rt is None or ch is None:
        if not upgrade:
            return _problem(404, "no such webchat channel")
        refused = (GONE, "gone", "this chat is no longer available")
    elif not origin_allowed(ch.settings.allowed_origins, request.headers.get("Origin"),
                            _own_origins(request)):
        if not upgrade:
            return _problem(403, "this page's origin may not open the chat")
        refused = (ORIGIN_REFUSED, "origin_not_allowed", "this page's origin may not open the chat")
    if not upgrade:
        return _problem(400, "WebSocket expected")
    if refused is not None:
        # Refused after the upgrade, not before: a browser shows a widget nothing of an HTTP
        # answer to its handshake, so a 403 or 404 there looked like a network failure and the
        # widget retried for ever. A close code it can read tells it to stop, and why.
        return await _refuse_socket(request, ws, *refused)
    await ws.prepare(request)
    sockets = request.app.get(WEBSOCKETS)
    if sockets is not None:    # the gateway closes them on shutdown rather than wait for them
        sockets.add(ws)
    visit = Visit(request, ws, rt.slug, ch)
    try:
        await visit.run()
    except (RedisError, OSError, asyncio.TimeoutError) as exc:
        # Redis unreachable: close so the widget reconnects (with backoff) and resumes.
        log.warning("tenant %s: webchat socket closed: %s", rt.slug, type(exc).__name__)
        with contextlib.suppress(Exception):
            await ws.close(code=WSCloseCode.INTERNAL_ERROR, message=b"try again")
    finally:
        await visit.close()
    return ws


async def _refuse_socket(request: web.Request, ws: web.WebSocketResponse, close: int, code: str,
                         message: str) -> web.WebSocketResponse:
    """Accept the upgrade only to say no: an error frame, then a close with `close` (the
    widget stops reconnecting on 4401 and 4404). Nothing of the visitor is read or kept."""
    await ws.prepare(request)
    with contextlib.suppress(Exception):
        await ws.send_str(_frame(Error(code=code, message=message)))
        reason = "origin not allowed" if close == ORIGIN_REFUSED else code
        await ws.close(code=close, message=reason.encode())
    return ws


class Visit:
    """One socket of one visitor, from `hello` to close."""

    def __init__(self, request: web.Request, ws: web.WebSocketResponse, tenant: str,
                 ch: WebchatChannel):
        self.request, self.ws, self.tenant, self.channel = request, ws, tenant, ch.instance_id
        self.settings = ch.settings
        self.redis = ch.runtime.redis
        self.secret = request.config_dict[SETTINGS].secret_bytes()
        self.hub = hub_for(self.redis)
        self.visitor = ""
        self.base = ""
        self.locale = ""
        self.conn: Conn | None = None
        self.tasks: list[asyncio.Task] = []
        self.inbox: asyncio.Queue[Any] = asyncio.Queue(INBOX)
        self.seen = ""
        self.check: asyncio.Task | None = None   # a ping's check that the channel is still there
        self.allowance = float(self.settings.rate)
        self.stamp = time.monotonic()

    async def run(self) -> None:
        hello = await self._hello()
        if hello is None:
            return
        conn = self.conn = Conn(self.ws, hello.last_seq)
        self.tasks.append(asyncio.create_task(conn.pump()))
        await self.hub.join(self.base, conn)
        frames, newest, resumed = await ob.since(self.redis, self.base, hello.last_seq)
        if not resumed:
            conn.last = 0
        conn.send(_frame(Ready(visitor=self.visitor, token=visitor_token(
            self.secret, self.tenant, self.channel, self.visitor), seq=newest, resumed=resumed)))
        texts = [raw.decode() if isinstance(raw, bytes) else raw for raw in frames]
        conn.replay([(raw, frame_seq(raw)) for raw in texts])
        self.tasks.append(asyncio.create_task(self._work()))
        async for msg in self.ws:
            if msg.type == WSMsgType.TEXT:
                self._receive(msg.data)
            elif msg.type == WSMsgType.BINARY:
                self._error("bad_frame", "frames are JSON text")
            else:
                break

    async def _hello(self) -> Hello | None:
        try:
            msg = await self.ws.receive(timeout=HELLO_TIMEOUT)
        except asyncio.TimeoutError:
            await self.ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"hello expected")
            return None
        if msg.type == WSMsgType.BINARY:
            # Like any other bad first frame: say why and close with 4400, not a bare 1000.
            await self._refuse("bad_frame", "frames are JSON text")
            return None
        if msg.type != WSMsgType.TEXT:
            return None
        try:
            frame = client_decoder.decode(msg.data)
        except msgspec.DecodeError as exc:
            await self._refuse("bad_frame", str(exc))
            return None
        if not isinstance(frame, Hello):
            await self._refuse("hello_first", "the first frame must be hello")
            return None
        if frame.visitor is None:
            self.visitor = new_visitor()
        elif check_token(self.secret, self.tenant, self.channel, frame.visitor, frame.token):
            self.visitor = frame.visitor
        else:
            await self._refuse("bad_token", "unknown visitor or wrong token", close=4403)
            return None
        self.base = ob.conv_base(self.tenant, self.channel, self.visitor)
        self.locale = _locale(frame.locale)
        return frame

    async def _refuse(self, code: str, message: str, *, close: int = 4400) -> None:
        """An error frame, then close: the client learns why (4403: forget this identity)."""
        with contextlib.suppress(Exception):
            await self.ws.send_str(_frame(Error(code=code, message=message[:300])))
            await self.ws.close(code=close, message=code.encode())

    def _error(self, code: str, message: str = "", cid: str = "", retry: bool = False) -> None:
        if self.conn is not None:
            self.conn.send(_frame(Error(code=code, message=message[:300], id=cid, retry=retry)))

    def _receive(self, data: str) -> None:
        """Validate a frame as it arrives; the worker handles valid ones in order."""
        if len(data) > MAX_FRAME or len(data.encode("utf-8", "surrogatepass")) > MAX_FRAME:
            self._error("too_large", f"frames are limited to {MAX_FRAME} bytes", _readable_id(data))
            return
        try:
            frame = client_decoder.decode(data)
        except msgspec.DecodeError as exc:
            # The id when the frame has a readable one, so the client knows which message failed.
            self._error("bad_frame", str(exc), _readable_id(data))
            return
        if isinstance(frame, Ping):
            # The widget pings every 25 s: the answer also tells an idle page that its tenant or
            # channel was removed (else it showed "Online" until the visitor wrote). One check
            # at a time; pings that come meanwhile are answered at once.
            if self.check is None or self.check.done():
                self.check = asyncio.create_task(self._pong())
            else:
                self.conn.send(_frame(Pong()))
            return
        if isinstance(frame, Hello):
            self._error("bad_frame", "hello was already received")
            return
        if isinstance(frame, Text) and not frame.text.strip():
            # min_length counts spaces: a blank text would reach the flow (and every tab's
            # transcript) as an empty message.
            self._error("bad_frame", "Expected a text that is not blank - at `$.text`", frame.id)
            return
        if isinstance(frame, Seen):
            # Receipts are best effort: one per message id, dropped when over the rate.
            if frame.id != self.seen and not self.inbox.full() and self._allow():
                self.seen = frame.id
                self.inbox.put_nowait(frame)
            return
        if not self._allow():
            self._error("rate_limited", "too many messages, slow down", frame.id, retry=True)
            return
        try:
            self.inbox.put_nowait(frame)
        except asyncio.QueueFull:
            self._error("rate_limited", "too many messages waiting", frame.id, retry=True)

    def _allow(self) -> bool:
        """Token bucket: `rate` frames per minute, bursts up to `rate`."""
        now = time.monotonic()
        rate = float(self.settings.rate)
        self.allowance = min(rate, self.allowance + (now - self.stamp) * rate / 60.0)
        self.stamp = now
        if self.allowance < 1.0:
            return False
        self.allowance -= 1.0
        return True

    async def _work(self) -> None:
        while True:
            frame = await self.inbox.get()
            if frame is None:
                return
            try:
                if not await self._handle(frame):
                    return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("tenant %s: webchat frame failed", self.tenant)
                if not isinstance(frame, Seen):
                    self._error("internal", "the message could not be handled", frame.id, retry=True)

    async def _current(self) -> tuple[Any, WebchatChannel | None]:
        """The tenant and this socket's channel as they are now: either may have been removed,
        or the plugin disabled, since the socket opened."""
        rt = await self.request.config_dict[REGISTRY].get(self.tenant)
        ch = rt.channels.get(self.channel) if rt is not None and "webchat" in rt.enabled else None
        return rt, ch if isinstance(ch, WebchatChannel) else None

    async def _pong(self) -> None:
        try:
            gone = (await self._current())[1] is None
        except Exception:   # the registry could not say (Redis down): not a reason to close
            gone = False
        if gone:
            self._error("gone", "this chat is no longer available")
            self.conn.finish(GONE, "gone")
        else:
            self.conn.send(_frame(Pong()))

    async def _handle(self, frame: Open | Text | Pick | Seen) -> bool:
        """Handle one frame; False when the socket has no channel any more (it is closing)."""
        now = time.time()
        rt, ch = await self._current()
        if ch is None:
            # Checked before the echo is stored: nothing is written for a channel that is gone,
            # and the client is told so instead of being asked to retry forever.
            self._error("gone", "this chat is no longer available", getattr(frame, "id", ""))
            self.conn.finish(GONE, "gone")
            return False
        if isinstance(frame, Seen):
            # A read receipt: recorded as a status event (read rates), never given to the flow.
            await self.request.config_dict[PIPELINE].handle(rt, ch, [InboundMessage(
                tenant=self.tenant, channel=self.channel, native_id=f"{self.visitor}.seen.{frame.id}",
                contact=self.visitor, kind="status", status="read", refers_to=frame.id, ts=now)])
            return True
        fresh = True
        msg = InboundMessage(tenant=self.tenant, channel=self.channel,
                             native_id=f"{self.visitor}.{frame.id}", contact=self.visitor,
                             ts=now, locale=self.locale)
        if isinstance(frame, Open):
            msg.kind = "open"
            msg.referral = Referral(source="widget", ref=frame.ref, url=frame.page[:1000])
        else:
            text = frame.text.strip() if isinstance(frame, Text) else (frame.text or frame.payload)
            if isinstance(frame, Text):
                msg.kind, msg.text = "text", text
            else:
                msg.kind, msg.payload, msg.text = "choice", frame.payload, frame.text
            # The visitor's own words join the outbox too: other tabs and a reload show them.
            echo = Message(id=frame.id, role="visitor", text=text[:4000], ts=round(now, 3))
            _, fresh = await ob.append(self.redis, self.base, encoder.encode(echo),
                                       keep=ch.settings.history, ttl=ch.settings.history_ttl,
                                       once="in." + frame.id)
        try:
            await self.request.config_dict[PIPELINE].handle(rt, ch, [msg])
        except Busy:
            self._error("busy", "the conversation is busy, try again", frame.id, retry=True)
            return True
        seq = await ob.newest(self.redis, self.base)
        self.conn.send(_frame(Ack(id=frame.id, seq=seq, duplicate=not fresh)))
        return True

    async def close(self) -> None:
        # Frames already received are the visitor's words: finish them, so their replies
        # wait in the outbox for the next connection, rather than vanish with this one.
        if len(self.tasks) > 1 and not self.tasks[1].done():
            with contextlib.suppress(Exception):
                async with asyncio.timeout(DRAIN_TIMEOUT):
                    # A full inbox gets its end marker once the worker frees a slot: without
                    # it the worker would finish the frames, then wait for the whole timeout.
                    await self.inbox.put(None)
                    await asyncio.shield(self.tasks[1])
        if self.check is not None:
            self.tasks.append(self.check)
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.conn is not None:
            with contextlib.suppress(Exception):
                await self.hub.leave(self.base, self.conn)
        if not self.ws.closed:
            with contextlib.suppress(Exception):
                await self.ws.close()


class _Id(msgspec.Struct):
    id: str = ""


_id_decoder = msgspec.json.Decoder(_Id)


def _readable_id(data: str) -> str:
    """The `id` of a frame that failed validation, when it is a well-formed client id (any
    other value is not echoed: it may be what is wrong, or anything up to 64 KiB)."""
    try:
        cid = _id_decoder.decode(data).id
    except (msgspec.DecodeError, msgspec.ValidationError):
        return ""
    return cid if CLIENT_ID.fullmatch(cid) else ""


def route_defs() -> list[web.RouteDef]:
    # web.route, not web.get: the gateway adds these with router.add_route (no allow_head).
    return [web.route("GET", "/widget.js", widget_js), web.route("GET", "/demo", demo_page),
            web.route("GET", "ws", socket)]
