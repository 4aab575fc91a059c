"""The widget's WebSocket against the whole gateway: real Redis, real HTTP on 127.0.0.1."""
from __future__ import annotations

import asyncio
import copy
import json

import aiohttp
import pytest

from causette_webchat.tokens import visitor_token

from wc_support import SHOP, Widget, bot, choices_of, cid, ws_url


@pytest.fixture
def shop():
    return copy.deepcopy(SHOP)


async def test_conversation_over_the_socket(gateway, shop):
    gw = await gateway(tenants=[shop])
    w = await Widget.connect(gw)
    assert w.ready["visitor"].startswith("v_") and w.ready["seq"] == 0
    ack, frames = await w.open()
    texts = [f["text"] for f in bot(frames)]
    assert texts[0].startswith("Bonjour !") and "Pour qui" in texts[-1]
    assert [c["id"] for c in choices_of(frames)] == ["women", "men"]
    assert [f["seq"] for f in frames] == list(range(1, len(frames) + 1))
    ack, frames = await w.click(choices_of(frames)[0])
    assert frames[0]["role"] == "visitor" and frames[0]["text"] == "Femme"   # the echo
    assert bot(frames)[-1]["text"] == "Merci, voici nos offres women !"
    assert not ack.get("duplicate")
    await w.close()


async def test_resume_after_a_dropped_socket_gets_the_missed_replies_once(gateway, shop):
    gw = await gateway(tenants=[shop])
    w = await Widget.connect(gw)
    _, frames = await w.open()
    seen = w.last_seq
    # The visitor clicks, and the socket dies before the answer arrives.
    click = cid()
    await w.send({"type": "choice", "id": click, "payload": "men", "text": "Homme"})
    await w.close()
    again = await Widget.connect(gw, visitor=w.visitor, token=w.token, last_seq=seen)
    assert again.ready["resumed"] is True
    # The widget resends what was never acked, with the same id: no second reply.
    await again.send({"type": "choice", "id": click, "payload": "men", "text": "Homme"})
    ack, _ = await again.until_ack(click)
    assert ack["duplicate"] is True
    async with asyncio.timeout(15):     # replayed, or live if the first turn is still running
        while not any(f["text"].startswith("Merci") for f in again.frames):
            await again.next()
    assert [f["text"] for f in again.frames] == ["Homme", "Merci, voici nos offres men !"]
    assert [f["seq"] for f in again.frames] == [seen + 1, seen + 2]
    await again.send({"type": "ping"})
    assert (await again.next())["type"] == "pong"
    assert len(again.frames) == 2
    await again.close()


async def test_a_new_page_gets_the_kept_history(gateway, shop):
    gw = await gateway(tenants=[shop])
    w = await Widget.connect(gw)
    _, frames = await w.open()
    await w.close()
    page2 = await Widget.connect(gw, visitor=w.visitor, token=w.token, last_seq=0)
    want = len(frames)
    while len(page2.frames) < want:
        await page2.next()
    assert [f["seq"] for f in page2.frames] == [f["seq"] for f in frames]
    await page2.close()


async def test_a_resent_message_id_gets_no_second_reply(gateway, shop):
    gw = await gateway(tenants=[shop])
    w = await Widget.connect(gw)
    await w.open()
    msg = cid()
    ack1, first = await w.say("Femme", msg)
    assert bot(first)
    ack2, second = await w.say("Femme", msg)
    assert ack2["duplicate"] is True and second == [] and ack2["seq"] == ack1["seq"]
    # Nothing else arrives: a ping is answered before any late frame could be.
    await w.send({"type": "ping"})
    assert (await w.next())["type"] == "pong"
    await w.close()


