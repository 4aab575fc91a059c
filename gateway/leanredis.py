"""A lean asyncio Redis client: one connection, concurrent commands pipelined, hiredis parser.

redis-py's asyncio client spends most of a short command's cost in Python (connection pool
checkout, per-command parsing layers, a lock per connection): about 85 µs of CPU each on
our bench machine. A gateway turn sends two short commands, so that is the whole budget.

This client keeps one connection. `execute` packs the command (hiredis.pack_command), adds it
to a write buffer and a FIFO of futures, and returns the future. Everything written in the
same event-loop iteration goes out in one `transport.write`, so concurrent turns share one
round trip and one syscall; replies come back in order (Redis answers a connection's commands
in order), hiredis.Reader parses them, and each resolves the oldest waiting future.

Scripts: `register_script(source)` returns an object called like redis-py's
`Script(keys, args)`; it sends EVALSHA and falls back to EVAL (which also caches the script on
the server) when the server answers NOSCRIPT (restart, SCRIPT FLUSH, failover).

Connection loss fails every command in flight with `ConnectionError` (a command may or may not
have run: only the caller knows whether retrying it is safe); the next command reconnects.
"""
from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from typing import Any, Sequence
from urllib.parse import unquote, urlparse

import hiredis

__all__ = ["LeanRedis", "Script", "ReplyError", "from_url"]

ReplyError = hiredis.ReplyError


class _Batch:
    """The replies of a pipeline's commands, gathered into one future: a command's reply
    costs no future, callback or task of its own (the event flusher sends hundreds a round)."""
    __slots__ = ("fut", "left", "replies", "error")

    def __init__(self, fut: asyncio.Future, n: int):
        self.fut, self.left, self.replies, self.error = fut, n, [], None

    def add(self, reply: Any) -> bool:
        """Take the next reply; True once the last one has come."""
        if isinstance(reply, ReplyError) and self.error is None:
            self.error = reply
        self.replies.append(reply)
        self.left -= 1
        if self.left:
            return False
        if not self.fut.done():
            if self.error is not None:
                self.fut.set_exception(self.error)
            else:
                self.fut.set_result(self.replies)
        return True

    def fail(self, exc: Exception) -> None:
        if not self.fut.done():
            self.fut.set_exception(exc)


class _Protocol(asyncio.Protocol):
    __slots__ = ("reader", "waiting", "transport", "closed", "_buf", "_flush_scheduled", "_loop")

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.reader = hiredis.Reader()
        self.waiting: deque[asyncio.Future | _Batch] = deque()
        self.transport: asyncio.Transport | None = None
        self.closed: asyncio.Future = loop.create_future()
        self._buf: list[bytes] = []
        self._flush_scheduled = False
        self._loop = loop

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, packed: bytes) -> asyncio.Future:
        fut = self._loop.create_future()
        self.waiting.append(fut)
        self._buf.append(packed)
        if not self._flush_scheduled:
            # Coalesce every command issued in this loop iteration into one write.
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)
        return fut

    def send_many(self, packed: list[bytes]) -> asyncio.Future:
        """Several packed commands in order; one future for the list of their replies."""
        fut = self._loop.create_future()
        if not packed:
            fut.set_result([])
            return fut
        self.waiting.append(_Batch(fut, len(packed)))
        self._buf.extend(packed)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)
        return fut

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._buf and self.transport is not None and not self.transport.is_closing():
            data = b"".join(self._buf) if len(self._buf) > 1 else self._buf[0]
            self._buf.clear()
            self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        reader = self.reader
        reader.feed(data)
        waiting = self.waiting
        while True:
            reply = reader.gets()
            if reply is False:
                return
            if not waiting:  # a reply nobody asked for: the stream is out of step
                self.transport.close()  # type: ignore[union-attr]
                return
            fut = waiting[0]
            if fut.__class__ is _Batch:
                if fut.add(reply):  # type: ignore[union-attr]
                    waiting.popleft()
                continue
            waiting.popleft()
            if fut.done():      # the caller was cancelled; its reply still arrives in order
                continue
            if isinstance(reply, ReplyError):
                fut.set_exception(reply)
            else:
                fut.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        err = ConnectionError(f"redis connection lost: {exc}" if exc else "redis connection closed")
        while self.waiting:
            fut = self.waiting.popleft()
            if fut.__class__ is _Batch:
                fut.fail(err)  # type: ignore[union-attr]
            elif not fut.done():
                fut.set_exception(err)  # type: ignore[union-attr]
        self._buf.clear()
        if not self.closed.done():
            self.closed.set_result(None)


class Script:
    """A Lua script called like redis-py's: `await script(keys, args)`."""
    __slots__ = ("client", "source", "sha")

    def __init__(self, client: "LeanRedis", source: str | bytes):
        self.client = client
        self.source = source.encode() if isinstance(source, str) else source
        self.sha = hashlib.sha1(self.source).hexdigest()

    def __call__(self, keys: Sequence[Any] = (), args: Sequence[Any] = (),
                 client: "LeanRedis | None" = None) -> Any:
        # A plain function returning the call's coroutine: one coroutine less per script call
        # on the hot path (two per turn).
        return (client or self.client).evalsha(self.sha, self.source, keys, args)


