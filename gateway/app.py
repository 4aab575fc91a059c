"""The app factory: webhooks on the root app, the admin API as a sub-app, plugin routes
under /t/{tenant}/..., resources opened and closed through cleanup_ctx."""
from __future__ import annotations

import asyncio
import contextlib
import gc
import inspect
import json
import logging
import time
import weakref
from typing import Any, AsyncIterator, Callable

import aiohttp
import msgspec
import redis.asyncio as aioredis
from redis.exceptions import RedisError
from aiohttp import WSCloseCode, web

from . import __version__, hugepages, routes
from .appkeys import HTTP, PIPELINE, PLUGINS, REGISTRY, SETTINGS, STATE, STORE, WEBSOCKETS
from .background import event_loop, timer_loop
from .channels import ParseError, Webhook
from .pipeline import Pipeline, TenantMismatch
from .plugins import PluginHost
from .redis_server import EmbeddedRedis
from .registry import Registry
from .settings import Settings
from .state import Busy, State

log = logging.getLogger("causette.app")
EMBEDDED: web.AppKey[EmbeddedRedis | None] = web.AppKey("embedded_redis")
REDIS: web.AppKey[aioredis.Redis] = web.AppKey("redis")


class Runtime:
    """What channel objects get as `self.runtime`: the gateway's shared services."""

    def __init__(self, app: web.Application):
        self._app = app

    @property
    def redis(self) -> aioredis.Redis:
        return self._app[REDIS]

    @property
    def http(self) -> aiohttp.ClientSession:
        return self._app[HTTP]

    @property
    def pipeline(self) -> Pipeline:
        return self._app[PIPELINE]

    @property
    def settings(self) -> Settings:
        return self._app[SETTINGS]


def _problem(status: int, title: str, detail: str = "") -> web.Response:
    body = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    return web.Response(status=status, text=json.dumps(body), content_type="application/problem+json")


# --- resources ----------------------------------------------------------------------------
REDIS_CONNECTIONS = 200     # redis-py connections per process (State's lean one apart)


async def _redis_ctx(app: web.Application) -> AsyncIterator[None]:
    s = app[SETTINGS]
    embedded = None
    url = s.redis_url
    if not url:
        embedded = EmbeddedRedis(s.data_dir)
        url = await asyncio.to_thread(embedded.start)
        log.info("embedded redis on %s", url)
    app[EMBEDDED] = embedded
    # A pool that waits for a free connection: redis-py's default one refuses (raises) past
    # 100 connections in use, which a burst of webhooks or a reconnect storm of chat widgets
    # reaches; the turns' own scripts go through State's one pipelined connection anyway.
    pool = aioredis.BlockingConnectionPool.from_url(url, max_connections=REDIS_CONNECTIONS,
                                                    timeout=s.lock_wait, health_check_interval=30)
    client = aioredis.Redis.from_pool(pool)
    app[REDIS] = client
    app[STATE] = State(client, lock_ttl=s.lock_ttl, lock_wait=s.lock_wait, dedup_ttl=s.dedup_ttl,
                       events_maxlen=s.events_maxlen)
    yield
    await app[STATE].aclose()
    await client.aclose()
    if embedded:
        await asyncio.to_thread(embedded.stop)


async def _store_ctx(app: web.Application) -> AsyncIterator[None]:
    from .store import Store
    s = app[SETTINGS]
    app[STORE] = await Store.open(s.db_path, s.secret_bytes(), events_nice=s.events_nice)
    yield
    await app[STORE].close()


async def _http_ctx(app: web.Application) -> AsyncIterator[None]:
    timeout = aiohttp.ClientTimeout(total=15, connect=5)
    app[HTTP] = aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=200))
    yield
    await app[HTTP].close()


def _busy(pipeline: Pipeline) -> Callable[[], bool]:
    """Whether turns ran since the last call: the event flusher keeps its rounds short then."""
    last = [pipeline.turns]

    def busy() -> bool:
        ran, last[0] = pipeline.turns != last[0], pipeline.turns
        return ran
    return busy


