"""The bench's premise: every configuration holds the same conversation. No timings here."""
from __future__ import annotations

import json

from aiohttp.test_utils import TestServer

from bench.common import ASK1, ASK2, DONE, HEADER, USERS, body, sign, tenant
from bench.floors import make_app
from causette_webhook import WebhookChannel


def test_bodies_are_signed_webhook_messages_of_about_300_bytes():
    from gateway.conformance import make_webhook
    ch = WebhookChannel("bench", "hook", WebhookChannel.Settings(secret="bench-webhook-secret"))
    for n in (0, USERS + 7, 2 * USERS + 9999):
        path, raw = body("pfx", n)
        assert path == "/t/bench/channels/hook"
        assert 250 <= len(raw) <= 350
        hook = make_webhook(headers={HEADER: sign(raw)}, body=raw)
        assert ch.verify(hook)
        (m,) = ch.parse(hook)
        assert m.native_id == f"pfx-{n}" and m.contact == f"u{n % USERS:05d}"
    assert body("pfx", 3, tenants=10_000)[0] == "/t/bench-00003/channels/hook"


async def _walk(http, url: str, tenants: int = 1) -> list[list[str]]:
    texts = []
    for step in range(3):
        path, raw = body("walk", step * USERS + 17, tenants)
        async with http.post(url + path, data=raw, headers={HEADER: sign(raw)}) as r:
            assert r.status == 200
            texts.append([m["text"] for m in json.loads(await r.read())])
    return texts


async def test_floors_hold_the_dialog(redis_url, aiohttp_client):
    for kind in ("redispy", "lean"):
        server = TestServer(make_app(kind, redis_url), host="127.0.0.1")
        client = await aiohttp_client(server)
        got = await _walk(client.session, str(server.make_url("")).rstrip("/"))
        assert got == [[ASK1["text"]], [ASK2["text"]], [DONE["text"]]]


async def test_causette_holds_the_same_dialog(gateway):
    gw = await gateway(tenants=[tenant()])
    got = await _walk(gw.http, gw.url)
    assert got == [[ASK1["text"]], [ASK2["text"]], [DONE["text"]]]


def test_instruction_counts_add_up_over_threads_and_reach_the_report(tmp_path):
    """callgrind writes one file per thread and dump; a dump holds `summary:` and `totals:`
    (one of them 0 when counting was off); the report divides lean's count by Causette's."""
    from types import SimpleNamespace

    from bench import report
    from bench.instructions import _total
    (tmp_path / "callgrind.out.42.1").write_text("events: Ir\nsummary: 0\nfn=x\n1 5\ntotals: 600000\n")
    (tmp_path / "callgrind.out.42.1-02").write_text("events: Ir\nsummary: 14000\ntotals: 0\n")
    (tmp_path / "callgrind.out.43.1").write_text("summary: 999999\n")   # another process
    assert _total(tmp_path, 42) == 614_000
    results = {"lean": {"instructions": {"per_request": 320_000.0}},
               "causette": {"instructions": {"per_request": 614_000.0}}}
    a = SimpleNamespace(runs=1, warmup=1.0, duration=1.0, connections=64, tenants=1, quick=False)
    out = report.assemble(results, {}, "wrk", [], a)
    assert out["instr_ratio_lean"] == round(320_000 / 614_000, 3)
    assert "lean floor / Causette 0.52" in report.table(out)


def test_cache_simulation_counts_are_read_by_event_name(tmp_path):
    """With --cache-sim, callgrind's dumps carry nine events; each is summed by its name."""
    from bench.instructions import _total, _totals
    head = "events: Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw\n"
    (tmp_path / "callgrind.out.7.1").write_text(head + "summary: 0 0 0 0 0 0 0 0 0\n"
                                                "totals: 1000 300 200 5 40 20 1 7 3\n")
    (tmp_path / "callgrind.out.7.2").write_text(head + "totals: 500 100 100 2 10 10 0 2 1\n")
    got = _totals(tmp_path, 7)
    assert got["Ir"] == _total(tmp_path, 7) == 1500
    assert (got["D1mr"], got["D1mw"], got["ILmr"], got["DLmr"], got["DLmw"]) == (50, 30, 1, 9, 4)


def test_the_report_compares_both_10k_configurations_with_one_tenant():
    from types import SimpleNamespace

    from bench import report
    med = lambda rps, rss, cpu: {"median": {"rps": rps, "rss_bytes": rss, "cpu_us": cpu}}  # noqa: E731
    results = {"causette": med(8000.0, 150e6, 120.0), "causette_10k": med(7600.0, 194e6, 126.0),
               "causette_10k_own": med(6000.0, 356e6, 160.0)}
    a = SimpleNamespace(runs=1, warmup=1.0, duration=1.0, connections=64, tenants=10_000, quick=False)
    out = report.assemble(results, {}, "wrk", [], a)
    assert out["tenants_10k_ratio"] == 0.95 and out["tenants_10k_own_ratio"] == 0.75
    assert out["memory_per_tenant_bytes"] == 4400 and out["memory_per_tenant_own_bytes"] == 20600
    assert out["targets"]["tenants_10k_ratio"]["met"] is True
    assert out["targets"]["tenants_10k_own_ratio"]["met"] is False
    text = report.table(out)
    assert "`tenants_10k_own_ratio`) | 0.75 | >= 0.9 | no |" in text
    assert "`tenants_10k_ratio`) | 0.95 | >= 0.9 | yes |" in text
