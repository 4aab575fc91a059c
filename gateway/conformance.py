"""Channel conformance kit: the contract every channel plugin keeps, as reusable pytest tests.

A channel's tests get the whole contract for the price of a small *case* object and a
four-line test class (docs/channels/README.md has a complete example)::

    # plugins/acme/tests/test_acme_conformance.py
    from gateway.conformance import ChannelConformance
    from causette_acme.conformance import AcmeCase

    class TestAcmeConformance(ChannelConformance):
        case = AcmeCase()

The kit starts a fake provider API on 127.0.0.1 (`FakeProvider`: records every request,
answers from a script), builds the channel with the case's settings pointing `api_base` at
it and a real aiohttp session, and checks:

- class attributes: `type`, `Settings` (a msgspec Struct with an `api_base` field, unless the
  case skips "api_base" because there is no provider API), `capabilities`, `secrets` (each one
  a field of `Settings`), refusal / bad-request statuses;
- `verify` refuses a webhook with a missing or a wrong signature and accepts the right one;
- `parse` of a signed text webhook gives an InboundMessage with tenant, channel, native_id,
  contact and text; the same webhook parsed twice gives the same native_id (deduplication);
- `render` of plain, long, many-choice, long-title and card replies stays within
  `capabilities` (string lengths, distinct choice ids per payload, cards per payload);
- `send` returns SendResult(status="sent") against the fake provider, and a typed
  non-"sent" result (never an exception) when the provider answers 500 or 429;
- `respond` answers 2xx; `contact_link` returns a string;
- no secret value appears in any log record captured during each check, nor in a SendResult.

The case object (duck-typed; `ChannelCase` below documents it) ::

    channel: type[Channel]            the class under test
    contact: str                      the contact address the case's webhooks come from
                                      (a phone number, PSID, chat id) and that sends go to
    tenant: str = "conformance"       (optional)
    instance_id: str = "conf"         (optional)
    def settings(self, api_base: str) -> dict | msgspec.Struct
        valid settings for one instance: secrets filled in (at least 8 characters, so the log
        check means something), `api_base` = the fake provider's URL, few retry attempts
    def webhook(self, text: str, *, native_id: str, signature: str = "valid") -> Webhook
        the provider's webhook for one text message `text` with the provider id `native_id`
        from `contact`, signed for the case's settings; signature is "valid", "wrong"
        (signed with another secret) or "missing" (no signature at all)
    def ok_answer(self, request: Recorded) -> tuple[int, Any]      (optional)
        the provider's answer to a successful send call: (HTTP status, JSON body);
        default (200, {})
    def error_answer(self, status: int) -> Any                      (optional)
        the JSON body of an error answer; default {"error": {"code": status, "message": ...}}
    def handshake(self, valid: bool) -> Webhook                      (optional)
        the provider's verification GET, with the right token or a wrong one
    def prepare(self, fake: FakeProvider) -> None                   (optional)
        add extra routes to the fake provider (an OAuth token endpoint...)
    def strings(self, payload: Any) -> list[str]                    (optional)
        the user-visible strings of one rendered payload; default: every string found in it
        (dicts, lists, msgspec Structs), which suits JSON payloads
    skip: Collection[str] = ()                                      (optional)
        checks that do not apply to this channel, each replaced by a check that the channel
        really does without (nothing is reported skipped): "verify" (takes no webhooks: a
        signed one is refused too), "parse" (parses nothing from a webhook), "send" (delivers
        through no provider API: send answers a SendResult and never calls the fake
        provider), "api_base" (no provider API at all, like the webchat widget: no `api_base`
        setting either); say why in a comment. Without `handshake`, a verification GET with
        made-up credentials must not be answered 2xx.

Over every installed channel: `python -m pytest --pyargs gateway.conformance` collects the
channels registered through the plugin host (entry-point group `causette`) and runs the
same checks for each one whose distribution declares its case in the entry-point group
`causette.conformance` (`whatsapp = "causette_whatsapp.conformance:WhatsAppCase"`); an
installed channel with no case is reported as a failure there.
"""
from __future__ import annotations

