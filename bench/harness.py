"""Processes of the bench: its own Redis, the servers under test, the load tool, and what we
read from /proc and from Redis while they run."""
from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from .common import HEADER, body, sign

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
RAW = BENCH / "results" / "raw"
VENV_BIN = Path(sys.executable).parent
NCPU = os.cpu_count() or 1
SERVER_CORE = {0}
LOAD_CORE = {1} if NCPU > 1 else {0}
CLK = os.sysconf("SC_CLK_TCK")


def log(*a: Any) -> None:
    print("[bench]", *a, file=sys.stderr, flush=True)


# --- /proc ------------------------------------------------------------------------------------
def cpu_seconds(pid: int) -> float:
    return cpu_seconds_of(f"/proc/{pid}/stat")      # utime + stime, all threads


def main_thread_cpu_seconds(pid: int) -> float:
    """utime + stime of the process's first thread only (a Python server's event loop: the
    rest of `cpu_seconds` is its helper threads, the store's writer for instance)."""
    return cpu_seconds_of(f"/proc/{pid}/task/{pid}/stat")


def cpu_seconds_of(stat: str) -> float:
    with open(stat) as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / CLK


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def pin(pid: int, cores: set[int]) -> None:
    """Pin a process and all its threads (node's libuv pool, redis' I/O threads)."""
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            os.sched_setaffinity(int(tid), cores)
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        os.sched_setaffinity(pid, cores)


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) != 0


