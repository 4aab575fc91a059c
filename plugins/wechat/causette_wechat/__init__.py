"""Causette channel plugin: WeChat Official Account (docs/channels/wechat.md)."""
from __future__ import annotations

from gateway.hookspecs import hookimpl

from .channel import WeChatChannel, Settings

__all__ = ["WeChatChannel", "Settings"]


@hookimpl
def register_channels():
    return [WeChatChannel]