import asyncio
import importlib.metadata
import inspect
import logging
from collections import deque
from collections.abc import Callable
from typing import Any, ClassVar, Protocol, runtime_checkable

import aiohttp
import msgspec
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer
from multidict import CIMultiDict

from .channels import Capabilities, Channel, Webhook
from .types import Card, Choice, InboundMessage, Reply, SendResult

__all__ = [
    "CASE_GROUP",
    "ChannelCase",
    "ChannelConformance",
    "FakeProvider",
    "Recorded",
    "assert_no_secret_logged",
    "case_secrets",
    "installed_cases",
    "make_webhook",
    "walk_strings",
]

CASE_GROUP = "causette.conformance"
TENANT = "conformance"
INSTANCE = "conf"


def make_webhook(method: str = "POST", url: str = "https://gw.example/t/conformance/channels/conf",
                 *, headers: dict[str, str] | None = None, body: bytes = b"",
                 query: dict[str, str] | None = None) -> Webhook:
    """A Webhook as the gateway builds it (headers case-insensitive, query from the URL)."""
    if query is None and "?" in url:
        from urllib.parse import parse_qsl
        query = dict(parse_qsl(url.split("?", 1)[1], keep_blank_values=True))
    return Webhook(method, url, query or {}, CIMultiDict(headers or {}), body)


# --- fake provider -------------------------------------------------------------------------
class Recorded(msgspec.Struct):
    """One request the fake provider received."""
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return msgspec.json.decode(self.body)

    @property
    def form(self) -> list[tuple[str, str]]:
        """An application/x-www-form-urlencoded body as (name, value) pairs, in order."""
        from urllib.parse import parse_qsl
        return parse_qsl(self.body.decode(), keep_blank_values=True)

    def __getitem__(self, field: str) -> Any:
        """`rec["body"]` as well as `rec.body`, for table-driven tests."""
        return getattr(self, field)


class FakeProvider:
    """A provider API on 127.0.0.1: records every request and answers from a script.

    `answer(...)` queues one answer (after `delay` seconds, or no answer at all but a cut
    connection with `drop=True`); when the script is empty, `default(request)` answers
    (200 {} unless set). `routes[path]` handles special endpoints (token minting) without
    recording them. Use as `async with FakeProvider() as fake:`.
    """

    def __init__(self, default: Callable[[Recorded], tuple[int, Any]] | None = None) -> None:
        self.requests: list[Recorded] = []
        self.script: deque[tuple[int, Any, dict[str, str], float, bool]] = deque()
        self.routes: dict[str, Callable[[web.Request, bytes], Any]] = {}
        self.default = default or (lambda r: (200, {}))
        self.server: TestServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None, "FakeProvider not started"
        return str(self.server.make_url("")).rstrip("/")

    def answer(self, status: int = 200, json: Any = None, headers: dict[str, str] | None = None,
               delay: float = 0.0, times: int = 1, drop: bool = False) -> None:
        for _ in range(times):
            self.script.append((status, {} if json is None else json, headers or {}, delay, drop))

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if request.path in self.routes:
            return await self.routes[request.path](request, body)
        rec = Recorded(request.method, request.path, dict(request.query), dict(request.headers), body)
        self.requests.append(rec)
        if self.script:
            status, js, headers, delay, drop = self.script.popleft()
        else:
            (status, js), headers, delay, drop = self.default(rec), {}, 0.0, False
        if delay:
            await asyncio.sleep(delay)
        if drop:
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        return web.json_response(js, status=status, headers=headers)

    async def start(self) -> FakeProvider:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # No access log: the provider's own URLs may carry its token (Telegram's path, WeChat's
        # query), and its log is not the channel's, which the secret check reads.
        self.server = TestServer(app, host="127.0.0.1")
        await self.server.start_server(access_log=None)
        return self

    async def close(self) -> None:
        if self.server is not None:
            await self.server.close()

    async def __aenter__(self) -> FakeProvider:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


