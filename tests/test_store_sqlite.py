"""The SQLite store: migrations, secrets encrypted at rest, hashed keys, tenant scoping,
flow drafts and versions, idempotent events that create contacts and consent."""
import asyncio
import sqlite3
import sys
from pathlib import Path

import pytest

from gateway.store import Conflict, NotFound, PreconditionFailed, Store, TenantInfo
from gateway.store.migrations import MIGRATIONS
from gateway.types import Event

# Stream ids are Redis' clock in ms: events stamped before their tenant was created are not
# its own (a deleted tenant's, in flight), so the ids here come after any test's tenants.
S = "999999999999"

SECRET = "tok-SEKRIT-4f9a1c"


@pytest.fixture
async def store(tmp_path):
    s = await Store.open(str(tmp_path / "c.db"), b"gateway-secret")
    yield s
    await s.close()


async def two_tenants(s: Store) -> None:
    for slug in ("acme", "bravo"):
        await s.create_tenant(TenantInfo(slug=slug, name=slug.title()))


def raw_bytes(path: Path) -> bytes:
    """Everything SQLite keeps on disk for this database (main file and WAL)."""
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))


async def test_migrations_are_recorded_and_applied_once(tmp_path):
    path = str(tmp_path / "m.db")
    s = await Store.open(path, b"x")
    assert await s.schema_version() == MIGRATIONS[-1][0]
    await s.create_tenant(TenantInfo(slug="acme", name="Acme"))
    await s.close()
    s = await Store.open(path, b"x")       # reopening applies nothing twice and keeps data
    assert await s.list_tenant_slugs() == ["acme"]
    await s.close()
    db = sqlite3.connect(path)
    try:
        rows = db.execute("SELECT version, name FROM schema_migrations").fetchall()
        assert [r[0] for r in rows] == [m[0] for m in MIGRATIONS]
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        db.close()


async def test_channel_secrets_are_encrypted_at_rest(tmp_path):
    path = tmp_path / "enc.db"
    s = await Store.open(str(path), b"gateway-secret")
    await s.create_tenant(TenantInfo(slug="acme", name="Acme"))
    await s.put_channel("acme", "wa", "whatsapp", {"phone_number_id": "123"}, {"access_token": SECRET})
    await s.set_plugin("acme", "crm", {"region": "eu"}, {"api_key": SECRET + "-crm"})
    rec = await s.get_channel("acme", "wa")
    assert rec.settings == {"phone_number_id": "123"} and rec.secrets_set == ["access_token"]
    snap = await s.tenant_snapshot("acme")
    assert snap.channels[0].settings == {"phone_number_id": "123", "access_token": SECRET}
    assert snap.plugins["crm"] == {"region": "eu", "api_key": SECRET + "-crm"}
    assert SECRET.encode() not in raw_bytes(path)
    await s.close()
    assert SECRET.encode() not in raw_bytes(path)
    # Another gateway secret cannot read them, and says so instead of running without them.
    other = await Store.open(str(path), b"another-secret")
    with pytest.raises(RuntimeError, match="gateway secret"):
        await other.tenant_snapshot("acme")
    await other.close()


async def test_keys_are_hashed_scoped_and_checked(tmp_path):
    path = tmp_path / "k.db"
    s = await Store.open(str(path), b"x")
    await two_tenants(s)
    agency = await s.create_key(None, "agency")
    owner = await s.create_key("acme", "owner", name="ci")
    assert owner.startswith("cst_") and len(owner) > 50
    info = await s.check_key(owner)
    assert (info.tenant, info.role, info.name) == ("acme", "owner", "ci")
    assert (await s.check_key(agency)).tenant is None
    assert await s.check_key(owner[:-2] + "xx") is None
    assert await s.check_key("cst_nope") is None
    assert await s.check_key("") is None
    with pytest.raises(ValueError):
        await s.create_key("acme", "agency")
    with pytest.raises(ValueError):
        await s.create_key(None, "owner")
    with pytest.raises(NotFound):
        await s.create_key("ghost", "viewer")
    # Another tenant cannot revoke it; its own tenant can.
    assert not await s.revoke_key("bravo", info.id)
    assert await s.check_key(owner) is not None
    assert [k.id for k in await s.list_keys("acme")] == [info.id]
    assert await s.list_keys("bravo") == []
    await s.close()
    assert owner.split("_", 2)[2].encode() not in raw_bytes(path)
    s = await Store.open(str(path), b"x")
    assert await s.revoke_key("acme", info.id)
    assert await s.check_key(owner) is None
    await s.close()


