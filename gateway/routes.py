"""What a plugin's route handler (`register_routes`) knows of the tenant it answers for.

The gateway mounts a plugin's routes under `/t/{tenant}` and lets a request through only for
a tenant that has enabled the plugin; the handler then asks `route_tenant(request)` for that
tenant, with the plugin's own settings already decoded, as a flow step gets them from
`ctx.settings`. This is the stable way in: the registry behind it is internal.
"""
from __future__ import annotations

from typing import Any, NamedTuple

from aiohttp import web


class RouteTenant(NamedTuple):
    slug: str
    # The tenant's settings of this plugin: its `Settings` Struct with defaults filled in;
    # for a plugin without one, what the tenant gave as they are (a dict, `{}` when nothing);
    # None when the stored settings no longer decode.
    settings: Any
    # The tenant's configuration as loaded (`TenantSnapshot`: name, locale, timezone,
    # channels, flows), the same object as `ctx.tenant_config`. Read only; it holds the
    # channels' secrets decrypted: never answer it as it is.
    config: Any


# A typed request key where aiohttp has them (3.13+); a string before.
_KEY: Any = web.RequestKey("causette.route_tenant", RouteTenant) if hasattr(web, "RequestKey") \
    else "causette.route_tenant"


def route_tenant(request: web.Request) -> RouteTenant:
    """The tenant a plugin route answers for. Raises LookupError outside such a route."""
    try:
        return request[_KEY]
    except KeyError:
        raise LookupError("route_tenant() works in the handlers that register_routes returns") from None


def bind(request: web.Request, slug: str, settings: Any, config: Any) -> None:
    """The gateway's side: called once the tenant is known to have enabled the plugin."""
    request[_KEY] = RouteTenant(slug, settings, config)
