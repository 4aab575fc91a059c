"""Causette channel: Telegram Bot API (channel type `telegram`)."""
from __future__ import annotations

from gateway.hookspecs import hookimpl

from .admin import set_webhook, webhook_info
from .channel import TelegramChannel, TelegramSettings, callback_data, split_text

__all__ = ["TelegramChannel", "TelegramSettings", "callback_data", "set_webhook", "split_text",
           "webhook_info"]


@hookimpl
def register_channels() -> list[type]:
    return [TelegramChannel]
