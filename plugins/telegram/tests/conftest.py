"""A fake Telegram Bot API on 127.0.0.1: it records every request and answers from a
script; a scripted answer left unused fails the test."""
from __future__ import annotations

import json
import asyncio
from collections import deque
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer


class Seen:
    def __init__(self, method: str, path: str, headers: Any, body: bytes):
        self.method, self.path, self.headers, self.body = method, path, headers, body

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class FakeProvider:
    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.script: deque[tuple[int, Any, dict[str, str]]] = deque()
        self.server: TestServer | None = None
        self.default: Any = None     # callable(Seen) -> (status, json) when the script is empty

    @property
    def url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("")).rstrip("/")

    def answer(self, status: int = 200, json: Any = None, headers: dict[str, str] | None = None) -> None:
        self.script.append((status, json if json is not None else {}, headers or {}))

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(Seen(request.method, request.path, dict(request.headers), await request.read()))
        if self.script:
            status, body, headers = self.script.popleft()
        elif self.default is not None:
            (status, body), headers = self.default(self.seen[-1]), {}
        else:
            status, body, headers = 500, {"message": "unscripted"}, {}
        if body == "slow":      # an answer that comes after the client's timeout
            await asyncio.sleep(5)
            return web.Response(status=504)
        if body == "drop":      # a connection cut without an answer
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        return web.json_response(body, status=status, headers=headers)


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
