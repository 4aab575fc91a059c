"""A fake RBM API on 127.0.0.1 (the conformance kit's): records every request, answers
from a script; a scripted answer left unused fails the test."""
from __future__ import annotations

import aiohttp
import pytest

from gateway.conformance import FakeProvider


@pytest.fixture
async def provider():
    async with FakeProvider() as fake:
        yield fake
        assert not fake.script, f"scripted answers never used: {list(fake.script)}"


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as s:
        yield s
