"""A provider stand-in for core tests: a small signed-JSON channel plugin and a fake provider
API server that records what the gateway sends. Real HTTP both ways, on 127.0.0.1."""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from typing import Any

import msgspec
from aiohttp import web

from gateway.channels import Capabilities, Channel, ParseError, Webhook, safe_equal
from gateway.hookspecs import hookimpl
from gateway.types import InboundMessage, Referral, Reply, SendResult


class WireSettings(msgspec.Struct, forbid_unknown_fields=True):
    secret: str
    api_base: str = "http://127.0.0.1:9"


class Inbound(msgspec.Struct):
    id: str
    sender: str
    text: str = ""
    payload: str = ""
    ref: str = ""
    kind: str = "text"


class WireChannel(Channel):
    type = "testwire"
    Settings = WireSettings
    secrets = ("secret",)
    capabilities = Capabilities(text_length=1000, buttons=3, button_title=20, window_hours=24)
    refusal_status = 401

    def verify(self, hook: Webhook) -> bool:
        sig = hook.headers.get("X-Wire-Signature", "")
        good = hmac.new(self.settings.secret.encode(), hook.body, hashlib.sha256).hexdigest()
        return safe_equal(sig, good)

    def parse(self, hook: Webhook) -> list[InboundMessage]:
        try:
            items = msgspec.json.decode(hook.body, type=list[Inbound])
        except msgspec.DecodeError as exc:
            raise ParseError(str(exc)) from exc
        return [InboundMessage(tenant=self.tenant, channel=self.instance_id, native_id=i.id,
                               contact=i.sender, kind=("choice" if i.payload else i.kind),  # type: ignore[arg-type]
                               text=i.text, payload=i.payload,
                               referral=Referral(source="link", ref=i.ref) if i.ref else None)
                for i in items]

    def render(self, reply: Reply) -> list[Any]:
        body: dict[str, Any] = {"text": reply.text[: self.capabilities.text_length]}
        if reply.choices:
            body["buttons"] = [{"id": c.id, "title": c.title[:20]} for c in reply.choices[:3]]
        if reply.template:
            body["template"] = reply.template.name
        return [body]

    async def send(self, contact: str, payload: Any, *, key: str) -> SendResult:
        async with self.http.post(self.settings.api_base + "/send",
                                  json={"to": contact, "key": key, **payload}) as r:
            if r.status == 200:
                return SendResult(status="sent", provider_id=(await r.json())["id"])
            if r.status == 429:
                return SendResult(status="retry", retry_after=float(r.headers.get("Retry-After", 1)))
            return SendResult(status="failed", code=str(r.status))


class WirePlugin:
    @hookimpl
    def register_channels(self):
        return [WireChannel]


def sign(secret: str, body: bytes) -> dict[str, str]:
    return {"X-Wire-Signature": hmac.new(secret.encode(), body, hashlib.sha256).hexdigest(),
            "Content-Type": "application/json"}


class FakeProvider:
    """Records every message the gateway sends; can be made slow or failing."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.delay = 0.0
        self.fail_with = 0
        self.runner: web.AppRunner | None = None
        self.url = ""
        self.arrived = asyncio.Event()

    async def _send(self, request: web.Request) -> web.Response:
        body = await request.json()
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail_with:
            return web.Response(status=self.fail_with)
        self.sent.append(body)
        self.arrived.set()
        return web.json_response({"id": f"p{len(self.sent)}"})

    async def start(self) -> "FakeProvider":
        app = web.Application()
        app.router.add_post("/send", self._send)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self.runner:
            await self.runner.cleanup()

    def texts(self, to: str | None = None) -> list[str]:
        return [m["text"] for m in self.sent if to is None or m["to"] == to]

    async def wait_for(self, n: int, timeout: float = 10.0) -> None:
        async def loop() -> None:
            while len(self.sent) < n:
                await asyncio.sleep(0.01)
        await asyncio.wait_for(loop(), timeout)


def wire_body(*items: dict[str, Any]) -> bytes:
    return json.dumps(list(items)).encode()
