"""Tenants, keys, plugins and channel instances."""
from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from ..appkeys import STATE
from ..apply import (MASK, apply_tenant, check_channel, check_flow, check_locales, check_plugin, check_timezone, decode_tenant,
                     plugin_secret_fields, plugin_settings_type)
from ..config import ChannelConfig
from ..problems import ProblemError, conflict, invalid, items, not_found
from ..store import Conflict, PluginNotEnabled, TenantInfo
from ..types import Problem
from .http import (host, invalidate, json_response, principal, read_json,
                   store)
from .wire import (AgencyKeyCreate, ApplyResult, ChannelCreate, ChannelList, ChannelOut, ChannelPut, InstalledList,
                   InstalledPlugin, KeyCreate, KeyCreated, KeyList, PluginSettingsIn, TenantCreate,
                   TenantList, TenantPatch, TenantPlugin, TenantPlugins)


def _slug(request: web.Request) -> str:
    return request.match_info["tenant"]


def _schema(t: Any) -> dict[str, Any] | None:
    return msgspec.json.schema(t) if t is not None else None


# --- tenants ---------------------------------------------------------------------------------
async def list_tenants(request: web.Request) -> web.Response:
    key = principal(request)
    if key.tenant is None:
        tenants = await store(request).list_tenants()
    else:   # a tenant key sees its own tenant only
        t = await store(request).get_tenant(key.tenant)
        tenants = [t] if t else []
    return json_response(TenantList(tenants=tenants))


async def create_tenant(request: web.Request) -> web.Response:
    body: TenantCreate = await read_json(request, TenantCreate)
    if problems := check_timezone(body.timezone) + check_locales(body.locale, body.locales):
        raise invalid(problems)
    try:
        t = await store(request).create_tenant(TenantInfo(**msgspec.structs.asdict(body)))
    except Conflict:
        raise conflict(f"tenant {body.slug!r} exists") from None
    await invalidate(request, t.slug)
    return json_response(t, status=201, headers={"Location": f"{request.path}/{t.slug}"})


async def get_tenant(request: web.Request) -> web.Response:
    t = await store(request).get_tenant(_slug(request))
    if t is None:   # deleted since the guard looked
        raise not_found("tenant")
    return json_response(t)


async def patch_tenant(request: web.Request) -> web.Response:
    body: TenantPatch = await read_json(request, TenantPatch)
    fields = {k: v for k, v in msgspec.structs.asdict(body).items() if v is not msgspec.UNSET}
    problems = check_timezone(fields["timezone"]) if "timezone" in fields else []
    if "locale" in fields or "locales" in fields:
        # The tenant after the change: a new default against the declared ones, or the reverse.
        t = await store(request).get_tenant(_slug(request))
        problems += check_locales(fields.get("locale", t.locale if t else "fr"),
                                  fields.get("locales", t.locales if t else []))
    if problems:
        raise invalid(problems)
    t = await store(request).update_tenant(_slug(request), **fields)
    if t is None:   # deleted since the guard looked
        raise not_found("tenant")
    await invalidate(request, _slug(request))
    return json_response(t)


async def put_tenant(request: web.Request) -> web.Response:
    """The whole tenant as in tenants/<slug>.json: the same validation and transaction as
    `causette tenants apply`. The slug in the body must be the one in the path."""
    raw = await read_json(request, msgspec.Raw)
    cfg = decode_tenant(bytes(raw))
    if cfg.slug != _slug(request):
        raise invalid([_p("$.slug", "tenant.slug_mismatch", f"the body's slug {cfg.slug!r} is not "
                          f"{_slug(request)!r}")])
    changes = await apply_tenant(store(request), host(request), cfg, by=principal(request).id)
    await invalidate(request, cfg.slug)
    fields = msgspec.structs.asdict(changes)
    fields["warnings"] = items(changes.warnings)
    return json_response(ApplyResult(**fields), status=201 if "created" in changes.tenant else 200)


async def delete_tenant(request: web.Request) -> web.Response:
    slug, st = _slug(request), store(request)
    await st.delete_tenant(slug)
    await invalidate(request, slug)
    # Its conversations, webchat transcripts and events in flight go too: a tenant created
    # later under the same slug must not inherit them.
    state = request.config_dict.get(STATE)    # None: the admin API served without Redis
    if state is not None:
        await state.purge_tenant(slug)

        async def gone() -> bool:
            return await st.get_tenant(slug) is None
        state.purge_later(slug, gone)
    return web.Response(status=204)


# --- keys ------------------------------------------------------------------------------------
async def list_keys(request: web.Request) -> web.Response:
    return json_response(KeyList(keys=await store(request).list_keys(_slug(request))))


async def create_key(request: web.Request) -> web.Response:
    body: KeyCreate = await read_json(request, KeyCreate, optional=True)
    clear = await store(request).create_key(_slug(request), body.role, body.name)
    return json_response(KeyCreated(id=clear.split("_", 2)[1], key=clear, role=body.role,
                                    tenant=_slug(request), name=body.name), status=201,
                         headers={"Cache-Control": "no-store"})