async def test_every_read_and_write_is_scoped_by_tenant(store):
    await two_tenants(store)
    for slug in ("acme", "bravo"):
        await store.put_channel(slug, "web", "webchat", {"title": slug}, {})
        f = await store.create_flow(slug, "welcome", {"id": "welcome", "name": slug})
        await store.publish(slug, "welcome", if_match=f.etag)
        await store.set_plugin(slug, "tree", {})
    assert (await store.get_channel("acme", "web")).settings == {"title": "acme"}
    assert (await store.get_flow_version("bravo", "welcome", 1)).definition["name"] == "bravo"
    assert await store.get_flow_version("acme", "welcome", 2) is None
    # bravo's writes never reach acme
    assert await store.delete_channel("bravo", "web")
    assert await store.archive_flow("bravo", "welcome")
    assert await store.remove_plugin("bravo", "tree")
    snap = await store.tenant_snapshot("acme")
    assert [c.id for c in snap.channels] == ["web"] and [f.id for f in snap.flows] == ["welcome"]
    assert list(snap.plugins) == ["tree"]
    bravo = await store.tenant_snapshot("bravo")
    assert bravo.channels == [] and bravo.flows == [] and bravo.plugins == {}
    # an archived flow's versions stay readable: conversations finish on them
    assert (await store.get_flow_version("bravo", "welcome", 1)) is not None
    # deleting a tenant takes its data and only its data
    ev = Event(type="message.in", tenant="bravo", channel="web", contact="v1", ts=1.0)
    await store.insert_events([(S + "1-0", ev), (S + "1-1", Event(type="message.in", tenant="acme", channel="web",
                                                          contact="v1", ts=1.0))])
    assert await store.delete_tenant("bravo")
    assert await store.tenant_snapshot("bravo") is None
    assert await store.count_events("bravo") == 0 and await store.count_events("acme") == 1
    assert await store.get_contact("acme", "web", "v1") is not None
    assert await store.get_flow_version("bravo", "welcome", 1) is None


async def test_drafts_need_the_current_etag_and_versions_only_grow(store):
    await store.create_tenant(TenantInfo(slug="acme", name="Acme"))
    f = await store.create_flow("acme", "sale", {"id": "sale", "v": 1})
    with pytest.raises(Conflict):
        await store.create_flow("acme", "sale", {"id": "sale"})
    g = await store.save_draft("acme", "sale", {"id": "sale", "v": 2}, f.etag)
    assert g.etag != f.etag and g.revision == 2
    with pytest.raises(PreconditionFailed) as exc:
        await store.save_draft("acme", "sale", {"id": "sale", "v": 3}, f.etag)
    assert exc.value.etag == g.etag
    v1, made = await store.publish("acme", "sale", if_match=g.etag)
    assert (v1.version, made) == (1, True)
    again, made = await store.publish("acme", "sale")
    assert (again.version, made) == (1, False)            # unchanged draft: no new version
    assert (await store.get_flow("acme", "sale")).draft_published
    h = await store.save_draft("acme", "sale", {"id": "sale", "v": 3}, "*")
    assert not h.draft_published
    v2, _ = await store.publish("acme", "sale")
    assert v2.version == 2
    v3 = await store.rollback("acme", "sale", 1)
    assert v3.version == 3 and v3.definition == {"id": "sale", "v": 2}
    infos = await store.list_versions("acme", "sale")
    assert [(i.version, i.rollback_of) for i in infos] == [(1, 0), (2, 0), (3, 1)]
    assert infos[0].hash == infos[2].hash
    assert (await store.tenant_snapshot("acme")).flows[0].version == 3
    with pytest.raises(NotFound):
        await store.rollback("acme", "sale", 9)


