"""Twilio Programmable Messaging: signed form webhooks, TwiML inline answers, REST sends.

Inbound: "A message comes in" and status callbacks are form POSTs signed with
X-Twilio-Signature = base64(HMAC-SHA1(auth token, public URL + sorted key+value pairs)).
Outbound: `reply_mode: "twiml"` answers in the webhook response (no API call, no extra
latency); `"rest"` posts to Messages.json (message id, status callbacks, typed errors).
Replies that are not an answer to a webhook (campaigns, agents, overflow) always use REST.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
from collections import defaultdict
from typing import Any, ClassVar, Iterable, Literal
from urllib.parse import parse_qsl, urlsplit, urlunsplit
from xml.sax.saxutils import escape

import msgspec
from aiohttp import web

from gateway.channels import ApiBase, Attempts, CallTimeout, Capabilities, ParseError, Webhook, safe_equal
from gateway.types import InboundMessage, Media, SendResult

from . import _http
from .base import MAX_CHARS, SmsChannel, as_message

log = logging.getLogger("causette.sms.twilio")


class TwilioSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    account_sid: str
    auth_token: str                      # signs webhooks; also the REST password unless an API key is set
    from_number: str = ""                # E.164 sender, or
    messaging_service_sid: str = ""      # a Messaging Service (sender pool, Advanced Opt-Out)
    api_key_sid: str = ""                # optional REST credentials (SK...) instead of the auth token
    api_key_secret: str = ""
    reply_mode: Literal["twiml", "rest"] = "twiml"
    status_callback: str = ""            # public URL for delivery statuses (usually the webhook URL)
    max_segments: int = 10               # replies are cut to fit (0 = up to Twilio's 1600 chars)
    mms: bool = True                     # send Reply.media as MMS (US/CA numbers); else as links
    gsm_fallback: bool = False           # turn ê/ç/’... into GSM-7 forms to keep 153-char parts
    api_base: ApiBase = "https://api.twilio.com"
    timeout: CallTimeout = 10.0                # seconds per API attempt
    attempts: Attempts = 3                    # API attempts per send (429/5xx/connection errors)

    def __post_init__(self) -> None:
        # In `rest` mode every reply is an API send, which names its sender: without one
        # Twilio gets From="". TwiML answers go from the number written to, so a `twiml`
        # instance without one still answers (its API sends, agents and timers, fail).
        if self.reply_mode == "rest" and not self.from_number.strip() \
                and not self.messaging_service_sid.strip():
            raise ValueError('reply_mode "rest" needs `from_number` (the sender, E.164) or '
                             "`messaging_service_sid` (MG…)")


class TwilioError(msgspec.Struct):
    code: int = 0
    message: str = ""


class TwilioMessageResource(msgspec.Struct):
    sid: str = ""
    status: str = ""


# Twilio error codes that mean "this person told us to stop" (or the carrier did for them).
STOPPED_CODES = {21610}
# Codes worth retrying: concurrency limit, queue overflow.
RETRY_CODES = {20429, 21611}

STATUS = {"accepted": "queued", "scheduled": "queued", "queued": "queued", "sending": "sent",
          "sent": "sent", "delivered": "delivered", "read": "read", "undelivered": "failed",
          "failed": "failed", "canceled": "failed", "receiving": "", "received": ""}

MEDIA_KIND = {"image": "image", "audio": "audio", "video": "video"}


def signature(auth_token: str, url: str, params: Iterable[tuple[str, str]] = ()) -> str:
    """X-Twilio-Signature of a request: URL followed by every parameter as key+value, sorted
    by key, each key's values sorted (repeated keys appear once per value)."""
    grouped: dict[str, list[str]] = defaultdict(list)
    for k, v in params:
        grouped[k].append(v)
    data = url + "".join(k + v for k in sorted(grouped) for v in sorted(grouped[k]))
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def url_variants(url: str) -> list[str]:
    """The URL as given, and with its default port added or removed: Twilio signs the URL
    as configured in the console, and proxies disagree about showing :443."""
    parts = urlsplit(url)
    default = {"https": 443, "http": 80}.get(parts.scheme)
    out = [url]
    if default is None or not parts.hostname:
        return out
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    if parts.port is None:
        out.append(urlunsplit(parts._replace(netloc=f"{_userinfo(parts)}{host}:{default}")))
    elif parts.port == default:
        out.append(urlunsplit(parts._replace(netloc=f"{_userinfo(parts)}{host}")))
    return out