async def delete_key(request: web.Request) -> web.Response:
    if not await store(request).revoke_key(_slug(request), request.match_info["key"]):
        raise not_found("key")
    return web.Response(status=204)


async def list_agency_keys(request: web.Request) -> web.Response:
    return json_response(KeyList(keys=await store(request).list_keys(None)))


async def create_agency_key(request: web.Request) -> web.Response:
    body: AgencyKeyCreate = await read_json(request, AgencyKeyCreate, optional=True)
    clear = await store(request).create_key(None, "agency", body.name)
    return json_response(KeyCreated(id=clear.split("_", 2)[1], key=clear, role="agency", name=body.name),
                         status=201, headers={"Cache-Control": "no-store"})


async def delete_agency_key(request: web.Request) -> web.Response:
    # The store counts the keys in the revoking transaction: checked here, two revocations
    # at once could each see the other key and leave none.
    try:
        revoked = await store(request).revoke_key(None, request.match_info["key"], keep_last=True)
    except Conflict:
        raise conflict("this is the last agency key; create another one first") from None
    if not revoked:
        raise not_found("key")
    return web.Response(status=204)


# --- plugins ---------------------------------------------------------------------------------
def _masked(settings: dict[str, Any], secret_names: list[str], fields: Any = ()) -> dict[str, Any]:
    """Settings as the API shows them: secrets as MASK. `fields`: every secret field of the
    plugin, for rows written before a field became secret (kept in clear until re-saved)."""
    legacy = set(fields) & set(settings)
    return {**{k: v for k, v in settings.items() if k not in legacy},
            **{k: MASK for k in (*secret_names, *legacy)}}


async def installed_plugins(request: web.Request) -> web.Response:
    h = host(request)
    out = [InstalledPlugin(name=p.name, dist=p.dist, version=p.version, hooks=p.hooks, registers=p.registers,
                           settings_schema=_schema(plugin_settings_type(h, p.name)),
                           secrets=list(plugin_secret_fields(h, p.name)))
           for p in h.plugins]
    return json_response(InstalledList(plugins=out))


async def tenant_plugins(request: web.Request) -> web.Response:
    h = host(request)
    enabled = await store(request).get_plugins(_slug(request))
    available = []
    for p in h.plugins:
        on = p.name in enabled
        settings = _masked(*enabled[p.name], plugin_secret_fields(h, p.name)) if on else {}
        available.append(TenantPlugin(name=p.name, enabled=on, settings=settings, version=p.version,
                                      settings_schema=_schema(plugin_settings_type(h, p.name)),
                                      registers=p.registers))
    return json_response(TenantPlugins(available=available,
                                       enabled={n: _masked(*v, plugin_secret_fields(h, n))
                                                for n, v in enabled.items()}))


async def get_plugin(request: web.Request) -> web.Response:
    h, name = host(request), request.match_info["plugin"]
    info = next((p for p in h.plugins if p.name == name), None)
    if info is None:
        raise not_found("plugin")
    enabled = await store(request).get_plugins(_slug(request))
    return json_response(TenantPlugin(name=name, enabled=name in enabled,
                                      settings=_masked(*enabled[name], plugin_secret_fields(h, name))
                                      if name in enabled else {},
                                      settings_schema=_schema(plugin_settings_type(h, name)),
                                      version=info.version, registers=info.registers))


async def put_plugin(request: web.Request) -> web.Response:
    """Enable a plugin for the tenant with its settings (validated by the plugin's Settings)."""
    body: PluginSettingsIn = await read_json(request, PluginSettingsIn, optional=True)
    slug, name = _slug(request), request.match_info["plugin"]
    st = store(request)
    planned, problems = check_plugin(host(request), name, body.settings, "$.settings",
                                     await st.plugin_settings(slug, name))
    if planned is None:
        if problems and problems[0].code == "plugin.unknown":
            raise not_found("plugin")
        raise invalid(problems)
    created = await st.set_plugin(slug, name, planned.settings, planned.secrets)
    await invalidate(request, slug)
    return await _plugin_answer(request, 201 if created else 200)


async def _plugin_answer(request: web.Request, status: int) -> web.Response:
    resp = await get_plugin(request)
    resp.set_status(status)
    return resp


async def _plugin_users(request: web.Request, slug: str, name: str) -> list[Problem]:
    """Where the tenant's published flows need plugin `name`: its engine runs them, or a step
    of it is called (found by the flows' own validation without the plugin)."""
    h = host(request)
    snap = await store(request).tenant_snapshot(slug)
    if snap is None:
        return []
    out: list[Problem] = []
    for f in snap.flows:
        engine = f.definition.get("engine", "tree")
        if isinstance(engine, str) and h.owner("engine", engine) == name:
            out.append(Problem(path="$.engine", code="plugin.in_use",
                               message=f"published flow {f.id!r} (version {f.version}) runs on its engine {engine!r}"))
            continue
        # Only what removing this plugin breaks: a step of another plugin that is already off
        # is that plugin's business.
        before = {p.path for p in check_flow(h, f.definition, enabled=set(snap.plugins))
                  if p.code == "step.plugin_disabled"}
        out += [Problem(path=p.path, code="plugin.in_use",
                        message=f"published flow {f.id!r} (version {f.version}) calls its step here")
                for p in check_flow(h, f.definition, enabled=set(snap.plugins) - {name})
                if p.code == "step.plugin_disabled" and p.path not in before]
    return out


