"""WeChat Official Account channel (plain, compatible and safe mode).

Every request carries `signature`/`timestamp`/`nonce` in the query (checked on GET and POST);
safe mode adds `encrypt_type=aes&msg_signature=...` and an `Encrypt` body. The first reply
of a turn goes back as the passive XML answer of the webhook (capabilities.inline = 1,
within WeChat's 5 s); the others go through the customer-service API, allowed for 48 h after
the user's last interaction (capabilities.window_hours = 48).
"""
from __future__ import annotations

import asyncio
import functools
import json
import math
import os
import time
import xml.etree.ElementTree as ET
from typing import Annotated, Any, Literal

import msgspec

from gateway.channels import ApiBase, Attempts, CallTimeout, Capabilities, Channel, ParseError, Webhook
from gateway.types import (
    Choice,
    InboundMessage,
    Location,
    Media,
    Referral,
    Reply,
    SendResult,
)

from gateway import provider
from .crypto import CryptoError, MessageCrypto, aes_key, check

TEXT_BYTES = 2048                   # text per message, in UTF-8 bytes (a safe bound; see docs)


class Settings(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Settings of one Official Account (a channel instance)."""
    token: str                         # 基本配置 Token (secret)
    app_id: str = ""                   # AppID: safe-mode check and access tokens
    app_secret: str = ""               # AppSecret: access tokens fetched and cached (secret)
    access_token: str = ""             # an access token managed elsewhere; wins (secret)
    encoding_aes_key: str = ""         # EncodingAESKey, 43 chars, for compat/safe mode (secret)
    mode: Literal["plain", "compat", "safe"] = "plain"   # safe: refuse unencrypted posts
    max_age: Annotated[int, msgspec.Meta(ge=0, le=366 * 86400)] = 300   # seconds a signed timestamp stays valid; 0: no limit
    # WeChat drops a webhook not answered within 5 s (its retries then get only "success"):
    # a turn still running after this many seconds answers "success" and sends its replies
    # through the customer-service API when it ends.
    reply_deadline: Annotated[float, msgspec.Meta(gt=0, le=4.5)] = 4.0
    api_base: ApiBase = "https://api.weixin.qq.com"
    timeout: CallTimeout = 10.0
    attempts: Attempts = 3

    def __post_init__(self) -> None:
        # Refuse what can never work (the admin API reports it as `invalid` at `$.settings`):
        # without these every encrypted post is answered 403 "invalid signature".
        problems = []
        if self.encoding_aes_key and self.mode != "plain":     # plain mode never reads it
            try:
                aes_key(self.encoding_aes_key)
            except CryptoError as e:
                problems.append(f"encoding_aes_key {e}")
        if self.mode != "plain":
            if not self.encoding_aes_key:
                problems.append(f'mode "{self.mode}" needs encoding_aes_key (the 43-character '
                                "EncodingAESKey) to decrypt what WeChat posts")
            if not self.app_id:
                problems.append(f'mode "{self.mode}" needs app_id: every decrypted message ends '
                                "with the AppID, and one that is not ours is refused")
        if problems:
            raise ValueError("; ".join(problems))


# errcode -> (SendResult status, meaning). The provider's code goes in SendResult.code.
ERRORS: dict[int, tuple[str, str]] = {
    -1: ("retry", "system busy"),
    45009: ("retry", "API daily quota reached"),
    45011: ("retry", "API calls too frequent"),
    45015: ("failed", "out of the 48 h customer-service window"),
    45047: ("failed", "customer-service message quota used up until the user writes again"),
    43004: ("stopped", "the user does not follow the account"),
    43019: ("stopped", "the user blocked the account"),
    40003: ("failed", "invalid openid"),
    48001: ("failed", "API not authorized for this account"),
    40037: ("failed", "invalid template_id"),
    40001: ("failed", "invalid access token"),
}
TOKEN_ERRORS = frozenset({40001, 40014, 42001})
RETRY_AFTER = {-1: 5.0, 45009: 3600.0, 45011: 60.0}


class WeChatError(msgspec.Struct):
    errcode: int = 0
    errmsg: str = ""
    msgid: int | str = ""


class TokenAnswer(msgspec.Struct):
    access_token: str = ""
    expires_in: int = 7200
    errcode: int = 0
    errmsg: str = ""


_tokens: dict[tuple[str, str], tuple[str, float]] = {}
_locks: dict[tuple[str, str], asyncio.Lock] = {}


class _NoDTD(ET.TreeBuilder):
    """Refuses a document type declaration as the parser meets it, whatever the encoding
    (a UTF-16 body hides `<!DOCTYPE` from a byte search)."""

    def doctype(self, name: str, pubid: str, system: str) -> None:
        raise ParseError("DTDs are not accepted")


def _xml(body: bytes) -> dict[str, str]:
    """A flat <xml> document as {tag: text}. No DTDs: entity tricks are refused outright."""
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        raise ParseError("DTDs are not accepted")
    parser = ET.XMLParser(target=_NoDTD())
    try:
        parser.feed(body)
        root = parser.close()
    except ParseError:
        raise
    except (ET.ParseError, ValueError) as e:   # ValueError: "multi-byte encodings are not supported"
        raise ParseError(f"bad XML: {e}") from e
    return {child.tag: (child.text or "").strip() for child in root}


def _cdata(s: str) -> str:
    return "<![CDATA[" + s.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def _split_bytes(text: str, limit: int) -> list[str]:
    parts: list[str] = []
    while len(text.encode()) > limit:
        cut = len(text.encode()[:limit].decode("utf-8", "ignore"))
        nl = max(text.rfind("\n", 0, cut), text.rfind(" ", 0, cut))
        if nl > cut // 2:
            cut = nl
        parts.append(text[:cut].rstrip())
        text = text[cut:].lstrip()
    if text:
        parts.append(text)
    return parts


def _numbered(text: str, choices: list[Choice]) -> str:
    lines = [f"{i}. {c.title}" for i, c in enumerate(choices, 1)]
    return "\n".join([text, *lines] if text else lines)


class WeChatChannel(Channel):
    type = "wechat"
    Settings = Settings
    secrets = ("token", "app_secret", "access_token", "encoding_aes_key")
    capabilities = Capabilities(
        text_length=TEXT_BYTES, buttons=0, button_title=20, list_rows=0, cards=1,
        card_buttons=0, media=False, templates=True, inline=1, window_hours=48, typing=False)
    refusal_status = 403
    settings: Settings

    @functools.cached_property
    def crypto(self) -> MessageCrypto | None:
        s = self.settings
        return MessageCrypto(s.token, s.encoding_aes_key, s.app_id) if s.encoding_aes_key else None

    def _decrypt(self, encrypt: str) -> bytes:
        """verify, parse and respond each need the plaintext of one request: decrypt once."""
        last = self.__dict__.get("_last_plain")
        if last is not None and last[0] == encrypt:
            return last[1]
        assert self.crypto is not None
        xml = self.crypto.decrypt(encrypt)
        self.__dict__["_last_plain"] = (encrypt, xml)
        return xml

    # --- inbound -----------------------------------------------------------------------
    def _signed(self, hook: Webhook) -> bool:
        q = hook.query
        if not check(q.get("signature", ""), self.settings.token, q.get("timestamp", ""),
                     q.get("nonce", "")):
            return False
        # The plain-mode signature does not cover the body: a captured URL could be replayed
        # with another body. A freshness window bounds that (safe mode signs the body).
        if self.settings.max_age:
            try:
                age = abs(time.time() - int(q.get("timestamp", "")))
            except (ValueError, OverflowError):   # OverflowError: more digits than a float holds
                return False
            return age <= self.settings.max_age
        return True

    async def handshake(self, hook: Webhook):
        from aiohttp import web
        if not self._signed(hook) or "echostr" not in hook.query:
            return web.Response(status=self.refusal_status, text="invalid signature")
        return web.Response(text=hook.query["echostr"], content_type="text/plain")

    @staticmethod
    def _encrypted(hook: Webhook) -> bool:
        return hook.query.get("encrypt_type", "raw").lower() == "aes"

    def verify(self, hook: Webhook) -> bool:
        if not self.settings.token or not self._signed(hook):
            return False
        if not self._encrypted(hook):
            return self.settings.mode != "safe"
        crypto = self.crypto
        if crypto is None:
            return False
        try:
            encrypt = _xml(hook.body).get("Encrypt", "")
        except ParseError:
            return False
        q = hook.query
        if not encrypt or not check(q.get("msg_signature", ""), self.settings.token,
                                    q.get("timestamp", ""), q.get("nonce", ""), encrypt):
            return False
        try:
            self._decrypt(encrypt)             # a message for another AppID is refused too
        except CryptoError:
            return False
        return True

    def _fields(self, hook: Webhook) -> dict[str, str]:
        f = _xml(hook.body)
        if self._encrypted(hook):
            crypto = self.crypto
            if crypto is None:
                raise ParseError("encrypted message but no EncodingAESKey")
            try:
                f = _xml(self._decrypt(f.get("Encrypt", "")))
            except CryptoError as e:
                raise ParseError(str(e)) from e
        return f

    def parse(self, hook: Webhook) -> list[InboundMessage]:
        f = self._fields(hook)
        contact, mtype = f.get("FromUserName", ""), f.get("MsgType", "")
        if not contact or not mtype:
            raise ParseError("FromUserName or MsgType missing")
        try:
            ts = float(f.get("CreateTime") or 0)
        except ValueError:
            ts = 0.0
        if not math.isfinite(ts):              # "nan", "inf", "1e400": no usable time
            ts = 0.0
        event, key = f.get("Event", ""), f.get("EventKey", "")
        native = f.get("MsgId") or f"{contact}:{f.get('CreateTime', '')}:{event}:{key}"
        m = InboundMessage(tenant=self.tenant, channel=self.instance_id, native_id=native,
                           contact=contact, ts=ts)
        if mtype == "text":
            m.text = f.get("Content", "")
            if f.get("bizmsgmenuid"):          # a tap on a msgmenu option
                m.kind, m.payload = "choice", f["bizmsgmenuid"]
        elif mtype == "image":
            m.kind = "media"
            m.media = [Media(kind="image", url=f.get("PicUrl", ""), id=f.get("MediaId", ""))]
        elif mtype == "voice":
            m.kind = "media"
            m.media = [Media(kind="audio", id=f.get("MediaId", ""), mime=f"audio/{f.get('Format', '')}".rstrip("/"))]
            m.text = f.get("Recognition", "")
        elif mtype in ("video", "shortvideo"):
            m.kind = "media"
            m.media = [Media(kind="video", id=f.get("MediaId", ""))]
        elif mtype == "location":
            m.kind = "location"
            try:
                m.location = Location(lat=float(f["Location_X"]), lon=float(f["Location_Y"]),
                                      name=f.get("Label", ""))
            except (KeyError, ValueError) as e:
                raise ParseError("bad location") from e
            if not (math.isfinite(m.location.lat) and math.isfinite(m.location.lon)):
                raise ParseError("bad location")
        elif mtype == "link":
            m.text = " ".join(x for x in (f.get("Title", ""), f.get("Url", "")) if x)
        elif mtype == "event":
            return self._event(m, f, event, key)
        else:
            return []
        return [m]

    def _event(self, m: InboundMessage, f: dict[str, str], event: str,
               key: str) -> list[InboundMessage]:
        ev = event.lower()
        if ev == "subscribe":
            m.kind = "optin"                   # following the account
            if key.startswith("qrscene_"):     # ... by scanning a parametric QR code
                m.referral = Referral(source="qr", ref=key[len("qrscene_"):])
        elif ev == "unsubscribe":
            m.kind = "optout"
        elif ev == "scan":                     # a follower scanned a parametric QR code
            m.kind, m.referral = "referral", Referral(source="qr", ref=key)
        elif ev == "click":
            m.kind, m.payload = "postback", key
        elif ev == "templatesendjobfinish":
            msgid = f.get("MsgID") or f.get("MsgId", "")
            m.native_id = f"tpl:{msgid}"
            m.kind, m.refers_to = "status", msgid
            m.status = "delivered" if f.get("Status") == "success" else "failed"
        else:
            return []                          # VIEW, LOCATION reports, scancode_*, ...
        return [m]

    # --- passive reply -------------------------------------------------------------------
    def passive_xml(self, payload: dict[str, Any], to: str, frm: str, now: int) -> str | None:
        """A rendered payload as WeChat's passive-reply XML; None when it can't be passive."""
        head = (f"<xml><ToUserName>{_cdata(to)}</ToUserName><FromUserName>{_cdata(frm)}"
                f"</FromUserName><CreateTime>{now}</CreateTime>")
        t = payload.get("msgtype")
        if t == "text":
            return head + f"<MsgType>text</MsgType><Content>{_cdata(payload['text']['content'])}</Content></xml>"
        if t == "news":
            items = "".join(
                f"<item><Title>{_cdata(a.get('title', ''))}</Title>"
                f"<Description>{_cdata(a.get('description', ''))}</Description>"
                f"<PicUrl>{_cdata(a.get('picurl', ''))}</PicUrl><Url>{_cdata(a.get('url', ''))}</Url></item>"
                for a in payload["news"]["articles"])
            n = len(payload["news"]["articles"])
            return head + f"<MsgType>news</MsgType><ArticleCount>{n}</ArticleCount><Articles>{items}</Articles></xml>"
        if t in ("image", "voice"):
            tag = t.capitalize()
            return head + f"<MsgType>{t}</MsgType><{tag}><MediaId>{_cdata(payload[t]['media_id'])}</MediaId></{tag}></xml>"
        if t == "video":
            return head + f"<MsgType>video</MsgType><Video><MediaId>{_cdata(payload['video']['media_id'])}</MediaId></Video></xml>"
        return None

    @property
    def inline_deadline(self) -> float:  # type: ignore[override]
        return self.settings.reply_deadline

    def respond(self, hook: Webhook, inline: list[Any]):  # type: ignore[override]
        from aiohttp import web
        if not inline:
            return web.Response(text="success")   # no passive reply: no retry, no error shown
        try:
            f = self._fields(hook)
        except ParseError:
            return web.Response(text="success")
        xml = self.passive_xml(inline[0], f.get("FromUserName", ""), f.get("ToUserName", ""),
                               int(time.time()))
        if xml is None:
            return web.Response(text="success")
        crypto = self.crypto
        if self._encrypted(hook) and crypto is not None:
            xml = crypto.envelope(xml.encode(), str(int(time.time())),
                                  hook.query.get("nonce") or os.urandom(5).hex())
        return web.Response(text=xml, content_type="application/xml")

    # --- outbound ----------------------------------------------------------------------
    def render(self, reply: Reply) -> list[Any]:
        if reply.template is not None:
            t = reply.template
            data = {f"keyword{i}": {"value": p} for i, p in enumerate(t.params, 1)}
            payload: dict[str, Any] = {"msgtype": "template", "template_id": t.name, "data": data}
            if reply.cards and reply.cards[0].url:
                payload["url"] = reply.cards[0].url
            return [payload]
        out: list[dict[str, Any]] = []
        choices = list(reply.choices) + [b for c in reply.cards for b in c.buttons]
        text = _numbered(reply.text, choices) if choices else reply.text
        media_links = []
        for m in reply.media:
            if m.id and m.kind in ("image", "voice", "video"):
                out.append({"msgtype": m.kind, m.kind: {"media_id": m.id}})
            elif m.id and m.kind == "audio":
                out.append({"msgtype": "voice", "voice": {"media_id": m.id}})
            elif m.url:
                media_links.append("\n".join(x for x in (m.caption, m.url) if x))
        cards = [{"msgtype": "news", "news": {"articles": [
            {k: v for k, v in (("title", c.title), ("description", c.subtitle),
                               ("url", c.url), ("picurl", c.image)) if v}]}}
            for c in reply.cards]
        texts = [{"msgtype": "text", "text": {"content": t}}
                 for t in _split_bytes("\n\n".join(x for x in [text, *media_links] if x), TEXT_BYTES)]
        # the question first, then cards and media; the numbered options stay with the question
        return texts + cards + out

    async def _token(self, refresh: bool = False) -> tuple[str, SendResult | None]:
        s = self.settings
        if s.access_token:
            return s.access_token, None
        if not (s.app_id and s.app_secret):
            return "", SendResult(status="failed", code="config", detail="no access_token or app_secret")
        k = (s.api_base, s.app_id)
        if refresh:
            _tokens.pop(k, None)
        hit = _tokens.get(k)
        if hit and hit[1] > time.time():
            return hit[0], None
        async with _locks.setdefault(k, asyncio.Lock()):
            hit = _tokens.get(k)
            if hit and hit[1] > time.time():
                return hit[0], None
            out = await provider.call(self.http, "GET", f"{s.api_base.rstrip('/')}/cgi-bin/token",
                                   params={"grant_type": "client_credential", "appid": s.app_id,
                                           "secret": s.app_secret},
                                   timeout=s.timeout, attempts=s.attempts)
            if out.status != 200:
                return "", SendResult(status="retry", retry_after=out.retry_after or 30.0,
                                      code=str(out.status or out.error), detail="token endpoint")
            try:
                ans = msgspec.json.decode(out.body, type=TokenAnswer)
            except msgspec.DecodeError:
                ans = TokenAnswer(errcode=-2, errmsg="not JSON")
            if not ans.access_token:
                status, _ = ERRORS.get(ans.errcode, ("failed", ""))
                return "", SendResult(status="retry" if status == "retry" else "failed",
                                      retry_after=RETRY_AFTER.get(ans.errcode, 0.0),
                                      code=str(ans.errcode), detail=f"token: {ans.errmsg}"[:300])
            # refresh five minutes early: WeChat keeps the old token valid for a while
            _tokens[k] = (ans.access_token, time.time() + max(60, ans.expires_in - 300))
            return ans.access_token, None

    async def send(self, contact: str, payload: Any, *, key: str) -> SendResult:
        s = self.settings
        path = "/cgi-bin/message/template/send" if payload.get("msgtype") == "template" \
            else "/cgi-bin/message/custom/send"
        body = {"touser": contact, **payload}
        if payload.get("msgtype") == "template":
            body.pop("msgtype")
        raw = json.dumps(body, ensure_ascii=False).encode()
        res: SendResult | None = None
        for attempt in range(max(1, s.attempts)):
            token, err = await self._token(refresh=attempt > 0 and res is not None and
                                           res.code in {str(c) for c in TOKEN_ERRORS})
            if err is not None:
                return err
            out = await provider.call(self.http, "POST", f"{s.api_base.rstrip('/')}{path}", data=raw,
                                   params={"access_token": token}, timeout=s.timeout,
                                   attempts=s.attempts,
                                   headers={"Content-Type": "application/json; charset=utf-8"})
            res = self._result(out)
            again = (res.code in {str(c) for c in TOKEN_ERRORS} and not s.access_token) or \
                res.code == "-1"
            if not again or attempt == s.attempts - 1:
                return res
            if res.code == "-1":
                await asyncio.sleep(0.2 * (attempt + 1))
        assert res is not None
        return res

    @staticmethod
    def _result(out: provider.Outcome) -> SendResult:
        if out.status == 0:
            return SendResult(status="retry", retry_after=5.0, code=out.error,
                              detail=f"no answer after {out.attempts} attempts")
        if out.status != 200:
            status = "retry" if out.retryable else "failed"
            return SendResult(status=status, retry_after=(out.retry_after or 30.0) if status == "retry" else 0.0,
                              code=str(out.status), detail=out.body[:200].decode("utf-8", "replace"))
        try:
            e = msgspec.json.decode(out.body, type=WeChatError)
        except msgspec.DecodeError:
            return SendResult(status="failed", code="bad_answer", detail=out.body[:200].decode("utf-8", "replace"))
        if e.errcode == 0:
            return SendResult(status="sent", provider_id=str(e.msgid) if e.msgid != "" else "")
        status, meaning = ERRORS.get(e.errcode, ("failed", ""))
        return SendResult(status=status, code=str(e.errcode),  # type: ignore[arg-type]
                          retry_after=RETRY_AFTER.get(e.errcode, 0.0) if status == "retry" else 0.0,
                          detail=(f"{meaning}: {e.errmsg}" if meaning else e.errmsg)[:300])