async def _runtime_ctx(app: web.Application) -> AsyncIterator[None]:
    s = app[SETTINGS]
    registry = Registry(app[STORE], app[PLUGINS], app[REDIS], app[HTTP], Runtime(app))
    app[REGISTRY] = registry
    app[PIPELINE] = Pipeline(app[PLUGINS], registry, app[STATE], app[HTTP])
    await registry.start()
    gc.freeze()   # what start-up built lives as long as the process: keep it out of GC scans
    tasks = []
    stop = asyncio.Event()
    if s.background:
        tasks = [asyncio.create_task(event_loop(app[STATE], app[STORE], s.flush_interval, stop,
                                                busy=_busy(app[PIPELINE]))),
                 asyncio.create_task(timer_loop(app[STATE], app[PIPELINE], s.timer_interval, stop))]
    if s.hugepages:
        # Where the tenants live: this process's heap, wherever the background loops run.
        tasks.append(asyncio.create_task(hugepages.maintain(stop)))
    yield
    stop.set()
    if tasks:
        await asyncio.wait(tasks, timeout=5)
    for t in tasks:
        t.cancel()
    await app[PIPELINE].drain()
    with contextlib.suppress(Exception):
        # What this process's last turns recorded goes to the store now when it can be done
        # quickly; anything left waits in Redis for the next process.
        from .background import ROUND_IDLE, flush_events
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline and await flush_events(app[STATE], app[STORE], ROUND_IDLE):
            pass
    await registry.stop()


# --- webhooks -----------------------------------------------------------------------------
async def webhook(request: web.Request) -> web.StreamResponse:
    registry = request.app[REGISTRY]
    hit = registry.routes.get(request.raw_path)
    if hit is not None:
        rt, ch = hit
    else:       # not loaded yet, unknown, or a path with a query string or escapes
        tenant, channel_id = request.match_info["tenant"], request.match_info["channel"]
        try:
            rt = registry.cached(tenant) or await registry.get(tenant)
        except Exception:
            log.exception("tenant %s: could not be loaded", tenant)
            return web.Response(status=503, headers={"Retry-After": "30"}, text="temporarily unavailable")
        ch = rt.channels.get(channel_id) if rt else None
        if ch is None:
            return _problem(404, "Not Found", "no such tenant or channel")
    tenant, channel_id = rt.slug, ch.instance_id
    s = request.app[SETTINGS]
    body = await request.read()
    url = (lambda: s.public_url + request.path_qs) if s.public_url else (lambda: str(request.url))
    # Parsing the query string costs a URL object; most providers' POSTs carry none.
    query = dict(request.query) if "?" in request.raw_path else {}
    hook = Webhook(request.method, url, query, request.headers, body)
    if request.method == "GET":
        try:
            resp = await ch.handshake(hook)
        except Exception as exc:
            log.warning("tenant %s: %s handshake raised %s", tenant, ch.type, exc)
            resp = None
        return resp if resp is not None else _problem(404, "Not Found", "no handshake here")
    try:
        ok = ch.verify(hook)
    except Exception as exc:
        log.warning("tenant %s: %s verify raised %s", tenant, ch.type, type(exc).__name__)
        ok = False
    if not ok:
        return web.Response(status=ch.refusal_status, text=ch.refusal_text)
    try:
        messages = ch.parse(hook)
        if type(messages) is not list and inspect.isawaitable(messages):
            messages = await messages       # a channel may need Redis to parse (multipart SMS)
    except (ParseError, ValueError, KeyError, TypeError, ArithmeticError, msgspec.ValidationError) as exc:
        # ArithmeticError: numbers a provider never sends but a forged body can (10**400 as a
        # timestamp overflows float()); the channel's "unreadable" answer, not a 500.
        return web.Response(status=ch.bad_request_status, text=f"unreadable payload: {exc}"[:300])
    except Exception as exc:
        # A bug in the channel's plugin, not a bad body (or Redis away, for a channel that
        # parses with it): not answered 2xx, so the provider delivers it again (after a fix)
        # and nothing is lost; a bug counts against the plugin.
        host = request.app[PLUGINS]
        plugin = host.owner("channel", ch.type)
        if not isinstance(exc, (RedisError, OSError)):
            host.failures[(tenant, plugin)] += 1
        log.warning("tenant %s: plugin %s failed to parse a %s webhook: %s: %s", tenant, plugin,
                    ch.type, type(exc).__name__, exc)
        return web.Response(status=503, headers={"Retry-After": "30"}, text="temporarily unavailable")
    try:
        inline = await request.app[PIPELINE].handle(rt, ch, messages)
    except TenantMismatch as exc:
        log.error("tenant %s: %s", tenant, exc)
        return web.Response(status=ch.bad_request_status, text="message for another tenant")
    except Busy:
        # Not answered 2xx, so the provider retries later: nothing is lost.
        return web.Response(status=503, headers={"Retry-After": "5"}, text="busy")
    except Exception:
        # Redis unreachable, a bug: the turn was rolled back (pipeline), so ask for a retry.
        log.exception("tenant %s: webhook on %s failed", tenant, channel_id)
        return web.Response(status=503, headers={"Retry-After": "30"}, text="temporarily unavailable")
    return ch.respond(hook, inline)


