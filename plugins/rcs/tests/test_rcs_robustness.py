"""RBM inbound with a valid signature but odd content: a UserMessage without messageId is
named by its Pub/Sub message id (the same on Google's redeliveries), not "<phone>/" shared by
every such message (all duplicates of the first); bad base64 and odd payloads are refused
with the channel's statuses, never an exception."""
from __future__ import annotations

import base64
import json

import pytest
from causette_rcs.channel import RCSChannel, Settings

from gateway.channels import ParseError
from gateway.conformance import make_webhook

TOKEN = "robust-client-token"
PHONE = "+33612345678"


def channel() -> RCSChannel:
    return RCSChannel("demo", "rcs", Settings(agent_id="robust@rbm.goog", client_token=TOKEN))


def hook(data: bytes, pubsub_id: str = "1", raw_data: str | None = None):
    body = json.dumps({"message": {"data": raw_data if raw_data is not None else base64.b64encode(data).decode(),
                                   "messageId": pubsub_id, "publishTime": "2026-11-26T09:00:00Z"},
                       "subscription": "projects/p/subscriptions/s"}).encode()
    return make_webhook(body=body, headers={"X-Goog-Signature": RCSChannel.signature(TOKEN, data)})


def user_message(**fields) -> bytes:
    return json.dumps({"senderPhoneNumber": PHONE, "sendTime": "2026-11-26T09:00:00.123456789Z",
                       "agentId": "robust@rbm.goog", **fields}).encode()


def test_missing_message_id_falls_back_to_the_pubsub_id():
    ch = channel()
    a, b = hook(user_message(text="un"), "111"), hook(user_message(messageId="", text="deux"), "222")
    assert ch.verify(a) and ch.verify(b)
    [ma], [mb] = ch.parse(a), ch.parse(b)
    assert (ma.native_id, mb.native_id) == (f"{PHONE}/pubsub:111", f"{PHONE}/pubsub:222")
    assert [m.native_id for m in ch.parse(hook(user_message(text="un"), "111"))] == [ma.native_id]
    [mc] = ch.parse(hook(user_message(messageId="MxQ9", text="trois"), "333"))
    assert mc.native_id == f"{PHONE}/MxQ9"


@pytest.mark.parametrize("data", [b"", b"not json", b"[]", b"null", b'"x"', b"\xff\xfe", b"{}"])
def test_odd_payloads_are_unreadable_or_ignored(data):
    ch = channel()
    h = hook(data)
    if not data:
        assert ch.verify(h) is False          # nothing signed: refused
        return
    assert ch.verify(h)
    if data == b"{}":
        with pytest.raises(ParseError, match="senderPhoneNumber"):
            ch.parse(h)
        return
    with pytest.raises(ParseError):
        ch.parse(h)


@pytest.mark.parametrize("bad", ["!!!", "YWJ", "YW=J", "4pyT\nIMOg"])
def test_bad_base64_is_refused(bad):
    assert channel().verify(hook(b"abc", raw_data=bad)) is False
