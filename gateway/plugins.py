"""Plugin host: discovery through entry points, registration caches, and the async chain
runner with per-tenant views, timeouts, failure isolation and circuit breakers.

pluggy does discovery, registration, ordering and signature validation. It is synchronous,
so chain hooks are never called through `pm.hook`: `call_first` / `call_each` walk the
hook implementations in pluggy's call order, keep the tenant's enabled plugins, and await
each one under a timeout.
"""
from __future__ import annotations

import asyncio
import importlib.metadata
import inspect
import logging
import os
import time
from collections import defaultdict, deque
from types import CoroutineType
from typing import Any, Iterable

import msgspec
import pluggy

from . import hookspecs
from .channels import Channel
from .flows import FlowEngine, Step, StepResult

log = logging.getLogger("causette.plugins")

GROUP = "causette"
REGISTRATION_HOOKS = ("register_channels", "register_flow_engines", "register_steps",
                      "register_routes")
CHAIN_HOOKS = ("inbound_message", "outbound_message", "conversation_event",
               "handoff_requested", "handoff_released")
FAILED = object()   # what a failed or skipped plugin call returns to the runner
_vars_enc = msgspec.msgpack.Encoder()   # as the session is stored


class PluginError(RuntimeError):
    """A plugin could not be loaded or registers something invalid."""


class PluginInfo(msgspec.Struct, omit_defaults=True):
    name: str
    dist: str
    version: str
    hooks: list[str]
    registers: dict[str, list[str]]
    error: str = ""       # why it failed to load (then it has no hooks and registers nothing)


class Breaker:
    """Per (tenant, plugin) circuit breaker: `threshold` failures within `window` seconds
    switch the plugin off for that tenant for `cooldown` seconds."""

    def __init__(self, threshold: int = 5, window: float = 60.0, cooldown: float = 30.0):
        self.threshold, self.window, self.cooldown = threshold, window, cooldown
        self._fails: dict[tuple[str, str], deque[float]] = defaultdict(deque)
        self._open_until: dict[tuple[str, str], float] = {}

    def allows(self, tenant: str, plugin: str) -> bool:
        if not self._open_until:          # the usual case: no breaker open anywhere
            return True
        until = self._open_until.get((tenant, plugin))
        if until is None:
            return True
        if time.monotonic() >= until:
            del self._open_until[(tenant, plugin)]
            self._fails.pop((tenant, plugin), None)
            return True
        return False

    def failed(self, tenant: str, plugin: str) -> bool:
        """Count a failure; True when this one opened the breaker."""
        now = time.monotonic()
        q = self._fails[(tenant, plugin)]
        q.append(now)
        while q and q[0] < now - self.window:
            q.popleft()
        if len(q) >= self.threshold:
            self._open_until[(tenant, plugin)] = now + self.cooldown
            q.clear()
            return True
        return False

    def is_open(self, tenant: str, plugin: str) -> bool:
        return not self.allows(tenant, plugin)


def _selected(name: str) -> bool:
    """Operators block or select plugins without uninstalling them (like pytest's -p no:)."""
    only = os.environ.get("CAUSETTE_LOAD_PLUGINS")
    if only is not None:
        return name in {n.strip() for n in only.split(",") if n.strip()}
    blocked = {n.strip() for n in os.environ.get("CAUSETTE_DISABLE_PLUGINS", "").split(",")}
    return name not in blocked


def _what_is_wrong(hook: str, obj: Any) -> str:
    """Why a registration hook's item cannot be registered ("" when it can)."""
    if hook == "register_channels":
        base, attr, want_class = Channel, "type", True
    elif hook == "register_flow_engines":
        base, attr, want_class = FlowEngine, "name", False
    elif hook == "register_steps":
        base, attr, want_class = Step, "name", False
    else:
        return ""
    what = f"{base.__module__}.{base.__name__}"
    if want_class:
        if isinstance(obj, base):
            return f"an instance, not the class: return {type(obj).__name__}"
        if not (isinstance(obj, type) and issubclass(obj, base)):
            return f"not a subclass of {what}"
    else:
        if isinstance(obj, type) and issubclass(obj, base):
            return f"a class, not an instance: return {obj.__name__}()"
        if not isinstance(obj, base):
            return f"not an instance of {what}"
    value = getattr(obj, attr)
    if not isinstance(value, str):
        return f"its `{attr}` must be a string, not {type(value).__name__}"
    if not value:
        return f"its `{attr}` is empty: set the class attribute `{attr} = \"...\"`"
    return ""


class _Resume:
    """Awaits the rest of a coroutine whose first stretch already ran (it yielded `pending`
    to the event loop), in the awaiting task, as a Task would drive it."""
    __slots__ = ("coro", "pending")

    def __init__(self, coro: Any, pending: Any):
        self.coro, self.pending = coro, pending

    def __await__(self) -> Any:
        coro, value = self.coro, self.pending
        while True:
            try:
                sent = yield value
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:     # cancellation (the timeout) goes to the plugin
                try:
                    value = coro.throw(exc)
                except StopIteration as done:
                    return done.value
            else:
                try:
                    value = coro.send(sent)
                except StopIteration as done:
                    return done.value


