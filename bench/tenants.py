"""Causette's side of the bench: data directories holding the bench tenant(s), built once.

A data directory holds the SQLite store; the sessions live in the bench's Redis. Building
10,000 tenants takes a while, so a directory is kept under bench/results/raw/ and reused while
the tenant definition (hash of bench.common.tenant) stays the same.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import time
from pathlib import Path

from .common import tenant
from .harness import RAW, log

SECRET = "bench-gateway-secret-not-for-production"


def _fingerprint(n: int, own: bool = False) -> str:
    h = hashlib.sha256(json.dumps(tenant("x"), sort_keys=True).encode())
    for f in ("gateway/apply.py", "gateway/store/sqlite.py", "gateway/store/migrations.py"):
        p = Path(__file__).resolve().parents[1] / f
        if p.exists():
            h.update(p.read_bytes())
    return f"{n}{'-own' if own else ''}-{h.hexdigest()[:12]}"


async def _build(data: Path, slugs: list[str], own: bool = False) -> None:
    """The store directly, in bulk (what gateway.apply does, less its per-tenant validation:
    the flow is validated once here, with the tree engine, before the first tenant). With
    `own`, each tenant's flow definition differs from every other's (its name carries the
    slug), so nothing of it can be shared between tenants; the dialog is the same."""
    from gateway.plugins import PluginHost
    from gateway.store import Store
    from gateway.store.records import TenantInfo
    host = PluginHost()
    t = tenant("x")
    engine = host.engines["tree"]
    errors = [p for p in engine.validate(t["flows"][0], steps=host.steps) if p.severity == "error"]
    if errors:
        raise RuntimeError(f"bench flow invalid: {errors}")
    ch = t["channels"][0]
    secret_names = host.channels[ch["type"]].secrets
    secrets = {k: v for k, v in ch["settings"].items() if k in secret_names}
    settings = {k: v for k, v in ch["settings"].items() if k not in secret_names}
    store = await Store.open(str(data / "causette.db"), SECRET.encode())
    t0 = time.monotonic()
    try:
        for i, slug in enumerate(slugs):
            await store.create_tenant(TenantInfo(slug=slug, name=f"Bench {slug}", locale="fr"))
            for plugin, ps in t["plugins"].items():
                await store.set_plugin(slug, plugin, ps)
            await store.put_channel(slug, ch["id"], ch["type"], settings, secrets)
            f = dict(t["flows"][0], name=f"{t['flows'][0]['name']} ({slug})") if own else t["flows"][0]
            await store.create_flow(slug, f["id"], f)
            await store.publish(slug, t["flows"][0]["id"], by="bench")
            if i and i % 1000 == 0:
                log(f"  {i} tenants created ({time.monotonic() - t0:.0f} s)")
    finally:
        await store.close()


def working_copy(n: int, name: str, own: bool = False) -> Path:
    """A fresh copy of the n-tenant template for one server of one bench run: events and
    contacts written by earlier runs would make the store's inserts slower run after run."""
    src = data_dir(n, own)
    dst = RAW / f"work-{name}"
    shutil.rmtree(dst, ignore_errors=True)
    dst.mkdir(parents=True)
    for f in src.iterdir():
        if f.is_file() and f.name.startswith("causette.db"):
            shutil.copy2(f, dst / f.name)
    return dst


def data_dir(n: int, own: bool = False) -> Path:
    """A data directory with `n` tenants: `bench` when n == 1, else bench-00000 ... (n of them);
    `own`: each with a flow definition of its own (see _build)."""
    fp = _fingerprint(n, own)
    data = RAW / f"causette-{fp}"
    if (data / "ready").exists():
        return data
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    slugs = ["bench"] if n == 1 else [f"bench-{i:05d}" for i in range(n)]
    log(f"creating {n} tenant(s) in {data} through the store")
    t0 = time.monotonic()
    asyncio.run(_build(data, slugs, own))
    (data / "ready").write_text(f"{n} tenants in {time.monotonic() - t0:.1f} s\n")
    log(f"  done in {time.monotonic() - t0:.1f} s")
    return data
