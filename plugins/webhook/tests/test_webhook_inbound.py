"""Inbound table of the webhook channel: each case is a body, headers, and what must come of it."""
from __future__ import annotations

import json

import msgspec
import pytest
from multidict import CIMultiDict

from causette_webhook import Settings, WebhookChannel, sign
from gateway.channels import ParseError, Webhook

SECRET = "s3cret"


def channel(**settings) -> WebhookChannel:
    return WebhookChannel("acme", "hook", msgspec.convert({"secret": SECRET, **settings}, Settings))


def hook(body, headers=None, secret=SECRET) -> Webhook:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    h = CIMultiDict(headers if headers is not None else {"X-Causette-Signature": sign(secret, raw)})
    return Webhook("POST", "http://127.0.0.1/t/acme/channels/hook", {}, h, raw)


def test_plugin_is_installed_and_registers_the_channel():
    from gateway.plugins import PluginHost
    host = PluginHost()
    assert host.channels.get("webhook") is WebhookChannel


VERIFY = [
    ("good signature", {"id": "1", "from": "u"}, None, SECRET, True),
    ("bare hex accepted", {"id": "1", "from": "u"}, "bare", SECRET, True),
    ("uppercase hex accepted", {"id": "1", "from": "u"}, "upper", SECRET, True),
    ("wrong secret", {"id": "1", "from": "u"}, None, "other", False),
    ("no header", {"id": "1", "from": "u"}, {}, SECRET, False),
    ("empty header", {"id": "1", "from": "u"}, {"X-Causette-Signature": ""}, SECRET, False),
    ("garbage header", {"id": "1", "from": "u"}, {"X-Causette-Signature": "sha256=zz"}, SECRET, False),
]


@pytest.mark.parametrize("label,body,headers,secret,ok", VERIFY, ids=[v[0] for v in VERIFY])
def test_verify(label, body, headers, secret, ok):
    raw = json.dumps(body).encode()
    if headers == "bare":
        headers = {"X-Causette-Signature": sign(secret, raw)[7:]}
    elif headers == "upper":
        headers = {"X-Causette-Signature": "sha256=" + sign(secret, raw)[7:].upper()}
    assert channel().verify(hook(raw, headers, secret)) is ok


def test_verify_checks_the_raw_bytes_not_the_json():
    raw = b'{"id": "1", "from": "u"}'
    h = hook(raw)
    h.body = b'{"id":"1","from":"u"}'   # same JSON, different bytes
    assert channel().verify(h) is False


def test_no_secret_configured_refuses_everything():
    ch = WebhookChannel("acme", "hook", Settings())
    raw = b'{"id":"1","from":"u"}'
    assert ch.verify(hook(raw, {"X-Causette-Signature": sign("", raw)})) is False


def test_previous_secret_accepted_during_rotation_and_custom_header():
    ch = channel(previous_secret="old", signature_header="X-Sig")
    raw = b'{"id":"1","from":"u"}'
    assert ch.verify(hook(raw, {"X-Sig": sign("old", raw)}))
    assert ch.verify(hook(raw, {"X-Sig": sign(SECRET, raw)}))
    assert not ch.verify(hook(raw, {"X-Causette-Signature": sign(SECRET, raw)}))


