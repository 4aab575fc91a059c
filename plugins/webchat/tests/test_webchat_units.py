"""Webchat pieces on their own: rendering, frames, tokens, origins, and the outbox on a real Redis."""
from __future__ import annotations

import asyncio
import types

import msgspec
import pytest
import redis.asyncio as aioredis

from causette_webchat import origin_allowed
from causette_webchat import outbox as ob
from causette_webchat.channel import MAX_CHOICES, MAX_TITLE, Settings, WebchatChannel
from causette_webchat.frames import (Hello, Message, Open, Pick, Ping, Seen, Text, client_decoder,
                                     frame_seq, server_decoder)
from causette_webchat.tokens import check_token, new_visitor, visitor_token
from gateway.channels import Webhook
from gateway.types import Card, Choice, Media, Reply, TemplateRef


def channel(**settings) -> WebchatChannel:
    return WebchatChannel("acme", "web", msgspec.convert(settings, Settings))


# --- render ------------------------------------------------------------------------------------
def test_render_text_and_choices():
    [frame] = channel().render(Reply(text="Pour qui ?", choices=[Choice(id="w", title="Femme"),
                                                                Choice(id="m", title="Homme")]))
    assert isinstance(frame, Message)
    assert frame.role == "bot" and frame.text == "Pour qui ?"
    assert [c.id for c in frame.choices] == ["w", "m"]


def test_render_more_choices_than_chips_become_numbered_lines():
    choices = [Choice(id=f"c{i}", title=f"Option {i}") for i in range(1, 14)]
    [frame] = channel().render(Reply(text="Choisissez :", choices=choices))
    assert len(frame.choices) == MAX_CHOICES
    assert frame.text.splitlines()[1:] == ["11. Option 11", "12. Option 12", "13. Option 13"]


def test_render_cuts_long_titles_and_text():
    long = "Un titre beaucoup trop long pour tenir sur une puce de choix"
    [frame] = channel().render(Reply(text="x" * 5000, choices=[Choice(id="a", title=long)]))
    assert len(frame.choices[0].title) <= MAX_TITLE and frame.choices[0].title.endswith("…")
    assert len(frame.text) == WebchatChannel.capabilities.text_length


def test_render_cards_media_and_agent():
    cards = [Card(title=f"Bonnet {i}", subtitle="25 €", image="https://cdn.example/b.jpg",
                  url="https://shop.example/b", buttons=[Choice(id=f"b{i}{j}", title="Acheter") for j in range(5)])
             for i in range(12)]
    [frame] = channel().render(Reply(cards=cards, media=[Media(kind="image", url="https://cdn.example/x.png")],
                                     from_agent="Julie"))
    assert len(frame.cards) == WebchatChannel.capabilities.cards
    assert all(len(c.buttons) == WebchatChannel.capabilities.card_buttons for c in frame.cards)
    assert frame.media[0].url == "https://cdn.example/x.png"
    assert frame.role == "agent" and frame.agent == "Julie"


def test_render_empty_reply_sends_nothing_and_template_falls_back_to_text():
    assert channel().render(Reply()) == []
    [frame] = channel().render(Reply(template=TemplateRef(name="relance", params=["Votre code :", "HIVER10"])))
    assert frame.text == "Votre code : HIVER10"


def test_webhook_posts_are_refused():
    hook = Webhook("POST", "http://x/t/acme/channels/web", {}, {}, b"{}")
    assert channel().verify(hook) is False


def test_settings_are_validated():
    with pytest.raises(msgspec.ValidationError, match="color"):
        msgspec.convert({"color": "red"}, Settings)
    with pytest.raises(msgspec.ValidationError, match="unknown field"):
        msgspec.convert({"colour": "#ffffff"}, Settings)
    assert msgspec.convert({"color": "#B4233c"}, Settings).color == "#B4233c"


@pytest.mark.parametrize("color", ["red", "#fff", "#12345g", "#abcdef\n", "b4233c", ""])
def test_a_bad_colour_is_explained_in_words_not_a_regex(color):
    from gateway.validation import settings_problems
    [problem] = settings_problems({"color": color, "title": "Boutique"}, Settings, "$.channels[0].settings")
    assert problem.path == "$.channels[0].settings"
    assert problem.message.startswith("`color` must be a colour written #rrggbb")
    assert repr(color) in problem.message
    assert "regex" not in problem.message and "^#" not in problem.message
    # Every other problem keeps its own path, and a colour's type error says the type.
    [problem] = settings_problems({"color": 4338}, Settings, "$.channels[0].settings")
    assert problem.path == "$.channels[0].settings.color" and "Expected `str`" in problem.message
    # The published JSON Schema still shows the shape.
    schema = msgspec.json.schema(Settings)["$defs"]["Settings"]["properties"]["color"]
    assert schema["pattern"] == "^#[0-9a-fA-F]{6}$"


