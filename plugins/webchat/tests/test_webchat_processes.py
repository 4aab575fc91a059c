"""Two `causette serve` processes behind one site: a visitor's two tabs land on different
processes, and each tab sees the whole conversation, whichever process ran each turn."""
from __future__ import annotations

import asyncio
import copy
import os
import socket
import sys
import types
from pathlib import Path

from wc_support import SHOP, Widget, bot, choices_of

ROOT = Path(__file__).resolve().parents[3]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def serve(port: int, env: dict[str, str]) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", "serve", "--port", str(port), cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE)
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    assert line.startswith(b"Causette http://"), line
    return proc


async def test_two_tabs_on_two_processes_see_one_conversation(gateway, redis_url, tmp_path):
    gw = await gateway(tenants=[copy.deepcopy(SHOP)])    # creates the store, applies the tenant
    env = dict(os.environ, REDIS_URL=redis_url, CAUSETTE_DATABASE=gw.settings.db_path,
               CAUSETTE_DATA=str(tmp_path / "procs"), CAUSETTE_SECRET="test-secret",
               CAUSETTE_HOST="127.0.0.1")
    ports = [free_port(), free_port()]
    procs = [await serve(p, env) for p in ports]
    try:
        a, b = (types.SimpleNamespace(url=f"http://127.0.0.1:{p}", http=gw.http) for p in ports)
        tab1 = await Widget.connect(a)
        tab2 = await Widget.connect(b, visitor=tab1.visitor, token=tab1.token)
        assert tab2.ready["visitor"] == tab1.visitor      # the secret is shared: the token holds

        _, frames = await tab2.open()                     # this turn runs on process B
        async with asyncio.timeout(15):
            while len(tab1.frames) < len(frames):
                await tab1.next()
        assert tab1.frames == tab2.frames

        _, frames = await tab1.click(choices_of(frames)[0])   # this one on process A
        assert bot(frames)[-1]["text"] == "Merci, voici nos offres women !"
        async with asyncio.timeout(15):
            while len(tab2.frames) < len(tab1.frames):
                await tab2.next()
        assert tab2.frames == tab1.frames
        assert [f["seq"] for f in tab1.frames] == list(range(1, len(tab1.frames) + 1))
        await tab1.close()
        await tab2.close()
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            await p.wait()