PARSE = [
    ("text", {"id": "m1", "from": "u1", "text": "hello"},
     [{"native_id": "m1", "contact": "u1", "kind": "text", "text": "hello"}]),
    ("button press", {"id": "m2", "from": "u1", "payload": "w", "text": "Femme"},
     [{"kind": "choice", "payload": "w", "text": "Femme"}]),
    ("explicit kind", {"id": "m3", "from": "u1", "kind": "postback", "payload": "menu"},
     [{"kind": "postback", "payload": "menu"}]),
    ("profile, locale, time", {"id": "m4", "from": "u1", "text": "hi", "name": "Ana", "locale": "en",
                               "ts": 1700000000.5},
     [{"profile": {"name": "Ana"}, "locale": "en", "ts": 1700000000.5}]),
    ("referral only", {"id": "m5", "from": "u1", "ref": "qr-shop"},
     [{"kind": "referral", "referral": {"source": "webhook", "ref": "qr-shop"}}]),
    ("media", {"id": "m6", "from": "u1", "media": [{"url": "https://x/y.jpg", "kind": "image"}]},
     [{"kind": "media", "media": [{"kind": "image", "url": "https://x/y.jpg"}]}]),
    ("status", {"id": "s1", "from": "u1", "kind": "status", "status": "read", "refers_to": "out-9"},
     [{"kind": "status", "status": "read", "refers_to": "out-9"}]),
    ("batch", [{"id": "a", "from": "u1", "text": "1"}, {"id": "b", "from": "u2", "text": "2"}],
     [{"native_id": "a", "contact": "u1"}, {"native_id": "b", "contact": "u2"}]),
    ("unknown fields ignored", {"id": "m7", "from": "u1", "text": "x", "extra": {"a": 1}},
     [{"text": "x"}]),
]


@pytest.mark.parametrize("label,body,expected", PARSE, ids=[p[0] for p in PARSE])
def test_parse(label, body, expected):
    msgs = channel().parse(hook(body))
    assert len(msgs) == len(expected)
    for m, exp in zip(msgs, expected):
        assert m.tenant == "acme" and m.channel == "hook"
        got = {f: getattr(m, f) for f in m.__struct_fields__}
        got = msgspec.to_builtins(got)
        for k, v in exp.items():
            assert got.get(k) == v, (label, k)


BAD = [
    ("not json", b"{nope"),
    ("missing id", {"from": "u1", "text": "x"}),
    ("missing from", {"id": "1", "text": "x"}),
    ("empty id", {"id": "", "from": "u1"}),
    ("unknown kind", {"id": "1", "from": "u1", "kind": "teleport"}),
    ("wrong type", {"id": 5, "from": "u1"}),
    ("a string", "hello"),
]


@pytest.mark.parametrize("label,body", BAD, ids=[b[0] for b in BAD])
def test_parse_errors(label, body):
    with pytest.raises(ParseError):
        channel().parse(hook(body))


def test_respond_is_the_json_list_of_inline_replies():
    from gateway.types import Choice, Reply
    ch = channel()
    payloads = ch.render(Reply(text="Pick", choices=[Choice(id="a", title="A")]))
    resp = ch.respond(hook({"id": "1", "from": "u"}), payloads)
    assert resp.status == 200 and resp.content_type == "application/json"
    assert json.loads(resp.body) == [{"text": "Pick", "choices": [{"id": "a", "title": "A"}]}]


def test_inline_capability_follows_the_callback_setting():
    assert channel().capabilities.inline == 10
    assert channel(callback_url="http://127.0.0.1:9/cb").capabilities.inline == 0
    assert WebhookChannel.capabilities.inline == 10


PATHS = [
    ("missing from", {"id": "1", "text": "x"}, "Object missing required field `from` - at `$`"),
    ("missing id", {"from": "u1"}, "Object missing required field `id` - at `$`"),
    ("a string", "hello", "Expected `object | array`, got `str` - at `$`"),
    ("wrong type", {"id": 5, "from": "u1"}, "Expected `str`, got `int` - at `$.id`"),
    ("nested", {"id": "1", "from": "u1", "media": [{"url": 3}]},
     "Expected `str`, got `int` - at `$.media[0].url`"),
    ("in a list", [{"id": "1", "from": "u1"}, {"id": "2"}],
     "Object missing required field `from` - at `$[1]`"),
]


@pytest.mark.parametrize("label,body,message", PATHS, ids=[p[0] for p in PATHS])
def test_parse_errors_name_the_json_path(label, body, message):
    with pytest.raises(ParseError) as err:
        channel().parse(hook(body))
    assert str(err.value) == message
