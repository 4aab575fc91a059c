"""Causette channel plugin: WhatsApp Business Cloud API (docs/channels/whatsapp.md)."""
from __future__ import annotations

from gateway.hookspecs import hookimpl

from .channel import Settings, WhatsAppChannel

__all__ = ["Settings", "WhatsAppChannel"]


@hookimpl
def register_channels():
    return [WhatsAppChannel]
