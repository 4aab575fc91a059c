"""A fake Telegram Bot API on 127.0.0.1, the conformance kit's: it records
every request and answers from a script; a scripted answer left unused fails the test, and an
unscripted request gets a 500."""
from __future__ import annotations

import aiohttp
import pytest

from gateway.conformance import FakeProvider


@pytest.fixture
async def provider():
    async with FakeProvider(default=lambda rec: (500, {"message": "unscripted"})) as fake:
        yield fake
        assert not fake.script, f"scripted answers never used: {list(fake.script)}"


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as s:
        yield s
