"""A fake WeChat API on 127.0.0.1: records every request, answers from a script."""
from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer


class FakeProvider:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.script: deque[dict[str, Any]] = deque()
        self.routes: dict[str, Any] = {}   # path -> handler(request, body) for special endpoints
        self.server: TestServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("")).rstrip("/")

    def answer(self, status: int = 200, json: Any = None, headers: dict[str, str] | None = None,
               delay: float = 0.0) -> None:
        self.script.append({"status": status, "json": {} if json is None else json,
                            "headers": headers or {}, "delay": delay})

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if request.path in self.routes:
            return await self.routes[request.path](request, body)
        self.requests.append({"method": request.method, "path": request.path,
                              "query": dict(request.query), "headers": dict(request.headers),
                              "body": body})
        a = self.script.popleft() if self.script else {"status": 200, "json": {}, "headers": {},
                                                         "delay": 0.0}
        if a["delay"]:
            await asyncio.sleep(a["delay"])
        return web.json_response(a["json"], status=a["status"], headers=a["headers"])


@pytest.fixture
async def provider():
    fake = FakeProvider()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake.handle)
    fake.server = TestServer(app, host="127.0.0.1")
    await fake.server.start_server()
    yield fake
    await fake.server.close()
    assert not fake.script, f"scripted answers never used: {list(fake.script)}"


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as s:
        yield s
