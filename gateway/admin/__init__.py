"""The admin API (`/admin/v1`): one route table drives routing, auth, the OpenAPI document
and the security test that walks every route with a foreign tenant's key.

    mount_admin(app)      # the sub-app under /admin/v1

Handlers read the store, the plugin host and the registry from `request.config_dict`.
"""
from __future__ import annotations

from aiohttp import web

from . import conversations as c
from . import flows as f
from . import tenants as t
from .http import Route, guard, json_response, unmatched, with_problems
from .openapi import openapi_document
from .wire import (AgentAction, ConversationOut, AgencyKeyCreate, ApplyResult, ChannelCreate, ChannelList, ChannelOut, ChannelPut, FlowDiff, FlowList,
                   FlowOut, GraphOut, InstalledList, KeyCreate, KeyCreated, KeyList, PluginSettingsIn,
                   PublishIn, PublishOut, RollbackIn, SimulateIn, SimulateOut, TenantCreate, TenantList,
                   TenantPatch, TenantPlugin, TenantPlugins, ValidateOut, VersionList, VersionOut)
from ..config import TenantConfig
from ..store.records import TenantInfo

T = "/tenants/{tenant}"
FL = T + "/flows/{flow}"
CV = T + "/conversations/{channel}/{contact}"
IF_MATCH = (("If-Match", "the ETag last read; required for PUT, optional for publish"),)


async def openapi(request: web.Request) -> web.Response:
    return json_response(openapi_document(ROUTES))


async def flow_schema(request: web.Request) -> web.Response:
    """JSON Schema of a flow engine's format (`?engine=`, default `tree`)."""
    from ..appkeys import PLUGINS
    from ..problems import not_found
    engine = request.config_dict[PLUGINS].engines.get(request.query.get("engine", "tree"))
    if engine is None:
        raise not_found("flow engine")
    return json_response(engine.schema())


