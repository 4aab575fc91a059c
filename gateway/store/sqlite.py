"""The store on SQLite (aiosqlite, WAL).

Three connections: one writer, whose transactions are serialized by an asyncio lock (so two
coroutines never interleave statements inside one transaction); one reader that sees only
committed data; and one for the event batches of the background flusher, whose thread runs at
a lower OS priority (`events_nice`), so that under a burst the core goes to answering
messages and the batches catch up in the gaps (they wait in Redis meanwhile). Every query
names its tenant. A PostgreSQL backend implements the same public
methods; nothing outside this package sees SQL.
"""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import os
import secrets as pysecrets
import sqlite3
import sys
import threading
import time
import uuid
from typing import Any, AsyncIterator, Iterable

import aiosqlite
import msgspec

from ..config import ChannelConfig, FlowVersion, TenantSnapshot
from ..types import Event
from .crypto import SecretBox
from .migrations import MIGRATIONS
from .records import (ChannelRecord, ConsentEntry, Contact, FlowRecord, KeyInfo, PlannedPlugin,
                      TenantInfo, TenantPlan, VersionInfo)

_enc = msgspec.json.Encoder()
_dec = msgspec.json.Decoder()
KEY_PREFIX = "cst"
EVENT_CLOCK_MARGIN = 2.0   # seconds Redis' clock may lag the store's when stamping events


class StoreError(Exception):
    pass


class Conflict(StoreError):
    """The thing exists already, or changed since it was read."""


class PluginNotEnabled(Conflict):
    """A write needs a plugin that is not (or no longer) enabled for the tenant."""


class PreconditionFailed(StoreError):
    """If-Match did not match the draft's current ETag."""

    def __init__(self, etag: str):
        super().__init__(f"the draft changed; its ETag is now {etag}")
        self.etag = etag


class NotFound(StoreError):
    pass


def canonical(definition: Any) -> bytes:
    """One encoding per JSON value (sorted keys), so equal definitions hash equal."""
    return msgspec.json.encode(definition, order="sorted")


def definition_hash(definition: Any) -> str:
    return hashlib.sha256(canonical(definition)).hexdigest()


def make_etag(revision: int, digest: str) -> str:
    return f'"{revision}-{digest[:16]}"'


def _hash_key(clear: str) -> str:
    return hashlib.sha256(clear.encode()).hexdigest()


def _lower_priority(nice: int) -> int:
    """Runs in a connection's own thread (as an SQL function): on Linux a thread has its own
    nice value, so this lowers that thread only. Returns the value it got, 0 elsewhere."""
    if sys.platform != "linux" or nice <= 0:
        return 0
    tid = threading.get_native_id()
    os.setpriority(os.PRIO_PROCESS, tid, max(os.getpriority(os.PRIO_PROCESS, tid), min(nice, 19)))
    return os.getpriority(os.PRIO_PROCESS, tid)


