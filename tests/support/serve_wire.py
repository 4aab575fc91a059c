"""A gateway process with the provider stand-in installed, for multi-process tests.
Usage: python -m tests.support.serve_wire PORT  (settings from the environment);
PORT 0 runs a worker: the background loops only, no HTTP (like `causette worker`)."""
import asyncio
import os
import sys

from aiohttp import web

from gateway.app import create_app
from gateway.plugins import PluginHost
from gateway.settings import Settings
from tests.support.wire import WirePlugin


async def main(port: int) -> None:
    settings = Settings.from_env(port=port, background=(port == 0 or
                                                         os.environ.get("BACKGROUND", "1") == "1"))
    app = create_app(settings, PluginHost(extra=[("wire", WirePlugin())]))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    if port:
        await web.TCPSite(runner, "127.0.0.1", port).start()
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
