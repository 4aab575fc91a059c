"""Calling a provider's API from a channel: bounded retries, Retry-After, no secrets in errors.

    out = await call(self.http, "POST", url, headers=..., data=body)
    if out.status == 200: ...
    if out.retryable: return SendResult(status="retry", retry_after=out.retry_after or 30)

Retries happen on 408/425/429, 5xx, timeouts and connection failures (or what `retryable`
says, for providers that signal throttling in a 200 or a 400 body). Waits between attempts
are short because a webhook is usually waiting on us; when the provider asks for a longer
pause than `wait_cap`, the call stops and the channel hands the pause back to the gateway as
SendResult(status="retry").
"""
from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Callable, Mapping

import aiohttp

RETRY_STATUSES = frozenset({408, 425, 429})


@dataclass
class Outcome:
    status: int                 # 0: no HTTP answer (timeout, connection failure)
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    error: str = ""             # "timeout" / "connection: <kind>" when status == 0
    retry_after: float = 0.0    # the provider's Retry-After, in seconds
    attempts: int = 0
    retryable: bool = False


def parse_retry_after(value: str | None) -> float:
    """Retry-After as seconds, whether given as a number or an HTTP date."""
    if not value:
        return 0.0
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, IndexError):
        return 0.0


def default_retryable(status: int, body: bytes) -> bool:
    return status == 0 or status in RETRY_STATUSES or status >= 500


async def call(http: aiohttp.ClientSession | None, method: str, url: str, *,
               headers: Mapping[str, str] | None = None, data: bytes | None = None,
               params: Mapping[str, str] | None = None, timeout: float = 10.0,
               attempts: int = 3, backoff: float = 0.2, wait_cap: float = 3.0,
               retryable: Callable[[int, bytes], bool] = default_retryable) -> Outcome:
    """One provider call with bounded retries; never raises for HTTP or network failures."""
    own = http is None
    if own:
        http = aiohttp.ClientSession()
    out = Outcome(status=0)
    try:
        for i in range(max(1, attempts)):
            try:
                async with http.request(method, url, headers=headers, data=data, params=params,
                                        timeout=aiohttp.ClientTimeout(total=timeout)) as r:
                    body = await r.read()
                    out = Outcome(status=r.status, body=body, headers=r.headers,
                                  retry_after=parse_retry_after(r.headers.get("Retry-After")))
            except TimeoutError:
                out = Outcome(status=0, error="timeout")
            except aiohttp.ClientError as e:
                # Only the kind: an exception's text can hold the URL, and some providers put
                # the access token in the URL.
                out = Outcome(status=0, error=f"connection: {type(e).__name__}")
            out.attempts = i + 1
            out.retryable = retryable(out.status, out.body)
            if not out.retryable or i == attempts - 1:
                return out
            delay = out.retry_after or backoff * (2 ** i) * (1 + random.random() / 2)
            if delay > wait_cap:
                return out
            await asyncio.sleep(delay)
        return out
    finally:
        if own:
            await http.close()
