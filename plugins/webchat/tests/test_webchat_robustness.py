"""What fuzzing the widget's socket found: bad input gets a documented error frame or close
code, never a dead socket, a hang or half-written state. Each test fails without its fix."""
from __future__ import annotations

import asyncio
import copy
import json
import time

import aiohttp
import pytest

from causette_webchat import hub as hubmod
from causette_webchat import outbox as ob
from causette_webchat.frames import Message, encoder
from causette_webchat.routes import INBOX

from wc_support import SHOP, Widget, cid, ws_url


@pytest.fixture
def shop():
    return copy.deepcopy(SHOP)


async def _outbox(gw, visitor: str) -> list[dict]:
    raw = await gw.redis.lrange(ob.conv_base("wc-shop", "web", visitor) + ":o", 0, -1)
    return [json.loads(r) for r in raw]


async def test_a_long_history_is_replayed_to_a_new_page_without_closing_it(gateway, shop):
    # history may be up to 500: the whole replay is queued at once, and used to overflow the
    # socket's 256-frame queue, closing every new page's socket with 1013 at frame 255.
    shop["channels"][0]["settings"]["history"] = 500
    gw = await gateway(tenants=[shop])
    w = await Widget.connect(gw)
    base = ob.conv_base("wc-shop", "web", w.visitor)
    for i in range(400):
        await ob.append(gw.redis, base, encoder.encode(Message(id=f"m{i}", text=f"ligne {i}")),
                        keep=500, ttl=3600)
    await w.close()
    page = await Widget.connect(gw, visitor=w.visitor, token=w.token, last_seq=0)
    assert page.ready["seq"] == 400 and page.ready["resumed"] is True
    async with asyncio.timeout(15):
        while page.last_seq < 400:
            f = await page.next()
            assert f["type"] == "message", f
    assert [f["seq"] for f in page.frames] == list(range(1, 401))
    await page.send({"type": "ping"})
    assert (await page.next())["type"] == "pong"
    await page.close()


async def test_a_socket_closed_with_a_full_inbox_finishes_its_frames_and_goes(gateway, shop):
    # The end marker was skipped when the inbox was full: the worker handled the frames, then
    # waited for a marker that never came, holding the socket (and its subscription) for 30 s.
    shop["channels"][0]["settings"].update(rate=1000, history=500)
    gw = await gateway(tenants=[shop])
    w = await Widget.connect(gw)
    await w.open()
    for _ in range(INBOX + 8):
        await w.send({"type": "text", "id": cid(), "text": "Bonjour"})
    visitor = w.visitor
    await w.close()
    start = time.monotonic()
    while time.monotonic() - start < 10:
        hub = hubmod._HUBS.get(id(gw.redis))
        if hub is None or not hub.conns:
            break
        await asyncio.sleep(0.05)
    assert hub is None or not hub.conns, "the closed socket is still held"
    # Drained, not dropped: every frame that found room in the inbox was handled.
    echoes = [f for f in await _outbox(gw, visitor) if f.get("role") == "visitor"]
    assert len(echoes) >= INBOX


async def test_a_blank_text_is_a_bad_frame_and_writes_nothing(gateway, shop):
    gw = await gateway(tenants=[shop])
    w = await Widget.connect(gw)
    msg = cid()
    await w.send({"type": "text", "id": msg, "text": " \n\t "})
    err = await w.next()
    assert err["type"] == "error" and err["code"] == "bad_frame" and err["id"] == msg
    assert "$.text" in err["message"]
    await w.send({"type": "ping"})
    assert (await w.next())["type"] == "pong"       # the socket lives, nothing else came
    assert await _outbox(gw, w.visitor) == []       # no empty bubble in the transcript
    assert await ob.newest(gw.redis, ob.conv_base("wc-shop", "web", w.visitor)) == 0
    await w.close()


async def test_a_binary_first_frame_is_refused_like_any_bad_hello(gateway, shop):
    gw = await gateway(tenants=[shop])
    ws = await gw.http.ws_connect(ws_url(gw))
    await ws.send_bytes(b'{"type":"hello"}')
    err = await ws.receive_json(timeout=10)
    assert err["type"] == "error" and err["code"] == "bad_frame"
    assert (await ws.receive(timeout=10)).type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    assert ws.close_code == 4400
    await ws.close()


