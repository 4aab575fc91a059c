"""Two gateway processes given interleaved messages of one conversation answer in order."""
import asyncio
import os
import socket
import sys
from pathlib import Path

from gateway.state import dedup_key
from tests.support.wire import sign, wire_body
from tests.test_pipeline_e2e import ECHO, SECRET, tenant

ROOT = Path(__file__).resolve().parents[1]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def spawn(port, env):
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.support.serve_wire", str(port), cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE)
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    assert line.strip() == b"ready"
    return proc


async def test_two_processes_answer_one_conversation_in_order(gateway, provider, redis_url, tmp_path):
    from tests.support.wire import WirePlugin
    gw = await gateway(tenants=[tenant("acme", provider, flows=(ECHO,))], plugins=[("wire", WirePlugin())])
    env = dict(os.environ, REDIS_URL=redis_url, CAUSETTE_DATABASE=gw.settings.db_path,
               CAUSETTE_DATA=str(tmp_path / "procs"), CAUSETTE_SECRET="test-secret",
               PYTHONPATH=str(ROOT))
    ports = [free_port(), free_port()]
    procs = [await spawn(p, env) for p in ports]
    try:
        provider.delay = 0.03     # turns overlap: later messages must wait their turn
        async def send(i):
            body = wire_body({"id": f"m{i}", "sender": "c1", "text": str(i)})
            url = f"http://127.0.0.1:{ports[i % 2]}/t/acme/channels/wire"
            async with gw.http.post(url, data=body, headers=sign(SECRET, body)) as r:
                return r.status
        assert await send(0) == 200         # starts the flow; it now waits for input
        tasks = []
        for i in range(1, 9):
            tasks.append(asyncio.create_task(send(i)))
            # Arrival order is the order the messages reach Redis; wait for that before the
            # next one, so a loaded machine can't reorder the sends themselves.
            while not await gw.redis.exists(dedup_key("acme", "wire", f"m{i}")):
                await asyncio.sleep(0.002)
        assert await asyncio.gather(*tasks) == [200] * 8
        echoes = [t for t in provider.texts("c1") if t.startswith("echo")]
        assert echoes == [f"echo {i}" for i in range(1, 9)]
    finally:
        for p in procs:
            p.terminate()
            await p.wait()


async def test_a_worker_process_flushes_events_and_fires_timers_for_a_quiet_server(
        gateway, provider, redis_url, tmp_path):
    """`serve --no-background` + `worker`: the serving process never writes the store."""
    from tests.test_flow_runtime import WAITER, wait_until
    from tests.support.wire import WirePlugin
    gw = await gateway(tenants=[tenant("acme", provider, flows=(WAITER,))],
                       plugins=[("wire", WirePlugin())], background=False)
    body = wire_body({"id": "m1", "sender": "c1", "text": "salut"})
    async with gw.http.post(f"{gw.url}/t/acme/channels/wire", data=body, headers=sign(SECRET, body)) as r:
        assert r.status == 200
    await asyncio.sleep(0.5)
    assert provider.texts() == ["Je reviens vers vous."]      # nobody fires the 0.3 s timer
    assert await gw.store.count_events("acme") == 0             # nobody flushes
    env = dict(os.environ, REDIS_URL=redis_url, CAUSETTE_DATABASE=gw.settings.db_path,
               CAUSETTE_DATA=str(tmp_path / "worker"), CAUSETTE_SECRET="test-secret",
               PYTHONPATH=str(ROOT))
    worker = await spawn(0, env)
    try:
        await wait_until(lambda: "Alors, intéressé ?" in provider.texts())
        for _ in range(100):
            if await gw.store.count_events("acme", "flow.started"):
                break
            await asyncio.sleep(0.05)
        assert await gw.store.count_events("acme", "flow.started") == 1
    finally:
        worker.terminate()
        await worker.wait()
