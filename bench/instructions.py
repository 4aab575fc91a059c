"""CPU instructions per turn, counted by valgrind's callgrind: the bench's steady figure.

    python -m bench.instructions                      # lean floor and Causette (1 tenant)
    python -m bench.instructions --only bare,lean,redispy,causette --seconds 30
    python -m bench.instructions --only causette,causette_10k,causette_10k_own --tenants 1000 \
        --cache-sim 4194304,16,64     # + simulated cache misses (a 4 MiB last level)

Wall-clock figures on a shared machine move by ±30% from one minute to the next (other
guests take the cores' time and caches); an instruction count does not. Each server runs
under `valgrind --tool=callgrind` with counting switched off while it starts and warms up,
then on (`callgrind_control -i on`) while the bench's own load generator sends the same
webhook bodies as `make bench`, then off again. Instructions of every thread of the server
(the event loop, the store's writer) divided by the requests answered is the figure; the
ratio against the lean floor is the one to watch while optimizing. Valgrind runs ~50x
slower, so latency and throughput under it mean nothing and are not reported.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

from .harness import RAW, ROOT, BenchRedis, load, log

VALGRIND = ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--collect-atstart=yes",
            "--dump-instr=no", "--dump-line=no", "--trace-children=no"]


def _control(*args: str) -> str:
    return subprocess.run(["callgrind_control", *args], capture_output=True, text=True, timeout=300).stdout


def _totals(out_dir: Path, pid: int) -> dict[str, int]:
    """Event counts of the last dump of process `pid`, summed over its threads (callgrind
    writes one file per thread): Ir, and with the cache simulation D1mr, DLmr... as well."""
    total: dict[str, int] = {}
    for f in out_dir.glob(f"callgrind.out.{pid}*"):
        text = f.read_text(errors="replace")
        names = (re.search(r"^events:\s+(.+)$", text, re.M) or [None, "Ir"])[1].split()
        best: list[int] = []
        for line in re.findall(r"^(?:summary|totals):\s+([\d ]+)$", text, re.M):
            nums = [int(n) for n in line.split()]
            if nums and (not best or nums[0] > best[0]):
                best = nums
        for name, n in zip(names, best):
            total[name] = total.get(name, 0) + n
    return total


def _total(out_dir: Path, pid: int) -> int:
    return _totals(out_dir, pid).get("Ir", 0)


def count(name: str, redis_url: str, a: argparse.Namespace, build: Callable[..., Any], *,
          seconds: float = 20.0, warmup: float = 10.0, connections: int = 16,
          cache: str = "", turn_only: bool = False) -> dict[str, Any]:
    """Instructions per request of configuration `name`, built by `build` (bench.__main__'s
    build_server) and run under callgrind. With `cache` (an --LL=size,assoc,line value, or
    "host"), callgrind also simulates the caches and the result has misses per request."""
    srv = build(name, redis_url, a, [])
    if srv is None:
        raise RuntimeError(f"{name} unavailable")
    out_dir = RAW / f"callgrind-{name}"
    out_dir.mkdir(parents=True, exist_ok=True)
    for f in out_dir.glob("callgrind.out.*"):
        f.unlink()
    # One process only: valgrind follows it and all its threads.
    if turn_only and srv.cmds[0][-1] == "serve":
        # The turn alone: no event flusher nor timer loop in the counted process (under
        # valgrind the store's low-priority thread runs as much as it likes).
        srv.cmds[0] = srv.cmds[0] + ["--no-background"]
    sim = ["--cache-sim=yes"] + ([f"--LL={cache}"] if cache and cache != "host" else []) if cache else []
    srv.cmds = [VALGRIND + sim + [f"--callgrind-out-file={out_dir}/callgrind.out.%p"] + srv.cmds[0]]
    srv.cores = srv.cores[:1]
    srv.start(timeout=900)
    try:
        srv.check_dialog()
        pid = srv.pids[0]
        tag = f"ir{time.monotonic_ns()}"
        load("python", srv.url, warmup, tag + "w", srv.tenants, connections)
        if srv.tenants > 1:
            # Every tenant loaded before counting (steady state), as the timed runs do.
            done = 0
            while done < srv.tenants:
                done += load("python", srv.url, 10, f"{tag}c{done}", srv.tenants, connections)["requests"]
        _control("-z", str(pid))
        _control("-i", "on", str(pid))
        r = load("python", srv.url, seconds, tag, srv.tenants, connections)
        _control("-i", "off", str(pid))
        _control("-d", str(pid))
        time.sleep(1.0)
        counts = _totals(out_dir, pid)
    finally:
        srv.stop()
    if not r["requests"] or r["status"]:
        raise RuntimeError(f"{name}: {r['requests']} requests, {r['status']} errors")
    ir = counts.get("Ir", 0)
    out = {"requests": r["requests"], "instructions": ir, "per_request": ir / r["requests"]}
    if cache:
        # Last-level misses (data reads and writes, instruction fetches): what a turn costs
        # in trips to memory, the part of its time that instructions do not show.
        out["ll_misses_per_request"] = sum(counts.get(k, 0) for k in ("ILmr", "DLmr", "DLmw")) / r["requests"]
        out["d1_misses_per_request"] = sum(counts.get(k, 0) for k in ("D1mr", "D1mw")) / r["requests"]
        out["cache"] = cache
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="lean,causette")
    ap.add_argument("--seconds", type=float, default=20.0, help="counted seconds per server (under valgrind)")
    ap.add_argument("--warmup", type=float, default=10.0)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--tenants", type=int, default=1000)
    ap.add_argument("--cache-sim", default="", metavar="LL",
                    help="simulate the caches too: 'host', or a last-level cache as size,assoc,line "
                         "(e.g. 4194304,16,64: 4 MiB, to scale 10k tenants and a 32 MiB L3 to 1k tenants)")
    ap.add_argument("--turn-only", action="store_true",
                    help="Causette servers without their background loops (serve --no-background)")
    ap.add_argument("--output", default=str(RAW / "instructions.json"))
    a = ap.parse_args(argv)
    a.no_install = True
    from .__main__ import build_server
    os.chdir(ROOT)
    RAW.mkdir(parents=True, exist_ok=True)
    redis = BenchRedis(RAW / "redis")
    redis_url = redis.start()
    res: dict[str, Any] = {}
    try:
        for name in a.only.split(","):
            res[name] = count(name, redis_url, a, build_server, seconds=a.seconds, warmup=a.warmup,
                              connections=a.connections, cache=a.cache_sim,
                              turn_only=a.turn_only)
            log(f"{name:15s} {res[name]['per_request'] / 1e3:8.1f} k instructions/request "
                f"({res[name]['requests']} requests)"
                + (f", {res[name]['d1_misses_per_request']:,.0f} D1 and "
                   f"{res[name]['ll_misses_per_request']:,.0f} last-level misses/request"
                   if a.cache_sim else ""))
    finally:
        redis.stop()
    base = res.get("lean")
    for name, r in res.items():
        if base and name != "lean":
            r["ratio_lean"] = base["per_request"] / r["per_request"]
            log(f"{name}: lean floor / {name} = {r['ratio_lean']:.3f} (in instructions)")
    Path(a.output).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
