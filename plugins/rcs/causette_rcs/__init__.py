"""Causette channel plugin: Google RCS Business Messaging (docs/channels/rcs.md)."""
from __future__ import annotations

from gateway.hookspecs import hookimpl

# No module-level `Settings`: that name would declare per-tenant *plugin* settings; a
# channel's settings are per instance (RCSChannel.Settings).
from .channel import RCSChannel

__all__ = ["RCSChannel"]


@hookimpl
def register_channels():
    return [RCSChannel]