class Store:
    def __init__(self, writer: aiosqlite.Connection, reader: aiosqlite.Connection, box: SecretBox,
                 path: str, events: aiosqlite.Connection | None = None):
        self._w, self._r, self._box, self.path = writer, reader, box, path
        self._lock = asyncio.Lock()
        # Event batches take their own connection and lock when the database is a file: the
        # admin API's writes never queue behind a batch, only (briefly) wait for its commit.
        self._ev = events or writer
        self._ev_lock = self._lock if self._ev is writer else asyncio.Lock()
        self.events_nice = 0

    # --- lifecycle --------------------------------------------------------------------------
    @classmethod
    async def open(cls, path: str, secret: bytes, *, events_nice: int = 0) -> "Store":
        """Open (creating and migrating) the database at `path`. `events_nice` > 0 lowers the
        OS priority of the event batches' thread (Linux), as `causette serve` does."""
        from pathlib import Path
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        box = SecretBox(secret)
        writer = await cls._connect(path)
        reader = events = writer
        try:
            await writer.execute_fetchall("PRAGMA journal_mode=WAL")
            if path != ":memory:":
                reader = await cls._connect(path)
                events = await cls._connect(path)
            store = cls(writer, reader, box, path, events)
            await store._migrate()
            if events is not writer:
                # Event rows go into three b-trees that grow all day: a page cache of 64 MB
                # (SQLite's default is 2 MB) keeps their hot pages in memory.
                await events.execute_fetchall("PRAGMA cache_size=-65536")
                # Checkpoint every 32 MB of WAL rather than 4: a page that many batches dirty
                # (the ends of the tables, a busy contact's index leaf) is copied back once
                # per checkpoint, and fsynced less often (docs/benchmarks.md, item 13). The
                # price: with synchronous=NORMAL, a power cut or an OS crash (not a crash of
                # the process) can lose the batches committed since the last checkpoint, up to
                # 32 MB of events (already gone from Redis) instead of 4. The file is cut back
                # to 64 MB after a burst.
                await events.execute_fetchall("PRAGMA wal_autocheckpoint=8192")
                await events.execute_fetchall("PRAGMA journal_size_limit=67108864")
            if events is not writer and events_nice > 0:
                await events.create_function("cst_lower_priority", 1, _lower_priority)
                store.events_nice = (await events.execute_fetchall(
                    "SELECT cst_lower_priority(?)", (events_nice,)))[0][0]
        except BaseException:
            for conn in {id(c): c for c in (events, reader, writer)}.values():
                await conn.close()
            raise
        return store

    @staticmethod
    async def _connect(path: str) -> aiosqlite.Connection:
        db = await aiosqlite.connect(path, isolation_level=None)   # we issue BEGIN ourselves
        db.row_factory = aiosqlite.Row
        for pragma in ("busy_timeout=5000", "foreign_keys=ON", "synchronous=NORMAL"):
            await db.execute_fetchall(f"PRAGMA {pragma}")
        return db

    async def close(self) -> None:
        for conn in {id(c): c for c in (self._ev, self._r, self._w)}.values():
            await conn.close()

    async def _migrate(self) -> None:
        async with self._tx() as db:
            await db.execute("CREATE TABLE IF NOT EXISTS schema_migrations ("
                             "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)")
            done = {r[0] for r in await db.execute_fetchall("SELECT version FROM schema_migrations")}
            for version, name, sql in MIGRATIONS:
                if version in done:
                    continue
                for stmt in _statements(sql):
                    await db.execute(stmt)
                await db.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)", (version, name, time.time()))

    async def schema_version(self) -> int:
        rows = await self._r.execute_fetchall("SELECT MAX(version) FROM schema_migrations")
        return rows[0][0] or 0

    @contextlib.asynccontextmanager
    async def _tx(self, events: bool = False) -> AsyncIterator[aiosqlite.Connection]:
        db, lock = (self._ev, self._ev_lock) if events else (self._w, self._lock)
        async with lock:
            await db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except sqlite3.IntegrityError as exc:
                await db.execute("ROLLBACK")
                # Every foreign key of the admin's tables names a tenant: failing one means the
                # tenant was deleted between the caller's check and this write. (The events'
                # connection keeps the error as it was: its flusher has its own handling.)
                if not events and "FOREIGN KEY" in str(exc):
                    raise NotFound("no such tenant (it was deleted meanwhile)") from None
                raise
            except BaseException:
                await db.execute("ROLLBACK")
                raise
            else:
                await db.execute("COMMIT")

    async def _bump(self, db: aiosqlite.Connection, tenant: str) -> None:
        await db.execute("UPDATE tenants SET revision = revision + 1, updated_at = ? WHERE slug = ?",
                         (time.time(), tenant))

    # --- tenants ----------------------------------------------------------------------------
    @staticmethod
    def _tenant(row: Any) -> TenantInfo:
        return TenantInfo(slug=row["slug"], name=row["name"], locale=row["locale"],
                          locales=_dec.decode(row["locales"]), timezone=row["timezone"],
                          session_ttl=row["session_ttl"], revision=row["revision"],
                          created_at=row["created_at"], updated_at=row["updated_at"])

    async def list_tenant_slugs(self) -> list[str]:
        return [r[0] for r in await self._r.execute_fetchall("SELECT slug FROM tenants ORDER BY slug")]

    async def list_tenants(self) -> list[TenantInfo]:
        return [self._tenant(r) for r in await self._r.execute_fetchall("SELECT * FROM tenants ORDER BY slug")]

    async def get_tenant(self, slug: str) -> TenantInfo | None:
        rows = await self._r.execute_fetchall("SELECT * FROM tenants WHERE slug = ?", (slug,))
        return self._tenant(rows[0]) if rows else None

    async def create_tenant(self, t: TenantInfo) -> TenantInfo:
        now = time.time()
        async with self._tx() as db:
            try:
                await db.execute(
                    "INSERT INTO tenants (slug, name, locale, locales, timezone, session_ttl, revision,"
                    " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?)",
                    (t.slug, t.name, t.locale, _enc.encode(t.locales).decode(), t.timezone,
                     t.session_ttl, now, now))
            except aiosqlite.IntegrityError:
                raise Conflict(f"tenant {t.slug!r} exists") from None
        return await self.get_tenant(t.slug)  # type: ignore[return-value]

    async def update_tenant(self, slug: str, **fields: Any) -> TenantInfo | None:
        allowed = {"name", "locale", "locales", "timezone", "session_ttl"}
        sets = {k: (_enc.encode(v).decode() if k == "locales" else v) for k, v in fields.items() if k in allowed}
        async with self._tx() as db:
            if sets:
                cols = ", ".join(f"{k} = ?" for k in sets)
                await db.execute(f"UPDATE tenants SET {cols} WHERE slug = ?", (*sets.values(), slug))
            await self._bump(db, slug)
        return await self.get_tenant(slug)

    async def delete_tenant(self, slug: str) -> bool:
        async with self._tx() as db:
            # Tables without a foreign key to tenants are cleared by hand.
            for table in ("events", "consent", "contact_identities", "flow_versions"):
                await db.execute(f"DELETE FROM {table} WHERE tenant = ?", (slug,))
            cur = await db.execute("DELETE FROM tenants WHERE slug = ?", (slug,))
            return cur.rowcount > 0

    async def tenant_snapshot(self, slug: str) -> TenantSnapshot | None:
        t = await self.get_tenant(slug)
        if t is None:
            return None
        plugins = {}
        for r in await self._r.execute_fetchall(
                "SELECT plugin, settings, secrets FROM tenant_plugins WHERE tenant = ? ORDER BY plugin", (slug,)):
            plugins[r["plugin"]] = {**_dec.decode(r["settings"]), **self._box.open(r["secrets"])}
        channels = []
        for r in await self._r.execute_fetchall(
                "SELECT id, type, settings, secrets, enabled FROM channels WHERE tenant = ? ORDER BY id", (slug,)):
            channels.append(ChannelConfig(id=r["id"], type=r["type"], enabled=bool(r["enabled"]),
                                          settings={**_dec.decode(r["settings"]), **self._box.open(r["secrets"])}))
        flows = []
        for r in await self._r.execute_fetchall(
                "SELECT v.flow, v.version, v.definition, v.published_at FROM flow_versions v"
                " JOIN flows f ON f.tenant = v.tenant AND f.id = v.flow"
                " WHERE v.tenant = ? AND f.archived = 0 AND v.version ="
                " (SELECT MAX(version) FROM flow_versions w WHERE w.tenant = v.tenant AND w.flow = v.flow)"
                " ORDER BY v.flow", (slug,)):
            flows.append(FlowVersion(id=r["flow"], version=r["version"], definition=_dec.decode(r["definition"]),
                                     published_at=r["published_at"]))
        return TenantSnapshot(slug=t.slug, name=t.name, locale=t.locale, timezone=t.timezone,
                              session_ttl=t.session_ttl, plugins=plugins, channels=channels,
                              flows=flows, revision=t.revision)

    # --- keys -------------------------------------------------------------------------------
    async def create_key(self, tenant: str | None, role: str, name: str = "") -> str:
        """A new key; the clear text is returned once and only its SHA-256 is kept (the key
        carries 256 random bits, so a fast hash is enough)."""
        if (tenant is None) != (role == "agency"):
            raise ValueError("agency keys have no tenant; tenant keys have a tenant role")
        key_id = pysecrets.token_hex(6)
        clear = f"{KEY_PREFIX}_{key_id}_{pysecrets.token_urlsafe(32)}"
        async with self._tx() as db:
            try:
                await db.execute("INSERT INTO api_keys (id, tenant, role, hash, name, created_at)"
                                 " VALUES (?, ?, ?, ?, ?, ?)",
                                 (key_id, tenant, role, _hash_key(clear), name, time.time()))
            except aiosqlite.IntegrityError as exc:
                raise NotFound(f"no tenant {tenant!r}") if "FOREIGN" in str(exc) else exc from None
        return clear

    async def check_key(self, clear: str) -> KeyInfo | None:
        # Keys are ASCII; anything else (the server decodes header bytes that are not UTF-8
        # to surrogates, which neither SHA-256 nor SQLite accept) is no key.
        if not clear.isascii():
            return None
        parts = clear.split("_", 2)
        if len(parts) != 3 or parts[0] != KEY_PREFIX:
            return None
        rows = await self._r.execute_fetchall("SELECT * FROM api_keys WHERE id = ?", (parts[1],))
        if not rows or not hmac.compare_digest(rows[0]["hash"], _hash_key(clear)):
            return None
        r = rows[0]
        now = time.time()
        if now - r["last_used"] > 60:   # at most one write a minute per key
            async with self._tx() as db:
                await db.execute("UPDATE api_keys SET last_used = ? WHERE id = ?", (now, r["id"]))
        return self._key(r)

    @staticmethod
    def _key(r: Any) -> KeyInfo:
        return KeyInfo(id=r["id"], tenant=r["tenant"], role=r["role"], name=r["name"],
                       created_at=r["created_at"], last_used=r["last_used"])

    async def list_keys(self, tenant: str | None) -> list[KeyInfo]:
        if tenant is None:
            rows = await self._r.execute_fetchall("SELECT * FROM api_keys WHERE tenant IS NULL ORDER BY created_at")
        else:
            rows = await self._r.execute_fetchall("SELECT * FROM api_keys WHERE tenant = ? ORDER BY created_at",
                                                  (tenant,))
        return [self._key(r) for r in rows]

    async def revoke_key(self, tenant: str | None, key_id: str, *, keep_last: bool = False) -> bool:
        """`keep_last` (agency keys): Conflict instead of revoking the last one. Counted in the
        same transaction, so two revocations at once cannot both pass and lock everyone out."""
        async with self._tx() as db:
            if tenant is None:
                if keep_last and (await _one(db, "SELECT COUNT(*) FROM api_keys WHERE tenant IS NULL"))[0] <= 1 \
                        and await _one(db, "SELECT 1 FROM api_keys WHERE id = ? AND tenant IS NULL", (key_id,)):
                    raise Conflict("this is the last agency key")
                cur = await db.execute("DELETE FROM api_keys WHERE id = ? AND tenant IS NULL", (key_id,))
            else:
                cur = await db.execute("DELETE FROM api_keys WHERE id = ? AND tenant = ?", (key_id, tenant))
            return cur.rowcount > 0

    # --- plugins ----------------------------------------------------------------------------
    async def get_plugins(self, tenant: str) -> dict[str, tuple[dict[str, Any], list[str]]]:
        """Enabled plugins -> (non-secret settings, names of the secret fields that hold a value)."""
        out = {}
        for r in await self._r.execute_fetchall(
                "SELECT plugin, settings, secrets FROM tenant_plugins WHERE tenant = ? ORDER BY plugin", (tenant,)):
            out[r["plugin"]] = (_dec.decode(r["settings"]), sorted(self._box.open(r["secrets"])))
        return out

    async def plugin_settings(self, tenant: str, plugin: str) -> dict[str, Any]:
        """A plugin's stored settings, secrets decrypted among them ({} when not enabled): what
        a partial update merges with, and compares its endpoints to."""
        rows = await self._r.execute_fetchall(
            "SELECT settings, secrets FROM tenant_plugins WHERE tenant = ? AND plugin = ?", (tenant, plugin))
        return {**_dec.decode(rows[0]["settings"]), **self._box.open(rows[0]["secrets"])} if rows else {}

    async def set_plugin(self, tenant: str, plugin: str, settings: dict[str, Any],
                         secrets: dict[str, Any] | None = None) -> bool:
        """Enable (or re-configure) a plugin; True when it was not enabled before."""
        async with self._tx() as db:
            return await self._set_plugin(db, tenant, plugin, settings, secrets or {})

    async def _set_plugin(self, db: aiosqlite.Connection, tenant: str, plugin: str,
                          settings: dict[str, Any], secrets: dict[str, Any]) -> bool:
        existed = await _one(db, "SELECT 1 FROM tenant_plugins WHERE tenant = ? AND plugin = ?", (tenant, plugin)) is not None
        await db.execute(
            "INSERT INTO tenant_plugins (tenant, plugin, settings, secrets, updated_at) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (tenant, plugin) DO UPDATE SET settings = excluded.settings,"
            " secrets = excluded.secrets, updated_at = excluded.updated_at",
            (tenant, plugin, _enc.encode(settings).decode(), self._box.seal(secrets), time.time()))
        await self._bump(db, tenant)
        return not existed

    async def remove_plugin(self, tenant: str, plugin: str, channel_types: Iterable[str] = ()) -> bool:
        """Disable a plugin; Conflict while channel instances of `channel_types` (the plugin's)
        remain. Checked in the transaction, so a channel added meanwhile is not orphaned."""
        async with self._tx() as db:
            types = list(channel_types)
            if types:
                rows = await db.execute_fetchall(
                    f"SELECT id FROM channels WHERE tenant = ? AND type IN ({', '.join('?' * len(types))})"
                    " ORDER BY id", (tenant, *types))
                if rows:
                    raise Conflict(", ".join(r[0] for r in rows))
            cur = await db.execute("DELETE FROM tenant_plugins WHERE tenant = ? AND plugin = ?", (tenant, plugin))
            if cur.rowcount:
                await self._bump(db, tenant)
            return cur.rowcount > 0

    # --- channels ---------------------------------------------------------------------------
    def _channel(self, r: Any) -> ChannelRecord:
        return ChannelRecord(id=r["id"], type=r["type"], settings=_dec.decode(r["settings"]),
                             secrets_set=_dec.decode(r["secret_names"]), enabled=bool(r["enabled"]),
                             created_at=r["created_at"], updated_at=r["updated_at"])

    async def list_channels(self, tenant: str) -> list[ChannelRecord]:
        rows = await self._r.execute_fetchall("SELECT * FROM channels WHERE tenant = ? ORDER BY id", (tenant,))
        return [self._channel(r) for r in rows]

    async def get_channel(self, tenant: str, channel_id: str) -> ChannelRecord | None:
        rows = await self._r.execute_fetchall("SELECT * FROM channels WHERE tenant = ? AND id = ?",
                                              (tenant, channel_id))
        return self._channel(rows[0]) if rows else None

    async def channel_settings(self, tenant: str, channel_id: str) -> dict[str, Any]:
        """A channel instance's stored settings, secrets decrypted among them ({} when there is
        none): what a partial update merges with, and compares its endpoints to."""
        rows = await self._r.execute_fetchall("SELECT settings, secrets FROM channels WHERE tenant = ? AND id = ?",
                                              (tenant, channel_id))
        return {**_dec.decode(rows[0]["settings"]), **self._box.open(rows[0]["secrets"])} if rows else {}

    async def put_channel(self, tenant: str, channel_id: str, type: str, settings: dict[str, Any],
                          secrets: dict[str, Any], enabled: bool = True, *, create_only: bool = False,
                          plugin: PlannedPlugin | None = None, needs: str | None = None) -> bool:
        """Create or replace a channel instance; True when created. `secrets` is the complete
        set of secret values to keep (callers merge with `channel_settings` first). `plugin`
        (the channel's plugin, enabled along with it) is written in the same transaction, so a
        rejected channel (Conflict) leaves the plugin as it was; `needs` names a plugin that
        must still be enabled (Conflict if it was disabled since the caller looked)."""
        async with self._tx() as db:
            if needs and plugin is None and await _one(
                    db, "SELECT 1 FROM tenant_plugins WHERE tenant = ? AND plugin = ?", (tenant, needs)) is None:
                if await _one(db, "SELECT 1 FROM tenants WHERE slug = ?", (tenant,)) is None:
                    raise NotFound("no such tenant (it was deleted meanwhile)")
                raise PluginNotEnabled(f"plugin {needs!r} is not enabled")
            created = await self._put_channel(db, tenant, channel_id, type, settings, secrets, enabled, create_only)
            if plugin is not None:
                await self._set_plugin(db, tenant, plugin.name, plugin.settings, plugin.secrets)
            return created

    async def _put_channel(self, db: aiosqlite.Connection, tenant: str, channel_id: str, type: str,
                           settings: dict[str, Any], secrets: dict[str, Any], enabled: bool,
                           create_only: bool = False) -> bool:
        row = await _one(db, "SELECT type FROM channels WHERE tenant = ? AND id = ?", (tenant, channel_id))
        if row is not None and create_only:
            raise Conflict(f"channel {channel_id!r} exists")
        now = time.time()
        names = _enc.encode(sorted(k for k, v in secrets.items() if v not in (None, ""))).decode()
        await db.execute(
            "INSERT INTO channels (tenant, id, type, settings, secrets, secret_names, enabled, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (tenant, id) DO UPDATE SET type = excluded.type,"
            " settings = excluded.settings, secrets = excluded.secrets, secret_names = excluded.secret_names,"
            " enabled = excluded.enabled, updated_at = excluded.updated_at",
            (tenant, channel_id, type, _enc.encode(settings).decode(), self._box.seal(secrets), names,
             int(enabled), now, now))
        await self._bump(db, tenant)
        return row is None

    async def delete_channel(self, tenant: str, channel_id: str) -> bool:
        async with self._tx() as db:
            cur = await db.execute("DELETE FROM channels WHERE tenant = ? AND id = ?", (tenant, channel_id))
            if cur.rowcount:
                await self._bump(db, tenant)
            return cur.rowcount > 0

    # --- flows ------------------------------------------------------------------------------
    async def _flow(self, db: aiosqlite.Connection, tenant: str, flow_id: str) -> FlowRecord | None:
        r = await _one(db, "SELECT * FROM flows WHERE tenant = ? AND id = ?", (tenant, flow_id))
        if r is None:
            return None
        v = await _one(db, "SELECT version, hash FROM flow_versions WHERE tenant = ? AND flow = ?"
                               " ORDER BY version DESC LIMIT 1", (tenant, flow_id))
        return self._flow_record(r, v)

    @staticmethod
    def _flow_record(r: Any, v: Any) -> FlowRecord:
        draft = _dec.decode(r["draft"])
        return FlowRecord(id=r["id"], draft=draft, revision=r["revision"],
                          etag=make_etag(r["revision"], r["draft_hash"]),
                          name=str(draft.get("name", "")) if isinstance(draft, dict) else "",
                          engine=str(draft.get("engine", "tree")) if isinstance(draft, dict) else "tree",
                          latest_version=v["version"] if v else 0,
                          draft_published=bool(v and v["hash"] == r["draft_hash"]),
                          updated_at=r["updated_at"], archived=bool(r["archived"]))

    async def get_flow(self, tenant: str, flow_id: str) -> FlowRecord | None:
        return await self._flow(self._r, tenant, flow_id)

    async def list_flows(self, tenant: str, include_archived: bool = False) -> list[FlowRecord]:
        rows = await self._r.execute_fetchall(
            "SELECT f.*, (SELECT MAX(version) FROM flow_versions v WHERE v.tenant = f.tenant AND v.flow = f.id)"
            " AS version, (SELECT hash FROM flow_versions v WHERE v.tenant = f.tenant AND v.flow = f.id"
            " ORDER BY version DESC LIMIT 1) AS hash FROM flows f WHERE f.tenant = ?"
            + ("" if include_archived else " AND f.archived = 0") + " ORDER BY f.id", (tenant,))
        return [self._flow_record(r, r if r["version"] else None) for r in rows]

    async def create_flow(self, tenant: str, flow_id: str, definition: dict[str, Any]) -> FlowRecord:
        """A new flow with `definition` as its draft. Re-creating an archived flow revives it
        with its version history."""
        async with self._tx() as db:
            existing = await self._flow(db, tenant, flow_id)
            if existing is not None and not existing.archived:
                raise Conflict(f"flow {flow_id!r} exists")
            now, digest = time.time(), definition_hash(definition)
            if existing is None:
                await db.execute("INSERT INTO flows (tenant, id, draft, draft_hash, revision, created_at, updated_at)"
                                 " VALUES (?, ?, ?, ?, 1, ?, ?)",
                                 (tenant, flow_id, canonical(definition).decode(), digest, now, now))
            else:
                await db.execute("UPDATE flows SET draft = ?, draft_hash = ?, revision = revision + 1,"
                                 " archived = 0, updated_at = ? WHERE tenant = ? AND id = ?",
                                 (canonical(definition).decode(), digest, now, tenant, flow_id))
            await self._bump(db, tenant)
            return await self._flow(db, tenant, flow_id)  # type: ignore[return-value]

    async def save_draft(self, tenant: str, flow_id: str, definition: dict[str, Any],
                         if_match: str | None) -> FlowRecord:
        """Replace the draft. `if_match` (an ETag, or "*") must match the current one, so two
        editors never overwrite each other silently; None skips the check (apply)."""
        async with self._tx() as db:
            cur = await self._flow(db, tenant, flow_id)
            if cur is None or cur.archived:
                raise NotFound(f"no flow {flow_id!r}")
            if if_match is not None and not etag_matches(if_match, cur.etag):
                raise PreconditionFailed(cur.etag)
            digest = definition_hash(definition)
            if digest != definition_hash(cur.draft):
                await db.execute("UPDATE flows SET draft = ?, draft_hash = ?, revision = revision + 1,"
                                 " updated_at = ? WHERE tenant = ? AND id = ?",
                                 (canonical(definition).decode(), digest, time.time(), tenant, flow_id))
                await self._bump(db, tenant)
            return await self._flow(db, tenant, flow_id)  # type: ignore[return-value]

    async def publish(self, tenant: str, flow_id: str, *, if_match: str | None = None, by: str = "",
                      note: str = "") -> tuple[FlowVersion, bool]:
        """Freeze the current draft as the next version; (version, True) when one was made,
        (latest, False) when the draft equals the latest version already. The caller has
        validated the draft it read; `if_match` makes sure it is still that draft."""
        async with self._tx() as db:
            cur = await self._flow(db, tenant, flow_id)
            if cur is None or cur.archived:
                raise NotFound(f"no flow {flow_id!r}")
            if if_match is not None and not etag_matches(if_match, cur.etag):
                raise PreconditionFailed(cur.etag)
            return await self._publish(db, tenant, flow_id, cur.draft, by=by, note=note)

    async def _publish(self, db: aiosqlite.Connection, tenant: str, flow_id: str, definition: dict[str, Any],
                       *, by: str, note: str, rollback_of: int = 0, force: bool = False) -> tuple[FlowVersion, bool]:
        digest = definition_hash(definition)
        last = await _one(db, "SELECT version, hash, definition, published_at FROM flow_versions"
                             " WHERE tenant = ? AND flow = ? ORDER BY version DESC LIMIT 1", (tenant, flow_id))
        if last is not None and last["hash"] == digest and not force:
            return FlowVersion(id=flow_id, version=last["version"], definition=_dec.decode(last["definition"]),
                               published_at=last["published_at"]), False
        version = (last["version"] if last else 0) + 1
        now = time.time()
        await db.execute("INSERT INTO flow_versions (tenant, flow, version, definition, hash, published_at, by,"
                         " note, rollback_of) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (tenant, flow_id, version, canonical(definition).decode(), digest, now, by, note,
                          rollback_of))
        await self._bump(db, tenant)
        return FlowVersion(id=flow_id, version=version, definition=definition, published_at=now), True

    async def rollback(self, tenant: str, flow_id: str, version: int, *, by: str = "",
                       note: str = "") -> FlowVersion:
        """Publish an older version again, as a new number (history only grows). The draft is
        left alone: an editor's work in progress is not thrown away."""
        async with self._tx() as db:
            cur = await self._flow(db, tenant, flow_id)
            if cur is None or cur.archived:
                raise NotFound(f"no flow {flow_id!r}")
            row = await _one(db, "SELECT definition FROM flow_versions WHERE tenant = ? AND flow = ? AND version = ?",
                                 (tenant, flow_id, version))
            if row is None:
                raise NotFound(f"no version {version} of flow {flow_id!r}")
            fv, _ = await self._publish(db, tenant, flow_id, _dec.decode(row["definition"]), by=by,
                                        note=note or f"rollback to version {version}", rollback_of=version,
                                        force=True)
            return fv

    async def list_versions(self, tenant: str, flow_id: str) -> list[VersionInfo]:
        rows = await self._r.execute_fetchall(
            "SELECT version, published_at, hash, note, by, rollback_of FROM flow_versions"
            " WHERE tenant = ? AND flow = ? ORDER BY version", (tenant, flow_id))
        return [VersionInfo(version=r["version"], published_at=r["published_at"], hash=r["hash"], note=r["note"],
                            by=r["by"], rollback_of=r["rollback_of"]) for r in rows]

    async def get_flow_version(self, tenant: str, flow_id: str, version: int) -> FlowVersion | None:
        """Any published version, archived flows included: live conversations finish on theirs."""
        rows = await self._r.execute_fetchall(
            "SELECT definition, published_at FROM flow_versions WHERE tenant = ? AND flow = ? AND version = ?",
            (tenant, flow_id, version))
        if not rows:
            return None
        return FlowVersion(id=flow_id, version=version, definition=_dec.decode(rows[0]["definition"]),
                           published_at=rows[0]["published_at"])

    async def archive_flow(self, tenant: str, flow_id: str) -> bool:
        """Take a flow out of service; its versions stay for the conversations still on them."""
        async with self._tx() as db:
            cur = await db.execute("UPDATE flows SET archived = 1, updated_at = ? WHERE tenant = ? AND id = ?"
                                   " AND archived = 0", (time.time(), tenant, flow_id))
            if cur.rowcount:
                await self._bump(db, tenant)
            return cur.rowcount > 0

    # --- apply (one transaction per tenant) --------------------------------------------------
    async def apply_plan(self, plan: TenantPlan, by: str = "apply") -> dict[str, list[str]]:
        """Write a validated tenant in one transaction: tenant row, enabled plugins (replaced),
        channel instances (replaced), flow drafts (published when changed). Flows absent from
        the plan are kept: they have history and conversations may still run on them."""
        t = plan.tenant
        changes: dict[str, list[str]] = {k: [] for k in ("tenant", "plugins", "channels", "flows", "published",
                                                         "removed")}
        async with self._tx() as db:
            row = await _one(db, "SELECT * FROM tenants WHERE slug = ?", (t.slug,))
            if plan.expect_revision is not None and (row["revision"] if row else 0) != plan.expect_revision:
                raise Conflict(f"tenant {t.slug!r} changed while it was being applied; apply again")
            now = time.time()
            if row is None:
                await db.execute(
                    "INSERT INTO tenants (slug, name, locale, locales, timezone, session_ttl, revision, created_at,"
                    " updated_at) VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?)",
                    (t.slug, t.name, t.locale, _enc.encode(t.locales).decode(), t.timezone, t.session_ttl, now, now))
                changes["tenant"].append("created")
            else:
                old = self._tenant(row)
                if (old.name, old.locale, old.locales, old.timezone, old.session_ttl) != \
                        (t.name, t.locale, t.locales, t.timezone, t.session_ttl):
                    await db.execute("UPDATE tenants SET name = ?, locale = ?, locales = ?, timezone = ?,"
                                     " session_ttl = ? WHERE slug = ?",
                                     (t.name, t.locale, _enc.encode(t.locales).decode(), t.timezone,
                                      t.session_ttl, t.slug))
                    await self._bump(db, t.slug)
                    changes["tenant"].append("updated")
            # plugins
            have = {r["plugin"]: (_dec.decode(r["settings"]), self._box.open(r["secrets"])) for r in
                    await db.execute_fetchall("SELECT plugin, settings, secrets FROM tenant_plugins WHERE tenant = ?",
                                              (t.slug,))}
            for p in plan.plugins:
                if have.get(p.name) != (p.settings, p.secrets):
                    await self._set_plugin(db, t.slug, p.name, p.settings, p.secrets)
                    changes["plugins"].append(p.name)
            for name in set(have) - {p.name for p in plan.plugins}:
                await db.execute("DELETE FROM tenant_plugins WHERE tenant = ? AND plugin = ?", (t.slug, name))
                await self._bump(db, t.slug)
                changes["removed"].append(f"plugin {name}")
            # channels
            chans = {r["id"]: (r["type"], _dec.decode(r["settings"]), self._box.open(r["secrets"]), bool(r["enabled"]))
                     for r in await db.execute_fetchall(
                         "SELECT id, type, settings, secrets, enabled FROM channels WHERE tenant = ?", (t.slug,))}
            for ch in plan.channels:
                if chans.get(ch.id) != (ch.type, ch.settings, ch.secrets, ch.enabled):
                    await self._put_channel(db, t.slug, ch.id, ch.type, ch.settings, ch.secrets, ch.enabled)
                    changes["channels"].append(ch.id)
            for cid in set(chans) - {ch.id for ch in plan.channels}:
                await db.execute("DELETE FROM channels WHERE tenant = ? AND id = ?", (t.slug, cid))
                await self._bump(db, t.slug)
                changes["removed"].append(f"channel {cid}")
            # flows
            for f in plan.flows:
                digest = definition_hash(f.definition)
                existing = await self._flow(db, t.slug, f.id)
                if existing is None:
                    await db.execute("INSERT INTO flows (tenant, id, draft, draft_hash, revision, created_at,"
                                     " updated_at) VALUES (?, ?, ?, ?, 1, ?, ?)",
                                     (t.slug, f.id, canonical(f.definition).decode(), digest, now, now))
                    changes["flows"].append(f.id)
                elif existing.archived or definition_hash(existing.draft) != digest:
                    await db.execute("UPDATE flows SET draft = ?, draft_hash = ?, revision = revision + 1,"
                                     " archived = 0, updated_at = ? WHERE tenant = ? AND id = ?",
                                     (canonical(f.definition).decode(), digest, now, t.slug, f.id))
                    changes["flows"].append(f.id)
                fv, made = await self._publish(db, t.slug, f.id, f.definition, by=by, note="apply")
                if made:
                    changes["published"].append(f"{f.id}@{fv.version}")
            if any(changes.values()):
                await self._bump(db, t.slug)
        return changes

    # --- contacts and events ----------------------------------------------------------------
    async def insert_events(self, rows: list[tuple[str, Event]]) -> int:
        """Insert events idempotently by (tenant, stream id); returns how many were new. Inbound
        messages of a new address also create its contact, and consent events extend the
        ledger, so the hot path never writes the store. Set-based: a batch costs a handful of
        statements, not several per event."""
        if not rows:
            return 0
        async with self._tx(events=True) as db:
            slugs = sorted({ev.tenant for _, ev in rows})
            born: dict[str, float] = {}
            for chunk in _chunks(slugs):
                born.update(await db.execute_fetchall(
                    f"SELECT slug, created_at FROM tenants WHERE slug IN ({','.join('?' * len(chunk))})",
                    chunk))
            # Events of a tenant deleted while they were in flight are dropped, also when a
            # tenant of the same slug was created meanwhile: Redis stamped them (the stream id,
            # in ms of its clock) before that tenant was born.
            rows = [(sid, ev) for sid, ev in rows if ev.tenant in born and
                    int(sid.partition("-")[0]) >= (born[ev.tenant] - EVENT_CLOCK_MARGIN) * 1000]
            # The key (tenant, stream_id) makes a redelivered batch a no-op; `changes` says how
            # many rows were new.
            if not rows:
                return 0
            before = db.total_changes
            await db.executemany(
                "INSERT OR IGNORE INTO events (tenant, stream_id, type, channel, contact, ts, flow, version,"
                " node, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(ev.tenant, sid, ev.type, ev.channel, ev.contact, ev.ts, ev.flow, ev.version, ev.node,
                  _enc.encode(ev.data).decode()) for sid, ev in rows])
            inserted = db.total_changes - before
            if not inserted:
                return 0
            touching = [ev for _, ev in rows if ev.type == "message.in" or ev.type in _CONSENT]
            if not touching:
                return inserted
            # A message of a known contact writes nothing more: its last_seen is read from the
            # events themselves (get_contact_by_id), so a turn dirties no page of `contacts`.
            # Updating it here cost a scattered page per contact per batch (docs/benchmarks.md).
            if not any(ev.type in _CONSENT for ev in touching) and await self._all_known(db, touching):
                return inserted
            ids = await self._contacts_for(db, touching)
            # A batch may mix redelivered events with new ones: the ledger gets each once.
            await db.executemany(
                "INSERT INTO consent (tenant, contact, channel, status, ts, source)"
                " SELECT ?, ?, ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM consent WHERE tenant = ?"
                " AND contact = ? AND channel = ? AND status = ? AND ts = ?)",
                [(ev.tenant, cid, ev.channel, _CONSENT[ev.type], ev.ts, str(ev.data.get("source", "")),
                  ev.tenant, cid, ev.channel, _CONSENT[ev.type], ev.ts)
                 for ev in touching if ev.type in _CONSENT
                 for cid in (ids[(ev.tenant, ev.channel, ev.contact)],)])
        return inserted

    @staticmethod
    async def _all_known(db: aiosqlite.Connection, events: list[Event]) -> bool:
        """Whether every (tenant, channel, address) of `events` has a contact already: one read
        per chunk of identities, through the identities' primary key."""
        keys = sorted({(ev.tenant, ev.channel, ev.contact) for ev in events})
        found = 0
        for chunk in _chunks(keys, 300):      # 900 parameters a statement
            # A join, not `(tenant, channel, address) IN (VALUES ...)`: SQLite plans that one
            # as a scan of every identity.
            rows = await db.execute_fetchall(
                f"WITH k(t, c, a) AS (VALUES {','.join(['(?, ?, ?)'] * len(chunk))}) SELECT COUNT(*)"
                " FROM k JOIN contact_identities i ON i.tenant = k.t AND i.channel = k.c AND i.address = k.a",
                [v for k in chunk for v in k])
            found += rows[0][0]
        return found == len(keys)

    async def _contacts_for(self, db: aiosqlite.Connection, events: list[Event]) -> dict[tuple[str, str, str], str]:
        """Contact ids of the events' (tenant, channel, address), creating the missing ones
        (attributes from the first message's profile)."""
        wanted: dict[tuple[str, str, str], Event] = {}
        for ev in events:
            wanted.setdefault((ev.tenant, ev.channel, ev.contact), ev)
        ids: dict[tuple[str, str, str], str] = {}
        by_tenant: dict[str, list[str]] = {}
        for t, _, address in wanted:
            by_tenant.setdefault(t, []).append(address)
        for tenant, addresses in by_tenant.items():
            for chunk in _chunks(sorted(set(addresses))):
                marks = ",".join("?" * len(chunk))
                for r in await db.execute_fetchall(
                        f"SELECT channel, address, contact FROM contact_identities WHERE tenant = ?"
                        f" AND address IN ({marks})", (tenant, *chunk)):
                    if (tenant, r[0], r[1]) in wanted:
                        ids[(tenant, r[0], r[1])] = r[2]
        missing = [k for k in wanted if k not in ids]
        if missing:
            rows = []
            for key in missing:
                ev = wanted[key]
                ids[key] = uuid.uuid4().hex
                profile = ev.data.get("profile") if isinstance(ev.data.get("profile"), dict) else {}
                rows.append((key[0], ids[key], _enc.encode(profile).decode(), str(ev.data.get("locale", "")),
                             ev.ts, ev.ts))
            await db.executemany("INSERT INTO contacts (tenant, id, attributes, locale, created_at, last_seen)"
                                 " VALUES (?, ?, ?, ?, ?, ?)", rows)
            await db.executemany("INSERT INTO contact_identities (tenant, channel, address, contact)"
                                 " VALUES (?, ?, ?, ?)", [(*k, ids[k]) for k in missing])
        return ids

    async def get_contact(self, tenant: str, channel: str, address: str) -> Contact | None:
        rows = await self._r.execute_fetchall(
            "SELECT contact FROM contact_identities WHERE tenant = ? AND channel = ? AND address = ?",
            (tenant, channel, address))
        return await self.get_contact_by_id(tenant, rows[0][0]) if rows else None

    async def get_contact_by_id(self, tenant: str, contact_id: str) -> Contact | None:
        rows = await self._r.execute_fetchall("SELECT * FROM contacts WHERE tenant = ? AND id = ?", (tenant, contact_id))
        if not rows:
            return None
        r = rows[0]
        ids = await self._r.execute_fetchall(
            "SELECT channel, address FROM contact_identities WHERE tenant = ? AND contact = ?", (tenant, contact_id))
        consent = await self._r.execute_fetchall(
            "SELECT channel, status FROM consent WHERE tenant = ? AND contact = ? ORDER BY seq", (tenant, contact_id))
        return Contact(id=r["id"], identities={i[0]: i[1] for i in ids}, attributes=_dec.decode(r["attributes"]),
                       tags=_dec.decode(r["tags"]), locale=r["locale"], timezone=r["timezone"],
                       consent={c[0]: c[1] for c in consent}, created_at=r["created_at"],
                       last_seen=max([r["last_seen"], *[await self._last_seen(tenant, i[0], i[1]) for i in ids]]))

    async def _last_seen(self, tenant: str, channel: str, address: str) -> float:
        """When the contact last wrote on (channel, address), or changed its consent there: the
        newest such event, found by walking the by-contact index backwards from its end."""
        rows = await self._r.execute_fetchall(
            f"SELECT ts FROM events WHERE tenant = ? AND contact = ? AND channel = ? AND type IN ({_SEEN})"
            " ORDER BY ts DESC LIMIT 1", (tenant, address, channel))
        return rows[0][0] if rows else 0.0

    async def consent_ledger(self, tenant: str, contact_id: str) -> list[ConsentEntry]:
        rows = await self._r.execute_fetchall(
            "SELECT channel, status, ts, source FROM consent WHERE tenant = ? AND contact = ? ORDER BY seq",
            (tenant, contact_id))
        return [ConsentEntry(channel=r[0], status=r[1], ts=r[2], source=r[3]) for r in rows]

    async def update_contact(self, tenant: str, contact_id: str, *, attributes: dict[str, Any] | None = None,
                             tags: Iterable[str] | None = None, locale: str | None = None,
                             timezone: str | None = None) -> bool:
        sets: dict[str, Any] = {}
        if attributes is not None:
            sets["attributes"] = _enc.encode(attributes).decode()
        if tags is not None:
            sets["tags"] = _enc.encode(sorted(set(tags))).decode()
        if locale is not None:
            sets["locale"] = locale
        if timezone is not None:
            sets["timezone"] = timezone
        if not sets:
            return False
        async with self._tx() as db:
            cols = ", ".join(f"{k} = ?" for k in sets)
            cur = await db.execute(f"UPDATE contacts SET {cols} WHERE tenant = ? AND id = ?",
                                   (*sets.values(), tenant, contact_id))
            return cur.rowcount > 0

    async def list_events(self, tenant: str, *, type: str | None = None, contact: str | None = None,
                          limit: int = 100) -> list[Event]:
        sql, args = "SELECT * FROM events WHERE tenant = ?", [tenant]
        if type:
            sql += " AND type = ?"
            args.append(type)
        if contact:
            sql += " AND contact = ?"
            args.append(contact)
        # A turn's events share their entry id (`<id>`, `<id>/1`, ... `<id>/10`): shorter first.
        sql += " ORDER BY ts, length(stream_id), stream_id LIMIT ?"
        args.append(limit)
        return [Event(type=r["type"], tenant=r["tenant"], channel=r["channel"], contact=r["contact"], ts=r["ts"],
                      flow=r["flow"], version=r["version"], node=r["node"], data=_dec.decode(r["data"]))
                for r in await self._r.execute_fetchall(sql, args)]

    async def count_events(self, tenant: str, type: str | None = None) -> int:
        if type:
            rows = await self._r.execute_fetchall("SELECT COUNT(*) FROM events WHERE tenant = ? AND type = ?",
                                                  (tenant, type))
        else:
            rows = await self._r.execute_fetchall("SELECT COUNT(*) FROM events WHERE tenant = ?", (tenant,))
        return rows[0][0]


