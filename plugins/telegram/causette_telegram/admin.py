"""Registering the gateway's webhook with Telegram (setWebhook), from Python or the shell.

    TELEGRAM_BOT_TOKEN=123:ABC causette-telegram set-webhook \\
        --url https://chat.example.com/t/acme/channels/tg --secret "$SECRET"
    TELEGRAM_BOT_TOKEN=123:ABC causette-telegram webhook-info

The token is read from the environment, never from the command line (shell history,
process lists).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
from typing import Any

import aiohttp

# The updates the channel understands; Telegram sends nothing else to the webhook.
ALLOWED_UPDATES = ["message", "callback_query", "my_chat_member"]


async def _post(http: aiohttp.ClientSession, api_base: str, token: str, method: str,
                body: dict[str, Any]) -> dict[str, Any]:
    async with http.post(f"{api_base.rstrip('/')}/bot{token}/{method}", json=body,
                         timeout=aiohttp.ClientTimeout(total=15)) as resp:
        try:
            out = await resp.json(content_type=None)
        except ValueError:
            out = None
        if not isinstance(out, dict):
            raise ValueError(f"HTTP {resp.status} with an answer that is not a JSON object")
        return out


async def set_webhook(http: aiohttp.ClientSession, token: str, url: str, secret_token: str, *,
                      api_base: str = "https://api.telegram.org", max_connections: int = 40,
                      drop_pending_updates: bool = False) -> dict[str, Any]:
    """Point the bot at `url` (https://<host>/t/<tenant>/channels/<channel_id>) with the
    channel's `secret_token`. Returns Telegram's answer ({"ok": true, ...})."""
    return await _post(http, api_base, token, "setWebhook", {
        "url": url, "secret_token": secret_token, "allowed_updates": ALLOWED_UPDATES,
        "max_connections": max_connections, "drop_pending_updates": drop_pending_updates})


async def webhook_info(http: aiohttp.ClientSession, token: str, *,
                       api_base: str = "https://api.telegram.org") -> dict[str, Any]:
    """getWebhookInfo: the URL, pending updates and Telegram's last delivery error."""
    return await _post(http, api_base, token, "getWebhookInfo", {})


async def _main(args: argparse.Namespace, token: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http:
        if args.command == "set-webhook":
            return await set_webhook(http, token, args.url, args.secret, api_base=args.api_base,
                                     drop_pending_updates=args.drop_pending)
        return await webhook_info(http, token, api_base=args.api_base)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="causette-telegram", description=__doc__.split("\n")[0])
    p.add_argument("--api-base", default="https://api.telegram.org")
    sub = p.add_subparsers(dest="command", required=True)
    sw = sub.add_parser("set-webhook", help="register the webhook URL and secret token")
    sw.add_argument("--url", required=True)
    sw.add_argument("--secret", required=True, help="the channel's secret_token setting")
    sw.add_argument("--drop-pending", action="store_true")
    sub.add_parser("webhook-info", help="show getWebhookInfo")
    args = p.parse_args(argv)
    if args.command == "set-webhook" and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", args.secret):
        # Telegram would refuse it, and the channel's settings (the same rule) could not hold it.
        p.error("--secret: 1 to 256 characters of A-Z a-z 0-9 _ -")
    token = os.environ.get("TELEGRAM_BOT_TOKEN", "")
    if not token:
        print("set TELEGRAM_BOT_TOKEN", file=sys.stderr)
        return 2
    try:
        out = asyncio.run(_main(args, token))
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        # One line, not a traceback; the token is part of the URL and stays out of it.
        why = str(exc).replace(token, "<token>") or type(exc).__name__
        if isinstance(exc, aiohttp.InvalidURL):
            why = f"invalid URL {why}"
        print(f"causette-telegram: {args.command} failed ({args.api_base}): {why}", file=sys.stderr)
        return 1
    print(json.dumps(out, indent=2, ensure_ascii=False))
    return 0 if out.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
