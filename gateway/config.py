"""Tenant configuration shapes: what `tenants/*.json` and the admin API accept, and the
snapshot the store hands to the runtime registry."""
from __future__ import annotations

from typing import Annotated, Any

import msgspec

Slug = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$",
                                   description="tenant slug")]
Ident = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]


class ChannelConfig(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """One channel instance of a tenant. `settings` is validated by the channel's Settings
    Struct; the fields it lists in `secrets` are write-only and encrypted at rest."""
    id: Ident
    type: str
    settings: dict[str, Any] = {}
    enabled: bool = True


class TenantConfig(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """A tenant as written in tenants/<slug>.json (flows are published on apply)."""
    slug: Slug
    name: str
    locale: str = "fr"
    locales: list[str] = []
    timezone: str = "Europe/Paris"
    session_ttl: int = 7 * 24 * 3600       # seconds a conversation's session lives idle
    plugins: dict[str, dict[str, Any]] = {}  # enabled plugins -> their settings
    channels: list[ChannelConfig] = []
    flows: list[dict[str, Any]] = []        # flow definitions (validated by their engine)


class FlowVersion(msgspec.Struct, omit_defaults=True):
    """One immutable published version of a flow."""
    id: str
    version: int
    definition: dict[str, Any]
    published_at: float = 0.0


class TenantSnapshot(msgspec.Struct, omit_defaults=True):
    """Everything the runtime needs about one tenant, secrets decrypted; built by the store."""
    slug: str
    name: str
    locale: str = "fr"
    timezone: str = "Europe/Paris"
    session_ttl: int = 7 * 24 * 3600
    plugins: dict[str, dict[str, Any]] = {}
    channels: list[ChannelConfig] = []
    flows: list[FlowVersion] = []           # latest published version of each flow
    revision: int = 0                       # bumps on every change; drives cache invalidation
