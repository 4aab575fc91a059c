"""CPU instructions per turn, counted by valgrind's callgrind: the bench's steady figure.

    python -m bench.instructions                      # lean floor and Causette (1 tenant)
    python -m bench.instructions --only bare,lean,redispy,causette --seconds 30

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


def _total(out_dir: Path, pid: int) -> int:
    """Instructions of the last dump of process `pid` (callgrind writes one file per thread)."""
    total = 0
    for f in out_dir.glob(f"callgrind.out.{pid}*"):
        text = f.read_text(errors="replace")
        total += max((int(n) for n in re.findall(r"^(?:summary|totals):\s+(\d+)", text, re.M)),
                     default=0)
    return total


def count(name: str, redis_url: str, a: argparse.Namespace, build: Callable[..., Any], *,
          seconds: float = 20.0, warmup: float = 10.0, connections: int = 16) -> dict[str, Any]:
    """Instructions per request of configuration `name`, built by `build` (bench.__main__'s
    build_server) and run under callgrind."""
    srv = build(name, redis_url, a, [])
    if srv is None:
        raise RuntimeError(f"{name} unavailable")
    out_dir = RAW / f"callgrind-{name}"
    out_dir.mkdir(parents=True, exist_ok=True)
    for f in out_dir.glob("callgrind.out.*"):
        f.unlink()
    # One process only: valgrind follows it and all its threads.
    srv.cmds = [VALGRIND + [f"--callgrind-out-file={out_dir}/callgrind.out.%p"] + srv.cmds[0]]
    srv.cores = srv.cores[:1]
    srv.start(timeout=900)
    try:
        srv.check_dialog()
        pid = srv.pids[0]
        tag = f"ir{time.monotonic_ns()}"
        load("python", srv.url, warmup, tag + "w", srv.tenants, connections)
        _control("-z", str(pid))
        _control("-i", "on", str(pid))
        r = load("python", srv.url, seconds, tag, srv.tenants, connections)
        _control("-i", "off", str(pid))
        _control("-d", str(pid))
        time.sleep(1.0)
        ir = _total(out_dir, pid)
    finally:
        srv.stop()
    if not r["requests"] or r["status"]:
        raise RuntimeError(f"{name}: {r['requests']} requests, {r['status']} errors")
    return {"requests": r["requests"], "instructions": ir, "per_request": ir / r["requests"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="lean,causette")
    ap.add_argument("--seconds", type=float, default=20.0, help="counted seconds per server (under valgrind)")
    ap.add_argument("--warmup", type=float, default=10.0)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--tenants", type=int, default=1000)
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
                              connections=a.connections)
            log(f"{name:15s} {res[name]['per_request'] / 1e3:8.1f} k instructions/request "
                f"({res[name]['requests']} requests)")
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
