"""The conformance kit (gateway/conformance.py) must fail a channel that breaks the contract.

Each case is a WhatsApp channel with one deliberate fault; the kit's check for it is called
directly and must raise. Lives here because the kit needs a real channel to break.
"""
from __future__ import annotations

import inspect
import logging
from typing import Any

import aiohttp
import msgspec
import pytest
from causette_whatsapp.channel import WhatsAppChannel
from causette_whatsapp.conformance import WhatsAppCase

from gateway.conformance import (
    ChannelConformance,
    FakeProvider,
    assert_no_secret_logged,
    case_secrets,
    walk_strings,
)
from gateway.types import Choice, Reply, SendResult


class AcceptsAnything(WhatsAppChannel):
    def verify(self, hook):
        return True


class WrongContact(WhatsAppChannel):
    def parse(self, hook):
        return [msgspec.structs.replace(m, contact="+" + m.contact) for m in super().parse(hook)]


class UnstableIds(WhatsAppChannel):
    n = 0

    def parse(self, hook):
        UnstableIds.n += 1
        return [msgspec.structs.replace(m, native_id=f"{m.native_id}-{self.n}") for m in super().parse(hook)]


class TooManyButtons(WhatsAppChannel):
    def render(self, reply):
        return [{"type": "interactive", "interactive": {"action": {"buttons": [
            {"reply": {"id": c.id, "title": c.title}} for c in reply.choices]}}}]


class LongTitles(WhatsAppChannel):
    def render(self, reply):
        return [{"buttons": [{"id": c.id, "title": c.title} for c in reply.choices[:3]]}]


class RaisesOnErrors(WhatsAppChannel):
    async def send(self, contact, payload, *, key):
        async with self.http.post(self.settings.api_base + "/x", json=payload) as r:
            r.raise_for_status()
        return SendResult(status="sent")


class SentOn429(WhatsAppChannel):
    async def send(self, contact, payload, *, key):
        async with self.http.post(self.settings.api_base + "/x", json=payload):
            return SendResult(status="sent")


class SecretInDetail(WhatsAppChannel):
    async def send(self, contact, payload, *, key):
        res = await super().send(contact, payload, key=key)
        return msgspec.structs.replace(res, detail=f"token {self.settings.access_token}")


class Case(WhatsAppCase):
    def __init__(self, cls):
        self.channel = cls


KIT = ChannelConformance()


@pytest.fixture
async def fake():
    async with FakeProvider(default=WhatsAppCase().ok_answer) as f:
        yield f


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as s:
        yield s


def build(cls, fake, http) -> tuple[Any, WhatsAppChannel]:
    case = Case(cls)
    settings = msgspec.convert(case.settings(fake.url), cls.Settings)
    return case, cls("conformance", "conf", settings, http)


@pytest.mark.parametrize("cls,check", [
    (AcceptsAnything, "test_verify_refuses_missing_signature"),
    (AcceptsAnything, "test_verify_refuses_wrong_signature"),
    (WrongContact, "test_parse_signed_text"),
    (UnstableIds, "test_parse_signed_text"),
    (TooManyButtons, "test_render_too_many_choices"),
    (LongTitles, "test_render_long_titles"),
])
async def test_kit_fails_a_broken_channel(cls, check, fake, http):
    case, ch = build(cls, fake, http)
    with pytest.raises(AssertionError):
        res = getattr(KIT, check)(case, ch)
        if inspect.isawaitable(res):
            await res


@pytest.mark.parametrize("cls,status", [(RaisesOnErrors, 500), (SentOn429, 429)])
async def test_kit_fails_a_send_that_raises_or_lies(cls, status, fake, http):
    case, ch = build(cls, fake, http)
    with pytest.raises((AssertionError, aiohttp.ClientResponseError)):
        await KIT.test_send_provider_error(case, ch, fake, status)


async def test_kit_fails_a_secret_in_a_send_result(fake, http):
    case, ch = build(SecretInDetail, fake, http)
    with pytest.raises(AssertionError, match="secret"):
        await KIT.test_send_ok(case, ch, fake)


async def test_kit_passes_the_real_channel(fake, http):
    case, ch = build(WhatsAppChannel, fake, http)
    await KIT.test_parse_signed_text(case, ch)
    KIT.test_render_too_many_choices(case, ch)
    await KIT.test_send_ok(case, ch, fake)


def test_log_check_finds_a_secret_in_message_arguments_and_exceptions():
    secrets = case_secrets(WhatsAppCase())
    assert "EAAG-conformance-token" in secrets and "conformance-app-secret" in secrets
    logger = logging.getLogger("kit-selfcheck")
    as_arg = logger.makeRecord("x", logging.INFO, __file__, 1, "calling with %s", ("EAAG-conformance-token",), None)
    with pytest.raises(AssertionError):
        assert_no_secret_logged([as_arg], secrets)
    try:
        raise RuntimeError("bad token EAAG-conformance-token")
    except RuntimeError as e:
        exc = logger.makeRecord("x", logging.WARNING, __file__, 1, "send failed", (), (type(e), e, None))
    with pytest.raises(AssertionError):
        assert_no_secret_logged([exc], secrets)
    clean = logger.makeRecord("x", logging.INFO, __file__, 1, "sent %s", ("wamid.1",), None)
    assert_no_secret_logged([clean], secrets)


def test_walk_strings_reads_structs_lists_and_bytes():
    assert walk_strings({"a": [Choice(id="x", title="y"), b"z"], "n": 3}) == ["x", "y", "z"]
    assert walk_strings(Reply(text="t")) == ["t"]
