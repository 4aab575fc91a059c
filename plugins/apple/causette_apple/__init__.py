"""Causette channel plugin: Apple Messages for Business via the MSP REST API
(docs/channels/apple.md)."""
from __future__ import annotations

from gateway.hookspecs import hookimpl

from .channel import AppleChannel, Settings

__all__ = ["AppleChannel", "Settings"]


@hookimpl
def register_channels():
    return [AppleChannel]
