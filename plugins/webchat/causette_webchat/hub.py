"""The sockets open on this process, and the Redis subscription that feeds them.

One pub/sub connection per process (per Redis client) subscribes to the channel of every
visitor that has a socket here, and hands each published frame to those sockets. A socket
joins before it reads the outbox, and holds live frames until the replay is out, so a
resumed client gets every frame once and in order. If the subscription breaks, frames may
have been missed: every socket is closed, and the clients reconnect and resume.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Any

from aiohttp import WSCloseCode, web

from .channel import MAX_HISTORY
from .frames import frame_seq

log = logging.getLogger("causette.webchat")
QUEUE = 256          # frames waiting for a slow socket before it is closed (it will resume)
JOIN_TIMEOUT = 5.0   # seconds to wait for Redis to confirm a subscription


class Conn:
    """One open socket: its ordered outgoing queue and the newest seq it was given."""
    __slots__ = ("ws", "queue", "last", "held", "_closing")

    def __init__(self, ws: web.WebSocketResponse, last: int = 0):
        self.ws = ws
        # A new page's replay (ready, then up to MAX_HISTORY frames) is queued all at once,
        # before the pump writes any: room for it on top of QUEUE, or a long history would
        # close every new page's socket as "too slow" before it got past frame 255.
        self.queue: asyncio.Queue[str | tuple[int, str] | None] = asyncio.Queue(QUEUE + MAX_HISTORY + 1)
        self.last = last
        self.held: list[tuple[str, int]] | None = []   # live frames held until the replay is out
        self._closing: asyncio.Task | None = None

    def send(self, raw: str) -> None:
        """Queue a frame for this socket (ready, ack, error, pong: frames without a seq)."""
        try:
            self.queue.put_nowait(raw)
        except asyncio.QueueFull:
            self.close(WSCloseCode.TRY_AGAIN_LATER, "too slow")

    def publish(self, raw: str, seq: int) -> None:
        """Queue a numbered conversation frame unless this socket already has it."""
        if self.held is not None:
            self.held.append((raw, seq))
            return
        if seq <= self.last:
            return
        self.last = seq
        self.send(raw)

    def replay(self, frames: list[tuple[str, int]]) -> None:
        """Send the frames the client missed, then what arrived live meanwhile, each once."""
        for raw, seq in frames:
            if seq > self.last:
                self.last = seq
                self.send(raw)
        self.release()

    def release(self) -> None:
        """The replay is out: send what arrived meanwhile, then go live."""
        held, self.held = self.held or [], None
        for raw, seq in held:
            self.publish(raw, seq)

    def close(self, code: int, why: str) -> None:
        if self._closing is None and not self.ws.closed:
            self._closing = asyncio.ensure_future(self.ws.close(code=code, message=why.encode()))

    def finish(self, code: int, why: str) -> None:
        """Close once the frames queued before (an error frame saying why) are written."""
        try:
            self.queue.put_nowait((code, why))
        except asyncio.QueueFull:
            self.close(code, why)

    async def pump(self) -> None:
        """Write queued frames in order; ends at None or when the socket goes."""
        while True:
            raw = await self.queue.get()
            if raw is None or self.ws.closed:
                return
            if isinstance(raw, tuple):    # finish()
                self.close(*raw)
                return
            try:
                await self.ws.send_str(raw)
            except (ConnectionError, RuntimeError):
                return


class Hub:
    def __init__(self, redis: Any):
        self.redis = redis
        self.conns: dict[str, set[Conn]] = {}
        self._ready: dict[str, asyncio.Future] = {}
        self._pubsub: Any = None
        self._task: asyncio.Task | None = None
        self._lock = asyncio.Lock()
        # A channel of its own keeps the subscription (and the listener) alive between visitors.
        self._home = f"cst:wc:proc:{uuid.uuid4().hex}"

    async def join(self, chan: str, conn: Conn) -> None:
        """Deliver `chan`'s frames to `conn` from now on; returns once Redis confirmed it."""
        async with self._lock:
            peers = self.conns.get(chan)
            if self._task is not None and self._task.done():   # the subscription broke
                await self._stop()
            if self._pubsub is None:
                await self._start()
                for other in self.conns:
                    await self._pubsub.subscribe(other)
            if peers is None:
                peers = self.conns[chan] = set()
                self._ready[chan] = asyncio.get_running_loop().create_future()
                await self._pubsub.subscribe(chan)
            peers.add(conn)
            ready = self._ready.get(chan)
        if ready is not None:
            await asyncio.wait_for(asyncio.shield(ready), JOIN_TIMEOUT)

    async def leave(self, chan: str, conn: Conn) -> None:
        async with self._lock:
            peers = self.conns.get(chan)
            if peers is None:
                return
            peers.discard(conn)
            if peers:
                return
            del self.conns[chan]
            self._ready.pop(chan, None)
            if not self.conns:
                await self._stop()   # nothing to listen for: free the connection
                if _HUBS.get(id(self.redis)) is self:
                    del _HUBS[id(self.redis)]
            else:
                with contextlib.suppress(Exception):
                    await self._pubsub.unsubscribe(chan)

    async def _start(self) -> None:
        self._pubsub = self.redis.pubsub()
        await self._pubsub.subscribe(self._home)
        self._task = asyncio.create_task(self._listen(self._pubsub))

    async def _stop(self) -> None:
        task, pubsub = self._task, self._pubsub
        self._task = self._pubsub = None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if pubsub is not None:
            with contextlib.suppress(Exception):
                await pubsub.aclose()

    async def _listen(self, pubsub: Any) -> None:
        try:
            async for msg in pubsub.listen():
                kind = msg.get("type")
                chan = msg.get("channel")
                if isinstance(chan, bytes):
                    chan = chan.decode()
                if kind == "subscribe":
                    fut = self._ready.pop(chan, None)
                    if fut is not None and not fut.done():
                        fut.set_result(None)
                elif kind == "message":
                    data = msg["data"]
                    raw = data.decode() if isinstance(data, bytes) else data
                    seq = frame_seq(raw)
                    for conn in list(self.conns.get(chan, ())):
                        conn.publish(raw, seq)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("webchat subscription lost (%s): closing %d sockets so they resume",
                        type(exc).__name__, sum(map(len, self.conns.values())))
            for fut in self._ready.values():
                if not fut.done():
                    fut.set_exception(ConnectionError("subscription lost"))
            for peers in self.conns.values():
                for conn in peers:
                    conn.close(WSCloseCode.SERVICE_RESTART, "reconnect")


_HUBS: dict[int, Hub] = {}


def hub_for(redis: Any) -> Hub:
    """The hub of this process for one Redis client (one per gateway app)."""
    hub = _HUBS.get(id(redis))
    if hub is None or hub.redis is not redis:
        hub = _HUBS[id(redis)] = Hub(redis)
    return hub
