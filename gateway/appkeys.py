"""Typed application state (aiohttp AppKeys), in one place."""
from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

if TYPE_CHECKING:
    from .pipeline import Pipeline
    from .plugins import PluginHost
    from .registry import Registry
    from .settings import Settings
    from .state import State
    from .store import Store

SETTINGS: web.AppKey["Settings"] = web.AppKey("settings")
PLUGINS: web.AppKey["PluginHost"] = web.AppKey("plugins")
STORE: web.AppKey["Store"] = web.AppKey("store")
STATE: web.AppKey["State"] = web.AppKey("state")
REGISTRY: web.AppKey["Registry"] = web.AppKey("registry")
PIPELINE: web.AppKey["Pipeline"] = web.AppKey("pipeline")
HTTP: web.AppKey[aiohttp.ClientSession] = web.AppKey("http")
# Open WebSockets (webchat): closed with 1001 on shutdown, so they don't hold it up.
WEBSOCKETS: web.AppKey["weakref.WeakSet[web.WebSocketResponse]"] = web.AppKey("websockets")
