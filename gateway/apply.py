"""Validate and apply tenant definitions (`tenants/*.json`, `PUT /admin/v1/tenants/{t}`).

Everything is checked before anything is written: the TenantConfig shape, each enabled
plugin's settings against that plugin's `Settings` Struct, each channel instance against its
channel's `Settings`, each flow with its engine (plus channel lint). Every problem comes back
at once with its JSON path. Then one transaction writes the tenant; a flow gets a new
published version only when its definition changed. The admin API uses the same checks.

Secrets: the fields a channel lists in `Channel.secrets` (and a plugin's Settings lists in a
`secrets` ClassVar) are write-only. A definition may leave them out, or give "***set***",
to keep the stored value; that way tenant files need not hold credentials.
"""
from __future__ import annotations

import json
import os
import re
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Collection, Iterable, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from .config import ChannelConfig, TenantConfig
from .envsubst import expand
from .problems import ProblemError, decode_json, errors_only, from_validation_error, invalid, join_path
from .store.records import PlannedChannel, PlannedFlow, PlannedPlugin, TenantInfo, TenantPlan
from .store.sqlite import Conflict, definition_hash
from .types import Problem
from .triggers import trigger_conflicts
from .validation import settings_problems, validate_flow

if TYPE_CHECKING:
    from .channels import Capabilities
    from .plugins import PluginHost
    from .store import Store

MASK = "***set***"
FLOW_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


# --- shared checks (the admin API calls these too) -----------------------------------------
def check_timezone(tz: str, path: str = "$.timezone") -> list[Problem]:
    try:
        ZoneInfo(tz)
        return []
    except (ValueError, KeyError, ZoneInfoNotFoundError):
        return [Problem(path=path, code="tenant.timezone",
                        message=f"{tz!r} is not an IANA time zone (e.g. Europe/Paris, America/New_York)")]


# A language tag as flows and contacts use them: fr, en, pt-BR, zh-Hans.
LOCALE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8}){0,2}$")


def check_locales(locale: str, locales: list[str]) -> list[Problem]:
    """The tenant's default language and the ones it declares: language tags, the default
    among the declared ones when there are any (it is what a contact gets by default)."""
    out = [Problem(path=p, code="tenant.locale", message=f"{v!r} is not a language tag (fr, en, pt-BR...)")
           for p, v in [("$.locale", locale)] + [(f"$.locales[{i}]", x) for i, x in enumerate(locales)]
           if not isinstance(v, str) or not LOCALE.fullmatch(v)]
    if not out and locales and locale not in locales:
        out.append(Problem(path="$.locale", code="tenant.locale",
                           message=f"{locale!r} is not one of the tenant's locales ({', '.join(locales)})"))
    return out


def plugin_settings_type(host: "PluginHost", plugin: str) -> Any:
    """The plugin's per-tenant Settings Struct, or None. A channel plugin that re-exports its
    channel's (per-instance) Settings at module level has no per-tenant settings: those are
    given on each channel instance, not under `plugins`."""
    st = host.settings_types.get(plugin)
    if st is not None and any(cls.Settings is st and host.owner("channel", t) == plugin
                              for t, cls in host.channels.items()):
        return None
    return st


def plugin_secret_fields(host: "PluginHost", plugin: str) -> tuple[str, ...]:
    st = plugin_settings_type(host, plugin)
    return tuple(getattr(st, "secrets", ()) or ()) if st is not None else ()