class LeanRedis:
    def __init__(self, host: str = "127.0.0.1", port: int = 6379, db: int = 0,
                 password: str | None = None, username: str | None = None,
                 connect_timeout: float = 5.0):
        self.host, self.port, self.db = host, port, db
        self.username, self.password = username, password
        self.connect_timeout = connect_timeout
        self._proto: _Protocol | None = None
        self._connecting: asyncio.Future | None = None
        self.reconnects = -1   # connections opened after the first

    @classmethod
    def from_url(cls, url: str, **kw: Any) -> "LeanRedis":
        u = urlparse(url)
        if u.scheme not in ("redis", ""):
            raise ValueError(f"unsupported redis URL scheme {u.scheme!r} (TLS: use redis-py)")
        db = int((u.path or "/0").lstrip("/") or 0)
        return cls(u.hostname or "127.0.0.1", u.port or 6379, db,
                   unquote(u.password) if u.password else None,
                   unquote(u.username) if u.username else None, **kw)

    # --- connection ---------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        p = self._proto
        return p is not None and p.transport is not None and not p.closed.done()

    async def connect(self) -> None:
        if self.connected:
            return
        if self._connecting is None:
            # One connection attempt, however many commands are waiting for it.
            self._connecting = asyncio.ensure_future(self._open())
            self._connecting.add_done_callback(self._connect_done)
        await asyncio.shield(self._connecting)

    def _connect_done(self, _fut: asyncio.Future) -> None:
        self._connecting = None

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        _, proto = await asyncio.wait_for(
            loop.create_connection(lambda: _Protocol(loop), self.host, self.port),
            self.connect_timeout)
        sock = proto.transport.get_extra_info("socket") if proto.transport else None
        if sock is not None:
            import socket
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            if self.password:
                auth = (b"AUTH", self.username, self.password) if self.username else (b"AUTH", self.password)
                await proto.send(hiredis.pack_command(auth))
            if self.db:
                await proto.send(hiredis.pack_command((b"SELECT", self.db)))
        except BaseException:
            proto.transport.close()  # type: ignore[union-attr]
            raise
        self._proto = proto
        self.reconnects += 1

    async def close(self) -> None:
        p, self._proto = self._proto, None
        if p is not None and p.transport is not None:
            p.transport.close()
            await p.closed

    aclose = close

    async def __aenter__(self) -> "LeanRedis":
        await self.connect()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    # --- commands -----------------------------------------------------------------------
    def _send(self, args: tuple[Any, ...]) -> asyncio.Future:
        return self._proto.send(hiredis.pack_command(args))  # type: ignore[union-attr]

    async def execute(self, *args: Any) -> Any:
        """Send one command and return its reply (bytes, int, list, None). A Redis error reply
        raises `ReplyError`; a lost connection raises `ConnectionError`."""
        p = self._proto
        if p is None or p.closed.done():
            await self.connect()
            p = self._proto
        return await p.send(hiredis.pack_command(args))  # type: ignore[union-attr]

    async def pipeline(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """Several commands in one write, their replies in order, behind one future. A Redis
        error reply raises `ReplyError` (the first one) once every reply has arrived."""
        p = self._proto
        if p is None or p.closed.done():
            await self.connect()
            p = self._proto
        pack = hiredis.pack_command
        return await p.send_many([pack(tuple(c)) for c in commands])  # type: ignore[union-attr]

    async def evalsha(self, sha: str, source: bytes | str, keys: Sequence[Any] = (),
                      args: Sequence[Any] = ()) -> Any:
        p = self._proto
        if p is None or p.closed.done():
            await self.connect()
            p = self._proto
        try:
            return await p.send(hiredis.pack_command((b"EVALSHA", sha, len(keys), *keys, *args)))  # type: ignore[union-attr]
        except ReplyError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
        return await self.execute(b"EVAL", source, len(keys), *keys, *args)

    def register_script(self, source: str | bytes) -> Script:
        return Script(self, source)

    # A few helpers with redis-py's names, for code that takes either client.
    async def get(self, key: Any) -> Any:
        return await self.execute(b"GET", key)

    async def set(self, key: Any, value: Any, px: int | None = None, ex: int | None = None) -> Any:
        args: list[Any] = [b"SET", key, value]
        if px is not None:
            args += [b"PX", px]
        if ex is not None:
            args += [b"EX", ex]
        return await self.execute(*args)

    async def delete(self, *keys: Any) -> int:
        return await self.execute(b"DEL", *keys)

    async def ping(self) -> Any:
        return await self.execute(b"PING")

    async def mget(self, *keys: Any) -> list[Any]:
        return await self.execute(b"MGET", *keys)


def from_url(url: str, **kw: Any) -> LeanRedis:
    return LeanRedis.from_url(url, **kw)
