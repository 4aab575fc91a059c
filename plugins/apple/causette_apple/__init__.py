"""Causette channel plugin: Apple Messages for Business via the MSP REST API
(docs/channels/apple.md)."""
from __future__ import annotations

from gateway.hookspecs import hookimpl

# No module-level `Settings`: that name would declare per-tenant *plugin* settings; a
# channel's settings are per instance (AppleChannel.Settings).
from .channel import AppleChannel

__all__ = ["AppleChannel"]


@hookimpl
def register_channels():
    return [AppleChannel]
