"""One Graph API call with bounded retries on 429, 5xx, timeouts, connection failures and
the Graph error codes that mean "throttled, try again".

Kept inside the plugin (each channel distribution stands alone). Waits between attempts are
short because a webhook is waiting on us; when the provider asks for a longer pause than
`wait_cap`, we stop and hand the pause back as SendResult(status="retry").
"""
from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime

import aiohttp

RETRY_STATUSES = frozenset({408, 425, 429})


@dataclass
class Outcome:
    status: int                 # 0: no HTTP answer (timeout, connection failure)
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    error: str = ""             # "timeout" / "connection: ..." when status == 0
    retry_after: float = 0.0    # the provider's Retry-After, in seconds
    attempts: int = 0
    retryable: bool = False


def parse_retry_after(value: str | None) -> float:
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
                # the exception text can hold the URL; Messenger's carries the token in it when it sits in the query
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