async def test_concurrent_draft_writes_with_one_etag_let_exactly_one_win(store):
    await store.create_tenant(TenantInfo(slug="acme", name="Acme"))
    f = await store.create_flow("acme", "sale", {"id": "sale"})

    async def write(i):
        try:
            await store.save_draft("acme", "sale", {"id": "sale", "editor": i}, f.etag)
            return True
        except PreconditionFailed:
            return False
    results = await asyncio.gather(*(write(i) for i in range(20)))
    assert sum(results) == 1
    assert (await store.get_flow("acme", "sale")).revision == 2


async def test_events_are_idempotent_and_feed_contacts_and_consent(store):
    await store.create_tenant(TenantInfo(slug="acme", name="Acme"))
    rows = [(S + "1-0", Event(type="message.in", tenant="acme", channel="wa", contact="+33600000001", ts=10.0,
                          data={"text": "soldes", "profile": {"first_name": "Léa"}})),
            (S + "1-1", Event(type="message.out", tenant="acme", channel="wa", contact="+33600000001", ts=11.0)),
            (S + "1-2", Event(type="consent.optout", tenant="acme", channel="wa", contact="+33600000001", ts=12.0,
                          data={"source": "STOP"})),
            (S + "1-3", Event(type="message.in", tenant="gone", channel="wa", contact="x", ts=1.0))]
    assert await store.insert_events(rows + rows[:1]) == 3   # a repeat inside a batch counts once
    assert await store.insert_events(rows) == 0           # a replayed batch adds nothing
    c = await store.get_contact("acme", "wa", "+33600000001")
    assert c.identities == {"wa": "+33600000001"} and c.attributes == {"first_name": "Léa"}
    assert c.consent == {"wa": "optout"} and c.last_seen == 12.0
    ledger = await store.consent_ledger("acme", c.id)
    assert [(e.status, e.source) for e in ledger] == [("optout", "STOP")]
    await store.insert_events([(S + "2-0", Event(type="message.in", tenant="acme", channel="wa",
                                             contact="+33600000001", ts=20.0))])
    known = await store.get_contact("acme", "wa", "+33600000001")
    assert known.id == c.id and known.last_seen == 20.0        # a known contact, touched
    # a known contact and a new one in one batch: the new one is created, both are touched
    await store.insert_events([
        (S + "3-0", Event(type="message.in", tenant="acme", channel="wa", contact="+33600000001", ts=30.0)),
        (S + "4-0", Event(type="message.in", tenant="acme", channel="wa", contact="+33600000002", ts=31.0,
                      data={"profile": {"first_name": "Noé"}}))])
    assert (await store.get_contact("acme", "wa", "+33600000001")).last_seen == 30.0
    new = await store.get_contact("acme", "wa", "+33600000002")
    assert new.attributes == {"first_name": "Noé"} and new.last_seen == 31.0
    await store.insert_events([(S + "5-0", Event(type="message.in", tenant="acme", channel="wa",
                                             contact="+33600000001", ts=29.0))])
    assert (await store.get_contact("acme", "wa", "+33600000001")).last_seen == 30.0   # never back
    await store.insert_events([(S + (f"6-0/{n}" if n else "6-0"), Event(type="message.out", tenant="acme", channel="wa",
                                                                    contact="+33600000002", ts=40.0, data={"n": n}))
                               for n in range(12)])
    outs = [e for e in await store.list_events("acme", contact="+33600000002") if e.type == "message.out"]
    assert [e.data["n"] for e in outs] == list(range(12))     # a turn's events in their order
    assert [e.type for e in await store.list_events("acme", limit=6)] == [
        "message.in", "message.out", "consent.optout", "message.in", "message.in", "message.in"]
    assert await store.count_events("acme", "message.in") == 5