def free_port(start: int) -> int:
    """The first free port from `start`, checked both by bind and by connect."""
    for p in range(start, start + 200):
        if port_free(p):
            return p
    raise RuntimeError(f"no free port from {start}")


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    try:
        mem = int(Path("/proc/meminfo").read_text().split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass

    def version(cmd: list[str]) -> str:
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
            return (out.stdout or out.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.SubprocessError):
            return ""
    return {"cpu": model, "cores": NCPU, "memory_bytes": mem, "kernel": platform.release(),
            "python": platform.python_version(), "redis": version([redis_binary(), "--version"]),
            "node": version(["node", "--version"]) if shutil.which("node") else "",
            "wrk": version(["wrk", "--version"]) if shutil.which("wrk") else "",
            "server_core": sorted(SERVER_CORE), "load_core": sorted(LOAD_CORE)}


# --- Redis of the bench ---------------------------------------------------------------------------
def redis_binary() -> str:
    if Path("/usr/bin/redis-server").exists():
        return "/usr/bin/redis-server"
    from gateway.redis_server import find_binary
    return find_binary()


class BenchRedis:
    """A redis-server of our own, so the figures don't depend on whatever the dev Redis holds.
    No persistence; pinned to the load core so the server core runs only the server."""

    def __init__(self, workdir: Path):
        self.dir = workdir
        self.port = 0
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> str:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port(16400)
        self.proc = subprocess.Popen(
            [redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.dir), "--maxmemory-policy", "noeviction"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                if self.cmd("PING") in ("PONG", True):
                    break
            except Exception:   # redis-py's ConnectionError until the server listens
                time.sleep(0.05)
        else:
            raise RuntimeError("bench redis did not start")
        pin(self.proc.pid, LOAD_CORE)
        return self.url

    def cmd(self, *args: str) -> Any:
        import redis
        r = redis.Redis(port=self.port, socket_timeout=30, decode_responses=True)
        try:
            return r.execute_command(*args)
        finally:
            r.close()

    def client(self, db: int = 0):
        import redis
        return redis.Redis(port=self.port, db=db, socket_timeout=60)

    def databases(self) -> list[int]:
        """The databases that hold keys."""
        import redis
        r = redis.Redis(port=self.port)
        try:
            return sorted(int(k[2:]) for k in r.info("keyspace"))
        finally:
            r.close()

    def commandstats(self) -> dict[str, int]:
        import redis
        r = redis.Redis(port=self.port, decode_responses=True)
        try:
            info = r.info("commandstats")
        finally:
            r.close()
        return {k[len("cmdstat_"):]: v["calls"] for k, v in info.items()}

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


# --- servers --------------------------------------------------------------------------------------
class Server:
    """One configuration's server process(es), started once and measured several times."""

    def __init__(self, name: str, cmds: list[list[str]], port: int, *, env: dict[str, str] | None = None,
                 cwd: Path | None = None, cores: list[set[int]] | None = None, tenants: int = 1,
                 session_match: str = "", label: str = "", db: int = 0):
        self.name, self.cmds, self.port = name, cmds, port
        self.db = db              # the Redis database its keys live in
        self.label = label or name
        self.env = {**os.environ, **(env or {})}
        self.cwd = cwd or ROOT
        self.cores = cores or [SERVER_CORE] * len(cmds)
        self.tenants = tenants
        self.session_match = session_match
        self.procs: list[subprocess.Popen] = []
        self.logs: list[Path] = []
        self.warm = False
        self.cold_start_s: float | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def start(self, timeout: float = 120.0) -> None:
        if not port_free(self.port):
            raise RuntimeError(f"{self.name}: port {self.port} is taken")
        RAW.mkdir(parents=True, exist_ok=True)
        for i, (cmd, cores) in enumerate(zip(self.cmds, self.cores)):
            logf = RAW / f"{self.name}.{i}.log"
            self.logs.append(logf)
            p = subprocess.Popen(cmd, cwd=self.cwd, env=self.env, stdout=logf.open("w"),
                                 stderr=subprocess.STDOUT, start_new_session=True)
            self.procs.append(p)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for p in self.procs:
                if p.poll() is not None:
                    raise RuntimeError(f"{self.name} exited: see {self.logs[0]}\n"
                                       + self.logs[0].read_text()[-2000:])
            if self.probe():
                break
            time.sleep(0.2)
        else:
            raise RuntimeError(f"{self.name} not ready after {timeout}s: see {self.logs[0]}")
        for p, cores in zip(self.procs, self.cores):
            pin(p.pid, cores)   # after start-up: node and redis threads exist by now

    def probe(self) -> bool:
        path, raw = body(f"probe{time.monotonic_ns()}", 0, self.tenants)
        req = urllib.request.Request(self.url + path, data=raw, method="POST",
                                     headers={"Content-Type": "application/json", HEADER: sign(raw)})
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                return 200 <= r.status < 300
        except (urllib.error.URLError, OSError):
            return False

    def check_dialog(self) -> None:
        """Walk one user through the 3 steps and check each answer: every configuration must
        really hold the same conversation, or its figures mean nothing."""
        from .common import ASK1, ASK2, DONE, USERS
        prefix = f"check{time.monotonic_ns()}"
        steps = (ASK1,) if self.name == "bare" else (ASK1, ASK2, DONE)   # bare keeps no state
        for step, want in enumerate(steps):
            path, raw = body(prefix, step * USERS + 4242, self.tenants)
            req = urllib.request.Request(self.url + path, data=raw, method="POST",
                                         headers={"Content-Type": "application/json", HEADER: sign(raw)})
            with urllib.request.urlopen(req, timeout=10) as r:
                got = json.loads(r.read() or b"null")
            texts = [m.get("text", "") for m in got or () if isinstance(m, dict)]
            if want["text"] not in texts:
                raise RuntimeError(f"{self.name}: step {step} answered {got!r}, expected {want['text']!r}")

    def cpu(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.pids)

    def loop_cpu(self) -> float:
        """CPU of the main threads only (the event loops), the rest of `cpu` being helper threads."""
        return sum(main_thread_cpu_seconds(pid) for pid in self.pids)

    def rss(self) -> int:
        return sum(rss_bytes(pid) for pid in self.pids)

    def huge(self) -> int:
        """Memory on transparent huge pages (gateway.hugepages)."""
        from gateway.hugepages import huge_bytes
        return sum(huge_bytes(pid) for pid in self.pids)

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs = []


# --- load -----------------------------------------------------------------------------------------
def ensure_wrk(install: bool) -> tuple[str, str]:
    """('wrk', note) when wrk is there (installed now if allowed), else ('python', note)."""
    if shutil.which("wrk"):
        return "wrk", ""
    if install and shutil.which("apt-get"):
        log("wrk missing: installing Debian's package `wrk` with apt-get")
        sudo = [] if os.geteuid() == 0 else (["sudo", "-n"] if shutil.which("sudo") else None)
        if sudo is not None:
            env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            subprocess.run(sudo + ["apt-get", "update", "-qq"], env=env, capture_output=True)
            subprocess.run(sudo + ["apt-get", "install", "-y", "-qq", "wrk"], env=env, capture_output=True)
            if shutil.which("wrk"):
                return "wrk", "wrk was installed by the bench (apt-get install wrk)"
    return "python", "wrk unavailable: load from bench.loadgen (asyncio, separate process)"


def load(tool: str, url: str, seconds: float, prefix: str, tenants: int, connections: int) -> dict:
    if tool == "wrk":
        cmd = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "5s",
               "-s", str(BENCH / "wrk.lua"), url, "--", prefix, str(tenants), os.environ.get(
                   "BENCH_SECRET", "bench-webhook-secret")]
    else:
        cmd = [sys.executable, "-m", "bench.loadgen", "--url", url, "--connections", str(connections),
               "--duration", str(seconds), "--prefix", prefix, "--tenants", str(tenants)]
    p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=lambda: os.sched_setaffinity(0, LOAD_CORE))
    out, err = p.communicate(timeout=seconds + 120)
    for line in out.splitlines():
        if line.startswith("BENCH_JSON "):
            res = json.loads(line[len("BENCH_JSON "):])
            res["rps"] = res["requests"] / (res["duration_us"] / 1e6) if res["duration_us"] else 0.0
            res["socket_errors"] = res["connect"] + res["read"] + res["write"] + res["timeout"]
            return res
    raise RuntimeError(f"load tool gave no result: {out[-500:]} {err[-500:]}")
