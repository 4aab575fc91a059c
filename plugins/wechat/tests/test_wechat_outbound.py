"""WeChat outbound: a reply -> the exact customer-service / template API requests a fake
WeChat API on 127.0.0.1 sees; errcodes -> typed SendResults; access tokens fetched once."""
from __future__ import annotations

import json

import pytest
from aiohttp import web
from causette_wechat import WeChatChannel
from causette_wechat import channel as wechat_channel
from causette_wechat.channel import Settings

from gateway.types import Card, Choice, Media, Reply, TemplateRef

USER = "oR5Gjjl_eiZoUpGozMo7dbBJ362A"


@pytest.fixture(autouse=True)
def _fresh_tokens():
    wechat_channel._tokens.clear()
    yield
    wechat_channel._tokens.clear()


def channel(provider, http, **kw) -> WeChatChannel:
    s = dict(token="t", access_token="ACCESS_TOKEN_1", api_base=provider.url)
    s.update(kw)
    return WeChatChannel("demo", "wechat-main", Settings(**s), http=http)


def text(t):
    return {"msgtype": "text", "text": {"content": t}}


RENDER = [
    ("text", Reply(text="您的订单已发货"), [text("您的订单已发货")]),
    ("choices become numbered options",
     Reply(text="Que cherchez-vous ?", choices=[Choice(id="w", title="Femme"),
                                                Choice(id="m", title="Homme")]),
     [text("Que cherchez-vous ?\n1. Femme\n2. Homme")]),
    ("cards become one news article each; their buttons numbered after the choices",
     Reply(text="Nos bonnets", choices=[Choice(id="more", title="Plus")],
           cards=[Card(title="Bonnet", subtitle="25 €", url="https://shop/b", image="https://cdn/b.jpg",
                       buttons=[Choice(id="buy_b", title="Acheter")]),
                  Card(title="Gants", url="https://shop/g")]),
     [text("Nos bonnets\n1. Plus\n2. Acheter"),
      {"msgtype": "news", "news": {"articles": [{"title": "Bonnet", "description": "25 €",
                                                 "url": "https://shop/b", "picurl": "https://cdn/b.jpg"}]}},
      {"msgtype": "news", "news": {"articles": [{"title": "Gants", "url": "https://shop/g"}]}}]),
    ("media with a WeChat media id, media with only a URL as a link",
     Reply(media=[Media(kind="image", id="MEDIA_1"), Media(kind="video", url="https://cdn/v.mp4",
                                                           caption="Le film")]),
     [text("Le film\nhttps://cdn/v.mp4"), {"msgtype": "image", "image": {"media_id": "MEDIA_1"}}]),
    ("template (outside the 48 h window)",
     Reply(template=TemplateRef(name="ngqIpbwh8bUfcSsECmogfXcV14J0tQlEpBO27izEYtY",
                                params=["A123", "已发货"]),
           cards=[Card(title="Commande", url="https://shop.example.com/o/A123")]),
     [{"msgtype": "template", "template_id": "ngqIpbwh8bUfcSsECmogfXcV14J0tQlEpBO27izEYtY",
       "data": {"keyword1": {"value": "A123"}, "keyword2": {"value": "已发货"}},
       "url": "https://shop.example.com/o/A123"}]),
]


@pytest.mark.parametrize("label,reply,expected", RENDER, ids=[c[0] for c in RENDER])
async def test_wechat_send_table(label, reply, expected, provider, http):
    ch = channel(provider, http)
    payloads = ch.render(reply)
    assert payloads == expected
    for p in payloads:
        provider.answer(200, {"errcode": 0, "errmsg": "ok", **({"msgid": 200228332}
                                                               if p["msgtype"] == "template" else {})})
        res = await ch.send(USER, p, key="k")
        assert res.status == "sent"
    for req, p in zip(provider.requests, expected, strict=True):
        assert req["method"] == "POST"
        assert req["query"] == {"access_token": "ACCESS_TOKEN_1"}
        body = json.loads(req["body"])
        if p["msgtype"] == "template":
            assert req["path"] == "/cgi-bin/message/template/send"
            want = {k: v for k, v in p.items() if k != "msgtype"}
        else:
            assert req["path"] == "/cgi-bin/message/custom/send"
            want = dict(p)
        assert body == {"touser": USER, **want}


def test_wechat_long_text_is_split_by_utf8_bytes():
    ch = WeChatChannel("demo", "w", Settings(token="t"))
    parts = [p["text"]["content"] for p in ch.render(Reply(text="订单" * 1000))]
    assert all(len(p.encode()) <= 2048 for p in parts) and "".join(parts) == "订单" * 1000


async def test_wechat_template_send_returns_msgid(provider, http):
    provider.answer(200, {"errcode": 0, "errmsg": "ok", "msgid": 200228332})
    ch = channel(provider, http)
    [p] = ch.render(Reply(template=TemplateRef(name="tpl", params=["x"])))
    res = await ch.send(USER, p, key="k")
    assert (res.status, res.provider_id) == ("sent", "200228332")


