"""Causette channel plugin: WeChat Official Account (docs/channels/wechat.md)."""
from __future__ import annotations

from gateway.hookspecs import hookimpl

# No module-level `Settings`: that name would declare per-tenant *plugin* settings; a
# channel's settings are per instance (WeChatChannel.Settings).
from .channel import WeChatChannel

__all__ = ["WeChatChannel"]


@hookimpl
def register_channels():
    return [WeChatChannel]