async def test_a_foreign_visitor_token_is_refused(gateway, shop):
    gw = await gateway(tenants=[shop])
    alice = await Widget.connect(gw)
    await alice.open()
    mallory = await Widget.connect(gw)
    thief = await Widget.connect(gw, visitor=alice.visitor, token=mallory.token)
    assert thief.error["code"] == "bad_token"
    assert (await thief.next())["type"] == "closed" and thief.ws.close_code == 4403
    forged = visitor_token(b"not-the-gateway-secret", "wc-shop", "web", alice.visitor)
    thief2 = await Widget.connect(gw, visitor=alice.visitor, token=forged)
    assert thief2.error["code"] == "bad_token"
    # Alice's own token still works, and her conversation is intact.
    back = await Widget.connect(gw, visitor=alice.visitor, token=alice.token, last_seq=alice.last_seq)
    assert back.ready["resumed"] and back.ready["seq"] == alice.last_seq
    for w in (alice, mallory, thief, thief2, back):
        await w.close()


async def test_malformed_frames_get_error_frames_and_the_socket_lives(gateway, shop):
    gw = await gateway(tenants=[shop])
    w = await Widget.connect(gw)
    await w.ws.send_str("{not json")
    assert (await w.next())["code"] == "bad_frame"
    await w.send({"type": "text", "id": "short", "text": "x"})
    err = await w.next()
    assert err["code"] == "bad_frame" and "$.id" in err["message"]
    await w.send({"type": "launch_missiles"})
    assert (await w.next())["code"] == "bad_frame"
    await w.ws.send_str(json.dumps({"type": "text", "id": cid(), "text": "x" * 3000}) + " " * 16000)
    assert (await w.next())["code"] == "too_large"
    await w.ws.send_bytes(b"\x00\x01")
    assert (await w.next())["code"] == "bad_frame"
    await w.send({"type": "hello"})
    assert (await w.next())["code"] == "bad_frame"
    _, frames = await w.open()            # still a working conversation
    assert bot(frames)
    await w.close()


async def test_hello_must_come_first(gateway, shop):
    gw = await gateway(tenants=[shop])
    ws = await gw.http.ws_connect(ws_url(gw))
    await ws.send_json({"type": "text", "id": cid(), "text": "Bonjour"})
    err = await ws.receive_json(timeout=10)
    assert err == {"type": "error", "code": "hello_first", "message": "the first frame must be hello"}
    assert (await ws.receive(timeout=10)).type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    await ws.close()


async def test_origins(gateway, shop):
    gw = await gateway(tenants=[shop])
    ok = await Widget.connect(gw, origin="https://shop.example")
    assert ok.ready
    own = await Widget.connect(gw, origin=gw.url)          # the demo page is served by the gateway
    assert own.ready
    before = {k async for k in gw.redis.scan_iter("cst:*")}
    # A refused origin gets the upgrade, then a reason and a close code the widget can read
    # (a 403 before the upgrade reached the browser as a bare failed handshake: retried for ever).
    ws = await gw.http.ws_connect(ws_url(gw), headers={"Origin": "https://evil.example"})
    await ws.send_json({"type": "hello"})
    err = await ws.receive_json(timeout=10)
    assert err == {"type": "error", "code": "origin_not_allowed",
                   "message": "this page's origin may not open the chat"}
    closing = await ws.receive(timeout=10)
    assert closing.type == aiohttp.WSMsgType.CLOSE and closing.extra == "origin not allowed"
    assert ws.close_code == 4401
    await ws.close()
    assert {k async for k in gw.redis.scan_iter("cst:*")} == before   # nothing of it was kept
    # Not a WebSocket: still a plain 403.
    async with gw.http.get(ws_url(gw).replace("ws", "http", 1),
                           headers={"Origin": "https://evil.example"}) as r:
        assert r.status == 403
    await ok.close()
    await own.close()


@pytest.mark.parametrize("where", ["no such channel", "channel removed"])
async def test_a_handshake_for_a_channel_that_is_gone_closes_4404(gateway, shop, where):
    # A widget still on a page (widget.js is cached five minutes) whose channel went away:
    # its reconnections were answered 404 before the upgrade and it retried for ever.
    gw = await gateway(tenants=[shop])
    tenant, channel = "wc-shop", "web"
    if where == "no such channel":
        channel = "nope"
    else:
        gone = copy.deepcopy(shop)
        gone["channels"] = []
        await gw.apply(gone)
    ws = await gw.http.ws_connect(ws_url(gw, tenant, channel))
    await ws.send_json({"type": "hello"})
    assert await ws.receive_json(timeout=10) == {"type": "error", "code": "gone",
                                                 "message": "this chat is no longer available"}
    assert (await ws.receive(timeout=10)).type == aiohttp.WSMsgType.CLOSE and ws.close_code == 4404
    await ws.close()
    async with gw.http.get(ws_url(gw, tenant, channel).replace("ws", "http", 1)) as r:
        assert r.status == 404                     # a plain GET still gets its 404