def _userinfo(parts: Any) -> str:
    netloc = parts.netloc
    return netloc[: netloc.index("@") + 1] if "@" in netloc else ""


# Characters XML 1.0 cannot carry (form feed included, though GSM-7 has it).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _xml(text: str) -> str:
    return escape(_NOT_XML.sub("", text))


def twiml(messages: Iterable[Any]) -> str:
    """A TwiML <Response> with one <Message> per rendered SMS (<Body>/<Media> for MMS)."""
    parts = ['<?xml version="1.0" encoding="UTF-8"?><Response>']
    for m in messages:
        m = as_message(m)
        if m.media:
            parts.append("<Message>")
            if m.body:
                parts.append(f"<Body>{_xml(m.body)}</Body>")
            parts.extend(f"<Media>{_xml(u)}</Media>" for u in m.media)
            parts.append("</Message>")
        else:
            parts.append(f"<Message>{_xml(m.body)}</Message>")
    parts.append("</Response>")
    return "".join(parts)


class TwilioChannel(SmsChannel):
    type: ClassVar[str] = "twilio"
    Settings: ClassVar[type[msgspec.Struct]] = TwilioSettings
    secrets: ClassVar[tuple[str, ...]] = ("auth_token", "api_key_secret")
    capabilities: ClassVar[Capabilities] = Capabilities(text_length=MAX_CHARS, buttons=0, media=True)
    refusal_status: ClassVar[int] = 403
    mms: ClassVar[bool] = True

    @classmethod
    def instance_capabilities(cls, settings: Any) -> Capabilities:
        return Capabilities(text_length=MAX_CHARS, buttons=0, media=bool(settings.mms),
                            inline=10 if settings.reply_mode == "twiml" else 0)

    # --- inbound ---------------------------------------------------------------------------
    def _params(self, hook: Webhook) -> list[tuple[str, str]]:
        if hook.method == "GET":
            return list(hook.query.items())
        return parse_qsl(hook.body.decode("utf-8", "replace"), keep_blank_values=True)

    def verify(self, hook: Webhook) -> bool:
        given = hook.headers.get("X-Twilio-Signature", "")
        token = self.settings.auth_token
        if not given or not token:
            return False
        ctype = hook.headers.get("Content-Type", "")
        if hook.method == "GET":
            params: list[tuple[str, str]] = []          # GET params are part of the signed URL
        elif "json" in ctype:
            # JSON bodies: Twilio puts bodySHA256 in the URL and signs the URL alone.
            want = hook.query.get("bodySHA256", "")
            if not want or not safe_equal(want.lower(), hashlib.sha256(hook.body).hexdigest()):
                return False
            params = []
        else:
            params = self._params(hook)
        ok = False
        for url in url_variants(hook.url):
            ok |= safe_equal(signature(token, url, params), given)
        return ok

    def parse(self, hook: Webhook) -> list[InboundMessage]:
        f = hook.query if hook.method == "GET" else hook.form()
        sid = f.get("MessageSid") or f.get("SmsMessageSid") or f.get("SmsSid") or ""
        if not sid:
            raise ParseError("no MessageSid: not a Twilio messaging webhook")
        if "MessageStatus" in f and "Body" not in f and f.get("SmsStatus") != "received":
            return self._status(f, sid)
        sender = f.get("From", "")
        if not sender:
            raise ParseError("inbound message without From")
        try:
            n = int(f.get("NumMedia") or 0)
        except ValueError:
            raise ParseError("NumMedia is not a number") from None
        media = []
        for i in range(min(n, 10)):
            url = f.get(f"MediaUrl{i}", "")
            if url:
                mime = f.get(f"MediaContentType{i}", "")
                media.append(Media(kind=MEDIA_KIND.get(mime.split("/")[0], "file"), url=url, mime=mime))
        profile = {k: v for k, v in (("country", f.get("FromCountry", "")),
                                     ("city", f.get("FromCity", "")),
                                     ("to", f.get("To", ""))) if v}
        msg = InboundMessage(tenant=self.tenant, channel=self.instance_id, native_id=sid,
                             contact=sender, kind="media" if media else "text",
                             text=f.get("Body", ""), media=media, profile=profile)
        return [self.consent(msg, f.get("OptOutType", ""))]

    def _status(self, f: dict[str, str], sid: str) -> list[InboundMessage]:
        raw = f["MessageStatus"]
        status = STATUS.get(raw, raw)
        if not status:
            return []
        # One message goes through several statuses, each a distinct event to record.
        return [InboundMessage(tenant=self.tenant, channel=self.instance_id,
                               native_id=f"{sid}:{raw}", contact=f.get("To", ""), kind="status",
                               status=status, refers_to=sid, payload=f.get("ErrorCode", ""))]

    def respond(self, hook: Webhook, inline: list[Any]) -> web.StreamResponse:
        return web.Response(text=twiml(inline), content_type="text/xml", charset="utf-8")

    # --- outbound --------------------------------------------------------------------------
    def _auth(self) -> str:
        s = self.settings
        user, password = ((s.api_key_sid, s.api_key_secret) if s.api_key_sid and s.api_key_secret
                          else (s.account_sid, s.auth_token))
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    async def send(self, contact: str, payload: Any, *, key: str) -> SendResult:
        s = self.settings
        m = as_message(payload)
        form: list[tuple[str, str]] = [("To", contact)]
        if s.messaging_service_sid:
            form.append(("MessagingServiceSid", s.messaging_service_sid))
        else:
            form.append(("From", s.from_number))
        if m.body:
            form.append(("Body", m.body))
        form.extend(("MediaUrl", u) for u in m.media)
        if s.status_callback:
            form.append(("StatusCallback", s.status_callback))
        url = f"{s.api_base.rstrip('/')}/2010-04-01/Accounts/{s.account_sid}/Messages.json"

        async def attempt() -> SendResult:
            ans = await _http.call(self.http, "POST", url, data=form, timeout=s.timeout,
                                   headers={"Accept": "application/json", "Authorization": self._auth()})
            return self.outcome(ans)

        result = await _http.with_retries(attempt, attempts=s.attempts)
        if result.status != "sent":
            log.warning("twilio send for tenant %s channel %s: %s %s", self.tenant,
                        self.instance_id, result.status, result.code)
        return result

    @staticmethod
    def outcome(ans: _http.Answer) -> SendResult:
        if ans.error:
            return SendResult(status="retry", code="connection", detail=ans.error)
        if 200 <= ans.status < 300:
            try:
                res = msgspec.json.decode(ans.body, type=TwilioMessageResource)
            except msgspec.DecodeError:
                res = TwilioMessageResource()
            return SendResult(status="sent", provider_id=res.sid)
        try:
            err = msgspec.json.decode(ans.body, type=TwilioError)
        except msgspec.DecodeError:
            err = TwilioError()
        code = str(err.code or ans.status)
        if ans.status == 429 or ans.status >= 500 or err.code in RETRY_CODES:
            return SendResult(status="retry", retry_after=_http.retry_after(ans.headers),
                              code=code, detail=err.message[:200])
        if err.code in STOPPED_CODES:
            return SendResult(status="stopped", code=code, detail=err.message[:200])
        return SendResult(status="failed", code=code, detail=err.message[:200])