async def test_a_known_contacts_message_writes_no_contact_row(store, tmp_path):
    """A turn of a known contact adds its events and nothing else: last_seen is read from the
    events, so the batch dirties no page of `contacts` (the store's cost per turn)."""
    await store.create_tenant(TenantInfo(slug="acme", name="Acme"))
    await store.create_tenant(TenantInfo(slug="zeta", name="Zeta"))
    first = Event(type="message.in", tenant="acme", channel="wa", contact="+33600000001", ts=10.0)
    await store.insert_events([(S + "1-0", first)])
    db = sqlite3.connect(tmp_path / "c.db")
    stored = db.execute("SELECT id, last_seen FROM contacts WHERE tenant = 'acme'").fetchall()
    assert [r[1] for r in stored] == [10.0]
    await store.insert_events([
        (S + "2-0", Event(type="message.in", tenant="acme", channel="wa", contact="+33600000001", ts=20.0)),
        (S + "2-0/1", Event(type="message.out", tenant="acme", channel="wa", contact="+33600000001", ts=25.0)),
        # the same address at another tenant is another contact, and doesn't move acme's
        (S + "3-0", Event(type="message.in", tenant="zeta", channel="wa", contact="+33600000001", ts=40.0))])
    assert db.execute("SELECT id, last_seen FROM contacts WHERE tenant = 'acme'").fetchall() == stored
    c = await store.get_contact("acme", "wa", "+33600000001")
    assert c.id == stored[0][0] and c.last_seen == 20.0        # a message out is not "seen"
    assert (await store.get_contact("zeta", "wa", "+33600000001")).last_seen == 40.0
    db.close()


async def test_events_written_before_migration_2_are_kept_and_stay_idempotent(tmp_path):
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript(MIGRATIONS[0][2])
    db.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
               " applied_at REAL NOT NULL)")
    db.execute("INSERT INTO schema_migrations VALUES (1, ?, 0)", (MIGRATIONS[0][1],))
    db.execute("INSERT INTO tenants (slug, name, created_at, updated_at) VALUES ('acme', 'Acme', 0, 0)")
    db.execute("INSERT INTO events (tenant, stream_id, type, channel, contact, ts, data)"
               " VALUES ('acme', '1-0', 'message.in', 'wa', '+33600000001', 5.0, '{\"text\": \"bonjour\"}')")
    db.commit()
    db.close()
    s = await Store.open(str(path), b"x")
    try:
        assert await s.schema_version() == MIGRATIONS[-1][0]
        [old] = await s.list_events("acme")
        assert (old.type, old.contact, old.data) == ("message.in", "+33600000001", {"text": "bonjour"})
        again = Event(type="message.in", tenant="acme", channel="wa", contact="+33600000001", ts=5.0)
        assert await s.insert_events([("1-0", again), ("2-0", again)]) == 1
    finally:
        await s.close()


def test_the_sqlite_store_implements_the_whole_backend_interface():
    import inspect
    from gateway.store import StoreBackend
    for name, proto in inspect.getmembers(StoreBackend, inspect.iscoroutinefunction):
        impl = getattr(Store, name, None)
        assert impl is not None and inspect.iscoroutinefunction(impl), name
        assert list(inspect.signature(impl).parameters) == list(inspect.signature(proto).parameters), name
    public = {n for n, f in inspect.getmembers(Store, inspect.iscoroutinefunction) if not n.startswith("_")}
    assert public - {"open"} == {n for n, _ in inspect.getmembers(StoreBackend, inspect.iscoroutinefunction)}


@pytest.mark.skipif(sys.platform != "linux", reason="per-thread nice values are a Linux feature")
async def test_event_batches_run_on_a_lower_priority_thread(tmp_path):
    import os
    import threading
    s = await Store.open(str(tmp_path / "n.db"), b"x", events_nice=7)
    try:
        me = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        assert s.events_nice == max(7, me)
        assert me < s.events_nice                 # this thread (the event loop's) is untouched
        seen = await s._ev.execute_fetchall("SELECT cst_lower_priority(1)")
        assert seen[0][0] == s.events_nice
    finally:
        await s.close()


async def test_the_events_connection_checkpoints_less_often(store):
    """The event batches' connection lets 32 MB of WAL gather between checkpoints (docs/
    benchmarks.md, item 13); the other connections keep SQLite's default."""
    assert (await store._ev.execute_fetchall("PRAGMA wal_autocheckpoint"))[0][0] == 8192
    assert (await store._ev.execute_fetchall("PRAGMA journal_size_limit"))[0][0] == 64 << 20
    assert (await store._w.execute_fetchall("PRAGMA wal_autocheckpoint"))[0][0] == 1000