# --- the case interface --------------------------------------------------------------------
@runtime_checkable
class ChannelCase(Protocol):
    """What a channel's tests hand to the kit (see the module docstring for each member)."""
    channel: type[Channel]
    contact: str

    def settings(self, api_base: str) -> Any: ...

    def webhook(self, text: str, *, native_id: str, signature: str = "valid") -> Webhook: ...


def _opt(case: Any, name: str, default: Any) -> Any:
    return getattr(case, name, default)


def walk_strings(obj: Any) -> list[str]:
    """Every string inside a rendered payload (dict keys excluded)."""
    if isinstance(obj, msgspec.Struct):
        obj = msgspec.to_builtins(obj)
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, bytes):
        return [obj.decode("utf-8", "replace")]
    if isinstance(obj, dict):
        return [s for v in obj.values() for s in walk_strings(v)]
    if isinstance(obj, (list, tuple)):
        return [s for v in obj for s in walk_strings(v)]
    return []


# Shorter values would be found in unrelated text ("a", "abc"): the cases' secrets are longer.
MIN_SECRET = 6


def secret_values(channel: Channel) -> list[str]:
    """The strings of a channel's secret settings, those inside a dict or list included."""
    return [s for name in channel.secrets for s in walk_strings(getattr(channel.settings, name, ""))
            if len(s) >= MIN_SECRET]


def case_secrets(case: Any) -> list[str]:
    """The secret values of a case's settings (those long enough to be recognised)."""
    if case is None or isinstance(case, str):
        return []
    raw = case.settings("http://127.0.0.1:9")
    if isinstance(raw, msgspec.Struct):
        raw = msgspec.to_builtins(raw)
    return [s for k, v in raw.items() if k in case.channel.secrets
            for s in walk_strings(v) if len(s) >= MIN_SECRET]


def assert_no_secret_logged(records: list[logging.LogRecord], secrets: list[str], what: str = "") -> None:
    """Fail when any secret value appears in a log record (message, arguments, traceback)."""
    for rec in records:
        text = rec.getMessage() + (rec.exc_text or "")
        if rec.exc_info and rec.exc_info[1] is not None:
            text += repr(rec.exc_info[1])
        for secret in secrets:
            assert secret not in text, f"a secret of {what} reached the log: {rec.name}: {rec.msg!r}"


def installed_cases() -> list[tuple[str, Any]]:
    """(channel type, case or None) for every channel the plugin host finds installed."""
    from .plugins import PluginHost
    host = PluginHost()
    factories: dict[str, Any] = {}
    for ep in importlib.metadata.entry_points(group=CASE_GROUP):
        factories[ep.name] = ep
    out: list[tuple[str, Any]] = []
    for ctype, cls in sorted(host.channels.items()):
        ep = factories.get(ctype)
        out.append((ctype, ep.load()() if ep is not None else None))
    return out


# --- the checks ----------------------------------------------------------------------------
# Choice and card markers are unique tokens, so the kit can count them in any payload shape.
def _choices(n: int, title_len: int = 8) -> list[Choice]:
    return [Choice(id=f"cfck{i:02d}", title=(f"C{i:02d} " + "option " * 20)[:title_len])
            for i in range(n)]