def split_secrets(raw: Mapping[str, Any], secret_fields: Iterable[str],
                  stored: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(plain settings, secret values to keep): a secret given as MASK or left out keeps the
    stored value; null or "" clears it."""
    names = set(secret_fields)
    plain = {k: v for k, v in raw.items() if k not in names}
    secret = {k: v for k, v in stored.items() if k in names}
    for k in names & set(raw):
        v = raw[k]
        if v == MASK:
            continue
        if v is None or v == "":
            secret.pop(k, None)
        else:
            secret[k] = v
    return plain, secret


def moved_secrets(settings_type: Any, endpoints: Iterable[str], raw: Mapping[str, Any],
                  new: Mapping[str, Any], stored: Mapping[str, Any], secret_fields: Iterable[str],
                  path: str) -> list[Problem]:
    """Secrets are write-only, but they go where the settings say (`api_base`, a callback URL,
    the hosts a plugin may call). An update that moves such an address while keeping stored
    secrets (left out or given as MASK) would send them to whoever it names: it must give
    them again, or clear them."""
    kept = sorted(k for k in secret_fields if k in stored and k in new
                  and (k not in raw or raw[k] == MASK))
    if not kept:
        return []

    def effective(values: Mapping[str, Any]) -> Any:
        try:   # compare what the plugin would use, defaults included
            return msgspec.convert(dict(values), settings_type, str_keys=True)
        except (msgspec.ValidationError, TypeError):
            return None
    before, after = effective(stored), effective(new)
    out = []
    for field in endpoints:
        old_value = getattr(before, field, stored.get(field)) if before is not None else stored.get(field)
        new_value = getattr(after, field, new.get(field)) if after is not None else new.get(field)
        if old_value != new_value:
            out.append(Problem(path=join_path(path, f"$.{field}"), code="secrets.endpoint_changed",
                               message=f"{field} changed: the stored {', '.join(kept)} would go to the new "
                                       f"address; give {'them' if len(kept) > 1 else 'it'} again in the same "
                                       f"change (or \"\" to clear)"))
    return out


def check_plugin(host: "PluginHost", name: str, raw: Any, path: str,
                 stored: Mapping[str, Any] = {}) -> tuple[PlannedPlugin | None, list[Problem]]:
    """`stored`: the plugin's stored settings for this tenant, secrets included ({} if none)."""
    if name not in host.settings_types:
        return None, [Problem(path=path, code="plugin.unknown",
                              message=f"no installed plugin is called {name!r} "
                                      f"(installed: {', '.join(sorted(host.settings_types)) or 'none'})")]
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        return None, [Problem(path=path, code="type", message="plugin settings are a JSON object")]
    st = plugin_settings_type(host, name)
    fields = plugin_secret_fields(host, name)
    plain, secret = split_secrets(raw, fields, stored)
    if st is None:
        if plain or secret:
            return None, [Problem(path=path, code="plugin.no_settings",
                                  message=f"plugin {name!r} takes no settings")]
        return PlannedPlugin(name=name, settings={}), []
    problems = settings_problems({**plain, **secret}, st, path, str_keys=True)
    if problems:
        return None, problems
    moved = moved_secrets(st, getattr(st, "endpoints", ()), raw, {**plain, **secret}, stored, fields, path)
    if moved:
        return None, moved
    return PlannedPlugin(name=name, settings=plain, secrets=secret), []


def check_channel(host: "PluginHost", cfg: ChannelConfig, path: str, stored: Mapping[str, Any] = {},
                  enabled: Iterable[str] | None = None) -> tuple[PlannedChannel | None, list[Problem]]:
    """`stored`: the instance's stored settings, secrets included ({} for a new one)."""
    cls = host.channels.get(cfg.type)
    if cls is None:
        return None, [Problem(path=f"{path}.type", code="channel.unknown_type",
                              message=f"no installed plugin registers a channel of type {cfg.type!r} "
                                      f"(installed: {', '.join(sorted(host.channels)) or 'none'})")]
    problems: list[Problem] = []
    if enabled is not None:
        owner = host.owner("channel", cfg.type)
        if owner not in set(enabled):
            problems.append(Problem(path=f"{path}.type", code="channel.plugin_disabled",
                                    message=f"channel type {cfg.type!r} comes from plugin {owner!r}, "
                                            f"which this tenant has not enabled (add it to `plugins`)"))
    plain, secret = split_secrets(cfg.settings, cls.secrets, stored)
    settings = {**plain, **secret}
    problems += (settings_problems(settings, cls.Settings, f"{path}.settings", str_keys=True)
                 or moved_secrets(cls.Settings, cls.endpoints, cfg.settings, settings,
                                  stored, cls.secrets, f"{path}.settings"))
    if problems:
        return None, problems
    return PlannedChannel(id=cfg.id, type=cfg.type, settings=plain, secrets=secret, enabled=cfg.enabled), []


def check_flow(host: "PluginHost", definition: Any, path: str = "$",
               channels: "Mapping[str, Capabilities]" = {}, flow_id: str | None = None,
               flows: "Collection[str] | None" = None,
               definitions: "Mapping[str, Any] | None" = None,
               others: "Iterable[tuple[str, dict[str, Any]]] | None" = None,
               enabled: "Collection[str] | None" = None) -> list[Problem]:
    """Every problem of one flow (errors and warnings), paths under `path`. `flows`: the
    tenant's flow ids a `goto` may name (engines that take it check them); `definitions`:
    their published definitions by id (cycles of gotos between flows); `others`: the
    tenant's other flows, whose triggers this one must not take (warnings); `enabled`: the
    tenant's plugins (a step of another plugin is an error)."""
    problems: list[Problem] = []
    if isinstance(definition, dict):
        fid = definition.get("id")
        if not isinstance(fid, str) or not FLOW_ID.match(fid):
            wrong = "" if fid is None else (f"Expected `str`, got `{type(fid).__name__}`: " if not isinstance(fid, str)
                                            else f"{fid[:80]!r} is not a flow id: ")
            problems.append(Problem(path="$.id", code="flow.id",
                                    message=f"{wrong}a flow needs an `id`: letters, digits, `_`, `.`, `-` "
                                            "(64 at most)"))
        elif flow_id is not None and fid != flow_id:
            problems.append(Problem(path="$.id", code="flow.id_mismatch",
                                    message=f"the definition's id {fid!r} differs from the flow {flow_id!r}"))
    problems += validate_flow(host, definition, channels, flows, definitions, enabled)
    if others is not None and isinstance(definition, dict) and isinstance(definition.get("id"), str):
        for p in trigger_conflicts(definition["id"], definition, others):
            problems.append(Problem(path=p.path, code=p.code, message=p.message, severity="warning"))
    return [Problem(path=join_path(path, p.path), code=p.code, message=p.message, severity=p.severity)
            for p in problems]


def channel_caps(host: "PluginHost", channels: Iterable[Any]) -> "dict[str, Capabilities]":
    """Capabilities of a tenant's channel instances, by instance id, for flow lint."""
    out = {}
    for ch in channels:
        cls = host.channels.get(ch.type)
        if cls is not None and getattr(ch, "enabled", True):
            out[ch.id] = cls.capabilities
    return out


# --- apply -----------------------------------------------------------------------------------
class TenantChanges(msgspec.Struct, omit_defaults=True):
    slug: str
    tenant: list[str] = []           # "created" / "updated"
    plugins: list[str] = []          # enabled or re-configured
    channels: list[str] = []         # created or changed
    flows: list[str] = []            # drafts created or changed
    published: list[str] = []        # "flow@version"
    removed: list[str] = []          # "plugin x", "channel y"
    warnings: list[Problem] = []


class ApplyReport(msgspec.Struct, omit_defaults=True):
    tenants: list[TenantChanges] = []

    def slugs(self) -> list[str]:
        """Tenants that changed (their caches must be invalidated)."""
        return [t.slug for t in self.tenants if _changed(t)]

    def lines(self) -> list[str]:
        out = []
        for t in self.tenants:
            if not _changed(t):
                out.append(f"{t.slug}: unchanged")
            else:
                parts = []
                for label in ("tenant", "plugins", "channels", "flows", "published", "removed"):
                    items = getattr(t, label)
                    if items:
                        parts.append(f"{label} {', '.join(items)}")
                out.append(f"{t.slug}: " + "; ".join(parts))
            for w in t.warnings:
                out.append(f"  warning {w.path}  [{w.code}] {w.message}")
        return out


def _changed(t: TenantChanges) -> bool:
    return any((t.tenant, t.plugins, t.channels, t.flows, t.published, t.removed))


def decode_tenant(raw: Any, where: str = "") -> TenantConfig:
    """A TenantConfig from JSON bytes or a dict; ProblemError (400/422) with the JSON path."""
    if isinstance(raw, (bytes, str)):
        # The admin API's checks too: UTF-8, and no nesting deep enough to break later reads.
        return decode_json(raw, TenantConfig, where=where, title="Invalid tenant definition")
    try:
        return msgspec.convert(raw, TenantConfig)
    except msgspec.ValidationError as exc:
        raise invalid([from_validation_error(exc, prefix=f"{where}:$" if where else "$")],
                      title="Invalid tenant definition") from None


async def plan_tenant(store: "Store", host: "PluginHost", cfg: TenantConfig,
                      where: str = "") -> tuple[TenantPlan, list[Problem]]:
    """Validate everything; the plan to write and every problem found (errors and warnings)."""
    problems: list[Problem] = []
    if not 60 <= cfg.session_ttl <= 366 * 24 * 3600:
        problems.append(Problem(path="$.session_ttl", code="constraint",
                                message="session_ttl is seconds, from 60 to a year (31622400)"))
    problems += check_timezone(cfg.timezone) + check_locales(cfg.locale, cfg.locales)
    current = await store.get_tenant(cfg.slug)
    stored_plugins = await store.get_plugins(cfg.slug) if current else {}
    plugins = []
    for name, raw in cfg.plugins.items():
        stored = await store.plugin_settings(cfg.slug, name) if name in stored_plugins else {}
        planned, probs = check_plugin(host, name, raw, f"$.plugins.{name}", stored)
        problems += probs
        if planned:
            plugins.append(planned)
    # A channel instance needs its plugin enabled (its chain hooks must run for this tenant):
    # enable it implicitly when it needs no settings, with a warning saying so.
    enabled = set(cfg.plugins)
    for i, ch in enumerate(cfg.channels):
        if ch.type in host.channels and host.owner("channel", ch.type) not in enabled:
            owner = host.owner("channel", ch.type)
            planned, probs = check_plugin(host, owner, {}, f"$.plugins.{owner}",
                                          await store.plugin_settings(cfg.slug, owner) if current else {})
            if planned is not None:
                plugins.append(planned)
                enabled.add(owner)
                problems.append(Problem(path=f"$.channels[{i}].type", code="channel.plugin_implied",
                                        severity="warning",
                                        message=f"plugin {owner!r} (channel type {ch.type!r}) was not in "
                                                f"`plugins`; it is enabled for this tenant"))
    channels, seen = [], set()
    for i, ch in enumerate(cfg.channels):
        path = f"$.channels[{i}]"
        if ch.id in seen:
            problems.append(Problem(path=f"{path}.id", code="channel.duplicate",
                                    message=f"two channel instances are called {ch.id!r}"))
            continue
        seen.add(ch.id)
        stored = await store.channel_settings(cfg.slug, ch.id) if current else {}
        planned, probs = check_channel(host, ch, path, stored, enabled=enabled)
        problems += probs
        if planned:
            channels.append(planned)
    caps = channel_caps(host, cfg.channels)
    # Flow id -> its definition once this file is applied (the file's, else the published
    # one, None for a flow never published): the engine checks gotos against it, cycles
    # between flows included.
    known: dict[str, Any] = {}
    if current:
        snap = await store.tenant_snapshot(cfg.slug)
        known = {f.id: None for f in await store.list_flows(cfg.slug)}
        known.update((f.id, f.definition) for f in (snap.flows if snap else ()))
    known.update((d["id"], d) for d in cfg.flows if isinstance(d, dict) and isinstance(d.get("id"), str))
    flows, fids = [], set()
    # The flows that will run once this file is applied (the file's, and the published ones
    # it leaves as they are): each flow is warned of every trigger it shares with them,
    # whatever the order of the file.
    live = [(other, d) for other, d in known.items() if isinstance(d, dict)]
    for i, definition in enumerate(cfg.flows):
        path = f"$.flows[{i}]"
        probs = check_flow(host, definition, path, caps, flows=set(known), definitions=known,
                           others=live, enabled=enabled)
        problems += probs
        fid = definition.get("id") if isinstance(definition, dict) else None
        if isinstance(fid, str) and fid in fids:
            problems.append(Problem(path=f"{path}.id", code="flow.duplicate",
                                    message=f"two flows are called {fid!r}"))
        fids.add(fid)
        if not errors_only(probs) and isinstance(fid, str):
            latest = 0
            existing = await store.get_flow(cfg.slug, fid) if current else None
            if existing is not None:
                latest = existing.latest_version
            publish = True
            if latest:
                fv = await store.get_flow_version(cfg.slug, fid, latest)
                publish = fv is None or definition_hash(fv.definition) != definition_hash(definition)
            flows.append(PlannedFlow(id=fid, definition=definition, publish=publish))
    if where:
        problems = [Problem(path=f"{where}:{p.path}", code=p.code, message=p.message, severity=p.severity)
                    for p in problems]
    tenant = TenantInfo(slug=cfg.slug, name=cfg.name, locale=cfg.locale, locales=cfg.locales,
                        timezone=cfg.timezone, session_ttl=cfg.session_ttl)
    plan = TenantPlan(tenant=tenant, plugins=plugins, channels=channels, flows=flows,
                      expect_revision=current.revision if current else 0)
    return plan, problems


async def apply_tenant(store: "Store", host: "PluginHost", cfg: TenantConfig, *, by: str = "apply",
                       where: str = "", planned: "tuple[TenantPlan, list[Problem]] | None" = None
                       ) -> TenantChanges:
    """Validate, then write in one transaction. Raises ProblemError (422) listing every error,
    having written nothing. The caller invalidates the tenant's caches (`Registry.invalidate`).
    `planned`: what `plan_tenant` gave for `cfg` a moment ago; it is planned again only when
    the tenant changed since (its revision moved), so it is never written stale."""
    while True:
        plan, problems = await plan_tenant(store, host, cfg, where) if planned is None else planned
        if errors_only(problems):
            raise invalid(problems, title=f"Invalid tenant {cfg.slug!r}")
        try:
            changes = await store.apply_plan(plan, by=by)
        except Conflict as exc:
            if planned is None:
                raise ProblemError(409, "Conflict", str(exc)) from None
            planned = None          # changed by someone else since: validate it again, once
            continue
        return TenantChanges(slug=cfg.slug, warnings=problems, **changes)


Progress = Callable[[str, int, int], None]
"""`progress(phase, done, total)`: phase "validate" then "apply", after each tenant."""


async def apply_path(store: "Store", host: "PluginHost", path: str | Path, *,
                     progress: Progress | None = None) -> ApplyReport:
    """Apply a tenant file, or every *.json of a folder (sorted). All files are validated
    before any is written; each tenant is written in its own transaction."""
    p = Path(path)
    files = sorted(p.glob("*.json")) if p.is_dir() else [p]
    if not files:
        raise ProblemError(400, "Nothing to apply", f"no *.json in {p}")
    tick = progress or (lambda phase, done, total: None)
    configs: list[tuple[str, TenantConfig]] = []
    problems: list[Problem] = []
    for f in files:
        try:
            raw = f.read_bytes()
        except OSError as exc:
            raise ProblemError(400, "Cannot read", f"{f}: {exc.strerror}") from None
        try:
            # Values from the environment (gateway.envsubst), in the decoded strings: a `$`
            # written as \u0024 reads the same as one written plainly.
            parsed, unset = expand(decode_json(raw, where=f.name, title="Invalid tenant definition"),
                                   os.environ, f"{f.name}:$")
            if unset:
                problems += unset
                continue
            configs.append((f.name, decode_tenant(parsed, f.name)))
        except ProblemError as exc:
            if exc.status != 400:
                problems += exc.errors
            elif len(files) == 1:
                raise
            else:    # one file that is not JSON: say so, and go on checking the others
                problems.append(Problem(path=f"{f.name}:$", code=exc.code,
                                        message=exc.detail.removeprefix(f"{f.name}: ")))
    counts = Counter(c.slug for _, c in configs)
    for slug in sorted(s for s, n in counts.items() if n > 1):
        names = [name for name, c in configs if c.slug == slug]
        problems.append(Problem(path=f"{names[1]}:$.slug", code="tenant.duplicate",
                                message=f"tenant {slug!r} is defined by more than one file "
                                        f"({', '.join(names)})"))
    # Validating a tenant's flows is most of the work: the plans of this pass are the ones
    # written, unless a tenant changes in between (then apply_tenant plans it again).
    plans = []
    for i, (name, cfg) in enumerate(configs, 1):
        planned = await plan_tenant(store, host, cfg, name)
        plans.append(planned)
        problems += errors_only(planned[1])
        tick("validate", i, len(configs))
    if errors_only(problems):
        raise invalid(problems, title="Invalid tenant definitions", detail=f"nothing was applied; "
                      f"{len(errors_only(problems))} error(s)")
    report = ApplyReport()
    for i, ((name, cfg), planned) in enumerate(zip(configs, plans), 1):
        report.tenants.append(await apply_tenant(store, host, cfg, where=name, planned=planned))
        tick("apply", i, len(configs))
    return report


def load_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))
