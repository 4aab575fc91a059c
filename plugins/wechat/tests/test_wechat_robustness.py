"""WeChat inbound with a valid signature but odd content: DTDs are refused in any encoding
(a UTF-16 body hides `<!DOCTYPE` from a byte search, and its entities were expanded),
unreadable times and coordinates never become NaN or infinity, and a timestamp with more
digits than a float holds is refused without an exception in the log."""
from __future__ import annotations

import asyncio
import logging
import math
import time

import pytest
from causette_wechat import WeChatChannel
from causette_wechat import channel as wechat_channel
from causette_wechat.channel import Settings
from causette_wechat.crypto import signature

from gateway.channels import ParseError
from gateway.conformance import make_webhook
from gateway.state import conv_key

TOKEN = "robust-wechat-token"
USER = "oRobustUser_0123456789abcdefgh"


def channel() -> WeChatChannel:
    return WeChatChannel("wechat-shop", "wechat-main", Settings(token=TOKEN, app_id="wxrobust"))


def hook(body: bytes, **query: str):
    ts = query.pop("timestamp", str(int(time.time())))
    q = {"timestamp": ts, "nonce": "42", "signature": signature(TOKEN, ts, "42"), **query}
    return make_webhook(body=body, query=q, headers={"Content-Type": "text/xml"})


def xml(mtype: str, inner: str, create: str = "1795683600") -> bytes:
    return (f"<xml><ToUserName><![CDATA[gh_robust]]></ToUserName><FromUserName><![CDATA[{USER}]]>"
            f"</FromUserName><CreateTime>{create}</CreateTime><MsgType><![CDATA[{mtype}]]></MsgType>"
            f"{inner}</xml>").encode()


LAUGHS = ('<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">'
          '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>'
          '<xml><FromUserName>&c;</FromUserName><MsgType>text</MsgType><Content>&c;</Content>'
          '<MsgId>1</MsgId></xml>')


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_dtd_in_another_encoding_is_refused(encoding):
    ch = channel()
    h = hook(LAUGHS.replace('"UTF-16"', f'"{encoding.upper()}"').encode(encoding))
    assert ch.verify(h)                        # plain mode: the query is what is signed
    with pytest.raises(ParseError):            # "DTDs are not accepted", or an encoding expat refuses
        ch.parse(h)


def test_plain_xml_still_parses():
    [m] = channel().parse(hook(xml("text", "<Content><![CDATA[查订单 😀]]></Content><MsgId>7</MsgId>")))
    assert (m.native_id, m.contact, m.text, m.ts) == ("7", USER, "查订单 😀", 1795683600.0)


@pytest.mark.parametrize("create", ["nan", "inf", "-inf", "1e400"])
def test_unreadable_create_time_is_zero(create):
    [m] = channel().parse(hook(xml("text", "<Content>hi</Content><MsgId>8</MsgId>", create)))
    assert m.ts == 0.0 and math.isfinite(m.ts)


@pytest.mark.parametrize("x,y", [("nan", "1"), ("1", "inf"), ("1e400", "2")])
def test_non_finite_location_is_unreadable(x, y):
    with pytest.raises(ParseError, match="location"):
        channel().parse(hook(xml("location", f"<Location_X>{x}</Location_X><Location_Y>{y}</Location_Y>"
                                             "<MsgId>9</MsgId>")))


def test_huge_timestamp_is_refused_without_raising():
    ch = channel()
    ts = "9" * 400                             # an int, but no float holds it
    h = hook(xml("text", "<Content>hi</Content><MsgId>10</MsgId>"), timestamp=ts, echostr="e")
    assert ch.verify(h) is False
    get = make_webhook("GET", query=dict(h.query))
    resp = asyncio.run(ch.handshake(get))
    assert resp.status == 403


# --- through the whole gateway -------------------------------------------------------------
@pytest.fixture(autouse=True)
def _fresh_tokens():
    wechat_channel._tokens.clear()
    yield
    wechat_channel._tokens.clear()


def tenant(provider):
    return {"slug": "wechat-shop", "name": "WeChat shop", "locale": "fr", "plugins": {"tree": {}, "wechat": {}},
            "channels": [{"id": "wechat-main", "type": "wechat", "settings": {
                "token": TOKEN, "app_id": "wxrobust", "access_token": "robust-access-token",
                "api_base": provider.url, "attempts": 2}}],
            "flows": []}


async def test_gateway_refuses_the_utf16_dtd_and_stores_nothing(gateway, provider, caplog):
    gw = await gateway(tenants=[tenant(provider)])
    h = hook(LAUGHS.encode("utf-16"))
    url = f"{gw.url}/t/wechat-shop/channels/wechat-main"
    with caplog.at_level(logging.WARNING):
        async with gw.http.post(url, params=h.query, data=h.body, headers={"Content-Type": "text/xml"}) as r:
            assert r.status == 400
            assert "DTD" in await r.text()
        ts = "9" * 400
        q = {"timestamp": ts, "nonce": "42", "signature": signature(TOKEN, ts, "42"), "echostr": "e"}
        async with gw.http.get(url, params=q) as r:
            assert r.status == 403
    assert await gw.redis.keys(conv_key("wechat-shop", "wechat-main", "*")) == []
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