ROUTES: list[Route] = [
    Route("GET", "/openapi.json", openapi, "public", "This document"),
    Route("GET", "/schemas/flow.json", flow_schema, "public", "JSON Schema of the flow format (?engine=tree)",
          query=(("engine", "flow engine name (default tree)"),), fails=(404,)),
    Route("GET", "/plugins", t.installed_plugins, "any", "Installed plugins, what they register, their settings schema",
          response=InstalledList),
    # agency keys
    Route("GET", "/keys", t.list_agency_keys, "agency", "Agency keys (never the keys themselves)", response=KeyList),
    Route("POST", "/keys", t.create_agency_key, "agency", "Create an agency key; shown once",
          body=AgencyKeyCreate, response=KeyCreated, status=201, writes=True),
    Route("DELETE", "/keys/{key}", t.delete_agency_key, "agency", "Revoke an agency key (not the last one)",
          status=204, writes=True),
    # tenants
    Route("GET", "/tenants", t.list_tenants, "any", "Tenants (a tenant key sees its own)", response=TenantList),
    Route("POST", "/tenants", t.create_tenant, "agency", "Create a tenant", body=TenantCreate,
          response=TenantInfo, status=201, writes=True),
    Route("GET", T, t.get_tenant, "viewer", "A tenant", response=TenantInfo),
    Route("PATCH", T, t.patch_tenant, "owner", "Change a tenant's name, locales, time zone, session TTL",
          body=TenantPatch, response=TenantInfo, writes=True),
    Route("PUT", T, t.put_tenant, "owner",
          "Apply a whole tenant definition (as tenants/<slug>.json); an agency key may create it this way",
          body=TenantConfig, response=ApplyResult, writes=True, creates=True, also=(201,)),
    Route("DELETE", T, t.delete_tenant, "agency", "Delete a tenant and all its data", status=204, writes=True),
    # keys
    Route("GET", T + "/keys", t.list_keys, "owner", "The tenant's API keys (never the keys themselves)",
          response=KeyList),
    Route("POST", T + "/keys", t.create_key, "owner", "Create a tenant key; the answer is the only time it is shown",
          body=KeyCreate, response=KeyCreated, status=201, writes=True),
    Route("DELETE", T + "/keys/{key}", t.delete_key, "owner", "Revoke a key", status=204, writes=True),
    # plugins
    Route("GET", T + "/plugins", t.tenant_plugins, "viewer", "Available and enabled plugins with settings and schemas",
          response=TenantPlugins),
    Route("GET", T + "/plugins/{plugin}", t.get_plugin, "viewer", "One plugin for this tenant", response=TenantPlugin),
    Route("PUT", T + "/plugins/{plugin}", t.put_plugin, "owner", "Enable a plugin / change its settings",
          body=PluginSettingsIn, response=TenantPlugin, writes=True, also=(201,)),
    Route("DELETE", T + "/plugins/{plugin}", t.delete_plugin, "owner",
          "Disable a plugin; 409 while its channels remain or published flows need it",
          status=204, writes=True, query=(("force", "true: disable it although flows need it"),), fails=(400, 409)),
    # channels
    Route("GET", T + "/channels", t.list_channels, "viewer", "Channel instances (secrets masked)",
          response=ChannelList),
    Route("POST", T + "/channels", t.create_channel, "owner", "Add a channel instance", body=ChannelCreate,
          response=ChannelOut, status=201, writes=True),
    Route("GET", T + "/channels/{channel}", t.get_channel, "viewer", "A channel instance (secrets masked)",
          response=ChannelOut),
    Route("PUT", T + "/channels/{channel}", t.put_channel, "owner",
          "Create or replace a channel instance (omitted or \"***set***\" secrets are kept)",
          body=ChannelPut, response=ChannelOut, writes=True, also=(201,)),
    Route("DELETE", T + "/channels/{channel}", t.delete_channel, "owner", "Remove a channel instance",
          status=204, writes=True),
    # flows
    Route("GET", T + "/flows", f.list_flows, "viewer", "Flows", response=FlowList),
    Route("POST", T + "/flows", f.create_flow, "editor", "Create a flow (its definition becomes the draft)",
          body=dict, response=FlowOut, status=201, writes=True),
    Route("POST", T + "/flows/validate", f.validate_any, "viewer",
          "Validate a flow definition in the body against this tenant, without saving it",
          body=dict, response=ValidateOut),
    Route("GET", FL, f.get_flow, "viewer", "A flow's draft, with its ETag", response=FlowOut,
          headers=(("If-None-Match", "answer 304 when unchanged"),)),
    Route("PUT", FL, f.put_flow, "editor", "Replace the draft (If-Match required; 412 when stale)",
          body=dict, response=FlowOut, headers=IF_MATCH, writes=True),
    Route("DELETE", FL, f.delete_flow, "editor",
          "Archive a flow (versions are kept); 409 while another published flow starts it",
          status=204, writes=True, query=(("force", "true: archive even so"),), fails=(400, 409)),
    Route("POST", FL + "/validate", f.validate, "viewer", "Validate the draft, or the definition in the body",
          response=ValidateOut),
    Route("POST", FL + "/publish", f.publish, "editor", "Validate and publish the draft as the next version",
          body=PublishIn, response=PublishOut, status=201, headers=IF_MATCH, writes=True),
    Route("GET", FL + "/versions", f.list_versions, "viewer", "Published versions", response=VersionList),
    Route("GET", FL + "/versions/{version}", f.get_version, "viewer", "One published version", response=VersionOut),
    Route("GET", FL + "/versions/{a}/diff/{b}", f.diff, "viewer",
          "What changed from version a to b, node by node (`draft` names the draft)", response=FlowDiff),
    Route("POST", FL + "/rollback", f.rollback, "editor", "Publish an older version again as a new number",
          body=RollbackIn, response=PublishOut, status=201, writes=True),
    Route("GET", FL + "/graph", f.graph, "viewer", "The flow as Mermaid and SVG", response=GraphOut,
          query=(("version", "a version number or `draft` (default)"), ("format", "json (default), mermaid or svg")),
          fails=(400, 422)),
    Route("POST", FL + "/simulate", f.simulate, "viewer",
          "Run the flow against a script of inputs, without side effects (live_steps needs editor)",
          body=SimulateIn, response=SimulateOut, fails=(422,)),
    # conversations (human agents)
    Route("GET", CV, c.get_conversation, "agent", "A conversation: live state and latest events",
          response=ConversationOut),
    Route("POST", CV + "/takeover", c.takeover, "agent", "A human takes the conversation; the bot goes silent",
          body=AgentAction, response=ConversationOut, writes=True),
    Route("POST", CV + "/reply", c.reply, "agent", "Send an agent's message to the contact (window rules apply)",
          body=AgentAction, response=ConversationOut, writes=True),
    Route("POST", CV + "/release", c.release, "agent", "Hand the conversation back to the bot",
          body=AgentAction, response=ConversationOut, writes=True),
]


def create_admin_app() -> web.Application:
    app = web.Application()
    for route in ROUTES:
        app.router.add_route(route.method, route.path, with_problems(guard(route)))
    app.router.add_route("*", "/{tail:.*}", with_problems(unmatched))
    return app


PREFIX = "/admin/v1"


def mount_admin(app: web.Application) -> None:
    """Mount the admin API on `app` under /admin/v1. The sub-app's catch-all answers below
    the prefix; the prefix itself needs a route of the parent's."""
    app.router.add_route("*", PREFIX, with_problems(unmatched))
    app.add_subapp(PREFIX, create_admin_app())


__all__ = ["create_admin_app", "mount_admin", "ROUTES", "Route"]
