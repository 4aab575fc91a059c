"""Causette channel plugin: the embeddable web chat widget (docs/channels/webchat.md).

`<script src="https://HOST/t/TENANT/widget.js" data-channel="web" async></script>` on any
page opens a chat launcher and panel; the widget talks to the gateway over a WebSocket with
resume, and the gateway answers through the tenant's flow like on any other channel.
"""
from __future__ import annotations

from gateway.hookspecs import hookimpl

from .channel import WebchatChannel
from .routes import origin_allowed, route_defs

__all__ = ["WebchatChannel", "origin_allowed"]


@hookimpl
def register_channels():
    return [WebchatChannel]


@hookimpl
def register_routes():
    return route_defs()
