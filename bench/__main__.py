"""`make bench` (python -m bench): Causette's turn against the floors and a peer, side by side.

    python -m bench                 # the full run: 3 interleaved runs of 5 s warm-up + 20 s each
    python -m bench --quick         # 1 run of 1 s + 4 s, 1,000 tenants for the scale test
    python -m bench --only bare,causette --runs 1 --duration 5
    BENCH_ARGS="--quick" make bench

docs/benchmarks.md explains what each configuration does and how to read the figures.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from . import instructions, report
from .common import ASK1, ASK2, DONE, HEADER, SECRET, USERS, body, sign, user_id
from .harness import (BENCH, LOAD_CORE, NCPU, RAW, ROOT, SERVER_CORE, VENV_BIN, BenchRedis, Server,
                      ensure_wrk, free_port, load, log, machine)

RESULTS = BENCH / "results"
# Run in this order in each round: what a ratio compares runs minutes apart at most (the lean
# floor, Causette and its 10k-tenant configurations next to each other).
ALL = ("bare", "redispy", "lean", "causette", "causette_10k", "causette_10k_own", "botkit",
       "causette_2proc", "causette_worker")
LABELS = {
    "bare": "floor: bare aiohttp",
    "redispy": "floor: aiohttp + redis-py",
    "lean": "floor: aiohttp + lean client",
    "causette": "Causette (1 tenant)",
    "botkit": "peer: Botkit 4.15",
    "causette_10k": "Causette (10k tenants)",
    "causette_2proc": "Causette (2 processes)",
    "causette_worker": "Causette (serve + worker)",
    "causette_10k_own": "Causette (10k tenants, own flows)",
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short runs while developing")
    ap.add_argument("--runs", type=int, help="runs of each configuration, interleaved (3)")
    ap.add_argument("--warmup", type=float, help="seconds of warm-up before each run (5)")
    ap.add_argument("--duration", type=float, help="measured seconds per run (20)")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--tenants", type=int, help="tenants of the scale test (10000)")
    ap.add_argument("--only", help="comma-separated configurations: " + ",".join(ALL))
    ap.add_argument("--skip", default="", help="comma-separated configurations to leave out")
    ap.add_argument("--load", choices=("auto", "wrk", "python"), default="auto")
    ap.add_argument("--no-install", action="store_true", help="never apt-get wrk nor npm install")
    ap.add_argument("--profile", nargs="?", const="causette", default="", metavar="CONFIG",
                    help="also record a py-spy profile of CONFIG (default causette) under load "
                         "(bench/results/raw/profile-CONFIG.*)")
    ap.add_argument("--no-instructions", dest="instructions", action="store_false",
                    help="skip the instruction count under valgrind (on by default when valgrind "
                         "is installed, except with --quick)")
    ap.add_argument("--output", default=str(RESULTS / "latest.json"))
    a = ap.parse_args(argv)
    a.instructions = a.instructions and not a.quick
    if a.instructions and not shutil.which("valgrind"):
        a.instructions = False
        log("valgrind not installed: no instruction counts (apt-get install valgrind)")
    a.runs = a.runs or (1 if a.quick else 3)
    a.warmup = a.warmup if a.warmup is not None else (1.0 if a.quick else 5.0)
    a.duration = a.duration or (4.0 if a.quick else 20.0)
    a.tenants = a.tenants or (1000 if a.quick else 10_000)
    names = [n.strip() for n in (a.only or ",".join(ALL)).split(",") if n.strip()]
    bad = [n for n in names if n not in ALL]
    if bad:
        ap.error(f"unknown configuration(s) {bad}; choose from {ALL}")
    a.names = [n for n in names if n not in a.skip.split(",")]
    return a


# --- configurations ---------------------------------------------------------------------------
def ensure_botkit(install: bool) -> str:
    """'' when the peer is ready, else why not."""
    if not shutil.which("node"):
        return "node is not installed"
    peer = BENCH / "peers" / "botkit"
    if not (peer / "node_modules" / "botkit").exists():
        if not install or not shutil.which("npm"):
            return "the peer's node_modules are missing (npm install in bench/peers/botkit)"
        log("installing the Botkit peer from the npm registry (bench/peers/botkit)")
        cmd = ["npm", "ci" if (peer / "package-lock.json").exists() else "install",
               "--no-audit", "--no-fund", "--loglevel=error"]
        r = subprocess.run(cmd, cwd=peer, capture_output=True, text=True)
        if r.returncode != 0:
            return "npm install failed: " + (r.stderr or r.stdout)[-300:]
    return ""


def causette_db(name: str) -> int:
    """Each Causette configuration keeps its keys in a Redis database of its own: the 1-tenant
    ones share the tenant slug, and an idle server's event flusher would otherwise move (and
    pay for) the events of the one being measured."""
    return ALL.index(name)


def causette_env(data: Path, redis_url: str, port: int, db: int) -> dict[str, str]:
    from .tenants import SECRET as GW_SECRET
    return {"REDIS_URL": f"{redis_url.rsplit('/', 1)[0]}/{db}", "CAUSETTE_DATA": str(data),
            "CAUSETTE_PORT": str(port), "CAUSETTE_HOST": "127.0.0.1", "CAUSETTE_SECRET": GW_SECRET,
            "PYTHONUNBUFFERED": "1"}


def build_server(name: str, redis_url: str, a: argparse.Namespace, notes: list[str]) -> Server | None:
    py = sys.executable
    port = free_port(18100 + 10 * ALL.index(name))
    if name in ("bare", "redispy", "lean"):
        return Server(name, [[py, "-m", "bench.floors", "--kind", name, "--port", str(port),
                              "--redis", redis_url]], port, label=LABELS[name],
                      session_match=f"floor:{name}:*" if name != "bare" else "")
    if name == "botkit":
        why = ensure_botkit(not a.no_install)
        if why:
            notes.append(f"peer skipped: {why}")
            log(notes[-1])
            return None
        env = {"PORT": str(port), "REDIS_URL": redis_url, "SECRET": SECRET, "NODE_ENV": "production",
               "DIALOG": json.dumps({"ask1": ASK1, "ask2": ASK2, "done": DONE})}
        return Server(name, [["node", "bot.js"]], port, env=env, cwd=BENCH / "peers" / "botkit",
                      label=LABELS[name], session_match="botkit:*")
    from .tenants import working_copy
    causette = str(VENV_BIN / "causette")
    if name == "causette":
        data = working_copy(1, name)
        return Server(name, [[causette, "serve"]], port, env=causette_env(data, redis_url, port, causette_db(name)),
                      label=LABELS[name], session_match="cst:{bench}:c:*:s", db=causette_db(name))
    if name in ("causette_10k", "causette_10k_own"):
        # The same flow in every tenant (an agency's template: its compiled form is shared), or
        # a definition of its own in each (nothing of the flow shared).
        own = name == "causette_10k_own"
        data = working_copy(a.tenants, name, own)
        return Server(name, [[causette, "serve"]], port, env=causette_env(data, redis_url, port, causette_db(name)),
                      label=f"Causette ({a.tenants:,} tenants{', own flows' if own else ''})",
                      tenants=a.tenants, session_match="cst:{bench-0*}:c:*:s", db=causette_db(name))
    if name == "causette_2proc":
        data = working_copy(1, name)
        cores = [SERVER_CORE, LOAD_CORE] if NCPU > 1 else [SERVER_CORE, SERVER_CORE]
        return Server(name, [[causette, "serve", "--reuse-port"]] * 2, port,
                      env=causette_env(data, redis_url, port, causette_db(name)), cores=cores, label=LABELS[name],
                      session_match="cst:{bench}:c:*:s", db=causette_db(name))
    if name == "causette_worker":
        # The store's writes in a `causette worker` on the other core; its CPU is counted with
        # the server's, so CPU per turn stays the whole cost of a turn.
        data = working_copy(1, name)
        return Server(name, [[causette, "serve", "--no-background"], [causette, "worker"]], port,
                      env=causette_env(data, redis_url, port, causette_db(name)), cores=[SERVER_CORE, LOAD_CORE],
                      label=LABELS[name], session_match="cst:{bench}:c:*:s", db=causette_db(name))
    raise ValueError(name)


# --- measuring --------------------------------------------------------------------------------
def measure(srv: Server, redis: BenchRedis, tool: str, a: argparse.Namespace, tag: str) -> dict[str, Any]:
    if a.warmup > 0:
        w = load(tool, srv.url, a.warmup, f"{tag}w", srv.tenants, a.connections)
        if w["status"] or w["socket_errors"]:
            log(f"  warm-up of {srv.name} had errors: {w}")
    if srv.tenants > 1 and not srv.warm:
        # Steady state is what we compare: every tenant loaded once before the first run.
        # How long that first pass takes is reported apart (cold start).
        t0, done = time.monotonic(), 0
        while done < srv.tenants and time.monotonic() - t0 < 300:
            w = load(tool, srv.url, 5, f"{tag}c{done}", srv.tenants, a.connections)
            done += w["requests"]
        srv.cold_start_s = round(time.monotonic() - t0, 1)
        srv.warm = True
        log(f"  {srv.name}: first pass over {srv.tenants} tenants took {srv.cold_start_s} s")
    causette = srv.name.startswith("causette")
    if causette:
        drain(redis)            # the warm-up's events: a run starts with the store caught up
    each0 = [_proc_cpu(p) for p in srv.pids]
    cmds0, cpu0, rcpu0, loop0 = redis.commandstats(), srv.cpu(), _proc_cpu(redis.proc.pid), srv.loop_cpu()
    res = load(tool, srv.url, a.duration, tag, srv.tenants, a.connections)
    cmds1, cpu1, rcpu1, loop1 = redis.commandstats(), srv.cpu(), _proc_cpu(redis.proc.pid), srv.loop_cpu()
    each1 = [_proc_cpu(p) for p in srv.pids]
    n = max(1, res["requests"])
    store: dict[str, Any] = {}
    if causette:
        # Causette answers first and writes the turn's events to the store from a Redis
        # stream at low priority: what a burst leaves waiting is written here, and counted.
        left = backlog(redis)
        t0 = time.monotonic()
        drain(redis)
        drain_s = time.monotonic() - t0
        cpu2, loop2 = srv.cpu(), srv.loop_cpu()
        store = {"backlog_entries": left, "drain_s": round(drain_s, 2),
                 "cpu_us_total": round((cpu2 - cpu0) / n * 1e6, 1),
                 # the drain's CPU per stream entry, on the event loop and in the store's thread
                 **({"drain_loop_us": round((loop2 - loop1) / left * 1e6, 1),
                     "drain_thread_us": round(((cpu2 - loop2) - (cpu1 - loop1)) / left * 1e6, 1)}
                    if left else {}),
                 "sustained_rps": round(res["requests"] / (a.duration + drain_s), 1)}
    calls = sum(v - cmds0.get(k, 0) for k, v in cmds1.items() if k != "info")
    run = {"rps": round(res["rps"], 1), "requests": res["requests"],
           "p50_ms": res["p50"] / 1000, "p90_ms": res["p90"] / 1000, "p99_ms": res["p99"] / 1000,
           "max_ms": res["max"] / 1000,
           "cpu_us": round((cpu1 - cpu0) / n * 1e6, 1),
           "loop_cpu_us": round((loop1 - loop0) / n * 1e6, 1),
           "cpu_us_each": [round((b - a) / n * 1e6, 1) for a, b in zip(each0, each1)],
           "redis_cpu_us": round((rcpu1 - rcpu0) / n * 1e6, 1),
           "redis_cmds_per_turn": round(calls / n, 2),
           "rss_bytes": srv.rss(), "huge_bytes": srv.huge(),
           "status_errors": res["status"], "socket_errors": res["socket_errors"], **store}
    run["accepted"] = res["status"] == 0 and res["socket_errors"] == 0 and res["requests"] > 0
    return run


def backlog(redis: BenchRedis) -> int:
    """Stream entries (turns) whose events are not in a store yet, over every tenant of every
    Causette configuration."""
    total = 0
    for db in redis.databases():
        r = redis.client(db)
        try:
            keys = list(r.scan_iter(match="cst:{*}:ev", count=10_000))
            if keys:
                p = r.pipeline(transaction=False)
                for k in keys:
                    p.xlen(k)
                total += int(sum(p.execute()))
        finally:
            r.close()
    return total


def drain(redis: BenchRedis, limit: float = 600.0) -> None:
    """Wait until every event of the Causette servers is in their stores."""
    t0 = time.monotonic()
    while backlog(redis) and time.monotonic() - t0 < limit:
        time.sleep(0.1)


def _proc_cpu(pid: int) -> float:
    from .harness import cpu_seconds
    return cpu_seconds(pid)


def sessions(redis: BenchRedis, match: str, db: int = 0, sample: int = 200) -> dict[str, Any]:
    if not match:
        return {}
    r = redis.client(db)
    try:
        keys: list[bytes] = []
        for k in r.scan_iter(match=match, count=1000):
            keys.append(k)
            if len(keys) >= sample:
                break
        if not keys:
            return {}
        mem = sorted(r.memory_usage(k, samples=0) or 0 for k in keys)
        size = sorted(r.strlen(k) for k in keys)
        return {"session_bytes": mem[len(mem) // 2], "session_value_bytes": size[len(size) // 2],
                "sessions_sampled": len(keys)}
    finally:
        r.close()


def round_trips(srv: Server, redis: BenchRedis, turns: int = 90) -> dict[str, float]:
    """Top-level Redis commands per turn, counted with MONITOR over sequential turns of users
    that nothing else touches meanwhile: each is at most one round trip (concurrent turns may
    share one). Only commands naming the probe's users or message ids count, so background
    loops (event flush, timers) and the other servers' idle traffic are left out; commands
    run inside Lua scripts are not round trips and are left out too."""
    r = redis.client()
    seen: list[dict] = []
    marker = f"bench-marker-{uuid.uuid4().hex}"
    ready = threading.Event()

    def watch() -> None:
        with r.monitor() as m:
            ready.set()
            while True:
                c = m.next_command()
                if marker in c.get("command", ""):
                    return
                seen.append(c)
    t = threading.Thread(target=watch, daemon=True)
    t.start()
    ready.wait(5)
    time.sleep(0.1)
    prefix = f"rt{uuid.uuid4().hex[:8]}"
    users = turns // 3
    names = {prefix} | {user_id(5000 + u) for u in range(users)}
    for step in range(3):
        for u in range(users):
            path, raw = body(prefix, step * USERS + u + 5000, srv.tenants)
            req = urllib.request.Request(srv.url + path, data=raw, method="POST",
                                         headers={"Content-Type": "application/json", HEADER: sign(raw)})
            with urllib.request.urlopen(req, timeout=10) as resp:
                resp.read()
    time.sleep(0.05)
    other = redis.client()
    other.echo(marker)
    other.close()
    t.join(10)
    r.close()
    mine = [c for c in seen if c.get("client_type") != "lua"
            and any(n in c.get("command", "") for n in names)]
    return {"round_trips_per_turn": round(len(mine) / (users * 3), 2)}


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in runs if r["accepted"]]
    out: dict[str, Any] = {"runs": runs, "accepted": len(ok), "rejected": len(runs) - len(ok)}
    if not ok:
        return out
    med, rng = {}, {}
    for k in ("rps", "p50_ms", "p90_ms", "p99_ms", "cpu_us", "loop_cpu_us", "redis_cpu_us", "redis_cmds_per_turn",
              "rss_bytes", "huge_bytes", "backlog_entries", "drain_s", "drain_loop_us", "drain_thread_us", "cpu_us_total", "sustained_rps"):
        vals = [r[k] for r in ok if k in r]
        if not vals:
            continue
        med[k] = statistics.median(vals)
        rng[k] = [min(vals), max(vals)]
    out["median"], out["range"] = med, rng
    return out


def profile(srv: Server, tool: str, a: argparse.Namespace) -> dict[str, str]:
    """py-spy (a dev tool, installed into the venv on demand) on Causette under load."""
    spy = shutil.which("py-spy") or str(VENV_BIN / "py-spy")
    if not Path(spy).exists():
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "py-spy"], capture_output=True)
    if not Path(spy).exists():
        return {"error": "py-spy unavailable"}
    out: dict[str, Any] = {}
    formats = (("raw", "txt"),) if a.quick else (("raw", "txt"), ("flamegraph", "svg"))
    for fmt, ext in formats:
        dest = RAW / f"profile-{srv.name}.{ext}"
        rec = subprocess.Popen([spy, "record", "-p", str(srv.pids[0]), "-d", str(int(a.duration)),
                                "-r", "200", "--gil", "-f", fmt, "-o", str(dest), "--nonblocking"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               preexec_fn=lambda: os.sched_setaffinity(0, LOAD_CORE))
        time.sleep(0.5)
        load(tool, srv.url, a.duration, f"prof{uuid.uuid4().hex[:6]}", srv.tenants, a.connections)
        rec.wait(60)
        out[fmt] = str(dest.relative_to(ROOT))
        if fmt == "raw" and dest.exists():
            out["top"] = report.top_frames(dest)
    return out


# --- main -------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    os.chdir(ROOT)
    RAW.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    if NCPU < 2:
        notes.append("one core only: server and load share it")
    tool, note = ("python", "load from bench.loadgen (asked for)") if a.load == "python" else \
        ensure_wrk(install=not a.no_install)
    if a.load == "wrk" and tool != "wrk":
        log("wrk asked for but unavailable")
        return 2
    if note:
        notes.append(note)
    log(f"load tool: {tool}; configurations: {', '.join(a.names)}; {a.runs} run(s) of "
        f"{a.warmup:g} s warm-up + {a.duration:g} s at c={a.connections}")
    redis = BenchRedis(RAW / "redis")
    redis_url = redis.start()
    log(f"bench redis on {redis_url} (pinned to core {sorted(LOAD_CORE)})")
    servers: dict[str, Server] = {}
    results: dict[str, Any] = {}
    run_id = uuid.uuid4().hex[:8]
    try:
        for name in a.names:
            try:
                srv = build_server(name, redis_url, a, notes)
            except Exception as exc:   # a missing piece must not cost the other figures
                notes.append(f"{name} skipped: {type(exc).__name__}: {exc}")
                log(notes[-1])
                continue
            if srv is None:
                continue
            try:
                srv.start()
                srv.check_dialog()
            except Exception as exc:
                notes.append(f"{name} did not start: {exc}"[:600])
                log(notes[-1])
                srv.stop()
                continue
            servers[name] = srv
            log(f"{name} ready on {srv.url} (pids {srv.pids})")
        runs: dict[str, list[dict[str, Any]]] = {n: [] for n in servers}
        for i in range(a.runs):
            for name, srv in servers.items():
                r = measure(srv, redis, tool, a, f"{run_id}-{name}-{i}")
                runs[name].append(r)
                log(f"run {i + 1}/{a.runs} {name:15s} {r['rps']:9.0f} req/s  p99 {r['p99_ms']:6.1f} ms  "
                    f"cpu {r['cpu_us']:6.0f} µs/req ({r['loop_cpu_us']:.0f} loop)  redis {r['redis_cmds_per_turn']:.1f} cmd/turn"
                    + (f"  then {r['backlog_entries']} turns to the store in {r['drain_s']:.1f} s: "
                       f"{r['cpu_us_total']:.0f} µs/turn in all"
                       + (f" (drain {r['drain_loop_us']:.0f} loop + {r['drain_thread_us']:.0f} thread µs/entry)"
                          if "drain_loop_us" in r else "") + ", "
                       f"{r['sustained_rps']:.0f} req/s sustained"
                       if "drain_s" in r else "")
                    + ("" if r["accepted"] else f"  REJECTED ({r['status_errors']} non-2xx, "
                                                 f"{r['socket_errors']} socket errors)"))
        for name, srv in servers.items():
            results[name] = {"label": srv.label, **summarize(runs[name]),
                             **sessions(redis, srv.session_match, srv.db)}
            if srv.cold_start_s is not None:
                results[name]["cold_start_s"] = srv.cold_start_s
            if name != "bare":
                try:
                    results[name].update(round_trips(srv, redis))
                except Exception as exc:
                    notes.append(f"{name}: round trips not counted ({type(exc).__name__}: {exc})")
        if a.profile and a.profile in servers:
            log(f"profiling {a.profile} with py-spy")
            results[a.profile]["profile"] = profile(servers[a.profile], tool, a)
        if a.instructions:
            # After the timed runs, with their servers stopped: a counted Causette shares its
            # store and Redis database with the timed one.
            for srv in servers.values():
                srv.stop()
            for name in [n for n in ("lean", "causette") if n in servers]:
                try:
                    log(f"counting {name}'s instructions per request under callgrind")
                    results[name]["instructions"] = instructions.count(name, redis_url, a, build_server)
                except Exception as exc:
                    notes.append(f"{name}: instructions not counted ({type(exc).__name__}: {exc})"[:300])
                    log(notes[-1])
    finally:
        for srv in servers.values():
            srv.stop()
        redis.stop()
    out = report.assemble(results, machine(), tool, notes, a)
    Path(a.output).parent.mkdir(parents=True, exist_ok=True)
    Path(a.output).write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n")
    report.write_docs(out, Path(a.output))
    log(f"results: {a.output}")
    print(report.table(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