async def test_a_socket_for_a_deleted_tenant_is_closed_4404_by_the_gateway(gateway, shop):
    gw = await gateway(tenants=[shop])
    async with gw.http.post(gw.url + "/t/wc-shop/channels/web", data=b"{}") as r:
        assert r.status == 403 and "takes no webhook" in await r.text()    # the socket is the way in
    assert (await gw.admin("DELETE", "/tenants/wc-shop"))[0] == 204
    ws = await gw.http.ws_connect(ws_url(gw, "wc-shop", "web"))
    assert (await ws.receive(timeout=10)).type == aiohttp.WSMsgType.CLOSE and ws.close_code == 4404
    await ws.close()
    async with gw.http.get(ws_url(gw, "wc-shop", "web").replace("ws", "http", 1)) as r:
        assert r.status == 404 and r.content_type == "application/problem+json"


async def test_rate_limit(gateway, shop):
    shop["channels"][0]["settings"]["rate"] = 2
    gw = await gateway(tenants=[shop])
    w = await Widget.connect(gw)
    ids = [cid() for _ in range(4)]
    for i in ids:
        await w.send({"type": "text", "id": i, "text": "Bonjour"})
    limited = set()
    acked = set()
    async with asyncio.timeout(15):
        while len(limited) + len(acked) < len(ids):
            f = await w.next()
            if f["type"] == "error" and f["code"] == "rate_limited":
                assert f["retry"] is True
                limited.add(f["id"])
            elif f["type"] == "ack":
                acked.add(f["id"])
    assert acked == set(ids[:2]) and limited == set(ids[2:])
    await w.close()


async def test_reply_from_another_process_reaches_the_socket(gateway, shop):
    gw1 = await gateway(tenants=[shop])
    gw2 = await gateway()     # same Redis and store: a second gateway process
    w = await Widget.connect(gw1)
    await w.open()
    rt = await gw2.registry.get("wc-shop")
    await gw2.pipeline.agent(rt, rt.channels["web"], w.visitor, action="reply", agent="Julie",
                             text="Bonjour, c'est Julie du service client.")
    f = await w.next()
    while f["type"] != "message":
        f = await w.next()
    assert f["role"] == "agent" and f["agent"] == "Julie" and f["text"].startswith("Bonjour, c'est Julie")
    await w.close()


async def test_widget_script_and_demo_page(gateway, shop):
    gw = await gateway(tenants=[shop])
    async with gw.http.get(gw.url + "/t/wc-shop/widget.js") as r:
        assert r.status == 200 and r.content_type == "application/javascript"
        js = await r.text()
        etag = r.headers["ETag"]
    assert '"web": {"title": "Maison Test"' in js and "/*__CONFIG__*/null" not in js
    assert "allowed_origins" not in js and "shop.example" not in js    # settings stay server-side
    async with gw.http.get(gw.url + "/t/wc-shop/widget.js", headers={"If-None-Match": etag}) as r:
        assert r.status == 304
    assert "demo_page" not in js
    async with gw.http.get(gw.url + "/t/wc-shop/demo") as r:
        assert r.status == 404                     # no made-up sale page unless the brand asks
    shop["channels"][0]["settings"]["demo_page"] = True
    await gw.apply(shop)
    async with gw.http.get(gw.url + "/t/wc-shop/demo") as r:
        assert r.status == 200
        page = await r.text()
    assert '<script src="/t/wc-shop/widget.js" data-channel="web" async></script>' in page
    assert "Maison Test" in page and "Soldes" in page
    async with gw.http.get(gw.url + "/t/nobody/widget.js") as r:
        assert r.status == 404
    async with gw.http.get(ws_url(gw).replace("ws", "http", 1)) as r:
        assert r.status == 400                     # a plain GET is not a socket
    async with gw.http.get(ws_url(gw, channel="nope").replace("ws", "http", 1)) as r:
        assert r.status == 404


