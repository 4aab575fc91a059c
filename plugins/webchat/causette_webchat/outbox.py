"""A visitor's conversation in Redis: numbered frames, the last N kept for resume, each
published to whichever gateway process holds the visitor's socket.

Keys (the `{tenant}` hash tag keeps a tenant's keys on one cluster node):
    cst:{tenant}:wc:{channel}:{visitor}        pub/sub channel of the visitor's sockets
    cst:{tenant}:wc:{channel}:{visitor}:n      newest seq
    cst:{tenant}:wc:{channel}:{visitor}:o      outbox: the last N frames, oldest first
    cst:{tenant}:wc:{channel}:{visitor}:k:ID   seq given to an idempotent frame
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from gateway.state import tenant_prefix

from .frames import frame_seq

_SRC = (Path(__file__).parent / "lua" / "outbox.lua").read_text()
ONCE_TTL = 24 * 3600   # seconds an idempotency key is kept, like the core's dedup keys


def conv_base(tenant: str, channel: str, visitor: str) -> str:
    return f"{tenant_prefix(tenant)}wc:{channel}:{visitor}"


async def append(redis: Any, base: str, frame: bytes, *, keep: int, ttl: int,
                 once: str = "") -> tuple[int, bool]:
    """Number, store and publish one frame (JSON object without `seq`) in one round trip.
    With `once`, a second call with the same key returns the first seq and adds nothing.
    Returns (seq, fresh)."""
    script = redis.register_script(_SRC)
    seq, fresh = await script(keys=(base + ":n", base + ":o", f"{base}:k:{once or '-'}"),
                              args=(frame, keep, ttl * 1000, base, "1" if once else "0",
                                    min(ttl, ONCE_TTL) * 1000))
    return int(seq), bool(fresh)


async def since(redis: Any, base: str, last_seq: int) -> tuple[list[bytes], int, bool]:
    """Frames after `last_seq`, the newest seq, and whether nothing in between was lost
    (False when the client is further behind than the kept history)."""
    async with redis.pipeline(transaction=False) as p:
        p.get(base + ":n")
        p.lrange(base + ":o", 0, -1)
        raw_newest, frames = await p.execute()
    newest = int(raw_newest or 0)
    if last_seq > newest:     # the conversation expired (or was erased): the client starts over
        return list(frames), newest, False
    out = [f for f in frames if frame_seq(f) > last_seq]
    first = frame_seq(out[0]) if out else newest + 1
    return out, newest, last_seq == 0 or first <= last_seq + 1


async def newest(redis: Any, base: str) -> int:
    return int(await redis.get(base + ":n") or 0)