class PluginHost:
    """Everything installed, loaded once. Enabling is per tenant (TenantSnapshot.plugins)."""

    def __init__(self, *, entrypoints: bool = True, extra: Iterable[tuple[str, Any]] = (),
                 timeout: float = 5.0, breaker: Breaker | None = None):
        self.pm = pluggy.PluginManager(GROUP)
        self.pm.add_hookspecs(hookspecs)
        self.timeout = timeout
        self.breaker = breaker or Breaker()
        self.failures: dict[tuple[str, str], int] = defaultdict(int)
        self._dists: dict[str, tuple[str, str]] = {}
        # Installed plugins whose module failed to import: left out, and listed by `causette
        # plugins` so that an operator sees why a tenant's plugin does nothing.
        self.broken: list[PluginInfo] = []
        if entrypoints:
            for ep in importlib.metadata.entry_points(group=GROUP):
                if not _selected(ep.name) or self.pm.has_plugin(ep.name):
                    continue
                try:
                    module = ep.load()
                except Exception as exc:  # a broken plugin must not stop the gateway
                    log.error("plugin %s failed to load: %s", ep.name, exc)
                    dist = ep.dist
                    self.broken.append(PluginInfo(
                        name=ep.name, dist=dist.name if dist else ep.name, version=dist.version if dist else "?",
                        hooks=[], registers={}, error=f"{type(exc).__name__}: {exc}"[:300]))
                    continue
                self.pm.register(module, name=ep.name)
                dist = ep.dist
                self._dists[ep.name] = (dist.name, dist.version) if dist else (ep.name, "?")
        given: dict[str, Any] = {}
        for name, obj in extra:
            if name in given:
                if given[name] is obj:
                    continue
                raise PluginError(f"two extra plugins named {name!r}: {given[name]!r} and {obj!r}")
            given[name] = obj
            installed = self.pm.get_plugin(name)
            if installed is obj:
                continue        # the installed plugin itself, as its own tests pass it
            if installed is not None:
                # An extra plugin takes the place of the installed one of that name: a
                # plugin's tests may pass a working copy or a stand-in.
                self.pm.unregister(installed, name=name)
                self._dists.pop(name, None)
            self.pm.register(obj, name=name)
            self._dists.setdefault(name, (name, "local"))
        self.pm.check_pending()
        self.channels: dict[str, type[Channel]] = {}
        self.engines: dict[str, FlowEngine] = {}
        self.steps: dict[str, Step] = {}
        self.routes: list[tuple[str, Any]] = []
        self.settings_types: dict[str, type[msgspec.Struct] | None] = {}
        self._owner: dict[tuple[str, str], str] = {}
        self._registers: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
        self._collect()
        self._chains: dict[tuple[str, frozenset[str]], list[tuple[str, Any, tuple[str, ...]]]] = {}

    # --- registration ----------------------------------------------------------------
    def _collect(self) -> None:
        for name, plugin in self.pm.list_name_plugin():
            st = getattr(plugin, "Settings", None)
            self.settings_types[name] = st if isinstance(st, type) and issubclass(st, msgspec.Struct) else None
        for hook in REGISTRATION_HOOKS:
            for impl in getattr(self.pm.hook, hook).get_hookimpls():
                for obj in impl.function() or ():
                    self._register(hook, impl.plugin_name, obj)
        # A channel's instance Settings re-exported at module level is not a per-tenant
        # plugin setting: instances carry it.
        channel_settings = {c.Settings for c in self.channels.values()}
        for name, st in self.settings_types.items():
            if st in channel_settings:
                self.settings_types[name] = None

    def _register(self, hook: str, plugin: str, obj: Any) -> None:
        wrong = _what_is_wrong(hook, obj)
        if wrong:
            raise PluginError(f"{plugin}: {hook} returned {obj!r}: {wrong}")
        if hook == "register_channels":
            kind, key, table = "channel", obj.type, self.channels
        elif hook == "register_flow_engines":
            kind, key, table = "engine", obj.name, self.engines
        elif hook == "register_steps":
            kind, key, table = "step", obj.name, self.steps
        else:
            self.routes.append((plugin, obj))
            self._registers[plugin]["route"].append(f"{getattr(obj, 'method', '')} {getattr(obj, 'path', obj)}")
            return
        if key in table:
            raise PluginError(f"{kind} {key!r} registered by both {self._owner[(kind, key)]} and {plugin}")
        table[key] = obj
        self._owner[(kind, key)] = plugin
        self._registers[plugin][kind].append(key)

    def owner(self, kind: str, name: str) -> str:
        """The plugin that registered a channel type, engine or step."""
        return self._owner[(kind, name)]

    @property
    def plugins(self) -> list[PluginInfo]:
        out = []
        for name, plugin in sorted(self.pm.list_name_plugin()):
            hooks = sorted(h.name for h in self.pm.get_hookcallers(plugin) or ())
            dist, version = self._dists.get(name, (name, "?"))
            out.append(PluginInfo(name=name, dist=dist, version=version, hooks=hooks,
                                  registers={k: sorted(v) for k, v in self._registers[name].items()}))
        return out

    # --- chain runner ------------------------------------------------------------------
    def chain(self, hook: str, enabled: frozenset[str]) -> list[tuple[str, Any, tuple[str, ...]]]:
        """The implementations of `hook` among `enabled` plugins, in pluggy's call order."""
        key = (hook, enabled)
        impls = self._chains.get(key)
        if impls is None:
            impls = [(i.plugin_name, i.function, tuple(i.argnames))
                     for i in reversed(getattr(self.pm.hook, hook).get_hookimpls())
                     if i.plugin_name in enabled]
            self._chains[key] = impls
        return impls

    async def invoke(self, tenant: str, plugin: str, fn: Any, argnames: tuple[str, ...],
                     kwargs: dict[str, Any], what: str, timeout: float | None = None,
                     why: list[str] | None = None) -> Any:
        """Call one plugin function for one tenant, isolated: FAILED on error, timeout or open
        breaker (what went wrong appended to `why`, when given)."""
        if not self.breaker.allows(tenant, plugin):
            if why is not None:
                why.append("switched off for a while after repeated failures")
            return FAILED
        try:
            res = fn(**{a: kwargs[a] for a in argnames})
            if type(res) is CoroutineType:
                # The coroutine's first stretch runs here, at once: one that returns without
                # waiting for anything (the tree engine, most chain hooks) cannot hang and
                # needs no timer. Otherwise the rest runs under the timeout, in this task.
                try:
                    pending = res.send(None)
                except StopIteration as done:
                    return done.value
                async with asyncio.timeout(timeout or self.timeout):
                    return await _Resume(res, pending)
            if inspect.isawaitable(res):
                async with asyncio.timeout(timeout or self.timeout):
                    res = await res
            return res
        except Exception as exc:
            self.failures[(tenant, plugin)] += 1
            kind = "timed out" if isinstance(exc, TimeoutError) else f"raised {type(exc).__name__}: {exc}"
            log.warning("plugin %s %s for tenant %s in %s", plugin, kind, tenant, what)
            if why is not None:
                why.append(kind[:300])
            if self.breaker.failed(tenant, plugin):
                log.error("plugin %s switched off for tenant %s for %.0fs after repeated failures",
                          plugin, tenant, self.breaker.cooldown)
            return FAILED

    async def call_first(self, hook: str, tenant: str, enabled: frozenset[str], **kwargs: Any) -> Any:
        """firstresult chain: the first non-None answer, or None."""
        for plugin, fn, argnames in self.chain(hook, enabled):
            res = await self.invoke(tenant, plugin, fn, argnames, kwargs, hook)
            if res is not None and res is not FAILED:
                return res
        return None

    async def call_each(self, hook: str, tenant: str, enabled: frozenset[str], **kwargs: Any) -> list[Any]:
        """Every implementation in order; failures are isolated and left out of the results."""
        out = []
        for plugin, fn, argnames in self.chain(hook, enabled):
            res = await self.invoke(tenant, plugin, fn, argnames, kwargs, hook)
            if res is not FAILED:
                out.append(res)
        return out

    async def run_step(self, ctx: Any, name: str, args: Any, enabled: frozenset[str],
                       live: bool = False) -> StepResult:
        """Run a registered step for a tenant; dry-run unless `live` when ctx.dry_run."""
        step = self.steps.get(name)
        if step is None:
            return StepResult(ok=False, error=f"unknown step {name!r}")
        plugin = self._owner[("step", name)]
        if plugin not in enabled:
            return StepResult(ok=False, error=f"plugin {plugin!r} is not enabled for this tenant")
        try:
            decoded = msgspec.convert(args, step.Args, str_keys=True)
        except msgspec.ValidationError as exc:
            return StepResult(ok=False, error=f"invalid arguments for {name}: {exc}")
        fn = step.dry_run if ctx.dry_run and not live else step.run
        why: list[str] = []
        res = await self.invoke(ctx.tenant, plugin, fn, ("ctx", "args"), {"ctx": ctx, "args": decoded},
                                f"step {name}", why=why)
        if res is FAILED:
            return StepResult(ok=False, error=f"step {name} {why[0] if why else 'failed'}")
        if not isinstance(res, StepResult):
            return StepResult(ok=False, error=f"step {name} returned {type(res).__name__}")
        try:
            # What a step returns lives on in the session (msgpack): an integer beyond 64 bits
            # or an object found only at save time would leave the conversation unsaved.
            _vars_enc.encode(res.vars)
        except (OverflowError, TypeError, ValueError, RecursionError) as exc:
            return StepResult(ok=False, error=f"step {name} returned variables that cannot be kept: {exc}")
        return res
