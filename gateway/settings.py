"""Process settings, from the environment (12-factor); every one has a working default."""
from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

import msgspec


class SettingsError(ValueError):
    """An environment variable that doesn't read as its setting (the message names it)."""


_TRUE, _FALSE = ("1", "true", "yes", "y", "on"), ("0", "false", "no", "n", "off")
_DAY = 86400
# What each number may be: Redis takes lifetimes in whole ms below 2**63, a port is 16 bits.
_RANGES: dict[str, tuple[float, float]] = {
    "port": (1, 65535), "max_body": (1, 2**31), "plugin_timeout": (0.001, _DAY),
    "lock_ttl": (0.01, _DAY), "lock_wait": (0.001, _DAY), "dedup_ttl": (1, 10 * 366 * _DAY),
    "events_maxlen": (1, 2**31), "flush_interval": (0.001, 3600), "timer_interval": (0.001, 3600),
    "events_nice": (-20, 19),
}


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
        """Settings from the environment (`ENV` names the variables); a value that doesn't
        read as its setting raises SettingsError naming the variable. Texts are taken as set,
        empty included (a secret keeps its exact bytes: it derives the key of stored
        secrets); a number or switch set to blanks counts as unset."""
        env = os.environ
        types = {f.name: f.type for f in msgspec.structs.fields(cls)}
        fields: dict[str, Any] = {}
        for name, variables in ENV.items():
            want = types[name]
            if want is str:
                var = next((v for v in variables if v in env), None)
                if var is not None:
                    fields[name] = env[var]
                continue
            var = next((v for v in variables if env.get(v, "").strip()), None)
            if var is None:
                continue
            raw = env[var].strip()
            if want is bool:
                if raw.lower() not in _TRUE + _FALSE:
                    raise SettingsError(f"{var}={raw!r}: expected one of {', '.join(_TRUE + _FALSE)}")
                fields[name] = raw.lower() in _TRUE
                continue
            try:
                value = want(raw)
            except ValueError:
                raise SettingsError(f"{var}={raw!r}: expected {'an integer' if want is int else 'a number'}") from None
            lo, hi = _RANGES[name]
            if not lo <= value <= hi:         # nan, inf too
                what = f"an integer from {lo:,} to {hi:,}" if want is int else f"a number from {lo:g} to {hi:g}"
                raise SettingsError(f"{var}={raw!r}: expected {what}")
            fields[name] = value
        if "public_url" in fields:
            fields["public_url"] = fields["public_url"].rstrip("/")
        s = cls(**fields)
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


# setting -> the environment variables that set it, the first one set wins (README.md lists them)
ENV: dict[str, tuple[str, ...]] = {
    "host": ("CAUSETTE_HOST",),
    "port": ("CAUSETTE_PORT", "PORT"),
    "data_dir": ("CAUSETTE_DATA",),
    "redis_url": ("REDIS_URL",),
    "database": ("CAUSETTE_DATABASE",),
    "secret": ("CAUSETTE_SECRET",),
    "public_url": ("CAUSETTE_PUBLIC_URL",),
    "max_body": ("CAUSETTE_MAX_BODY",),
    "plugin_timeout": ("CAUSETTE_PLUGIN_TIMEOUT",),
    "lock_ttl": ("CAUSETTE_LOCK_TTL",),
    "lock_wait": ("CAUSETTE_LOCK_WAIT",),
    "dedup_ttl": ("CAUSETTE_DEDUP_TTL",),
    "events_maxlen": ("CAUSETTE_EVENTS_MAXLEN",),
    "flush_interval": ("CAUSETTE_FLUSH_INTERVAL",),
    "timer_interval": ("CAUSETTE_TIMER_INTERVAL",),
    "events_nice": ("CAUSETTE_EVENTS_NICE",),
    "hugepages": ("CAUSETTE_HUGEPAGES",),
}
