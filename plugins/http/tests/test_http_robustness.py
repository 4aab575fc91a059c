"""The http.request step against answers and arguments that used to break a turn: integers
beyond 64 bits and deeply nested JSON (the session could not be saved, or rendering it
recursed past Python's limit), a header holding a line break, unreadable `save` paths."""
import msgspec
import pytest
from aiohttp import web

from causette_http import Args, HttpRequest, Settings
from causette_tree import TreeEngine
from gateway.flows import Context
from gateway.types import Session


@pytest.fixture
async def api(aiohttp_server):
    async def bigint(request):
        return web.Response(body=b'{"n": ' + b"9" * 30 + b', "m": -' + b"9" * 400 + b', "ok": 7}',
                            content_type="application/json")

    async def deep(request):
        return web.Response(body=b'{"d": ' + b"[" * 900 + b"]" * 900 + b', "e": [[1]]}',
                            content_type="application/json")

    async def echo(request):
        return web.json_response({"h": request.headers.get("X-Name", "")})

    app = web.Application()
    app.router.add_get("/bigint", bigint)
    app.router.add_get("/deep", deep)
    app.router.add_get("/echo", echo)
    return await aiohttp_server(app, host="127.0.0.1")


def ctx(session=None):
    return Context(tenant="demo", channel="web", channel_type="webchat", contact="c1",
                   session=session or Session(), settings={"http": Settings(allowed_hosts=["127.0.0.1"])})


async def test_integers_beyond_64_bits_are_saved_as_numbers_a_session_can_hold(api):
    res = await HttpRequest().run(ctx(), msgspec.convert(
        {"url": str(api.make_url("/bigint")), "save": {"n": "$.n", "m": "$.m", "ok": "$.ok"}}, Args))
    assert res.ok and res.vars["n"] == 1e30 and res.vars["m"] == float("-inf") and res.vars["ok"] == 7
    s = Session(vars=dict(res.vars))
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(s), type=Session).vars["n"] == 1e30


async def test_deeply_nested_answer_fails_the_step_instead_of_the_turn(api):
    res = await HttpRequest().run(ctx(), msgspec.convert(
        {"url": str(api.make_url("/deep")), "save": {"d": "$.d"}}, Args))
    assert not res.ok and "deeper than 32" in res.error and "d" not in res.vars
    res = await HttpRequest().run(ctx(), msgspec.convert(
        {"url": str(api.make_url("/deep")), "save": {"e": "$.e"}}, Args))
    assert res.ok and res.vars == {"e": [[1]]}


async def test_header_with_a_line_break_is_refused_not_raised(api):
    res = await HttpRequest().run(ctx(), msgspec.convert(
        {"url": str(api.make_url("/echo")), "headers": {"X-Name": "Léa\r\nX-Admin: 1"}}, Args))
    assert not res.ok and res.branch == "refused" and res.error.startswith("request not sent")


def test_unreadable_save_path_is_refused_at_publish():
    with pytest.raises(msgspec.ValidationError, match="a path starts with"):
        msgspec.convert({"url": "https://x.example", "save": {"p": "products"}}, Args)
    flow = {"format": 1, "id": "f", "start": "s", "nodes": {
        "s": {"type": "step", "step": "http.request",
              "with": {"url": "https://x.example", "save": {"p": "$.items[x"}}}}}
    codes = [p.code for p in TreeEngine().validate(flow, steps={"http.request": HttpRequest()})]
    assert "step.invalid_args" in codes
