"""The channel interface: what a channel plugin implements and declares.

A channel class is registered through `register_channels`. The gateway builds one object
per configured channel instance and calls it in this order for each webhook:
`verify` (raw bytes, before parsing) -> `parse` -> (pipeline) -> `render` -> `send`, or the
payloads go back inline through `respond` when the channel answers in the webhook response.
"""
from __future__ import annotations

import hmac
from typing import Annotated, Callable, TYPE_CHECKING, Any, Awaitable, ClassVar
from urllib.parse import parse_qsl

import msgspec

from .types import InboundMessage, Reply, SendResult

if TYPE_CHECKING:
    import aiohttp
    from aiohttp import web


# Settings that every provider channel has, bounded to values that can work: a channel's
# Settings Struct declares `api_base: ApiBase = "https://..."`, and a value that never could
# (`ftp:/x`, 0 attempts) is refused at its JSON path when the instance is saved, instead of
# every send failing later as if the provider were down.
ApiBase = Annotated[str, msgspec.Meta(
    pattern=r"^https?://[^\s/?#@]+(/[^\s?#]*)?(?!\n)$",
    description="the provider API's base URL, http(s)://host[:port][/path]")]
# A URL the provider or the brand's system is called back on: http(s), a query allowed, or "".
CallbackUrl = Annotated[str, msgspec.Meta(
    pattern=r"^(https?://[^\s/?#@]+([/?][^\s#]*)?)?(?!\n)$",
    description="an http(s) URL (a query string allowed), or empty")]
CallTimeout = Annotated[float, msgspec.Meta(gt=0, le=300, description="seconds per provider call")]
Attempts = Annotated[int, msgspec.Meta(ge=1, le=10, description="provider calls per send on 429 / 5xx / timeouts")]


class Capabilities(msgspec.Struct, frozen=True, omit_defaults=True):
    """What a channel can show. The gateway renders, lints flows and decides windows from it."""
    text_length: int = 4096     # characters per text message (SMS: per concatenated message)
    buttons: int = 0            # reply buttons / quick replies per message; 0 = numbered options
    button_title: int = 20      # characters per button title
    list_rows: int = 0          # rows of a list picker; 0 = no lists
    list_title: int = 24
    cards: int = 0              # elements of a carousel; 0 = no cards
    card_buttons: int = 0
    media: bool = False
    templates: bool = False     # provider-approved templates outside the window
    inline: int = 0             # replies that can go in the webhook response (TwiML, WeChat XML)
    window_hours: float = 0     # free-form messaging window after the contact's last message
    typing: bool = False


class Webhook:
    """One HTTP request from a provider, as the channel sees it: raw bytes first."""
    __slots__ = ("method", "_url", "query", "headers", "body", "_form")

    def __init__(self, method: str, url: "str | Callable[[], str]", query: dict[str, str],
                 headers: "dict[str, str] | Any", body: bytes):
        self.method = method
        # The public URL the provider called, for URL-signed schemes (Twilio). The gateway
        # passes a function: building a URL object costs more than most turns' verification.
        self._url = url
        self.query = query
        self.headers = headers    # case-insensitive mapping
        self.body = body
        self._form: dict[str, str] | None = None

    @property
    def url(self) -> str:
        if not isinstance(self._url, str):
            self._url = self._url()
        return self._url

    @property
    def path(self) -> str:
        return self.url.split("?", 1)[0]

    def form(self) -> dict[str, str]:
        """The body as an application/x-www-form-urlencoded mapping (Twilio, Vonage)."""
        if self._form is None:
            self._form = dict(parse_qsl(self.body.decode("utf-8", "replace"), keep_blank_values=True))
        return self._form


class ParseError(ValueError):
    """The body is not what the channel expects; the webhook answers `Channel.bad_request_status`."""


def safe_equal(a: str | bytes, b: str | bytes) -> bool:
    """Constant-time comparison for signatures and tokens."""
    if isinstance(a, str):
        a = a.encode()
    if isinstance(b, str):
        b = b.encode()
    return hmac.compare_digest(a, b)


def sha256_signature(secret: str | bytes, body: bytes) -> str:
    """`sha256=<hex HMAC-SHA256 of body>`: the signature header of Meta's webhooks
    (X-Hub-Signature-256: WhatsApp, Messenger) and of the generic webhook channel."""
    key = secret.encode() if isinstance(secret, str) else secret
    # One-shot from the key bytes: no HMAC object per request, nor a keyed one kept per
    # channel to copy (its OpenSSL context is ~10 trips to memory a request once thousands
    # of tenants are loaded: docs/benchmarks.md, item 12).
    return "sha256=" + hmac.digest(key, body, "sha256").hex()


