"""The bench's own load generator, for machines without wrk.

    python -m bench.loadgen --url http://127.0.0.1:P --connections 64 --duration 20 --prefix X

Same bodies as bench/wrk.lua (bench.common.body), HTTP/1.1 keep-alive, one request in flight
per connection, closed loop like wrk. Written on bare asyncio protocols rather than aiohttp's
client: aiohttp's client costs ~60 µs a request, which would make the load generator, not the
server, the limit for the fast floors. Prints one line `BENCH_JSON {...}` like wrk.lua's.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import time
from urllib.parse import urlparse

from .common import body, sign


class _Conn(asyncio.Protocol):
    def __init__(self, gen: "Generator"):
        self.gen = gen
        self.buf = b""
        self.t0 = 0.0
        self.transport: asyncio.Transport | None = None
        self.ready = asyncio.get_running_loop().create_future()

    def connection_made(self, transport):
        self.transport = transport
        self.ready.set_result(None)

    def fire(self) -> None:
        if self.gen.stopping:
            self.transport.close()
            return
        self.t0 = time.perf_counter()
        self.transport.write(self.gen.next_request())

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end]
            length = 0
            for line in head.split(b"\r\n")[1:]:
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if len(self.buf) < end + 4 + length:
                return
            status = int(head[9:12])
            self.buf = self.buf[end + 4 + length:]
            self.gen.done(status, time.perf_counter() - self.t0, end + 4 + length)
            self.fire()

    def connection_lost(self, exc):
        if not self.gen.stopping:
            self.gen.errors["read"] += 1


class Generator:
    def __init__(self, host: str, port: int, prefix: str, tenants: int):
        self.host, self.port, self.prefix, self.tenants = host, port, prefix, tenants
        self.n = -1
        self.stopping = False
        self.lat: list[float] = []
        self.bytes = 0
        self.errors = {"connect": 0, "read": 0, "write": 0, "status": 0, "timeout": 0}

    def next_request(self) -> bytes:
        self.n += 1
        path, raw = body(self.prefix, self.n, self.tenants)
        return (f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                f"Content-Type: application/json\r\nX-Causette-Signature: {sign(raw)}\r\n"
                f"Content-Length: {len(raw)}\r\n\r\n").encode() + raw

    def done(self, status: int, seconds: float, size: int) -> None:
        self.lat.append(seconds)
        self.bytes += size
        if status > 399:
            self.errors["status"] += 1


async def run(url: str, connections: int, duration: float, prefix: str, tenants: int) -> dict:
    u = urlparse(url)
    gen = Generator(u.hostname or "127.0.0.1", u.port or 80, prefix, tenants)
    loop = asyncio.get_running_loop()
    conns = []
    for _ in range(connections):
        try:
            _, c = await loop.create_connection(lambda: _Conn(gen), gen.host, gen.port)
            conns.append(c)
        except OSError:
            gen.errors["connect"] += 1
    t0 = time.perf_counter()
    for c in conns:
        c.fire()
    await asyncio.sleep(duration)
    gen.stopping = True
    elapsed = time.perf_counter() - t0
    for c in conns:
        c.transport.close()
    lat = sorted(gen.lat)

    def pct(p: float) -> int:
        return int(lat[min(len(lat) - 1, int(len(lat) * p / 100))] * 1e6) if lat else 0
    return {"requests": len(lat), "duration_us": int(elapsed * 1e6), "bytes": gen.bytes, **gen.errors,
            "p50": pct(50), "p90": pct(90), "p99": pct(99), "max": int(lat[-1] * 1e6) if lat else 0,
            "mean": (sum(lat) / len(lat) * 1e6) if lat else 0.0}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--duration", type=float, default=20)
    ap.add_argument("--prefix", default="run")
    ap.add_argument("--tenants", type=int, default=1)
    a = ap.parse_args()
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    res = asyncio.run(run(a.url, a.connections, a.duration, a.prefix, a.tenants))
    print("BENCH_JSON " + json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
