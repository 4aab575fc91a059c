"""`causette`: serve, tenants apply, plugins, chat, keys, flows."""
from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import sys
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:
    from .problems import ProblemError


def _settings(args: argparse.Namespace):
    from .settings import Settings
    s = Settings.from_env()
    if getattr(args, "host", None):
        s.host = args.host
    if getattr(args, "port", None):
        s.port = args.port
    return s


def _running_redis(s) -> str:
    """REDIS_URL, else the embedded Redis of a gateway running on this data dir, else ''."""
    if s.redis_url:
        return s.redis_url
    f = Path(s.data_dir) / "redis" / "url"
    if f.exists():
        url = f.read_text().strip()
        import socket
        host, port = url.rsplit("/", 1)[0].rsplit(":", 2)[1:]
        try:
            socket.create_connection((host.strip("/"), int(port)), 0.3).close()
            return url
        except OSError:
            pass
    return ""


# --- serve ---------------------------------------------------------------------------------
async def _serve(args: argparse.Namespace) -> None:
    from aiohttp import web
    from .app import create_app
    from .appkeys import STORE
    s = _settings(args)
    s.background = not args.no_background
    app = create_app(s)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, s.host, s.port, reuse_port=args.reuse_port)
    await site.start()
    base = f"http://{s.host}:{s.port}"
    print(f"Causette {base}  (admin API: {base}/admin/v1/openapi.json)", flush=True)
    if args.announce:
        for slug in await app[STORE].list_tenant_slugs():
            snap = await app[STORE].tenant_snapshot(slug)
            # The webchat plugin serves a demo page only for an instance that turns it on.
            if snap and "webchat" in snap.plugins and any(
                    c.type == "webchat" and c.enabled and c.settings.get("demo_page") for c in snap.channels):
                print(f"Demo chat page for {slug}: {base}/t/{slug}/demo", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    import signal
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


async def _worker(args: argparse.Namespace) -> None:
    """The background loops alone (events to the store, due timers), no HTTP: run one or
    more next to `serve --no-background` processes so the store's writes never share the
    serving processes' event loop."""
    import signal
    from aiohttp import web
    from .app import create_app
    s = _settings(args)
    s.redis_url = _running_redis(s)
    s.background = True
    if not os.environ.get("CAUSETTE_EVENTS_NICE", "").strip():     # unset, as Settings reads it
        s.events_nice = 0      # writing events is this process's job: no reason to yield it
    runner = web.AppRunner(create_app(s))
    await runner.setup()
    print("Causette worker: flushing events and firing timers", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


# --- store-only commands -------------------------------------------------------------------
def _unknown(tenant: str | None, s: Any) -> str:
    # The data directory is relative to where the command runs: say which store was read.
    return (f"unknown tenant {tenant!r} in {os.path.abspath(s.db_path)} "
            "(CAUSETTE_DATA or CAUSETTE_DATABASE choose the store)")


async def _with_store(fn, args: argparse.Namespace) -> int:
    from .plugins import PluginHost
    from .store import Store
    s = _settings(args)
    store = await Store.open(s.db_path, s.secret_bytes())
    try:
        return await fn(store, PluginHost(), s, args)
    finally:
        await store.close()


async def _publish_invalidation(s, slugs: list[str]) -> None:
    url = _running_redis(s)
    if not url or not slugs:
        return
    import redis.asyncio as aioredis
    from .registry import INVALIDATE
    client = aioredis.from_url(url)
    try:
        # One round trip per thousand tenants, not one each: an agency applies thousands.
        for i in range(0, len(slugs), 1000):
            async with client.pipeline(transaction=False) as p:
                for slug in slugs[i:i + 1000]:
                    p.publish(INVALIDATE, slug)
                await p.execute()
    except Exception:
        pass
    finally:
        await client.aclose()


async def _apply(store, host, s, args) -> int:
    from .apply import apply_path
    from .problems import ProblemError
    from .progress import ProgressBar
    bar = ProgressBar()
    try:
        try:
            report = await apply_path(store, host, args.path, progress=bar)
        finally:
            bar.close()
    except ProblemError as exc:
        print(exc.render(), file=sys.stderr)
        return 2
    for line in report.lines():
        print(line)
    await _publish_invalidation(s, report.slugs())
    return 0


async def _keys(store, host, s, args) -> int:
    if args.agency and args.role:
        # A stray --agency must not turn the tenant key asked for into one for every tenant.
        print("--role is a tenant key's: an --agency key reaches every tenant", file=sys.stderr)
        return 2
    tenant = None if args.agency else args.tenant
    from .store import NotFound
    try:
        key = await store.create_key(tenant, "agency" if args.agency else (args.role or "viewer"), args.name)
    except NotFound:
        print(_unknown(tenant, s), file=sys.stderr)
        return 2
    print(key)
    return 0


def _plugins(args: argparse.Namespace) -> int:
    from .plugins import PluginHost
    host = PluginHost()
    infos = sorted(host.plugins + host.broken, key=lambda p: p.name)
    if args.json:
        print(msgspec.json.encode(infos).decode())
        return 0
    if not infos:
        print("no plugins installed")
    for p in infos:
        print(f"{p.name}  ({p.dist} {p.version})")
        if p.error:
            print(f"    FAILED TO LOAD: {p.error}")
            continue
        print(f"    hooks: {', '.join(p.hooks) or '-'}")
        for kind, names in sorted(p.registers.items()):
            print(f"    {kind}: {', '.join(names)}")
    return 0


def _one_line(exc: ProblemError) -> str:
    """A ProblemError as one line for stderr: its first problem, with the path, if it lists any."""
    if exc.errors:
        return f"{exc.title}: {exc.errors[0].path}: {exc.errors[0].message}"
    return exc.render()


def _flows_validate(args: argparse.Namespace) -> int:
    from .plugins import PluginHost
    from .validation import validate_flow_file
    problems = validate_flow_file(PluginHost(), args.file, args.channel)
    if args.json:
        # A message may quote a file name that is not UTF-8 (surrogate escapes): JSON can't hold it.
        print(msgspec.json.encode([msgspec.structs.replace(p, message=_text(p.message))
                                   for p in problems]).decode())
    else:
        for p in problems:
            print(f"{p.severity:7} {p.path}  [{p.code}] {p.message}")
        errors = sum(p.severity == "error" for p in problems)
        print(f"{errors} error(s), {len(problems) - errors} warning(s)")
    return 1 if any(p.severity == "error" for p in problems) else 0


def _flows_graph(args: argparse.Namespace) -> int:
    from .plugins import PluginHost
    from .problems import ProblemError, decode_json
    try:
        try:
            raw = Path(args.file).read_bytes()
        except OSError as exc:
            raise ProblemError(400, "Cannot read", f"{args.file}: {exc.strerror}") from None
        flow = decode_json(raw, dict, where=args.file, title="Invalid flow")
    except ProblemError as exc:
        print(_one_line(exc), file=sys.stderr)
        return 2
    name = flow.get("engine", "tree")
    engine = PluginHost().engines.get(name) if isinstance(name, str) else None
    if engine is None:
        print(f"no flow engine {flow.get('engine')!r} installed", file=sys.stderr)
        return 2
    pictures = engine.graph(flow)
    stem = Path(args.out or Path(args.file).with_suffix(""))
    written = []
    for kind, ext in (("mermaid", ".mmd"), ("svg", ".svg")):
        if pictures.get(kind):
            target = stem.with_suffix(ext)
            target.write_text(pictures[kind], encoding="utf-8")
            written.append(str(target))
    print("\n".join(written))
    return 0 if written else 1


# --- chat ------------------------------------------------------------------------------------
async def _chat(args: argparse.Namespace) -> int:
    from .apply import LOCALE
    if args.locale and not LOCALE.fullmatch(args.locale):
        print(f"--locale {args.locale!r}: a language tag, as flows write them (fr, en, pt-BR)", file=sys.stderr)
        return 2
    from aiohttp import web
    from .app import create_app
    from .appkeys import PIPELINE, REGISTRY
    from .console import ConsoleChannel
    from .types import InboundMessage
    s = _settings(args)
    s.redis_url = _running_redis(s)
    s.background = True
    app = create_app(s)
    runner = web.AppRunner(app)
    await runner.setup()   # opens Redis, store, registry: the same services as `serve`
    try:
        rt = await app[REGISTRY].get(args.tenant)
        if rt is None:
            print(_unknown(args.tenant, s), file=sys.stderr)
            return 2
        ch = ConsoleChannel(rt.slug, "console", ConsoleChannel.Settings())
        ch.prefix = "bot> " if sys.stdin.isatty() else ""
        contact = args.contact or f"cli-{uuid.uuid4().hex[:8]}"
        pipeline = app[PIPELINE]
        tty = sys.stdin.isatty()
        if tty:
            print(f"Chatting with {rt.snapshot.name} as {contact}. Ctrl-D to quit.")

        async def say(text: str, kind: str = "text") -> None:
            msg = InboundMessage(tenant=rt.slug, channel="console", native_id=uuid.uuid4().hex,
                                 contact=contact, kind=kind, ts=time.time(), text=text,  # type: ignore[arg-type]
                                 locale=args.locale)
            for out in await pipeline.handle(rt, ch, [msg]):
                print(("bot> " if tty else "") + out.replace("\n", "\n" + ("     " if tty else "")), flush=True)

        if args.draft and not args.flow:
            print("--draft needs --flow FLOW_ID", file=sys.stderr)
            return 2
        if args.flow:
            from .registry import DRAFT
            version = DRAFT if args.draft else 0
            # The pipeline only records a missing flow as an event: the user would see nothing.
            if await app[REGISTRY].flow(rt, args.flow, version) is None:
                what = "draft of flow" if args.draft else "published flow"
                print(f"tenant {rt.slug!r} has no {what} {args.flow!r} to run", file=sys.stderr)
                return 2
            await pipeline.start_flow(rt, ch, contact, args.flow, source="cli", version=version,
                                      locale=args.locale)

        # Python decodes stdin strictly, or with surrogate escapes (C.UTF-8 locale, UTF-8
        # mode): a line that is not UTF-8 would end the chat, or reach the pipeline with lone
        # surrogates that fail the turn when its session is saved. U+FFFD is text like any.
        sys.stdin.reconfigure(errors="replace")  # type: ignore[union-attr]

        loop = asyncio.get_running_loop()
        while True:
            if tty:
                print("you> ", end="", flush=True)
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                break
            line = line.rstrip("\n")
            if line.strip():
                await say(line)
        return 0
    finally:
        await runner.cleanup()


def _text(s: str) -> str:
    """`s` with the surrogate escapes of bytes that are not UTF-8 turned into U+FFFD."""
    return s.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def main(argv: list[str] | None = None) -> int:
    from .plugins import PluginError
    try:
        return _main(argv)
    except PluginError as exc:
        # Installed plugins that cannot work together (two register one step or channel
        # type): one line that names them, not a traceback; `causette plugins` says the same.
        print(f"causette: {exc}", file=sys.stderr)
        return 2


def _main(argv: list[str] | None) -> int:
    level = os.environ.get("CAUSETTE_LOG", "").strip().upper() or "WARNING"
    if not isinstance(logging.getLevelName(level), int):
        print(f"causette: CAUSETTE_LOG={level!r}: expected one of DEBUG, INFO, WARNING, ERROR, "
              "CRITICAL", file=sys.stderr)
        return 2
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    ap = argparse.ArgumentParser(prog="causette", description="Causette conversational gateway")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sp = sub.add_parser("serve", help="run the gateway")
    sp.add_argument("--host")
    sp.add_argument("--port", type=int)
    sp.add_argument("--announce", action="store_true", help="print the demo chat page URLs")
    sp.add_argument("--reuse-port", action="store_true", help="let several processes share the port")
    sp.add_argument("--no-background", action="store_true",
                    help="leave event flushing and timers to `causette worker` processes")
    wp = sub.add_parser("worker", help="run the background loops only (events to the store, timers)")
    wp.add_argument("--host", help=argparse.SUPPRESS)
    wp.add_argument("--port", type=int, help=argparse.SUPPRESS)
    tp = sub.add_parser("tenants", help="tenant definitions").add_subparsers(dest="tcmd", required=True)
    ap_ = tp.add_parser("apply", help="validate and apply tenants/*.json (a file or a folder)")
    ap_.add_argument("path")
    pp = sub.add_parser("plugins", help="list installed plugins and what they register")
    pp.add_argument("--json", action="store_true")
    cp = sub.add_parser("chat", help="talk to a tenant's bot through the real pipeline")
    cp.add_argument("tenant")
    cp.add_argument("--contact", help="contact address to use (default: a new one)")
    cp.add_argument("--flow", help="start this flow right away")
    cp.add_argument("--draft", action="store_true", help="run the flow's draft, not its published version")
    cp.add_argument("--locale", default="", help="the contact's language (fr, en...; default: the tenant's)")
    kp = sub.add_parser("keys", help="admin API keys").add_subparsers(dest="kcmd", required=True)
    kp = kp.add_parser("create", help="create an admin API key (shown once, stored hashed)")
    who = kp.add_mutually_exclusive_group(required=True)
    who.add_argument("--agency", action="store_true", help="a key for every tenant (agency role)")
    who.add_argument("--tenant", help="a key for this tenant only")
    # The least a key can do, as POST /admin/v1/tenants/{t}/keys does when no role is given.
    kp.add_argument("--role", choices=["owner", "editor", "agent", "viewer"],
                    help="a tenant key's role (default: viewer)")
    kp.add_argument("--name", default="", help="what the key is for, shown in key listings")
    fp = sub.add_parser("flows", help="flow tools").add_subparsers(dest="fcmd", required=True)
    vp = fp.add_parser("validate", help="validate a flow JSON file")
    vp.add_argument("file")
    vp.add_argument("--json", action="store_true")
    vp.add_argument("--channel", action="append", metavar="TYPE",
                    help="also lint against this channel type's limits (repeatable: whatsapp, twilio...)")
    gp = fp.add_parser("graph", help="write the flow as Mermaid (.mmd) and SVG (.svg)")
    gp.add_argument("file")
    gp.add_argument("--out", help="path without extension (default: next to the file)")
    args = ap.parse_args(argv)
    # Arguments arrive with surrogate escapes for bytes that are not UTF-8: names and addresses
    # would then fail deep down, where Redis or SQLite encodes them. File paths may be any bytes.
    for name in ("tenant", "contact", "flow", "name"):
        value = getattr(args, name, None)
        if isinstance(value, str) and _text(value) != value:
            print(f"causette: {name} {value!r} is not UTF-8", file=sys.stderr)
            return 2
    if len(getattr(args, "name", "") or "") > 100:     # as the admin API's KeyCreate
        print("causette: name is longer than 100 characters", file=sys.stderr)
        return 2
    if args.cmd in ("serve", "worker", "tenants", "keys", "chat"):
        from .settings import Settings, SettingsError
        try:
            Settings.from_env()
        except SettingsError as exc:
            print(f"causette: {exc}", file=sys.stderr)
            return 2
    if args.cmd == "serve":
        try:
            import uvloop  # type: ignore
            uvloop.install()
        except ImportError:
            pass
        # A turn leaves almost no cyclic garbage, yet the default threshold (700 container
        # allocations) runs a young collection every ~20 turns: ~5% of a turn's CPU, measured.
        gc.set_threshold(20_000, 10, 10)
        asyncio.run(_serve(args))
        return 0
    if args.cmd == "worker":
        asyncio.run(_worker(args))
        return 0
    if args.cmd == "tenants":
        return asyncio.run(_with_store(_apply, args))
    if args.cmd == "keys":
        return asyncio.run(_with_store(_keys, args))
    if args.cmd == "plugins":
        return _plugins(args)
    if args.cmd == "chat":
        return asyncio.run(_chat(args))
    if args.cmd == "flows":
        return _flows_graph(args) if args.fcmd == "graph" else _flows_validate(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
