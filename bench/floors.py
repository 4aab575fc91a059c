"""The reference floors: the least a Python server can do for one webhook turn.

    python -m bench.floors --kind bare|redispy|lean --port P [--redis URL]

bare     aiohttp: check the signature, parse the JSON, answer a fixed reply.
redispy  + one GET and one SET of a ~500-byte msgpack session through redis-py asyncio, and the
         3-step button tree.
lean     the same through gateway.leanredis (one connection, concurrent commands pipelined,
         hiredis parser).
Each checks the same HMAC-SHA256 signature as Causette's webhook channel (about 2 µs), so the
floors do everything a turn must do except what Causette adds: dedup, ordering, events, plugins.
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import time

import msgspec
from aiohttp import web

from .common import ASK1, ASK2, DONE, HEADER, SECRET, FloorSession, floor_session_seed

TTL_MS = 7 * 24 * 3600 * 1000
KEY = SECRET.encode()


class Msg(msgspec.Struct):
    id: str
    sender: str = msgspec.field(name="from")
    text: str = ""
    payload: str = ""


_msg = msgspec.json.Decoder(Msg)
_enc = msgspec.json.Encoder()
_sess_enc = msgspec.msgpack.Encoder()
_sess_dec = msgspec.msgpack.Decoder(FloorSession)
R_ASK1, R_ASK2, R_DONE = (_enc.encode([ASK1]), _enc.encode([ASK2]), _enc.encode([DONE]))
IDS1 = {c["id"] for c in ASK1["choices"]}
IDS2 = {c["id"] for c in ASK2["choices"]}


def _verified(request: web.Request, body: bytes) -> bool:
    given = request.headers.get(HEADER, "")[7:]
    return hmac.compare_digest(hmac.new(KEY, body, hashlib.sha256).hexdigest(), given)


def advance(s: FloorSession, m: Msg) -> bytes:
    """The 3-step tree; returns the JSON reply."""
    s.last_in = time.time()
    s.msgs += 2
    if m.text == "bonjour" or not s.node:
        s.node, s.started, s.vars = "ask1", s.last_in, {}
        reply = R_ASK1
    elif s.node == "ask1" and m.payload in IDS1:
        s.vars["category"] = m.payload
        s.node, reply = "ask2", R_ASK2
    elif s.node == "ask2" and m.payload in IDS2:
        s.vars["size"] = m.payload
        s.node, reply = "", R_DONE
    else:
        reply = R_ASK1 if s.node == "ask1" else R_ASK2
    s.history = (s.history + [s.node or "done"])[-4:]
    return reply


def make_app(kind: str, redis_url: str = "") -> web.Application:
    app = web.Application()

    if kind == "bare":
        async def handle(request: web.Request) -> web.Response:
            body = await request.read()
            if not _verified(request, body):
                return web.Response(status=401)
            try:
                _msg.decode(body)
            except msgspec.DecodeError:
                return web.Response(status=400)
            return web.Response(body=R_ASK1, content_type="application/json")
    else:
        state: dict = {}

        async def open_redis(app: web.Application):
            if kind == "redispy":
                import redis.asyncio as aioredis
                client = aioredis.from_url(redis_url)
                state["get"] = client.get
                state["set"] = lambda k, v: client.set(k, v, px=TTL_MS)
            else:
                from gateway.leanredis import LeanRedis
                client = LeanRedis.from_url(redis_url)
                await client.connect()
                state["get"] = lambda k: client.execute(b"GET", k)
                state["set"] = lambda k, v: client.execute(b"SET", k, v, b"PX", TTL_MS)
            yield
            await client.aclose()

        app.cleanup_ctx.append(open_redis)
        prefix = f"floor:{kind}:"

        async def handle(request: web.Request) -> web.Response:
            body = await request.read()
            if not _verified(request, body):
                return web.Response(status=401)
            try:
                m = _msg.decode(body)
            except msgspec.DecodeError:
                return web.Response(status=400)
            key = prefix + m.sender
            raw = await state["get"](key)
            s = _sess_dec.decode(raw) if raw else floor_session_seed(m.sender)
            reply = advance(s, m)
            await state["set"](key, _sess_enc.encode(s))
            return web.Response(body=reply, content_type="application/json")

    app.router.add_post("/t/{tenant}/channels/{channel}", handle)
    return app


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kind", choices=("bare", "redispy", "lean"), required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--redis", default="")
    args = ap.parse_args()
    try:
        import uvloop  # same event loop as `causette serve`
        uvloop.install()
    except ImportError:
        pass
    web.run_app(make_app(args.kind, args.redis), host="127.0.0.1", port=args.port,
                access_log=None, print=lambda *_: print(f"floor {args.kind} on {args.port}", flush=True))


if __name__ == "__main__":
    main()
