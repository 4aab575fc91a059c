"""In-memory cache of tenants (config, channel objects, flows), per process.

Loaded lazily from the store; invalidated across processes through Redis pub/sub when the
admin API or `tenants apply` changes a tenant. Compiled flows are cached per
(tenant, flow, version): versions are immutable, so that cache never goes stale.
"""
from __future__ import annotations

import asyncio
import gc
import logging
import sys
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, NamedTuple

import msgspec

from .channels import Channel
from .config import FlowVersion, TenantSnapshot
from .flows import Period, active_period
from .store.sqlite import definition_hash
from .triggers import TriggerIndex

if TYPE_CHECKING:
    import aiohttp
    import redis.asyncio as aioredis

    from .plugins import PluginHost
    from .store import Store

log = logging.getLogger("causette.registry")
INVALIDATE = "cst:invalidate"     # pub/sub channel; the message is the tenant slug
_MISSING_TTL = 5.0
DRAFT = -1                        # the version number a session on a flow's draft carries                # seconds an unknown slug stays known-unknown


class TenantRuntime:
    """One tenant as the hot path sees it.

    With thousands of tenants loaded, a turn's cost is mostly the cache lines it touches in
    its tenant's objects (docs/benchmarks.md, item 11): slots instead of an instance dict, and
    what tenants can share (compiled flows, trigger indexes, plugin sets) is shared."""
    # In the order a turn reads them: the first few share a cache line.
    __slots__ = ("slug", "enabled", "live", "session_ttl", "keywords", "on_start", "settings",
                 "snapshot", "referrals", "channels", "compiled", "on_open", "on_campaign", "flows",
                 "shared")

    def __init__(self, snap: TenantSnapshot, channels: dict[str, Channel],
                 settings: dict[str, Any], index: TriggerIndex | None = None,
                 shared: "dict[str, _Shared] | None" = None):
        self.slug = snap.slug
        self.snapshot = snap
        fs = frozenset(snap.plugins)
        # One object per set of plugins: the plugin host's chain cache then compares by identity.
        self.enabled = _ENABLED.setdefault(fs, fs)
        self.channels = channels
        self.settings = settings
        self.flows: dict[str, FlowVersion] = {f.id: f for f in snap.flows}
        index = index or TriggerIndex((f.id, f.definition) for f in snap.flows)
        # None rather than an empty dictionary: a turn tests them without reading one.
        self.keywords = index.keywords or None
        self.referrals = index.referrals or None
        self.on_start = index.single.get("start", "")
        self.on_open = index.single.get("widget", "")
        self.on_campaign = index.single.get("campaign", "")
        # Tenants with the same TTL share one int object (a turn reads it).
        self.session_ttl = _INTS.setdefault(snap.session_ttl, snap.session_ttl)
        # flow id -> its latest published version ready to run, filled by Registry.flow; `live`
        # is the last one a turn ran, which most tenants' turns find there without a lookup.
        self.compiled: dict[str, LiveFlow] = {}
        self.live: LiveFlow | None = None
        # flow id -> the registry's shared record of that version's definition
        self.shared: dict[str, _Shared] = shared or {}


_ENABLED: dict[frozenset[str], frozenset[str]] = {}
_INTS: dict[int, int] = {}


def _route(slug: str, channel_id: str) -> str:
    """The webhook path of a channel instance, as `request.raw_path` has it (app.webhook)."""
    return f"/t/{slug}/channels/{channel_id}"


class LiveFlow(NamedTuple):
    """A flow version as a turn needs it, in one object: a turn reads one object of its
    tenant, not one per fact (docs/benchmarks.md, items 12 and 14)."""
    id: str                       # fv.id and fv.version, here so that a turn reads no `fv`
    version: int
    engine: str                   # the engine's name
    compiled: Any                 # the engine's compiled form (shared by equal definitions)
    period: Period | None         # the flow's active window (gateway.flows.active_period)
    fv: FlowVersion


