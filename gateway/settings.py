"""Process settings, from the environment (12-factor); every one has a working default."""
from __future__ import annotations

import os
import secrets
from pathlib import Path

import msgspec


class Settings(msgspec.Struct, kw_only=True):
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: str = "var"
    redis_url: str = ""              # empty: start an embedded Redis under data_dir
    database: str = ""               # empty: <data_dir>/causette.db
    secret: str = ""                 # encrypts channel secrets, signs visitor tokens
    public_url: str = ""             # how providers reach us (URL-signed webhooks: Twilio)
    max_body: int = 1024 * 1024      # bytes accepted on a webhook or admin request
    plugin_timeout: float = 5.0      # seconds per plugin call
    lock_ttl: float = 30.0           # seconds a conversation lock lives without its holder
    lock_wait: float = 20.0          # seconds a message waits for its turn before 503
    dedup_ttl: int = 24 * 3600       # seconds a provider's message id is remembered
    events_maxlen: int = 1_000_000   # per-tenant stream cap while the store catches up
    flush_interval: float = 0.5      # seconds between event batches to the store
    timer_interval: float = 0.25     # seconds between scans of due timers
    background: bool = True          # run the event flusher and timer loop in this process
    events_nice: int = 19            # OS priority of the event batches' thread (Linux; 0 = as the rest)
    hugepages: bool = True           # back the grown heap with huge pages (Linux, gateway.hugepages)

    @classmethod
    def from_env(cls, **overrides: object) -> "Settings":
        env = os.environ
        s = cls(
            host=env.get("CAUSETTE_HOST", "127.0.0.1"),
            port=int(env.get("CAUSETTE_PORT", env.get("PORT", "8080"))),
            data_dir=env.get("CAUSETTE_DATA", "var"),
            redis_url=env.get("REDIS_URL", ""),
            database=env.get("CAUSETTE_DATABASE", ""),
            secret=env.get("CAUSETTE_SECRET", ""),
            public_url=env.get("CAUSETTE_PUBLIC_URL", "").rstrip("/"),
            events_nice=int(env.get("CAUSETTE_EVENTS_NICE", "19")),
            hugepages=env.get("CAUSETTE_HUGEPAGES", "1").lower() not in ("0", "false", "no", "off"),
        )
        for k, v in overrides.items():
            setattr(s, k, v)
        return s

    @property
    def db_path(self) -> str:
        return self.database or str(Path(self.data_dir) / "causette.db")

    def secret_bytes(self) -> bytes:
        """The gateway secret; generated once and kept in data_dir when not configured."""
        if self.secret:
            return self.secret.encode()
        path = Path(self.data_dir) / "secret"
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            path.write_text(secrets.token_urlsafe(32))
            path.chmod(0o600)
        self.secret = path.read_text().strip()
        return self.secret.encode()
