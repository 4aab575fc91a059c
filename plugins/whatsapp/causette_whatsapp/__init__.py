"""Causette channel plugin: WhatsApp Business Cloud API (docs/channels/whatsapp.md)."""
from __future__ import annotations

from gateway.hookspecs import hookimpl

# No module-level `Settings`: the plugin host would take it for per-tenant plugin settings.
# A channel instance's settings are `WhatsAppChannel.Settings`.
from .channel import WhatsAppChannel

__all__ = ["WhatsAppChannel"]


@hookimpl
def register_channels():
    return [WhatsAppChannel]
