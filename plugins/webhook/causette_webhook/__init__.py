"""Causette channel plugin: a generic signed-JSON webhook (docs/channels/webhook.md)."""
from __future__ import annotations

from gateway.hookspecs import hookimpl

from .channel import Settings, WebhookChannel, sign

__all__ = ["Settings", "WebhookChannel", "sign"]


@hookimpl
def register_channels():
    return [WebhookChannel]