ERRORS = [
    # label, answers (status, json), expected (status, code), requests
    ("45015: out of the 48 h window", [(200, {"errcode": 45015, "errmsg": "response out of time limit"})],
     ("failed", "45015"), 1),
    ("45047: customer-service quota", [(200, {"errcode": 45047, "errmsg": "out of response count limit"})],
     ("failed", "45047"), 1),
    ("45009: daily API quota", [(200, {"errcode": 45009, "errmsg": "reach max api daily quota limit"})],
     ("retry", "45009"), 1),
    ("43004: the user unfollowed", [(200, {"errcode": 43004, "errmsg": "require subscribe"})],
     ("stopped", "43004"), 1),
    ("40003: invalid openid", [(200, {"errcode": 40003, "errmsg": "invalid openid"})],
     ("failed", "40003"), 1),
    ("-1 busy, then ok", [(200, {"errcode": -1, "errmsg": "system error"}), (200, {"errcode": 0})],
     ("sent", ""), 2),
    ("-1 busy three times", [(200, {"errcode": -1, "errmsg": "system error"})] * 3, ("retry", "-1"), 3),
    ("HTTP 503, then ok", [(503, {}), (200, {"errcode": 0, "errmsg": "ok"})], ("sent", ""), 2),
    ("HTTP 502 every time", [(502, {})] * 3, ("retry", "502"), 3),
]


@pytest.mark.parametrize("label,answers,expected,n", ERRORS, ids=[c[0] for c in ERRORS])
async def test_wechat_provider_errors(label, answers, expected, n, provider, http):
    for status, body in answers:
        provider.answer(status, body)
    ch = channel(provider, http)
    res = await ch.send(USER, ch.render(Reply(text="x"))[0], key="k")
    assert (res.status, res.code) == expected
    assert len(provider.requests) == n
    if expected[0] == "retry":
        assert res.retry_after > 0


async def test_wechat_timeouts_are_retried_then_reported(provider, http):
    provider.answer(200, {"errcode": 0}, delay=2)
    provider.answer(200, {"errcode": 0}, delay=2)
    ch = channel(provider, http, timeout=0.2, attempts=2)
    res = await ch.send(USER, ch.render(Reply(text="x"))[0], key="k")
    assert (res.status, res.code) == ("retry", "timeout")


# --- access tokens from AppID / AppSecret -----------------------------------------------

@pytest.fixture
def token_endpoint(provider):
    calls: list[dict] = []

    async def token(request: web.Request, body: bytes) -> web.Response:
        calls.append(dict(request.query))
        return web.json_response({"access_token": f"TOKEN_{len(calls)}", "expires_in": 7200})

    provider.routes["/cgi-bin/token"] = token
    return calls


async def test_wechat_access_token_is_fetched_once_and_cached(provider, http, token_endpoint):
    ch = channel(provider, http, access_token="", app_id="wxAPP", app_secret="APPSECRET")
    other = channel(provider, http, access_token="", app_id="wxAPP", app_secret="APPSECRET")
    for c in (ch, other, ch):
        provider.answer(200, {"errcode": 0, "errmsg": "ok"})
        assert (await c.send(USER, c.render(Reply(text="x"))[0], key="k")).status == "sent"
    assert token_endpoint == [{"grant_type": "client_credential", "appid": "wxAPP",
                               "secret": "APPSECRET"}]
    assert {r["query"]["access_token"] for r in provider.requests} == {"TOKEN_1"}


async def test_wechat_expired_token_is_refreshed_once(provider, http, token_endpoint):
    provider.answer(200, {"errcode": 42001, "errmsg": "access_token expired"})
    provider.answer(200, {"errcode": 0, "errmsg": "ok"})
    ch = channel(provider, http, access_token="", app_id="wxAPP", app_secret="APPSECRET")
    assert (await ch.send(USER, ch.render(Reply(text="x"))[0], key="k")).status == "sent"
    assert [r["query"]["access_token"] for r in provider.requests] == ["TOKEN_1", "TOKEN_2"]


async def test_wechat_token_endpoint_error_is_reported(provider, http):
    async def token(request, body):
        return web.json_response({"errcode": 40125, "errmsg": "invalid appsecret"})
    provider.routes["/cgi-bin/token"] = token
    ch = channel(provider, http, access_token="", app_id="wxAPP", app_secret="WRONG")
    res = await ch.send(USER, ch.render(Reply(text="x"))[0], key="k")
    assert (res.status, res.code) == ("failed", "40125")
    assert provider.requests == []


async def test_wechat_without_credentials_fails_clearly(provider, http):
    ch = channel(provider, http, access_token="")
    res = await ch.send(USER, ch.render(Reply(text="x"))[0], key="k")
    assert (res.status, res.code) == ("failed", "config")
