"""pytest plugin (entry point `pytest11`): fixtures that start the real gateway.

    async def test_x(gateway, demo_tenant):
        gw = await gateway(tenants=[demo_tenant])
        async with gw.http.post(gw.url + "/t/demo/channels/web", ...) as r: ...

Real Redis (REDIS_URL, else an embedded server started once per session), a fresh SQLite
per gateway, real HTTP on 127.0.0.1. The Redis database is flushed at the start of each test
that uses `gateway`, so give tests a Redis you don't mind emptying.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, AsyncIterator

import aiohttp
import msgspec
import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from aiohttp import web

from .appkeys import PIPELINE, PLUGINS, REGISTRY, STORE
from .app import REDIS, create_app
from .config import TenantConfig
from .envsubst import expand
from .redis_server import EmbeddedRedis
from .settings import Settings

ROOT = Path(__file__).resolve().parents[1]


class GatewayHandle:
    def __init__(self, app: web.Application, runner: web.AppRunner, url: str,
                 http: aiohttp.ClientSession, admin_key: str, settings: Settings):
        self.app, self.runner, self.url, self.http = app, runner, url, http
        self.admin_key, self.settings = admin_key, settings

    @property
    def pipeline(self):
        return self.app[PIPELINE]

    @property
    def store(self):
        return self.app[STORE]

    @property
    def registry(self):
        return self.app[REGISTRY]

    @property
    def host(self):
        return self.app[PLUGINS]

    @property
    def redis(self) -> aioredis.Redis:
        return self.app[REDIS]

    @property
    def admin_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_key}"}

    async def admin(self, method: str, path: str, body: Any = None) -> tuple[int, str, Any]:
        """An admin API call with the agency key: (status, content type, decoded JSON body)."""
        async with self.http.request(method, self.url + "/admin/v1" + path, json=body,
                                     headers=self.admin_headers) as r:
            return r.status, r.content_type, await r.json(content_type=None)

    async def apply(self, tenant: dict[str, Any]) -> Any:
        """Apply a tenant definition exactly as `causette tenants apply` does."""
        from .apply import apply_tenant
        cfg = msgspec.convert(tenant, TenantConfig)
        report = await apply_tenant(self.store, self.host, cfg)
        await self.registry.invalidate(cfg.slug)
        return report

    async def flush_events(self) -> int:
        """Push pending events to the store now (the background loop does it every interval)."""
        import asyncio
        from .background import flush_events
        from .appkeys import STATE
        from .state import events_key
        await self.pipeline.drain()
        moved = 0
        for _ in range(250):
            moved += await flush_events(self.app[STATE], self.store)
            # The background flusher may hold a batch it has read but not yet stored: the
            # streams are empty only once every batch is in the store.
            pending = 0
            for slug in await self.store.list_tenant_slugs():
                pending += await self.redis.xlen(events_key(slug))
            if not pending:
                break
            await asyncio.sleep(0.02)
        return moved


@pytest.fixture(scope="session")
def redis_url() -> Any:
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    with tempfile.TemporaryDirectory(prefix="causette-redis-") as d:
        server = EmbeddedRedis(d, persist=False)
        yield server.start()
        server.stop()


def load_demo() -> dict[str, Any]:
    """tenants/demo.json as `tenants apply` reads it with no variable set: its `${VAR:-x}`
    references at their defaults (gateway.envsubst)."""
    demo, unset = expand(json.loads((ROOT / "tenants" / "demo.json").read_text()), {})
    assert not unset, unset
    return demo


@pytest.fixture
def demo_tenant() -> dict[str, Any]:
    """tenants/demo.json as a dict (a fresh copy per test), as `load_demo` gives it."""
    return load_demo()


@pytest_asyncio.fixture      # works under pytest-asyncio's strict mode too
async def gateway(redis_url: str, tmp_path: Path) -> AsyncIterator[Any]:
    client = aioredis.from_url(redis_url)
    await client.flushdb()
    await client.aclose()
    started: list[GatewayHandle] = []
    db = str(tmp_path / "causette.db")

    async def start(tenants: list[dict[str, Any]] = (), plugins: list[tuple[str, Any]] = (),
                    **overrides: Any) -> GatewayHandle:
        """Start a gateway; `plugins` adds in-process plugins (name, module or object) to
        the installed ones, as a third party's would be. One given under an installed
        plugin's name takes its place (a plugin's own tests may pass the installed module)."""
        opts: dict[str, Any] = dict(plugin_timeout=5.0, host="127.0.0.1", port=0, data_dir=str(tmp_path / "var"),
                                    redis_url=redis_url, database=db, secret="test-secret",
                                    flush_interval=0.05, timer_interval=0.05, lock_wait=10.0,
                                    # tests wait for the store: its writer yields to nobody here
                                    events_nice=0)
        opts.update(overrides)
        settings = Settings(**opts)
        from .plugins import PluginHost
        app = create_app(settings, PluginHost(extra=plugins, timeout=overrides.get("plugin_timeout", 5.0)))
        runner = web.AppRunner(app, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        key = await app[STORE].create_key(None, "agency")
        http = aiohttp.ClientSession()
        gw = GatewayHandle(app, runner, f"http://127.0.0.1:{port}", http, key, settings)
        started.append(gw)
        for t in tenants:
            await gw.apply(t)
        return gw

    yield start
    for gw in reversed(started):
        await gw.http.close()
        await gw.runner.cleanup()