def _guard(plugin: str, handler: Any) -> Any:
    """A plugin's route answers only for tenants that have enabled that plugin."""
    async def guarded(request: web.Request) -> web.StreamResponse:
        tenant = request.match_info.get("tenant", "")
        try:
            rt = await request.app[REGISTRY].get(tenant)
        except Exception:
            log.exception("tenant %s: could not be loaded", tenant)
            return web.Response(status=503, headers={"Retry-After": "30"}, text="temporarily unavailable")
        if rt is None or plugin not in rt.enabled:
            if request.headers.get("Upgrade", "").lower() == "websocket":
                # A browser's WebSocket never sees an HTTP status: a client (the webchat
                # widget) must learn that this is final, not a network failure to retry.
                ws = web.WebSocketResponse()
                await ws.prepare(request)
                await ws.close(code=4404, message=b"no such tenant or plugin")
                return ws
            return _problem(404, "Not Found", "no such tenant or plugin")
        routes.bind(request, rt.slug, (rt.settings or {}).get(plugin), rt.snapshot)
        return await handler(request)
    return guarded


async def health(request: web.Request) -> web.Response:
    await request.app[REDIS].ping()
    return web.json_response({"status": "ok", "version": __version__})


async def index(request: web.Request) -> web.Response:
    # Public: nothing about the agency's tenants (not even how many), no store query.
    return web.json_response({"name": "causette", "version": __version__,
                              "admin": "/admin/v1/openapi.json"})


async def _close_websockets(app: web.Application) -> None:
    """Plugins' open WebSockets (webchat) would hold a graceful shutdown for its whole
    timeout; close them (1001, going away) so their clients reconnect elsewhere or later."""
    sockets = list(app[WEBSOCKETS])
    if sockets:
        await asyncio.gather(*(ws.close(code=WSCloseCode.GOING_AWAY, message=b"shutdown")
                               for ws in sockets), return_exceptions=True)


def create_app(settings: Settings | None = None, host: PluginHost | None = None) -> web.Application:
    settings = settings or Settings.from_env()
    host = host or PluginHost(timeout=settings.plugin_timeout)
    app = web.Application(client_max_size=settings.max_body)
    app[SETTINGS] = settings
    app[PLUGINS] = host
    app.cleanup_ctx.extend([_redis_ctx, _store_ctx, _http_ctx, _runtime_ctx])
    app[WEBSOCKETS] = weakref.WeakSet()
    app.on_shutdown.append(_close_websockets)
    app.router.add_get("/", index)
    app.router.add_get("/healthz", health)
    app.router.add_route("POST", "/t/{tenant}/channels/{channel}", webhook)
    app.router.add_route("GET", "/t/{tenant}/channels/{channel}", webhook)
    for plugin, route in host.routes:
        path = route.path
        full = f"/t/{{tenant}}{path}" if path.startswith("/") else f"/t/{{tenant}}/plugins/{plugin}/{path}"
        kwargs = dict(route.kwargs)
        if route.method == "GET":    # add_get understands web.get()'s allow_head
            app.router.add_get(full, _guard(plugin, route.handler), **kwargs)
        else:
            kwargs.pop("allow_head", None)
            app.router.add_route(route.method, full, _guard(plugin, route.handler), **kwargs)
    from .admin import mount_admin
    mount_admin(app)
    return app
