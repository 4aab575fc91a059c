import pytest

from tests.support.wire import FakeProvider


@pytest.fixture
async def provider():
    p = await FakeProvider().start()
    yield p
    await p.stop()