def test_demo_page_is_off_unless_turned_on():
    assert msgspec.convert({}, Settings).demo_page is False
    assert msgspec.convert({"demo_page": True}, Settings).demo_page is True
    with pytest.raises(msgspec.ValidationError, match="demo_page"):
        msgspec.convert({"demo_page": "yes"}, Settings)


# --- frames ------------------------------------------------------------------------------------
@pytest.mark.parametrize("raw, kind", [
    ('{"type":"hello"}', Hello),
    ('{"type":"hello","visitor":"v_abcdefghijklmnopqrstuvwx","token":"t","last_seq":4,"locale":"fr-FR"}', Hello),
    ('{"type":"open","id":"abcdefgh12"}', Open),
    ('{"type":"text","id":"abcdefgh12","text":"Bonjour"}', Text),
    ('{"type":"choice","id":"abcdefgh12","payload":"women","text":"Femme"}', Pick),
    ('{"type":"ping"}', Ping),
    ('{"type":"seen","id":"0123456789abcdef0123"}', Seen),
])
def test_client_frames_decode(raw, kind):
    assert isinstance(client_decoder.decode(raw), kind)


@pytest.mark.parametrize("raw, where", [
    ("{not json", "malformed"),
    ('{"type":"shout","id":"abcdefgh12"}', "type"),
    ('{"type":"text","id":"short","text":"x"}', "$.id"),
    ('{"type":"text","id":"abcdefgh12","text":""}', "$.text"),
    ('{"type":"text","id":"abcdefgh12","text":"x","admin":true}', "admin"),
    ('{"type":"hello","visitor":"someone-else"}', "$.visitor"),
    ('{"type":"hello","last_seq":-1}', "$.last_seq"),
    ('[1,2,3]', "object"),
    ('{"type":"seen","id":"v_someone.abcdefgh12"}', "$.id"),
])
def test_bad_client_frames_say_what_is_wrong(raw, where):
    with pytest.raises(msgspec.DecodeError) as err:
        client_decoder.decode(raw)
    assert where.lower() in str(err.value).lower()


def test_server_frame_round_trip_and_seq():
    raw = b'{"seq":12,"type":"message","id":"m1","text":"Bonjour"}'
    assert frame_seq(raw) == 12 and frame_seq(b'{"type":"pong"}') == 0 and frame_seq(b"junk") == 0
    assert isinstance(server_decoder.decode(b'{"type":"message","id":"m1","text":"Bonjour","seq":3}'), Message)


# --- tokens ------------------------------------------------------------------------------------
def test_visitor_tokens_bind_tenant_channel_and_visitor():
    secret = b"s3cret-for-tests"
    v, w = new_visitor(), new_visitor()
    tok = visitor_token(secret, "acme", "web", v)
    assert check_token(secret, "acme", "web", v, tok)
    assert not check_token(secret, "acme", "web", w, tok)
    assert not check_token(secret, "other", "web", v, tok)
    assert not check_token(secret, "acme", "web2", v, tok)
    assert not check_token(b"another-secret", "acme", "web", v, tok)
    assert not check_token(secret, "acme", "web", v, "")


# --- origins -----------------------------------------------------------------------------------
@pytest.mark.parametrize("allowed, origin, ok", [
    ([], "https://evil.example", True),                      # nothing listed: any page
    (["https://shop.example"], "https://shop.example", True),
    (["https://shop.example/"], "https://SHOP.example", True),
    (["https://shop.example"], "https://evil.example", False),
    (["https://shop.example"], "http://shop.example", False),
    (["https://*.shop.example"], "https://fr.shop.example", True),
    (["https://*.shop.example"], "https://shop.example.evil.com", False),
    (["https://*.shop.example"], "https://evilshop.example", False),
    (["https://shop.example"], None, True),                  # not a browser page
    (["https://shop.example"], "http://127.0.0.1:8080", True),   # the gateway's own demo page
    (["*"], "https://anything.example", True),
])
def test_origin_allowed(allowed, origin, ok):
    assert origin_allowed(allowed, origin, ("http://127.0.0.1:8080",)) is ok


