"""Versioned schema migrations, applied in order at open; each runs once, in a transaction,
and is recorded in `schema_migrations`. Append new ones; never edit a released one.

Every table that holds a tenant's data carries `tenant` in its primary key or an index, and
every query of the store filters on it."""
from __future__ import annotations

MIGRATIONS: list[tuple[int, str, str]] = [
    (1, "tenants, keys, plugins, channels, flows, contacts, events", """
CREATE TABLE tenants (
    slug        TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    locale      TEXT NOT NULL DEFAULT 'fr',
    locales     TEXT NOT NULL DEFAULT '[]',
    timezone    TEXT NOT NULL DEFAULT 'Europe/Paris',
    session_ttl INTEGER NOT NULL DEFAULT 604800,
    revision    INTEGER NOT NULL DEFAULT 1,
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL
);
CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    tenant      TEXT REFERENCES tenants(slug) ON DELETE CASCADE,   -- NULL: agency key
    role        TEXT NOT NULL CHECK (role IN ('agency','owner','editor','agent','viewer')),
    hash        TEXT NOT NULL,
    name        TEXT NOT NULL DEFAULT '',
    created_at  REAL NOT NULL,
    last_used   REAL NOT NULL DEFAULT 0,
    CHECK ((tenant IS NULL) = (role = 'agency'))
);
CREATE INDEX api_keys_tenant ON api_keys(tenant);
CREATE TABLE tenant_plugins (
    tenant      TEXT NOT NULL REFERENCES tenants(slug) ON DELETE CASCADE,
    plugin      TEXT NOT NULL,
    settings    TEXT NOT NULL DEFAULT '{}',
    secrets     BLOB,
    updated_at  REAL NOT NULL,
    PRIMARY KEY (tenant, plugin)
);
CREATE TABLE channels (
    tenant      TEXT NOT NULL REFERENCES tenants(slug) ON DELETE CASCADE,
    id          TEXT NOT NULL,
    type        TEXT NOT NULL,
    settings    TEXT NOT NULL DEFAULT '{}',
    secrets     BLOB,                      -- Fernet token of the secret fields, or NULL
    secret_names TEXT NOT NULL DEFAULT '[]',
    enabled     INTEGER NOT NULL DEFAULT 1,
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE TABLE flows (
    tenant      TEXT NOT NULL REFERENCES tenants(slug) ON DELETE CASCADE,
    id          TEXT NOT NULL,
    draft       TEXT NOT NULL,
    draft_hash  TEXT NOT NULL,
    revision    INTEGER NOT NULL DEFAULT 1,
    archived    INTEGER NOT NULL DEFAULT 0,
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE TABLE flow_versions (
    tenant      TEXT NOT NULL,
    flow        TEXT NOT NULL,
    version     INTEGER NOT NULL,
    definition  TEXT NOT NULL,
    hash        TEXT NOT NULL,
    published_at REAL NOT NULL,
    by          TEXT NOT NULL DEFAULT '',
    note        TEXT NOT NULL DEFAULT '',
    rollback_of INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant, flow, version),
    FOREIGN KEY (tenant, flow) REFERENCES flows(tenant, id) ON DELETE CASCADE
);
CREATE TABLE contacts (
    tenant      TEXT NOT NULL REFERENCES tenants(slug) ON DELETE CASCADE,
    id          TEXT NOT NULL,
    attributes  TEXT NOT NULL DEFAULT '{}',
    tags        TEXT NOT NULL DEFAULT '[]',
    locale      TEXT NOT NULL DEFAULT '',
    timezone    TEXT NOT NULL DEFAULT '',
    created_at  REAL NOT NULL,
    last_seen   REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant, id)
);
CREATE TABLE contact_identities (
    tenant      TEXT NOT NULL,
    channel     TEXT NOT NULL,
    address     TEXT NOT NULL,
    contact     TEXT NOT NULL,
    PRIMARY KEY (tenant, channel, address),
    FOREIGN KEY (tenant, contact) REFERENCES contacts(tenant, id) ON DELETE CASCADE
);
CREATE INDEX contact_identities_contact ON contact_identities(tenant, contact);
CREATE TABLE consent (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant      TEXT NOT NULL,
    contact     TEXT NOT NULL,
    channel     TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('optin','optout')),
    ts          REAL NOT NULL,
    source      TEXT NOT NULL DEFAULT '',
    FOREIGN KEY (tenant, contact) REFERENCES contacts(tenant, id) ON DELETE CASCADE
);
CREATE INDEX consent_contact ON consent(tenant, contact, channel, seq);
CREATE TABLE events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant      TEXT NOT NULL,
    stream_id   TEXT NOT NULL,
    type        TEXT NOT NULL,
    channel     TEXT NOT NULL,
    contact     TEXT NOT NULL,
    ts          REAL NOT NULL,
    flow        TEXT NOT NULL DEFAULT '',
    version     INTEGER NOT NULL DEFAULT 0,
    node        TEXT NOT NULL DEFAULT '',
    data        TEXT NOT NULL DEFAULT '{}',
    UNIQUE (tenant, stream_id)
);
CREATE INDEX events_type_ts ON events(tenant, type, ts);
CREATE INDEX events_flow_ts ON events(tenant, flow, version, ts);
CREATE INDEX events_contact_ts ON events(tenant, channel, contact, ts);
"""),
    (2, "events keyed by (tenant, stream id), two indexes", """
-- A row per event is the store's main write: the table is clustered on its natural key
-- (no rowid, no AUTOINCREMENT counter, no separate UNIQUE index) and keeps the two indexes
-- its readers use, by type (KPIs) and by contact (conversation views).
CREATE TABLE events_v2 (
    tenant      TEXT NOT NULL,
    stream_id   TEXT NOT NULL,
    type        TEXT NOT NULL,
    channel     TEXT NOT NULL,
    contact     TEXT NOT NULL,
    ts          REAL NOT NULL,
    flow        TEXT NOT NULL DEFAULT '',
    version     INTEGER NOT NULL DEFAULT 0,
    node        TEXT NOT NULL DEFAULT '',
    data        TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (tenant, stream_id)
) WITHOUT ROWID;
INSERT INTO events_v2 (tenant, stream_id, type, channel, contact, ts, flow, version, node, data)
    SELECT tenant, stream_id, type, channel, contact, ts, flow, version, node, data FROM events;
DROP TABLE events;
ALTER TABLE events_v2 RENAME TO events;
CREATE INDEX events_type_ts ON events(tenant, type, ts);
CREATE INDEX events_contact_ts ON events(tenant, contact, ts);
"""),
]