class _Shared:
    """A flow definition met in one or more tenants, and its compiled form once made.
    Agencies roll one template out to many brands: equal definitions share one object."""
    __slots__ = ("definition", "compiled")

    def __init__(self, definition: dict[str, Any]):
        self.definition = definition
        self.compiled: Any = None


def _channel_settings(cls: Any, raw: dict[str, Any], slug: str, cid: str) -> Any:
    """A stored channel instance's settings. Values stored before a channel bounded them more
    tightly (a newer version) still load as they are, with a warning, rather than take the
    instance out of service: they were accepted and worked. Saving the instance again checks
    them with today's rules."""
    try:
        return msgspec.convert(raw, cls.Settings)
    except msgspec.ValidationError as exc:
        if ", got `" in str(exc):   # a wrong type, not a bound: nothing to load
            raise
        try:
            # A bound (pattern, range, length) refused it; the Struct built directly checks none
            # (its own __post_init__ still runs).
            loose = cls.Settings(**raw)
        except Exception:
            raise exc from None
        log.warning("tenant %s: channel %s has settings today's rules refuse (%s); loaded as "
                    "stored: save the instance again to fix them", slug, cid, exc)
        return loose


class Registry:
    def __init__(self, store: "Store", host: "PluginHost", redis: "aioredis.Redis",
                 http: "aiohttp.ClientSession | None" = None, runtime: Any = None):
        self.store, self.host, self.redis, self.http = store, host, redis, http
        self.runtime = runtime
        self._tenants: dict[str, TenantRuntime] = {}
        # Webhook path -> (tenant, channel instance): one lookup for the webhook instead of
        # two dictionaries and the tenant object (docs/benchmarks.md, item 14). Exact paths
        # only ("/t/{slug}/channels/{id}"); slugs and ids hold no "/" nor "%".
        self.routes: dict[str, tuple[TenantRuntime, Channel]] = {}
        self._missing: dict[str, float] = {}
        self._loading: dict[str, asyncio.Future] = {}
        # Changes met while loading: forget(slug) counts per tenant, clear() for all. A load
        # that overlapped a change of its tenant may have read it as it was before, so it
        # reads again instead of caching that. Entries live while a load of the slug runs.
        self._changed: dict[str, int] = {}
        self._running: dict[str, int] = {}       # loads running per slug
        self._epoch = 0
        self._compiled: OrderedDict[tuple[str, str, int], LiveFlow] = OrderedDict()
        # definition hash -> _Shared; trigger indexes by the flows' hashes (bounded like _compiled)
        self._shared: OrderedDict[str, _Shared] = OrderedDict()
        self._indexes: OrderedDict[tuple[tuple[str, str], ...], TriggerIndex] = OrderedDict()
        self._listener: asyncio.Task | None = None
        self._stopping = False
        self.max_compiled = 50_000

    # --- tenants -------------------------------------------------------------------------
    def cached(self, slug: str) -> TenantRuntime | None:
        """The tenant if this process has it loaded (no await: the webhook's fast path)."""
        return self._tenants.get(slug)

    async def get(self, slug: str) -> TenantRuntime | None:
        rt = self._tenants.get(slug)
        if rt is not None:
            return rt
        miss = self._missing.get(slug)
        if miss and time.monotonic() < miss:
            return None
        fut = self._loading.get(slug)
        if fut is None:  # one load per slug, however many requests wait for it
            fut = self._loading[slug] = asyncio.ensure_future(self._load(slug))
            fut.add_done_callback(self._loaded(slug))
        return await asyncio.shield(fut)

    def _loaded(self, slug: str) -> Any:
        def done(fut: asyncio.Future) -> None:
            if self._loading.get(slug) is fut:      # forget() may have let a newer load start
                del self._loading[slug]
        return done

    async def _load(self, slug: str) -> TenantRuntime | None:
        self._changed.setdefault(slug, 0)
        self._running[slug] = self._running.get(slug, 0) + 1
        try:
            for _attempt in range(3):
                seen = (self._epoch, self._changed.get(slug))
                snap = await self.store.tenant_snapshot(slug)
                if seen == (self._epoch, self._changed.get(slug)):
                    break
            else:   # changing faster than it loads: answer with the latest read, cache nothing
                return self.build(snap) if snap is not None else None
        finally:
            if self._running[slug] > 1:
                self._running[slug] -= 1
            else:
                del self._running[slug]
                del self._changed[slug]
        if snap is None:
            self._missing[slug] = time.monotonic() + _MISSING_TTL
            return None
        rt = self.build(snap)
        self._unroute(slug, self._tenants.get(slug))   # a load that overlapped this one
        self._tenants[slug] = rt
        for cid, ch in rt.channels.items():
            self.routes[_route(slug, cid)] = (rt, ch)
        # A tenant is ~17 KB of long-lived objects; with thousands loaded, full collections
        # walking them stall the event loop for hundreds of ms (docs/benchmarks.md). Frozen,
        # they leave the collector's scans; refcounting still frees them when dropped.
        gc.freeze()
        return rt

    def build(self, snap: TenantSnapshot) -> TenantRuntime:
        # Names that many tenants repeat (flow and channel ids, locales) as one string object
        # each: a turn reads them (keys, events, the session) and a shared object stays in the
        # cache (docs/benchmarks.md, item 12).
        snap.locale = sys.intern(snap.locale)
        for cfg in snap.channels:
            cfg.id = sys.intern(cfg.id)
        for fv in snap.flows:
            fv.id = sys.intern(fv.id)
        settings: dict[str, Any] = {}
        for plugin, raw in snap.plugins.items():
            st = self.host.settings_types.get(plugin)
            try:
                settings[plugin] = msgspec.convert(raw or {}, st) if st else raw
            except Exception as exc:     # a plugin's own check raising: this plugin's settings only
                log.error("tenant %s: settings of plugin %s invalid (%s: %s); plugin gets none",
                          snap.slug, plugin, type(exc).__name__, exc)
        channels: dict[str, Channel] = {}
        for cfg in snap.channels:
            cls = self.host.channels.get(cfg.type)
            if cls is None or not cfg.enabled:
                continue
            try:
                obj = cls(snap.slug, cfg.id, _channel_settings(cls, cfg.settings, snap.slug, cfg.id), self.http)
            except Exception as exc:     # a plugin's own check or constructor raising: this
                # channel is left out, not the whole tenant
                log.error("tenant %s: channel %s settings invalid: %s: %s", snap.slug, cfg.id,
                          type(exc).__name__, exc)
                continue
            obj.runtime = self.runtime
            channels[cfg.id] = obj
        ids, shared = [], {}
        for fv in snap.flows:
            digest, shared[fv.id] = self._share(fv.definition)
            fv.definition = shared[fv.id].definition
            ids.append((fv.id, digest))
        key = tuple(ids)
        index = self._indexes.get(key)
        if index is None:
            index = self._indexes[key] = TriggerIndex((f.id, f.definition) for f in snap.flows)
            if len(self._indexes) > self.max_compiled:
                self._indexes.popitem(last=False)
        return TenantRuntime(snap, channels, settings, index, shared)

    def _share(self, definition: dict[str, Any]) -> tuple[str, _Shared]:
        """The shared copy of a flow definition equal to `definition` (runtime definitions are
        read-only: published versions are immutable)."""
        digest = definition_hash(definition)
        shared = self._shared.get(digest)
        if shared is None:
            shared = self._shared[digest] = _Shared(definition)
            if len(self._shared) > self.max_compiled:
                self._shared.popitem(last=False)
        return digest, shared

    def forget(self, slug: str) -> None:
        if slug in self._changed:
            self._changed[slug] += 1
        self._unroute(slug, self._tenants.pop(slug, None))
        self._missing.pop(slug, None)
        # Requests from now on wait for a load that starts after the change.
        self._loading.pop(slug, None)

    def _unroute(self, slug: str, rt: TenantRuntime | None) -> None:
        for cid in rt.channels if rt is not None else ():
            self.routes.pop(_route(slug, cid), None)

    def clear(self) -> None:
        self._epoch += 1
        self._tenants.clear()
        self.routes.clear()
        self._missing.clear()
        self._loading.clear()

    async def invalidate(self, slug: str) -> None:
        """Drop a tenant from every process's cache (call after any change to it)."""
        self.forget(slug)
        await self.redis.publish(INVALIDATE, slug)

    # --- flows ---------------------------------------------------------------------------
    async def flow(self, rt: TenantRuntime, flow_id: str, version: int = 0) -> LiveFlow | None:
        """A flow version ready to run; version 0 means the latest published, DRAFT (-1) the
        current draft (for `causette chat --draft`; never used by triggers)."""
        if version == DRAFT:
            rec = await self.store.get_flow(rt.slug, flow_id)
            if rec is None:
                return None
            return self._compile(FlowVersion(id=flow_id, version=DRAFT, definition=rec.draft),
                                 rt.snapshot.timezone)
        hit = rt.live
        if hit is not None and hit.id == flow_id and (not version or hit.version == version):
            return hit
        hit = rt.compiled.get(flow_id)
        if hit is not None and (not version or hit.version == version):
            rt.live = hit
            return hit
        fv = rt.flows.get(flow_id)
        if fv is not None and (not version or fv.version == version):
            entry = self._compile(fv, rt.snapshot.timezone, rt.shared.get(flow_id))
            if entry is not None:
                rt.compiled[flow_id] = rt.live = entry
            return entry
        if not version:
            return None
        # An older version that live conversations still run on.
        key = (rt.slug, flow_id, version)
        hit = self._compiled.get(key)
        if hit is not None:
            return hit
        fv = await self.store.get_flow_version(rt.slug, flow_id, version)
        if fv is None:
            return None
        entry = self._compile(fv, rt.snapshot.timezone)
        if entry is not None:
            self._compiled[key] = entry
            if len(self._compiled) > self.max_compiled:
                self._compiled.popitem(last=False)
        return entry

    def _compile(self, fv: FlowVersion, tz: str, shared: _Shared | None = None) -> LiveFlow | None:
        """`fv` ready to run, its compiled form made once for every flow of an equal definition
        (engines compile from the definition alone, gateway.flows.FlowEngine.compile);
        `shared`: its definition's record when the caller has it (no second hashing)."""
        name = fv.definition.get("engine", "tree")
        engine = self.host.engines.get(name)
        if engine is None:
            return None
        if shared is None:
            _digest, shared = self._share(fv.definition)
        if shared.compiled is None:
            shared.compiled = engine.compile(shared.definition)
        fv.definition = shared.definition
        return LiveFlow(fv.id, fv.version, sys.intern(name), shared.compiled,
                        active_period(fv.definition, tz), fv)

    # --- cross-process invalidation --------------------------------------------------------
    async def start(self) -> None:
        self._stopping = False
        self._listener = asyncio.create_task(self._listen())

    async def stop(self) -> None:
        self._stopping = True
        if self._listener:
            self._listener.cancel()
            # redis-py may swallow a cancellation while it connects; the flag ends the loop.
            try:
                await asyncio.wait_for(self._listener, 3)
            except (asyncio.CancelledError, asyncio.TimeoutError, Exception):
                pass

    async def _listen(self) -> None:
        while not self._stopping:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(INVALIDATE)
                # Changes published while we were not listening are unknown: drop everything.
                self.clear()
                while not self._stopping:
                    msg = await pubsub.get_message(timeout=1.0)
                    data = msg.get("data") if msg else None
                    if isinstance(data, bytes):
                        self.forget(data.decode())
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("invalidation listener reconnecting: %s", exc)
                await asyncio.sleep(1)
            finally:
                try:
                    await pubsub.aclose()
                except Exception:
                    pass
