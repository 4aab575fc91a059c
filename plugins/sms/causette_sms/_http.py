"""Bounded retries around one provider API call, shared by the SMS channels.

A send is retried inside the webhook's turn only for a short while (a few attempts,
backoff of a fraction of a second, Retry-After honoured up to `cap`); past that the
channel returns SendResult(status="retry", retry_after=...) and the gateway decides.
"""
from __future__ import annotations

import asyncio
import email.utils
import random
import time
from typing import Any, Awaitable, Callable

import aiohttp

from gateway.types import SendResult


class Answer:
    """What came back from one attempt: an HTTP answer, or the connection error."""
    __slots__ = ("status", "headers", "body", "error")

    def __init__(self, status: int = 0, headers: Any = None, body: bytes = b"", error: str = ""):
        self.status, self.headers, self.body, self.error = status, headers or {}, body, error


def retry_after(headers: Any, default: float = 0.0) -> float:
    """Seconds from a Retry-After header (delta-seconds or HTTP-date)."""
    raw = headers.get("Retry-After") if headers else None
    if not raw:
        return default
    try:
        return max(0.0, float(raw))
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(raw).timestamp()
        except (TypeError, ValueError):
            return default
        return max(0.0, when - time.time())


async def call(http: aiohttp.ClientSession | None, method: str, url: str, *, timeout: float,
               **kwargs: Any) -> Answer:
    own = http is None
    session = aiohttp.ClientSession() if own else http
    try:
        async with session.request(method, url, timeout=aiohttp.ClientTimeout(total=timeout),
                                   **kwargs) as resp:
            return Answer(resp.status, resp.headers, await resp.read())
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        return Answer(error=type(exc).__name__)
    finally:
        if own:
            await session.close()


async def with_retries(attempt: Callable[[], Awaitable[SendResult]], *, attempts: int = 3,
                       base: float = 0.25, cap: float = 5.0) -> SendResult:
    """Run `attempt` until it is not a retry, at most `attempts` times. A provider asking
    to wait longer than `cap` seconds ends the loop at once with its Retry-After."""
    result = SendResult(status="retry")
    for n in range(max(1, attempts)):
        result = await attempt()
        if result.status != "retry" or n + 1 >= attempts or result.retry_after > cap:
            return result
        backoff = min(cap, base * (2 ** n)) * (0.5 + random.random() / 2)
        await asyncio.sleep(max(result.retry_after, backoff))
    return result