def sha256_signature_ok(body: bytes, given: str, secret: str) -> bool:
    """Whether `given` is `sha256_signature(secret, body)`, in constant time; unsigned traffic
    and a channel without a secret are refused."""
    if not secret or not given:
        return False
    return safe_equal(sha256_signature(secret, body), given)


def hub_handshake(hook: Webhook, verify_token: str) -> "web.Response":
    """Meta's webhook subscription check (WhatsApp, Messenger): echo `hub.challenge` when
    `hub.mode` is subscribe and `hub.verify_token` is the instance's token, else 403."""
    from aiohttp import web
    q = hook.query
    if q.get("hub.mode") == "subscribe" and verify_token and \
            safe_equal(q.get("hub.verify_token", ""), verify_token):
        return web.Response(text=q.get("hub.challenge", ""), content_type="text/plain")
    return web.Response(status=403, text="verification failed")


class NoSettings(msgspec.Struct, forbid_unknown_fields=True):
    pass


class Channel:
    """Base class of channel plugins. Subclasses set the class attributes and override methods.

    `settings` is the decoded `Settings` Struct of this instance (secrets included, decrypted);
    `http` is the gateway's shared aiohttp client session.
    """
    type: ClassVar[str] = ""                       # "whatsapp", "telegram", ...
    Settings: ClassVar[type[msgspec.Struct]] = NoSettings
    secrets: ClassVar[tuple[str, ...]] = ()        # Settings fields that are write-only secrets
    # Settings fields that say where the secrets go: changing one needs the secrets again
    # (an owner key could otherwise point `api_base` at itself and read them off the wire).
    endpoints: ClassVar[tuple[str, ...]] = ("api_base",)
    # Seconds a provider message id is remembered, when the provider redelivers an unanswered
    # webhook for longer than the gateway's `dedup_ttl` (24 h): Meta and Google for 7 days.
    dedup_ttl: ClassVar[int] = 0
    # Seconds the provider waits for a webhook's answer when replies go inline (0: as long as
    # the turn takes): past it the webhook answers with what is ready, the rest goes by API.
    inline_deadline: ClassVar[float] = 0.0
    capabilities: ClassVar[Capabilities] = Capabilities()
    refusal_status: ClassVar[int] = 403            # answer to a bad signature
    refusal_text: ClassVar[str] = "invalid signature"   # its body (a channel that takes no webhook says so)
    bad_request_status: ClassVar[int] = 400        # answer to an unparseable body
    # SendResult codes meaning "this contact can't be reached on this channel, try another":
    # the gateway then sends the reply through the instance named by the `fallback_channel`
    # setting, if the instance has one (RCS -> SMS, as operators do).
    fallback_codes: ClassVar[tuple[str, ...]] = ()
    # Subclasses without __slots__ of their own get an instance dictionary as usual.
    __slots__ = ("tenant", "instance_id", "settings", "http", "runtime")

    def __init__(self, tenant: str, instance_id: str, settings: msgspec.Struct,
                 http: "aiohttp.ClientSession | None" = None):
        self.tenant = tenant
        self.instance_id = instance_id
        self.settings = settings
        self.http = http
        # Set by the gateway: an object with `.redis`, `.http`, `.pipeline` for channels that
        # deliver through the gateway's own state (webchat) rather than a provider API.
        self.runtime: Any = None

    # --- inbound -----------------------------------------------------------------------
    async def handshake(self, hook: Webhook) -> "web.StreamResponse | None":
        """Answer the provider's verification GET; None means 404."""
        return None

    def verify(self, hook: Webhook) -> bool:
        """Check the signature on the raw bytes, before anything is parsed. Constant time."""
        raise NotImplementedError

    def parse(self, hook: Webhook) -> "list[InboundMessage] | Awaitable[list[InboundMessage]]":
        """Turn a verified body into normalized messages (statuses included). ParseError if
        malformed. May be `async def` when parsing needs I/O (reassembling multipart SMS)."""
        raise NotImplementedError

    def respond(self, hook: Webhook, inline: list[Any]) -> "web.StreamResponse":
        """The webhook's HTTP answer; `inline` holds rendered payloads when capabilities.inline."""
        from aiohttp import web
        return web.Response(text="ok")

    # --- outbound ----------------------------------------------------------------------
    def render(self, reply: Reply) -> list[Any]:
        """Native payload(s) for one reply, within `capabilities` (fallbacks included)."""
        raise NotImplementedError

    async def send(self, contact: str, payload: Any, *, key: str) -> SendResult:
        """Send one rendered payload to the contact. `key` is an idempotency key stable across
        retries of the same reply. Returns a SendResult, never raises for provider errors."""
        raise NotImplementedError

    def contact_link(self, ref: str = "") -> str:
        """A deep link that opens a conversation with the brand (wa.me, m.me, t.me), if any."""
        return ""