_CONSENT = {"consent.optout": "optout", "consent.optin": "optin", "optout": "optout", "optin": "optin"}
# The events that say a contact was there (a contact's last_seen is the newest of them).
_SEEN = ", ".join(f"'{t}'" for t in ("message.in", *_CONSENT))


def _chunks(items: list[Any], size: int = 500) -> list[list[Any]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


async def _one(db: aiosqlite.Connection, sql: str, args: Iterable[Any] = ()) -> Any:
    """First row or None, with the statement finished (no cursor left open in a transaction)."""
    rows = await db.execute_fetchall(sql, tuple(args))
    return rows[0] if rows else None


def etag_matches(header: str, etag: str) -> bool:
    """If-Match: `*`, or a comma-separated list of strong ETags (weak ones never match)."""
    header = header.strip()
    if header == "*":
        return True
    # ETags are ASCII, and compare_digest raises TypeError on str with anything else (a
    # header's stray bytes): such a tag simply does not match.
    return any(t.isascii() and hmac.compare_digest(t.strip(), etag) for t in header.split(","))


def _statements(sql: str) -> list[str]:
    out, buf = [], []
    for line in sql.splitlines():
        buf.append(line.split("--", 1)[0] if "--" in line else line)
        if line.rstrip().endswith(";"):
            stmt = "\n".join(buf).strip()
            if stmt:
                out.append(stmt)
            buf = []
    rest = "\n".join(buf).strip()
    if rest:
        out.append(rest)
    return out
