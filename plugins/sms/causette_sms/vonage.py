"""Vonage SMS API: signed webhooks (`sig`), concatenated inbound parts, DLRs, REST sends.

Inbound messages and delivery receipts arrive as POST (form or JSON; set the dashboard's
method to POST or POST-JSON: a GET would reach the channel's handshake, not the pipeline).
With signing on, every request carries `timestamp`, `nonce` and `sig`; `sig` is computed
over all the other parameters, sorted, as `&k=v` with `&` and `=` in values made `_`,
either MD5(string + secret) ("md5hash") or HMAC-<alg>(secret, string).
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import threading
import time
from collections import OrderedDict
from datetime import datetime, timezone
from typing import Annotated, Any, ClassVar, Literal, Mapping

import msgspec
from aiohttp import web

from gateway.channels import ApiBase, Attempts, CallTimeout, CallbackUrl, Capabilities, ParseError, Webhook, safe_equal
from gateway.state import tenant_prefix
from gateway.types import InboundMessage, SendResult

from . import _http, segments
from .base import MAX_CHARS, SmsChannel, as_message

log = logging.getLogger("causette.sms.vonage")

Method = Literal["md5hash", "md5", "sha1", "sha256", "sha512"]


class VonageSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    api_key: str
    api_secret: str
    signature_secret: str                # Dashboard > API settings > signature secret
    signature_method: Method = "sha256"  # the same method as chosen in the dashboard
    from_number: str = ""                # sender: a virtual number (E.164) or an alphanumeric id
    status_callback: CallbackUrl = ""    # DLR URL per message (else the account's default)
    # Seconds a signed `timestamp` stays valid (0: no check); Vonage retries for 24 h, dedup
    # stops replays. A year at most: message ids are kept as long (dedup_ttl).
    max_age: Annotated[int, msgspec.Meta(ge=0, le=366 * 86400)] = 25 * 3600
    max_segments: int = 10
    gsm_fallback: bool = False
    api_base: ApiBase = "https://rest.nexmo.com"
    timeout: CallTimeout = 10.0
    attempts: Attempts = 3


class VonagePart(msgspec.Struct):
    status: str = ""
    message_id: str = msgspec.field(default="", name="message-id")
    error_text: str = msgspec.field(default="", name="error-text")


class VonageSendResponse(msgspec.Struct):
    messages: list[VonagePart] = []


# Status codes of POST /sms/json (per message part).
RETRY_CODES = {"1", "5"}             # throttled, internal error
STOPPED_CODES = {"7"}                # number barred (on the account's or carrier's block list)

DLR_STATUS = {"delivered": "delivered", "accepted": "sent", "buffered": "sent",
              "expired": "failed", "failed": "failed", "rejected": "failed", "unknown": ""}


def signing_string(params: Mapping[str, str]) -> str:
    return "".join(f"&{k}={str(params[k]).replace('&', '_').replace('=', '_')}"
                   for k in sorted(params) if k != "sig")


def signature(secret: str, params: Mapping[str, str], method: Method = "sha256") -> str:
    """The `sig` Vonage puts on a signed request (hex)."""
    data = signing_string(params).encode()
    if method == "md5hash":
        return hashlib.md5(data + secret.encode()).hexdigest()
    return hmac.new(secret.encode(), data, method).hexdigest()


def _text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return "" if v is None else str(v)


def _ts(raw: str) -> float:
    try:
        return datetime.strptime(raw, "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc).timestamp()
    except (TypeError, ValueError):
        return 0.0


class _Parts:
    """Parts of concatenated messages waiting for their siblings, in this process: used only
    where the channel has no gateway runtime (unit tests); in a gateway the parts wait in
    Redis (`VonageChannel._assemble`), so they may reach different processes.

    Vonage delivers each part of a long SMS as its own webhook. They usually arrive within
    a second; a part whose siblings never come is dropped after `ttl`.
    """

    def __init__(self, ttl: float = 600.0):
        self.ttl = ttl
        self._lock = threading.Lock()
        self._waiting: dict[tuple[str, ...], tuple[float, dict[int, tuple[str, str]]]] = {}

    def add(self, key: tuple[str, ...], part: int, total: int, message_id: str,
            text: str) -> tuple[str, str] | None:
        """(first part's message id, whole text) once every part is in, else None."""
        now = time.monotonic()
        with self._lock:
            for k in [k for k, (t, _) in self._waiting.items() if now - t > self.ttl]:
                del self._waiting[k]
            _, parts = self._waiting.setdefault(key, (now, {}))
            parts[part] = (message_id, text)
            if len(parts) < total or any(i not in parts for i in range(1, total + 1)):
                return None
            del self._waiting[key]
        return parts[1][0], "".join(parts[i][1] for i in range(1, total + 1))


PARTS = _Parts()


# Long messages reassembled by this process whose webhook is not answered yet.
ASSEMBLED_MAX = 10_000
_background: set[asyncio.Task] = set()


async def settle() -> None:
    """Wait for pending Redis clean-ups (tests, shutdown)."""
    while _background:
        await asyncio.gather(*list(_background), return_exceptions=True)


class VonageChannel(SmsChannel):
    type: ClassVar[str] = "vonage"
    Settings: ClassVar[type[msgspec.Struct]] = VonageSettings
    secrets: ClassVar[tuple[str, ...]] = ("api_secret", "signature_secret")
    capabilities: ClassVar[Capabilities] = Capabilities(text_length=MAX_CHARS, buttons=0, media=False)
    refusal_status: ClassVar[int] = 401
    # Vonage retries for 24 h and a signed request stays valid for `max_age` (25 h by
    # default): ids are kept an hour longer, so a replay inside it still gets no answer.
    dedup_ttl: ClassVar[int] = 26 * 3600

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        # A longer `max_age` accepts replays for longer: keep ids as long (the class's period
        # is already past Vonage's retries, so a shorter or no check keeps it).
        self.dedup_ttl = max(type(self).dedup_ttl, self.settings.max_age + 3600)
        # (parts key, message id) -> when its Redis key expires, in insertion (time) order
        self._assembled: OrderedDict[tuple[str, str], float] = OrderedDict()

    @classmethod
    def instance_capabilities(cls, settings: Any) -> Capabilities:
        return cls.capabilities

    # --- inbound ---------------------------------------------------------------------------
    def _params(self, hook: Webhook) -> dict[str, str]:
        if hook.method == "GET":
            return dict(hook.query)
        if "json" in hook.headers.get("Content-Type", ""):
            try:
                raw = msgspec.json.decode(hook.body)
            except msgspec.DecodeError:
                raise ParseError("body is not JSON") from None
            if not isinstance(raw, dict):
                raise ParseError("body is not a JSON object")
            return {str(k): _text(v) for k, v in raw.items()}
        return dict(hook.form())

    def verify(self, hook: Webhook) -> bool:
        s = self.settings
        try:
            p = self._params(hook)
        except ParseError:
            return False
        given = p.get("sig", "")
        if not given or not s.signature_secret:
            return False
        if s.max_age:
            try:
                age = abs(time.time() - float(p.get("timestamp", "")))
            except ValueError:
                return False
            if not age <= s.max_age:           # written so that "nan" is never fresh
                return False
        want = signature(s.signature_secret, p, s.signature_method)
        if not safe_equal(want, given.lower()):
            return False
        # A signed request for another Vonage account is not for this channel.
        key = p.get("api-key")
        return key is None or safe_equal(key, s.api_key)

    def parse(self, hook: Webhook) -> list[InboundMessage]:
        p = self._params(hook)
        mid = p.get("messageId", "")
        msisdn = p.get("msisdn", "")
        if not mid or not msisdn:
            raise ParseError("no messageId / msisdn: not a Vonage SMS webhook")
        contact = "+" + msisdn.lstrip("+")
        if "text" not in p and "status" in p:
            status = DLR_STATUS.get(p["status"], p["status"])
            if not status:
                return []
            # One DLR per part of a long message: the part's id keeps them apart.
            return [InboundMessage(tenant=self.tenant, channel=self.instance_id,
                                   native_id=f"{mid}:{p['status']}", contact=contact, kind="status",
                                   status=status, refers_to=mid, payload=p.get("err-code", ""),
                                   ts=_ts(p.get("message-timestamp", "")))]
        if p.get("type") == "binary":
            return []
        text = p.get("text", "")
        if p.get("concat") == "true":
            try:
                part, total = int(p.get("concat-part", "")), int(p.get("concat-total", ""))
            except ValueError:
                raise ParseError("concat-part / concat-total are not numbers") from None
            if not (1 <= part <= total <= 255):
                raise ParseError("concat-part out of range")
            ref = p.get("concat-ref", "")
            redis = getattr(self.runtime, "redis", None)
            if redis is not None:   # parts may reach different gateway processes
                return self._assemble(redis, msisdn, ref, part, total, mid, text, contact, p)
            whole = PARTS.add((self.tenant, self.instance_id, msisdn, ref), part, total, mid, text)
            if whole is None:
                return []
            mid, text = whole
        return [self._message(mid, contact, text, p)]

    def _message(self, mid: str, contact: str, text: str, p: dict[str, str]) -> InboundMessage:
        msg = InboundMessage(tenant=self.tenant, channel=self.instance_id, native_id=mid,
                             contact=contact, text=text, ts=_ts(p.get("message-timestamp", "")),
                             profile={"to": p["to"]} if p.get("to") else {})
        return self.consent(msg)

    async def _assemble(self, redis: Any, msisdn: str, ref: str, part: int, total: int, mid: str,
                        text: str, contact: str, p: dict[str, str]) -> list[InboundMessage]:
        """Keep the part in a tenant-scoped Redis hash; the webhook carrying the last missing
        part gets the whole message (MULTI makes exactly one of them see the full count)."""
        key = self._parts_key(msisdn, ref)
        async with redis.pipeline(transaction=True) as tx:
            tx.hset(key, str(part), f"{mid}\x1f{text}")
            tx.expire(key, int(PARTS.ttl))
            tx.hlen(key)
            tx.hgetall(key)
            _, _, count, parts = await tx.execute()
        if count < total:
            return []
        got = {int(k): v.decode().split("\x1f", 1) for k, v in parts.items()}
        if any(i not in got for i in range(1, total + 1)):
            return []
        # The parts stay until this webhook has been answered 2xx (`respond`): if the turn
        # fails (busy conversation, Redis hiccup), the gateway answers 503 and Vonage's retry
        # of this part must find its siblings again, or the whole message would be lost.
        self._assembled[(key, mid)] = time.monotonic() + PARTS.ttl   # the Redis key's lifetime
        while len(self._assembled) > ASSEMBLED_MAX:
            self._assembled.popitem(last=False)
        # The first part's id names the whole message: a redelivered part dedups on it.
        return [self._message(got[1][0], contact, "".join(got[i][1] for i in range(1, total + 1)), p)]

    def _parts_key(self, msisdn: str, ref: str) -> str:
        return f"{tenant_prefix(self.tenant)}vonage:{self.instance_id}:{msisdn}:{ref}"

    def respond(self, hook: Webhook, inline: list[Any]) -> web.StreamResponse:
        """The turn of a reassembled message went through: its parts can go."""
        now = time.monotonic()
        while self._assembled and next(iter(self._assembled.values())) < now:
            # Never retried after a failed turn: its parts have expired in Redis meanwhile.
            self._assembled.popitem(last=False)
        if self._assembled:
            p = self._params(hook)          # parse() read the same hook: it cannot fail here
            done = (self._parts_key(p.get("msisdn", ""), p.get("concat-ref", "")), p.get("messageId", ""))
            redis = getattr(self.runtime, "redis", None)
            if redis is not None and done in self._assembled:
                del self._assembled[done]
                task = asyncio.get_running_loop().create_task(self._forget_parts(redis, done[0]))
                _background.add(task)
                task.add_done_callback(_background.discard)
        return web.Response(text="ok")

    @staticmethod
    async def _forget_parts(redis: Any, key: str) -> None:
        try:
            await redis.delete(key)
        except Exception as exc:  # noqa: BLE001 -- they expire on their own
            log.warning("vonage: could not delete the parts of a long SMS: %s", type(exc).__name__)

    # --- outbound --------------------------------------------------------------------------
    async def send(self, contact: str, payload: Any, *, key: str) -> SendResult:
        s = self.settings
        if not s.from_number.strip():
            # A receive-only instance (its flows run, its steps too): Vonage would refuse
            # the send (status 2, missing parameter), so it is not asked.
            return SendResult(status="failed", code="config",
                              detail="no from_number: this instance only receives")
        m = as_message(payload)
        body = m.body
        if m.media:  # no MMS on the SMS API: links instead
            body = "\n".join([body, *m.media]) if body else "\n".join(m.media)
        form = [("api_key", s.api_key), ("api_secret", s.api_secret), ("from", s.from_number.lstrip("+")),
                ("to", contact.lstrip("+")), ("text", body)]
        if segments.encoding(body) == "ucs2":
            form.append(("type", "unicode"))
        if s.status_callback:
            form.append(("callback", s.status_callback))
        if key:
            form.append(("client-ref", key[:100]))
        url = f"{s.api_base.rstrip('/')}/sms/json"

        async def attempt() -> SendResult:
            ans = await _http.call(self.http, "POST", url, data=form, timeout=s.timeout,
                                   headers={"Accept": "application/json"})
            return self.outcome(ans)

        result = await _http.with_retries(attempt, attempts=s.attempts)
        if result.status != "sent":
            log.warning("vonage send for tenant %s channel %s: %s %s", self.tenant,
                        self.instance_id, result.status, result.code)
        return result

    @staticmethod
    def outcome(ans: _http.Answer) -> SendResult:
        if ans.error:
            return SendResult(status="retry", code="connection", detail=ans.error)
        if ans.status == 429 or ans.status >= 500:
            return SendResult(status="retry", retry_after=_http.retry_after(ans.headers), code=str(ans.status))
        try:
            res = msgspec.json.decode(ans.body, type=VonageSendResponse)
        except msgspec.DecodeError:
            return SendResult(status="failed", code=str(ans.status), detail="unreadable answer")
        if not res.messages:
            return SendResult(status="failed", code=str(ans.status), detail="no message in answer")
        for i, part in enumerate(res.messages):
            if part.status == "0":
                continue
            detail = part.error_text[:200]
            if part.status in STOPPED_CODES:
                return SendResult(status="stopped", code=part.status, detail=detail)
            # A retry after the first part went out would send that part twice.
            if part.status in RETRY_CODES and i == 0:
                return SendResult(status="retry", code=part.status, detail=detail)
            return SendResult(status="failed", code=part.status, detail=detail)
        return SendResult(status="sent", provider_id=res.messages[0].message_id)