async def delete_plugin(request: web.Request) -> web.Response:
    slug, name, h = _slug(request), request.match_info["plugin"], host(request)
    force = request.query.get("force", "false")
    if force not in ("true", "false"):
        raise ProblemError(400, "Bad query parameter", "`force`: true or false",
                           errors=[Problem(path="?force", code="constraint", message="true or false")])
    if force == "false" and (users := await _plugin_users(request, slug, name)):
        raise ProblemError(409, "Conflict", f"published flows need plugin {name!r}: publish them without "
                           "it first, or disable it with ?force=true (its steps then fail, taking their "
                           "on_error)", code="plugin.in_use", errors=users)
    types = [t for t in h.channels if h.owner("channel", t) == name]
    try:   # the store looks for the plugin's channels in the same transaction as the removal
        removed = await store(request).remove_plugin(slug, name, types)
    except Conflict as exc:
        raise conflict(f"channel instance(s) {exc} use plugin {name!r}; delete them first") from None
    if not removed:
        raise not_found("enabled plugin")
    await invalidate(request, slug)
    return web.Response(status=204)


# --- channels --------------------------------------------------------------------------------
def _channel_out(request: web.Request, rec: Any) -> ChannelOut:
    h = host(request)
    cls = h.channels.get(rec.type)
    return ChannelOut(id=rec.id, type=rec.type, settings=_masked(rec.settings, rec.secrets_set),
                      enabled=rec.enabled, webhook=f"/t/{_slug(request)}/channels/{rec.id}",
                      plugin=h.owner("channel", rec.type) if cls else "",
                      # every field, defaults included: a client reads limits, not msgspec's omissions
                      capabilities=msgspec.structs.asdict(cls.capabilities) if cls else {},
                      created_at=rec.created_at, updated_at=rec.updated_at)


async def list_channels(request: web.Request) -> web.Response:
    recs = await store(request).list_channels(_slug(request))
    return json_response(ChannelList(channels=[_channel_out(request, r) for r in recs]))


async def get_channel(request: web.Request) -> web.Response:
    rec = await store(request).get_channel(_slug(request), request.match_info["channel"])
    if rec is None:
        raise not_found("channel")
    return json_response(_channel_out(request, rec))


async def _write_channel(request: web.Request, cfg: ChannelConfig, *, create_only: bool) -> web.Response:
    slug, st, h = _slug(request), store(request), host(request)
    enabled = set(await st.get_plugins(slug))
    implied = None
    if cfg.type in h.channels and h.owner("channel", cfg.type) not in enabled:
        # as in `apply`: the channel's plugin is enabled with it when it needs no settings
        implied, _ = check_plugin(h, h.owner("channel", cfg.type), {}, "$")
        if implied is not None:
            enabled.add(implied.name)
    planned, problems = check_channel(h, cfg, "$", await st.channel_settings(slug, cfg.id), enabled=enabled)
    if planned is None:
        raise invalid(problems)
    try:   # the implied plugin in the channel's transaction: a 409 leaves it disabled
        created = await st.put_channel(slug, cfg.id, cfg.type, planned.settings, planned.secrets,
                                       planned.enabled, create_only=create_only, plugin=implied,
                                       needs=h.owner("channel", cfg.type))
    except Conflict as exc:   # the channel exists (POST), or its plugin was disabled meanwhile
        raise conflict(f"{exc}; enable it, then try again" if isinstance(exc, PluginNotEnabled)
                       else f"{exc}; PUT it to replace it") from None
    await invalidate(request, slug)
    rec = await st.get_channel(slug, cfg.id)
    return json_response(_channel_out(request, rec), status=201 if created else 200,
                         headers={"Location": f"/admin/v1/tenants/{slug}/channels/{cfg.id}"} if created else None)


async def create_channel(request: web.Request) -> web.Response:
    body: ChannelCreate = await read_json(request, ChannelCreate)
    return await _write_channel(request, ChannelConfig(id=body.id, type=body.type, settings=body.settings,
                                                       enabled=body.enabled), create_only=True)


async def put_channel(request: web.Request) -> web.Response:
    body: ChannelPut = await read_json(request, ChannelPut)
    cid = request.match_info["channel"]
    try:
        cfg = msgspec.convert({"id": cid, "type": body.type, "settings": body.settings, "enabled": body.enabled},
                              ChannelConfig)
    except msgspec.ValidationError:
        raise not_found("channel") from None   # an id no channel can have
    return await _write_channel(request, cfg, create_only=False)


async def delete_channel(request: web.Request) -> web.Response:
    if not await store(request).delete_channel(_slug(request), request.match_info["channel"]):
        raise not_found("channel")
    await invalidate(request, _slug(request))
    return web.Response(status=204)


def _p(path: str, code: str, message: str) -> Any:
    from ..types import Problem
    return Problem(path=path, code=code, message=message)

