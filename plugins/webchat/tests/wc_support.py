"""A scripted widget: the WebSocket protocol spoken by a test, as widget.js speaks it."""
from __future__ import annotations

import asyncio
import secrets
from typing import Any

import aiohttp

SHOP = {
    "slug": "wc-shop",
    "name": "Maison Test",
    "locale": "fr",
    "plugins": {"webchat": {}, "tree": {}},
    "channels": [{"id": "web", "type": "webchat",
                  "settings": {"title": "Maison Test", "color": "#b4232c",
                               "allowed_origins": ["https://shop.example"]}}],
    "flows": [{
        "format": 1, "id": "hello", "name": "Hello", "engine": "tree", "locale": "fr",
        "triggers": [{"type": "widget"}, {"type": "start"}],
        "start": "hi",
        "nodes": {
            "hi": {"type": "message", "text": "Bonjour ! Bienvenue chez Maison Test.", "next": "pick"},
            "pick": {"type": "choice", "text": "Pour qui cherchez-vous ?", "save_as": "who",
                     "choices": [{"id": "women", "title": "Femme", "next": "done"},
                                 {"id": "men", "title": "Homme", "next": "done"}]},
            "done": {"type": "end", "outcome": "completed", "text": "Merci, voici nos offres {{who}} !"},
        },
    }],
}


def cid() -> str:
    return secrets.token_urlsafe(12)


def ws_url(gw: Any, tenant: str = "wc-shop", channel: str = "web") -> str:
    return gw.url.replace("http", "ws", 1) + f"/t/{tenant}/plugins/webchat/ws?channel={channel}"


class Widget:
    """One socket of one visitor. `frames` keeps every message frame received, in order."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse):
        self.ws = ws
        self.ready: dict[str, Any] = {}
        self.frames: list[dict[str, Any]] = []
        self.last_seq = 0

    @classmethod
    async def connect(cls, gw: Any, *, visitor: str | None = None, token: str = "",
                      last_seq: int = 0, origin: str | None = None, tenant: str = "wc-shop",
                      channel: str = "web") -> "Widget":
        headers = {"Origin": origin} if origin else {}
        ws = await gw.http.ws_connect(ws_url(gw, tenant, channel), headers=headers)
        w = cls(ws)
        w.last_seq = last_seq
        hello: dict[str, Any] = {"type": "hello", "last_seq": last_seq, "locale": "fr-FR"}
        if visitor:
            hello.update(visitor=visitor, token=token)
        await ws.send_json(hello)
        first = await w.next()
        if first["type"] == "ready":
            w.ready = first
        else:
            w.error = first
        return w

    @property
    def visitor(self) -> str:
        return self.ready["visitor"]

    @property
    def token(self) -> str:
        return self.ready["token"]

    async def next(self, timeout: float = 10.0) -> dict[str, Any]:
        msg = await self.ws.receive(timeout=timeout)
        if msg.type != aiohttp.WSMsgType.TEXT:
            return {"type": "closed", "code": self.ws.close_code, "data": msg.data}
        frame = msg.json()
        if frame.get("type") == "message":
            self.frames.append(frame)
            self.last_seq = max(self.last_seq, frame.get("seq", 0))
        return frame

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send_json(frame)

    async def until_ack(self, client_id: str, timeout: float = 15.0) -> tuple[dict, list[dict]]:
        """Frames up to the ack of `client_id`, then the bot's frames the ack announced."""
        got: list[dict[str, Any]] = []
        ack = None
        async with asyncio.timeout(timeout):
            while ack is None:
                f = await self.next()
                if f["type"] == "ack" and f["id"] == client_id:
                    ack = f
                elif f["type"] == "error" and f.get("id") == client_id:
                    raise AssertionError(f"error for {client_id}: {f}")
                elif f["type"] == "message":
                    got.append(f)
                elif f["type"] == "closed":
                    raise AssertionError(f"socket closed: {f}")
            while self.last_seq < ack.get("seq", 0):
                f = await self.next()
                if f["type"] == "message":
                    got.append(f)
        return ack, got

    async def say(self, text: str, client_id: str | None = None) -> tuple[dict, list[dict]]:
        client_id = client_id or cid()
        await self.send({"type": "text", "id": client_id, "text": text})
        return await self.until_ack(client_id)

    async def click(self, choice: dict[str, Any], client_id: str | None = None) -> tuple[dict, list[dict]]:
        client_id = client_id or cid()
        await self.send({"type": "choice", "id": client_id, "payload": choice["id"], "text": choice["title"]})
        return await self.until_ack(client_id)

    async def open(self, client_id: str | None = None) -> tuple[dict, list[dict]]:
        client_id = client_id or cid()
        await self.send({"type": "open", "id": client_id, "page": "https://shop.example/soldes"})
        return await self.until_ack(client_id)

    async def close(self) -> None:
        await self.ws.close()


def bot(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [f for f in frames if f.get("role", "bot") != "visitor"]


def choices_of(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for f in reversed(frames):
        if f.get("choices"):
            return f["choices"]
    return []