@pytest.mark.parametrize("change", ["channel removed", "plugin disabled", "tenant deleted"])
async def test_a_socket_whose_channel_went_away_is_told_and_closed(gateway, shop, change):
    # The socket outlived its channel: each message stored its echo, then failed with
    # `internal, retry` (and a logged traceback), and the widget retried it forever.
    gw = await gateway(tenants=[shop])
    w = await Widget.connect(gw)
    await w.open()
    before = await _outbox(gw, w.visitor)
    if change == "tenant deleted":
        async with gw.http.delete(gw.url + "/admin/v1/tenants/wc-shop", headers=gw.admin_headers) as r:
            assert r.status in (200, 202, 204), await r.text()
        await gw.registry.invalidate("wc-shop")
    else:
        gone = copy.deepcopy(shop)
        gone["channels"] = []
        if change == "plugin disabled":
            gone["plugins"].pop("webchat")
        await gw.apply(gone)
    msg = cid()
    await w.send({"type": "text", "id": msg, "text": "Femme"})
    err = await w.next()
    assert err == {"type": "error", "code": "gone", "message": "this chat is no longer available",
                   "id": msg}
    assert (await w.next())["type"] == "closed" and w.ws.close_code == 4404
    # No echo for a message nobody handles (a deleted tenant's transcript went with it).
    assert await _outbox(gw, w.visitor) == ([] if change == "tenant deleted" else before)


async def test_a_ping_tells_an_idle_socket_its_channel_went_away(gateway, shop):
    # An idle page showed "Online" until the visitor wrote: the pong now comes only while the
    # channel exists; else `gone` (no id: no frame of the visitor is concerned) and 4404.
    gw = await gateway(tenants=[shop])
    w = await Widget.connect(gw)
    await w.open()
    await w.send({"type": "ping"})
    assert await w.next() == {"type": "pong"}
    gone = copy.deepcopy(shop)
    gone["channels"] = []
    await gw.apply(gone)
    await w.send({"type": "ping"})
    assert await w.next() == {"type": "error", "code": "gone", "message": "this chat is no longer available"}
    assert (await w.next())["type"] == "closed" and w.ws.close_code == 4404


async def test_errors_about_a_frame_carry_its_id_whenever_it_is_readable(gateway, shop):
    # An over-long text came back without its id (a blank one had it): the client could not
    # tell which message failed, and kept it pending.
    gw = await gateway(tenants=[shop])
    w = await Widget.connect(gw)
    long_id, big_id, pick_id = cid(), cid(), cid()
    await w.send({"type": "text", "id": long_id, "text": "x" * 4001})
    err = await w.next()
    assert err["code"] == "bad_frame" and err["id"] == long_id and "$.text" in err["message"]
    # Over the frame limit: not decoded for what it says, but its id is still read.
    await w.ws.send_str(json.dumps({"type": "text", "id": big_id, "text": "é" * 9000}))
    err = await w.next()
    assert err["code"] == "too_large" and err["id"] == big_id
    await w.send({"type": "choice", "id": pick_id, "payload": ""})
    err = await w.next()
    assert err["code"] == "bad_frame" and err["id"] == pick_id and "$.payload" in err["message"]
    # No readable id: none is made up, and what is not a client id is not echoed back.
    for frame in ({"type": "text", "id": "short", "text": "x"},
                  {"type": "text", "id": 12345678, "text": "x"},
                  {"type": "text", "id": "<img src=x onerror=alert(1)>", "text": "x"},
                  [{"id": "abcdefgh12"}]):
        await w.send(frame)
        err = await w.next()
        assert err["code"] == "bad_frame" and "id" not in err, (frame, err)
    await w.ws.send_str('{"type":"text","id":"abcdefgh12","text":')   # not JSON at all
    err = await w.next()
    assert err["code"] == "bad_frame" and "id" not in err
    assert await _outbox(gw, w.visitor) == []        # none of them was stored
    _, frames = await w.open()                       # and the socket still works
    assert frames
    await w.close()
