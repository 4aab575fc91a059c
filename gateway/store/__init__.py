"""The store: tenants, hashed API keys, plugin settings, channel instances (secrets encrypted
at rest), flows with drafts and immutable versions, contacts with consent, events.

    store = await Store.open("var/causette.db", secret)

SQLite (aiosqlite, WAL) is the backend today; the public methods of `Store` are the whole
interface, so a PostgreSQL backend can follow.
"""
from .base import StoreBackend
from .records import (ROLES, ChannelRecord, ConsentEntry, Contact, FlowRecord, KeyInfo, PlannedChannel,
                      PlannedFlow, PlannedPlugin, TenantInfo, TenantPlan, VersionInfo, role_rank)
from .sqlite import (Conflict, NotFound, PluginNotEnabled, PreconditionFailed, Store, StoreError,
                     canonical, definition_hash)

__all__ = ["Store", "StoreBackend", "StoreError", "Conflict", "PluginNotEnabled", "NotFound", "PreconditionFailed", "TenantInfo", "KeyInfo",
           "ChannelRecord", "FlowRecord", "VersionInfo", "Contact", "ConsentEntry", "TenantPlan",
           "PlannedChannel", "PlannedFlow", "PlannedPlugin", "ROLES", "role_rank", "canonical",
           "definition_hash"]
