"""Shapes the store returns. The admin API encodes most of them as they are."""
from __future__ import annotations

from typing import Any, Literal

import msgspec

Role = Literal["agency", "owner", "editor", "agent", "viewer"]
ROLES: tuple[str, ...] = ("viewer", "agent", "editor", "owner", "agency")   # weakest first


def role_rank(role: str) -> int:
    return ROLES.index(role) if role in ROLES else -1


class TenantInfo(msgspec.Struct):
    slug: str
    name: str
    locale: str = "fr"
    locales: list[str] = []
    timezone: str = "Europe/Paris"
    session_ttl: int = 7 * 24 * 3600
    revision: int = 0
    created_at: float = 0.0
    updated_at: float = 0.0


class KeyInfo(msgspec.Struct):
    """An API key as stored: never the key itself, only its id, scope and role."""
    id: str
    role: Role
    tenant: str | None = None      # None: an agency key
    name: str = ""
    created_at: float = 0.0
    last_used: float = 0.0


class ChannelRecord(msgspec.Struct):
    """A channel instance without its secrets; `secrets_set` names those that hold a value."""
    id: str
    type: str
    settings: dict[str, Any] = {}
    secrets_set: list[str] = []
    enabled: bool = True
    created_at: float = 0.0
    updated_at: float = 0.0


class FlowRecord(msgspec.Struct):
    """A flow: its draft (what editors change) and where its published versions stand."""
    id: str
    draft: dict[str, Any]
    revision: int
    etag: str
    name: str = ""
    engine: str = "tree"
    latest_version: int = 0        # 0: never published
    draft_published: bool = False  # the draft equals the latest published version
    updated_at: float = 0.0
    archived: bool = False


class VersionInfo(msgspec.Struct):
    version: int
    published_at: float
    hash: str
    note: str = ""
    by: str = ""                   # key id that published it, or "apply"
    rollback_of: int = 0           # set when this version republished an older one


class Contact(msgspec.Struct, omit_defaults=True):
    id: str
    identities: dict[str, str] = {}       # channel instance id -> address
    attributes: dict[str, Any] = {}
    tags: list[str] = []
    locale: str = ""
    timezone: str = ""
    consent: dict[str, str] = {}          # channel instance id -> "optin" | "optout" (latest)
    created_at: float = 0.0
    last_seen: float = 0.0


class ConsentEntry(msgspec.Struct, omit_defaults=True):
    channel: str
    status: Literal["optin", "optout"]
    ts: float
    source: str = ""


class PlannedChannel(msgspec.Struct):
    id: str
    type: str
    settings: dict[str, Any]       # non-secret fields only
    secrets: dict[str, Any]        # the full set of secret values to keep (already merged)
    enabled: bool = True


class PlannedPlugin(msgspec.Struct):
    name: str
    settings: dict[str, Any]
    secrets: dict[str, Any] = {}


class PlannedFlow(msgspec.Struct):
    id: str
    definition: dict[str, Any]
    publish: bool                  # the definition differs from the latest published version


class TenantPlan(msgspec.Struct):
    """Everything `apply` writes for one tenant, in one transaction, already validated."""
    tenant: TenantInfo
    plugins: list[PlannedPlugin]
    channels: list[PlannedChannel]
    flows: list[PlannedFlow]
    expect_revision: int | None = None   # optimistic check: the tenant's revision when planned
