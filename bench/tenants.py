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


def _fingerprint(n: int) -> str:
    h = hashlib.sha256(json.dumps(tenant("x"), sort_keys=True).encode())
    for f in ("gateway/apply.py", "gateway/store/sqlite.py", "gateway/store/migrations.py"):
        p = Path(__file__).resolve().parents[1] / f
        if p.exists():
            h.update(p.read_bytes())
    return f"{n}-{h.hexdigest()[:12]}"


async def _build(data: Path, slugs: list[str]) -> None:
    import msgspec

    from gateway.apply import apply_tenant
    from gateway.config import TenantConfig
    from gateway.plugins import PluginHost
    from gateway.store import Store
    store = await Store.open(str(data / "causette.db"), SECRET.encode())
    host = PluginHost()
    t0 = time.monotonic()
    try:
        for i, slug in enumerate(slugs):
            await apply_tenant(store, host, msgspec.convert(tenant(slug), TenantConfig))
            if i and i % 1000 == 0:
                log(f"  {i} tenants applied ({time.monotonic() - t0:.0f} s)")
    finally:
        await store.close()


def data_dir(n: int) -> Path:
    """A data directory with `n` tenants: `bench` when n == 1, else bench-00000 ... (n of them)."""
    fp = _fingerprint(n)
    data = RAW / f"causette-{fp}"
    if (data / "ready").exists():
        return data
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    slugs = ["bench"] if n == 1 else [f"bench-{i:05d}" for i in range(n)]
    log(f"creating {n} tenant(s) in {data} through gateway.apply")
    t0 = time.monotonic()
    asyncio.run(_build(data, slugs))
    (data / "ready").write_text(f"{n} tenants in {time.monotonic() - t0:.1f} s\n")
    log(f"  done in {time.monotonic() - t0:.1f} s")
    return data
