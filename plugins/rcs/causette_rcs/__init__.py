"""Causette channel plugin: Google RCS Business Messaging (docs/channels/rcs.md)."""
from __future__ import annotations

from gateway.hookspecs import hookimpl

from .channel import RCSChannel, Settings

__all__ = ["RCSChannel", "Settings"]


@hookimpl
def register_channels():
    return [RCSChannel]