# --- outbox on a real Redis ---------------------------------------------------------------------
@pytest.fixture
async def redis(redis_url):
    client = aioredis.from_url(redis_url)
    yield client
    await client.aclose()


async def test_outbox_numbers_keeps_and_replays(redis):
    base = ob.conv_base("acme", "web", new_visitor())
    seqs = [(await ob.append(redis, base, b'{"type":"message","id":"m%d"}' % i, keep=3, ttl=60))[0]
            for i in range(5)]
    assert seqs == [1, 2, 3, 4, 5]
    frames, newest, complete = await ob.since(redis, base, 3)
    assert [frame_seq(f) for f in frames] == [4, 5] and newest == 5 and complete
    frames, _, complete = await ob.since(redis, base, 1)    # 2 was trimmed (keep=3): a gap
    assert [frame_seq(f) for f in frames] == [3, 4, 5] and not complete
    frames, _, complete = await ob.since(redis, base, 0)    # a new page: the kept history
    assert [frame_seq(f) for f in frames] == [3, 4, 5] and complete
    _, _, complete = await ob.since(redis, base, 99)        # expired / erased conversation
    assert not complete
    assert 0 < await redis.pttl(base + ":o") <= 60_000


async def test_outbox_once_key_numbers_a_frame_once(redis):
    base = ob.conv_base("acme", "web", new_visitor())
    first = await ob.append(redis, base, b'{"type":"message","id":"x"}', keep=10, ttl=60, once="k1")
    again = await ob.append(redis, base, b'{"type":"message","id":"x"}', keep=10, ttl=60, once="k1")
    assert first == (1, True) and again == (1, False)
    assert await redis.llen(base + ":o") == 1


async def test_send_publishes_to_the_visitor_channel(redis):
    ch = channel(history=5)
    ch.runtime = types.SimpleNamespace(redis=redis)
    visitor = new_visitor()
    base = ob.conv_base("acme", "web", visitor)
    pubsub = redis.pubsub()
    await pubsub.subscribe(base)
    assert (await pubsub.get_message(timeout=2))["type"] == "subscribe"
    [payload] = ch.render(Reply(text="Bonjour !"))
    res = await ch.send(visitor, payload, key="in1:0:0")
    again = await ch.send(visitor, payload, key="in1:0:0")    # a retried send: stored once
    assert res.status == "sent" and again.provider_id == res.provider_id
    msg = None
    for _ in range(20):
        msg = await pubsub.get_message(timeout=1)
        if msg and msg["type"] == "message":
            break
    frame = msgspec.json.decode(msg["data"])
    assert frame["seq"] == 1 and frame["text"] == "Bonjour !" and frame["type"] == "message"
    assert await redis.llen(base + ":o") == 1
    await pubsub.aclose()
    assert (await ch.send("+33612345678", payload, key="k")).status == "failed"


async def test_send_without_redis_is_a_typed_retry():
    ch = channel()
    ch.runtime = types.SimpleNamespace(redis=aioredis.from_url("redis://127.0.0.1:1"))
    res = await ch.send(new_visitor(), ch.render(Reply(text="x"))[0], key="k")
    assert res.status == "retry" and res.code == "redis"
    await ch.runtime.redis.aclose()
    await asyncio.sleep(0)


# --- a socket's ordering -------------------------------------------------------------------------
def test_a_socket_gets_each_frame_once_in_order_across_replay_and_live():
    from causette_webchat.hub import Conn
    conn = Conn(types.SimpleNamespace(closed=False), last=2)
    conn.publish('{"seq":5}', 5)           # published live while the outbox is being read
    conn.publish('{"seq":6}', 6)
    conn.replay([('{"seq":2}', 2), ('{"seq":3}', 3), ('{"seq":4}', 4), ('{"seq":5}', 5)])
    conn.publish('{"seq":6}', 6)           # a late duplicate
    conn.publish('{"seq":7}', 7)
    conn.send('{"type":"pong"}')
    out = []
    while not conn.queue.empty():
        out.append(conn.queue.get_nowait())
    assert out == ['{"seq":3}', '{"seq":4}', '{"seq":5}', '{"seq":6}', '{"seq":7}', '{"type":"pong"}']


async def test_idempotency_keys_live_a_day_not_the_whole_history(redis):
    base = ob.conv_base("acme", "web", new_visitor())
    await ob.append(redis, base, b'{"type":"message","id":"x"}', keep=10, ttl=7 * 86400, once="k1")
    assert 0 < await redis.pttl(base + ":k:k1") <= ob.ONCE_TTL * 1000 < await redis.pttl(base + ":o")