class ChannelConformance:
    """Subclass as `TestXxxConformance` and set `case` (or override the `channel_case` fixture)."""
    case: ClassVar[Any] = None
    # Its coroutine tests are marked and its async fixtures are pytest-asyncio's, so the kit
    # runs under any asyncio_mode (a plugin's own repository rarely sets "auto").

    @pytest.fixture
    def channel_case(self) -> Any:
        if self.case is None:
            pytest.fail(f"{type(self).__name__}: set `case` to a ChannelCase")
        return self.case

    @pytest_asyncio.fixture
    async def fake(self, channel_case: Any):
        ok = _opt(channel_case, "ok_answer", None)
        async with FakeProvider(default=ok) as fake:
            prepare = _opt(channel_case, "prepare", None)
            if prepare is not None:
                prepare(fake)
            yield fake

    @pytest_asyncio.fixture
    async def channel(self, channel_case: Any, fake: FakeProvider):
        raw = channel_case.settings(fake.url)
        cls = channel_case.channel
        settings = raw if isinstance(raw, msgspec.Struct) else msgspec.convert(raw, cls.Settings)
        async with aiohttp.ClientSession() as http:
            yield cls(_opt(channel_case, "tenant", TENANT), _opt(channel_case, "instance_id", INSTANCE),
                      settings, http)

    @pytest.fixture(autouse=True)
    def _no_secret_in_logs(self, channel_case: Any, caplog: pytest.LogCaptureFixture):
        secrets = case_secrets(channel_case)
        caplog.set_level(logging.DEBUG)
        yield
        # pytest keeps each phase's records apart: `caplog.records` here holds teardown's only.
        records = caplog.get_records("setup") + caplog.get_records("call") + caplog.records
        assert_no_secret_logged(records, secrets, channel_case.channel.type)

    @staticmethod
    def _applies(case: Any, name: str) -> bool:
        """False for the checks a case declares not applicable (`case.skip`); each test then
        checks that the channel really does without (no test is skipped)."""
        return name not in _opt(case, "skip", ())

    def _strings(self, case: Any, payload: Any) -> list[str]:
        fn = _opt(case, "strings", None)
        return fn(payload) if fn is not None else walk_strings(payload)

    # --- class attributes ------------------------------------------------------------------
    def test_class_attributes(self, channel_case: Any):
        cls = channel_case.channel
        assert issubclass(cls, Channel)
        assert isinstance(cls.type, str) and cls.type, "Channel.type must be a non-empty string"
        assert isinstance(cls.Settings, type) and issubclass(cls.Settings, msgspec.Struct)
        fields = set(cls.Settings.__struct_fields__)
        assert isinstance(cls.secrets, tuple)
        missing = [s for s in cls.secrets if s not in fields]
        assert not missing, f"secrets that are not Settings fields: {missing}"
        assert isinstance(cls.capabilities, Capabilities)
        caps = cls.capabilities
        assert caps.text_length > 0
        assert caps.buttons >= 0 and caps.list_rows >= 0 and caps.cards >= 0
        assert 400 <= cls.refusal_status < 500 and 400 <= cls.bad_request_status < 500
        msgspec.json.schema(cls.Settings)   # the admin API publishes it

    def test_settings_have_api_base(self, channel_case: Any):
        fields = channel_case.channel.Settings.__struct_fields__
        if not self._applies(channel_case, "api_base"):
            # only a channel with no provider API at all (the webchat widget) says so
            assert "api_base" not in fields, "the case says no provider API, yet there is an api_base"
            return
        assert "api_base" in fields, \
            "every channel has an api_base setting (fake providers in tests)"

    def test_settings_round_trip(self, channel_case: Any, channel: Channel):
        raw = msgspec.to_builtins(channel.settings)
        assert msgspec.convert(raw, type(channel).Settings) == channel.settings

    # --- inbound ---------------------------------------------------------------------------
    def test_verify_refuses_missing_signature(self, channel_case: Any, channel: Channel):
        hook = channel_case.webhook("hello", native_id="cf-missing", signature="missing")
        assert channel.verify(hook) is False

    def test_verify_refuses_wrong_signature(self, channel_case: Any, channel: Channel):
        hook = channel_case.webhook("hello", native_id="cf-wrong", signature="wrong")
        assert channel.verify(hook) is False

    def test_verify_accepts_right_signature(self, channel_case: Any, channel: Channel):
        hook = channel_case.webhook("hello", native_id="cf-right")
        if not self._applies(channel_case, "verify"):
            assert channel.verify(hook) is False, "a channel that takes no webhooks refuses them all"
            return
        assert channel.verify(hook) is True

    @staticmethod
    async def _parse(channel: Channel, hook: Webhook) -> list[InboundMessage]:
        msgs = channel.parse(hook)
        return await msgs if inspect.isawaitable(msgs) else msgs   # `async def parse` allowed

    @pytest.mark.asyncio
    async def test_parse_signed_text(self, channel_case: Any, channel: Channel):
        text = "Bonjour, où est ma commande ? 🎁"
        hook = channel_case.webhook(text, native_id="cf-text-1")
        if not self._applies(channel_case, "parse"):
            assert await self._parse(channel, hook) == [], "a channel that takes no webhooks parses nothing"
            return
        assert channel.verify(hook) is True
        msgs = await self._parse(channel, hook)
        assert msgs and all(isinstance(m, InboundMessage) for m in msgs)
        texts = [m for m in msgs if m.kind == "text"]
        assert len(texts) == 1, f"one text message expected, got {msgs}"
        m = texts[0]
        assert m.tenant == channel.tenant and m.channel == channel.instance_id
        assert m.native_id and m.contact == channel_case.contact and m.text == text
        again = await self._parse(channel, channel_case.webhook(text, native_id="cf-text-1"))
        assert [x.native_id for x in again if x.kind == "text"] == [m.native_id]
        other = await self._parse(channel, channel_case.webhook(text, native_id="cf-text-2"))
        assert [x.native_id for x in other if x.kind == "text"] != [m.native_id]

    @pytest.mark.asyncio
    async def test_handshake(self, channel_case: Any, channel: Channel):
        make = _opt(channel_case, "handshake", None)
        if make is None:
            # No handshake(valid) to offer: a verification GET with made-up credentials must
            # still not be answered 2xx (None: the gateway says 404).
            probe = Webhook("GET", "http://127.0.0.1/t/conformance/channels/conf",
                            {"hub.mode": "subscribe", "hub.verify_token": "x", "hub.challenge": "42",
                             "echostr": "42", "signature": "x", "timestamp": "1", "nonce": "1"},
                            {}, b"")
            res = await channel.handshake(probe)
            assert res is None or res.status >= 400, "a made-up verification GET was answered 2xx"
            return
        ok = await channel.handshake(make(True))
        assert ok is not None and 200 <= ok.status < 300, "the right handshake must be answered 2xx"
        bad = await channel.handshake(make(False))
        assert bad is None or bad.status >= 400, "a wrong handshake must be refused"

    def test_respond_is_2xx(self, channel_case: Any, channel: Channel):
        hook = channel_case.webhook("hello", native_id="cf-respond")
        resp = channel.respond(hook, [])
        assert isinstance(resp, web.StreamResponse) and 200 <= resp.status < 300
        if channel.capabilities.inline:
            inline = channel.render(Reply(text="inline answer"))[: channel.capabilities.inline]
            resp = channel.respond(hook, inline)
            assert 200 <= resp.status < 300

    # --- render ----------------------------------------------------------------------------
    def _render(self, case: Any, channel: Channel, reply: Reply) -> list[Any]:
        payloads = channel.render(reply)
        assert isinstance(payloads, list) and payloads, "render gives at least one payload"
        limit = channel.capabilities.text_length
        for p in payloads:
            for s in self._strings(case, p):
                assert len(s) <= limit, f"a string of {len(s)} chars exceeds text_length {limit}"
        return payloads

    def test_render_text(self, channel_case: Any, channel: Channel):
        self._render(channel_case, channel, Reply(text="Bonjour !"))

    def test_render_long_text(self, channel_case: Any, channel: Channel):
        n = channel.capabilities.text_length
        words = ("Les soldes d'hiver commencent demain. " * (2 * n // 38 + 2))[: 2 * n + 17]
        payloads = self._render(channel_case, channel, Reply(text=words))
        seen = "".join(s for p in payloads for s in self._strings(channel_case, p))
        assert "commencent" in seen

    @staticmethod
    def _ids_in(strings: list[str], prefix: str) -> set[str]:
        import re
        return {m for s in strings for m in re.findall(prefix + r"\d\d", s)}

    def test_render_too_many_choices(self, channel_case: Any, channel: Channel):
        caps = channel.capabilities
        n = max(caps.buttons, caps.list_rows) + 4
        payloads = self._render(channel_case, channel,
                                Reply(text="Choisissez :", choices=_choices(n)))
        most = max(caps.buttons, caps.list_rows)
        for p in payloads:
            ids = self._ids_in(self._strings(channel_case, p), "cfck")
            assert len(ids) <= most, f"{len(ids)} choices in one payload; capabilities allow {most}"

    def test_render_choices_within_buttons(self, channel_case: Any, channel: Channel):
        caps = channel.capabilities
        payloads = self._render(channel_case, channel,
                                Reply(text="Choisissez :", choices=_choices(max(caps.buttons, 1))))
        seen = " ".join(s for p in payloads for s in self._strings(channel_case, p))
        # every choice is offered somehow: as a button/row id, or by its title in a text
        for c in _choices(max(caps.buttons, 1)):
            assert c.id in seen or c.title.strip() in seen, f"choice {c.id} lost in rendering"

    def test_render_long_titles(self, channel_case: Any, channel: Channel):
        caps = channel.capabilities
        n = max(1, min(caps.buttons or 3, 3))
        choices = _choices(n, title_len=90)
        payloads = self._render(channel_case, channel, Reply(text="Choisissez :", choices=choices))
        title_cap = max(caps.button_title, caps.list_title if caps.list_rows else 0)
        for p in payloads:
            for s in self._strings(channel_case, p):
                if any(s.startswith(c.title[:4]) for c in choices):
                    assert len(s) <= title_cap, f"title {s!r} exceeds {title_cap} chars"

    def test_render_cards(self, channel_case: Any, channel: Channel):
        caps = channel.capabilities
        cards = [Card(title=f"cfcd{i:02d} " + "Bonnet en laine " * 8, subtitle="25 €",
                      image=f"https://cdn.example.com/{i}.jpg", url=f"https://shop.example.com/{i}",
                      buttons=[Choice(id=f"cfcb{i:02d}{j}", title=f"Acheter {j}") for j in range(5)])
                 for i in range((caps.cards or 2) + 3)]
        payloads = self._render(channel_case, channel, Reply(text="Nos bonnets", cards=cards))
        if not caps.cards:
            return   # no cards: a text fallback may list them all
        for p in payloads:
            strings = self._strings(channel_case, p)
            ids = self._ids_in(strings, "cfcd")
            assert len(ids) <= caps.cards, f"{len(ids)} cards in one payload; capabilities allow {caps.cards}"
            import re
            per_card: dict[str, set[str]] = {}
            for s in strings:
                for m in re.findall(r"cfcb(\d\d)(\d)", s):
                    per_card.setdefault(m[0], set()).add(m[1])
            for card, buttons in per_card.items():
                assert len(buttons) <= max(caps.card_buttons, 1), \
                    f"card {card} has {len(buttons)} buttons; capabilities allow {caps.card_buttons}"

    # --- send ------------------------------------------------------------------------------
    @pytest.mark.asyncio
    async def test_send_ok(self, channel_case: Any, channel: Channel, fake: FakeProvider):
        payload = channel.render(Reply(text="Bonjour !"))[0]
        res = await channel.send(channel_case.contact, payload, key="cf-send-1")
        assert isinstance(res, SendResult)
        if not self._applies(channel_case, "send"):
            # Delivery that goes through no provider API (the webchat's Redis) is the channel's
            # own tests' business; here: an answer, not an exception, and no provider call.
            assert not fake.requests, "the case says no provider API, yet send called one"
            return
        assert res.status == "sent", f"expected sent, got {res}"
        assert fake.requests, "send never reached the provider (api_base ignored?)"
        self._no_secret_in(channel, res)

    @pytest.mark.parametrize("status", [500, 429])
    @pytest.mark.asyncio
    async def test_send_provider_error(self, channel_case: Any, channel: Channel,
                                       fake: FakeProvider, status: int):
        err = _opt(channel_case, "error_answer", None)
        body = err(status) if err else {"error": {"code": status, "message": "conformance error"}}
        headers = {"Retry-After": "1"} if status == 429 else {}
        fake.answer(status, body, headers, times=10)
        payload = channel.render(Reply(text="Bonjour !"))[0]
        res = await channel.send(channel_case.contact, payload, key=f"cf-err-{status}")
        assert isinstance(res, SendResult)
        if not self._applies(channel_case, "send"):
            assert not fake.requests, "the case says no provider API, yet send called one"
            fake.script.clear()
            return
        assert res.status in ("retry", "failed"), f"a {status} must not be reported as {res.status}"
        if status == 429:
            assert res.status == "retry", f"a 429 is 'retry later', got {res}"
        assert fake.requests, "send never reached the provider"
        self._no_secret_in(channel, res)
        fake.script.clear()

    @pytest.mark.asyncio
    async def test_send_connection_cut(self, channel_case: Any, channel: Channel, fake: FakeProvider):
        """The provider cuts the connection on every attempt: `retry` (or `failed`), never an
        exception, which the gateway could only count as a failed send and drop."""
        fake.answer(200, {}, times=10, drop=True)
        payload = channel.render(Reply(text="Bonjour !"))[0]
        res = await channel.send(channel_case.contact, payload, key="cf-cut")
        assert isinstance(res, SendResult)
        if self._applies(channel_case, "send"):
            assert fake.requests, "send never reached the provider"
            assert res.status in ("retry", "failed"), f"a cut connection must not be reported as {res.status}"
            self._no_secret_in(channel, res)
        else:
            assert not fake.requests, "the case says no provider API, yet send called one"
        fake.script.clear()

    @staticmethod
    def _no_secret_in(channel: Channel, res: SendResult) -> None:
        for secret in secret_values(channel):
            assert secret not in res.detail and secret not in res.code, "a secret in a SendResult"

    def test_contact_link(self, channel_case: Any, channel: Channel):
        link = channel.contact_link("cf-ref")
        assert isinstance(link, str)
        if link:
            assert link.startswith(("https://", "http://", "sms:", "tel:", "weixin:", "imessage:"))


# --- every installed channel ---------------------------------------------------------------
class TestInstalledChannels(ChannelConformance):
    """Collected when this module itself is run (`pytest --pyargs gateway.conformance`):
    every check, once per installed channel. Cases are looked up lazily, at collection."""

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "channel_case" not in metafunc.fixturenames:
            return
        try:
            found = installed_cases()
        except Exception as exc:    # collection must say why, not crash obscurely
            metafunc.parametrize("channel_case", [pytest.param(
                None, id="plugin-host", marks=pytest.mark.skip(reason=f"plugin host: {exc}"))],
                indirect=True)
            return
        metafunc.parametrize("channel_case", [case if case is not None else ctype
                                              for ctype, case in found],
                             ids=[ctype for ctype, _ in found], indirect=True)

    @pytest.fixture
    def channel_case(self, request: pytest.FixtureRequest) -> Any:
        if isinstance(request.param, str):
            if request.node.originalname != "test_class_attributes":
                pytest.skip(f"channel {request.param!r} declares no conformance case")
            pytest.fail(f"channel {request.param!r} is installed but declares no conformance case "
                        f"in the entry-point group {CASE_GROUP!r}")
        return request.param
