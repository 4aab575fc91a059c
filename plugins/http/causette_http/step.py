"""The `http.request` step."""
from __future__ import annotations

import asyncio
import math
import re
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

import aiohttp
import msgspec
from yarl import URL

from gateway.flows import Step, StepResult

if TYPE_CHECKING:
    from gateway.flows import Context


class Settings(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """A tenant's settings of the `http` plugin."""
    # Hosts flows may call: "api.shop.example", "*.shop.example" (subdomains only),
    # "127.0.0.1:8080" (that port only). Empty: every call is refused.
    allowed_hosts: list[str] = []
    # The gateway bounds a whole turn too (plugin_timeout, 5 s by default): keep this below it.
    timeout: Annotated[float, msgspec.Meta(gt=0, le=30)] = 4.0
    max_bytes: Annotated[int, msgspec.Meta(gt=0, le=10_000_000)] = 1_000_000
    headers: dict[str, str] = {}          # sent with every call (an API key, a User-Agent)
    # Write-only: the admin API shows "***set***" for the headers (they carry API keys), and
    # they must be given again when `allowed_hosts` changes (else a new host would get them).
    secrets: ClassVar[tuple[str, ...]] = ("headers",)
    endpoints: ClassVar[tuple[str, ...]] = ("allowed_hosts",)


class Args(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """The `with` of an http.request step (strings may be templates)."""
    url: Annotated[str, msgspec.Meta(min_length=1)]
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "GET"
    headers: dict[str, str] = {}
    query: dict[str, Any] = {}            # encoded properly: prefer it to templates in the URL
    json: Any = None                      # request body, sent as JSON
    timeout: Annotated[float, msgspec.Meta(gt=0, le=30)] | None = None
    # Variables to set from the JSON answer: {"products": "$.items", "first": "$.items[0].name",
    # "names": "$.items[*].name"}
    save: dict[str, str] = {}
    save_status: str = ""                 # a variable that gets the HTTP status

    def __post_init__(self) -> None:
        # A path that can't be read would fail every call: refused when the flow is published.
        for path in self.save.values():
            extract(None, path)


_TOKEN = re.compile(r"""\.([A-Za-z0-9_-]+)|\[(\d+|\*|'[^']*'|"[^"]*")\]""")


def extract(data: Any, path: str) -> Any:
    """A value from JSON by a small JSONPath subset: $, .key, [0], ['key'], [*]."""
    if not path.startswith("$"):
        raise ValueError(f"{path!r}: a path starts with $")
    rest, pos, tokens = path[1:], 0, []
    while pos < len(rest):
        m = _TOKEN.match(rest, pos)
        if m is None:
            raise ValueError(f"{path!r}: cannot read {rest[pos:]!r}")
        tokens.append(m.group(1) if m.group(1) is not None else m.group(2))
        pos = m.end()
    return _walk(data, tokens)


def _walk(cur: Any, tokens: list[str]) -> Any:
    for i, t in enumerate(tokens):
        if cur is None:
            return None
        if t == "*":
            if not isinstance(cur, list):
                return None
            return [_walk(x, tokens[i + 1:]) for x in cur]
        if t[:1] in "'\"":
            t = t[1:-1]
        elif t.isdigit() and isinstance(cur, list):
            cur = cur[int(t)] if int(t) < len(cur) else None
            continue
        cur = cur.get(t) if isinstance(cur, dict) else None
    return cur


MAX_DEPTH = 32      # levels of lists and objects a saved value may have


def storable(v: Any, depth: int = MAX_DEPTH) -> Any:
    """`v` as a session can keep it: integers beyond 64 bits (JSON allows any) become floats,
    as msgpack can't hold them; ValueError when it nests deeper than `depth` levels (a JSON
    answer may nest a thousand, past what rendering a template can recurse)."""
    if isinstance(v, int) and not isinstance(v, bool) and not -2**63 <= v <= 2**64 - 1:
        try:
            return float(v)
        except OverflowError:
            return math.inf if v > 0 else -math.inf
    if isinstance(v, (list, dict)):
        if not depth:
            raise ValueError(f"the answer nests deeper than {MAX_DEPTH} levels")
        if isinstance(v, list):
            return [storable(x, depth - 1) for x in v]
        return {k: storable(x, depth - 1) for k, x in v.items()}
    return v


def host_allowed(url: URL, allowed: list[str]) -> bool:
    host = (url.host or "").lower().rstrip(".")
    port = url.port
    for entry in allowed:
        e = entry.strip().lower()
        want_port = None
        if e.count(":") == 1:            # host:port (IPv6 literals are written [::1]:port)
            e, p = e.split(":")
            want_port = int(p) if p.isdigit() else -1
        elif e.startswith("[") and "]:" in e:
            e, p = e.rsplit(":", 1)
            want_port = int(p) if p.isdigit() else -1
        e = e.strip("[]")
        if want_port is not None and want_port != port:
            continue
        if e.startswith("*."):
            if host.endswith(e[1:]) and host != e[2:]:
                return True
        elif host == e.rstrip("."):
            return True
    return False


def check_url(raw: str, settings: Settings) -> URL | str:
    """The URL to call, or the reason it is refused."""
    try:
        url = URL(raw)
    except (ValueError, TypeError):
        return f"not a URL: {raw[:100]!r}"
    if url.scheme not in ("http", "https") or not url.host:
        return f"only absolute http(s) URLs can be called, not {raw[:100]!r}"
    if url.user or url.password:
        return "credentials in the URL are refused; put them in headers"
    if not host_allowed(url, settings.allowed_hosts):
        return (f"host {url.host!r} is not in this tenant's http allowed_hosts"
                if settings.allowed_hosts else
                "this tenant's http settings allow no host yet (allowed_hosts is empty)")
    return url


def _settings(ctx: "Context") -> Settings:
    s = ctx.settings("http")
    if isinstance(s, Settings):
        return s
    return msgspec.convert(s or {}, Settings)


def _query(q: dict[str, Any]) -> dict[str, str]:
    out = {}
    for k, v in q.items():
        if v is None:
            continue
        out[k] = ("true" if v else "false") if isinstance(v, bool) else str(v)
    return out


class HttpRequest(Step):
    name = "http.request"
    Args = Args
    description = "Call an HTTP API of the tenant's (allowed hosts only) and save JSON fields"

    async def run(self, ctx: "Context", args: Args) -> StepResult:
        settings = _settings(ctx)
        url = check_url(args.url, settings)
        if isinstance(url, str):
            return StepResult(ok=False, error=url, branch="refused")
        headers = {**settings.headers, **args.headers}
        timeout = aiohttp.ClientTimeout(total=min(args.timeout or settings.timeout, settings.timeout))
        own = ctx.http is None or ctx.http.closed
        http = aiohttp.ClientSession() if own else ctx.http
        kwargs: dict[str, Any] = {"headers": headers, "timeout": timeout, "allow_redirects": False}
        if args.query:
            kwargs["params"] = _query(args.query)
        if args.json is not None:
            kwargs["data"] = msgspec.json.encode(args.json)
            headers.setdefault("Content-Type", "application/json")
        try:
            async with http.request(args.method, url, **kwargs) as resp:
                body = await resp.content.read(settings.max_bytes + 1)
                status = resp.status
        except asyncio.TimeoutError:
            return StepResult(ok=False, error=f"{url.host}: no answer within {timeout.total:g}s",
                              branch="timeout")
        except aiohttp.ClientError as exc:
            return StepResult(ok=False, error=f"{url.host}: {type(exc).__name__}", branch="unreachable")
        except ValueError as exc:       # a header with a line break (from a template): never sent
            return StepResult(ok=False, error=f"request not sent: {exc}"[:300], branch="refused")
        finally:
            if own:
                await http.close()
        if len(body) > settings.max_bytes:
            return StepResult(ok=False, error=f"answer larger than {settings.max_bytes} bytes",
                              branch=str(status))
        data: Any = None
        if body:
            try:
                data = msgspec.json.decode(body)
            except msgspec.DecodeError:
                data = None
        vars: dict[str, Any] = {}
        for var, path in args.save.items():
            try:
                vars[var] = storable(extract(data, path))
            except ValueError as exc:
                return StepResult(ok=False, error=str(exc), branch=str(status))
        if args.save_status:
            vars[args.save_status] = status
        ok = 200 <= status < 300
        if ok and args.save and data is None:
            return StepResult(ok=False, vars=vars, error="the answer is not JSON", branch=str(status))
        return StepResult(ok=ok, vars=vars, branch=str(status), error="" if ok else f"HTTP {status}")

    async def dry_run(self, ctx: "Context", args: Args) -> StepResult:
        """Simulations call nothing: the URL is still checked, so a refused host shows up."""
        url = check_url(args.url, _settings(ctx))
        if isinstance(url, str):
            return StepResult(ok=False, error=url, branch="refused")
        return StepResult(ok=True)