async def test_tenant_without_the_plugin_has_no_widget(gateway, shop):
    shop["plugins"].pop("webchat")
    shop["channels"] = []
    gw = await gateway(tenants=[shop])
    async with gw.http.get(gw.url + "/t/wc-shop/widget.js") as r:
        assert r.status == 404
    async with gw.http.get(gw.url + "/t/wc-shop/demo") as r:
        assert r.status == 404


async def test_the_demo_page_is_served_only_for_channels_that_turn_it_on(gateway, shop):
    shop["channels"] = [
        {"id": "site", "type": "webchat", "settings": {"title": "Boutique"}},
        {"id": "promo", "type": "webchat", "settings": {"title": "Promo", "demo_page": True}},
        {"id": "off", "type": "webchat", "settings": {"demo_page": False}},
    ]
    gw = await gateway(tenants=[shop])
    async with gw.http.get(gw.url + "/t/wc-shop/demo") as r:      # the first one that has it
        assert r.status == 200
        assert 'data-channel="promo"' in await r.text()
    async with gw.http.get(gw.url + "/t/wc-shop/demo?channel=promo") as r:
        assert r.status == 200
    for channel in ("site", "off", "nope"):
        async with gw.http.get(gw.url + f"/t/wc-shop/demo?channel={channel}") as r:
            assert r.status == 404, channel
            assert r.content_type == "application/problem+json"
    # Every widget still works; the setting only governs the demo page.
    for channel in ("site", "off"):
        w = await Widget.connect(gw, channel=channel)
        assert w.ready
        await w.close()
    # Turned off again: gone.
    shop["channels"][1]["settings"]["demo_page"] = False
    await gw.apply(shop)
    async with gw.http.get(gw.url + "/t/wc-shop/demo") as r:
        assert r.status == 404
    async with gw.http.get(gw.url + "/t/nobody/demo") as r:
        assert r.status == 404


async def test_the_admin_api_explains_a_bad_colour_and_keeps_the_widget(gateway, shop):
    gw = await gateway(tenants=[shop])
    status, _, body = await gw.admin("PUT", "/tenants/wc-shop/channels/web", {
        "type": "webchat", "settings": {"title": "Maison Test", "color": "rouge"}})
    assert status == 422
    [error] = body["errors"]
    assert error["path"] == "$.settings" and "regex" not in error["message"]
    assert error["message"].startswith("`color` must be a colour written #rrggbb, such as #4338ca")
    status, _, body = await gw.admin("PUT", "/tenants/wc-shop/channels/web", {
        "type": "webchat", "settings": {"title": "Maison Test", "color": "#0f766e", "demo_page": True}})
    assert status == 200, body
    assert body["settings"]["color"] == "#0f766e" and body["settings"]["demo_page"] is True


async def test_read_receipts_become_status_events(gateway, shop):
    gw = await gateway(tenants=[shop])
    w = await Widget.connect(gw)
    _, frames = await w.open()
    last = bot(frames)[-1]["id"]
    for _ in range(2):                     # said twice on one socket: recorded once
        await w.send({"type": "seen", "id": last})
    await w.send({"type": "seen", "id": "v_not_a_message_id"})
    assert (await w.next())["code"] == "bad_frame"
    await w.say("Femme")                   # frames are handled in order: the receipt is in
    await gw.flush_events()
    reads = await gw.store.list_events("wc-shop", type="message.status")
    assert [(e.contact, e.data) for e in reads] == [(w.visitor, {"status": "read", "refers_to": last})]
    sent = await gw.store.list_events("wc-shop", type="message.out")
    assert last in [e.data.get("provider_id") for e in sent]
    await w.close()

