"""Simulation bounds, on the real gateway: the simulated clock stays within years 1970 to
9999, every timer that fires counts against `max_turns`, a naive `now` is read in the
tenant's time zone, and a turn runs as many flows (gotos) as the pipeline runs."""
import time
from datetime import datetime, timezone

import pytest

from gateway.pipeline import MAX_GOTO
from tests.support.wire import WirePlugin
from tests.test_pipeline_e2e import post, tenant

DAY = 86400.0
MAX_WAIT = 366 * DAY          # the longest `wait` of a script item (docs/admin-api.md)
PING = {"format": 1, "id": "wl", "name": "Ping", "engine": "tree", "start": "m",
        "nodes": {"m": {"type": "message", "text": "ping", "next": "p"},
                  "p": {"type": "wait", "for": "1m", "next": "m"}}}
NUDGE = {"format": 1, "id": "nudge", "name": "Nudge", "engine": "tree", "start": "ask",
         "nodes": {"ask": {"type": "choice", "text": "Tea?",
                           "choices": [{"id": "y", "title": "Yes", "next": "done"}],
                           "timeout": {"after": "1d", "reminder": "Still there?", "then": "late"}},
                   "late": {"type": "end", "outcome": "abandoned", "text": "Another time, then."},
                   "done": {"type": "end", "outcome": "completed", "text": "Enjoy."}}}


def _at(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


async def _start(gateway, provider, flows, tz="Europe/Paris"):
    gw = await gateway(tenants=[tenant("acme", provider, flows=flows) | {"timezone": tz}],
                       plugins=[("wire", WirePlugin())])
    viewer = await gw.store.create_key("acme", "viewer")

    async def simulate(flow, body):
        async with gw.http.post(f"{gw.url}/admin/v1/tenants/acme/flows/{flow}/simulate", json=body,
                                headers={"Authorization": f"Bearer {viewer}"}) as r:
            return r.status, r.content_type, await r.json(content_type=None)
    return gw, simulate


async def test_a_clock_outside_years_1970_to_9999_is_refused_with_its_path(gateway, provider):
    _, simulate = await _start(gateway, provider, (PING,))
    # The reviewer's case: the clock overflowed to inf and the timer loop never ended.
    cases = [({"script": [{"wait": 1e308}], "now": 1e308}, ["$.now"]),
             ({"script": ["hi"], "now": 1e300}, ["$.now"]),     # 1e300 + 60 == 1e300: timers out of order
             ({"now": -1}, ["$.now"]),
             ({"now": "1969-12-31T23:59:59Z"}, ["$.now"]),
             ({"now": "someday"}, ["$.now"]),
             ({"script": [{"wait": 1e308}]}, ["$.script[0].wait"]),
             ({"script": ["hi", {"wait": MAX_WAIT + 1}]}, ["$.script[1].wait"]),
             # each within a year, together more than ten
             ({"script": [{"wait": MAX_WAIT}] * 11}, ["$.script[10].wait"]),
             ({"script": [{"wait": 2 * DAY}], "now": "9999-12-31T00:00:00Z"}, ["$.script[0].wait"])]
    for body, paths in cases:
        s, ct, p = await simulate("wl", body)
        assert (s, ct) == (422, "application/problem+json"), body
        assert [e["path"] for e in p["errors"]] == paths, body
    # the bounds themselves are fine
    for now in (0, "9999-12-31T23:59:59Z"):
        assert (await simulate("wl", {"now": now}))[0] == 200
    s, _, sim = await simulate("wl", {"script": [{"wait": MAX_WAIT}] * 10, "max_turns": 3})
    assert s == 200 and sim["transcript"][-1]["text"] == "stopped: max_turns reached"


async def test_every_timer_that_fires_counts_against_max_turns(gateway, provider):
    _, simulate = await _start(gateway, provider, (PING,))
    now = _at("2027-01-10T10:00:00+00:00")
    started = time.monotonic()
    s, _, sim = await simulate("wl", {"script": [{"wait": MAX_WAIT}], "now": now, "max_turns": 20})
    assert s == 200 and time.monotonic() - started < 5
    bots = [t for t in sim["transcript"] if t["who"] == "bot"]
    # The start, then a timer due every minute: each fires at its due time, until the budget ends.
    assert [t["at"] for t in bots] == [now + 60 * i for i in range(20)]
    assert [t["text"] for t in sim["transcript"]].count("timer fired") == 19
    assert sim["transcript"][-1] == {"who": "system", "text": "stopped: max_turns reached", "at": now + 19 * 60}


async def test_a_reminder_then_the_timeout_fire_in_order_even_in_year_9999(gateway, provider):
    _, simulate = await _start(gateway, provider, (NUDGE,))
    for iso in ("2027-01-10T10:00:00+00:00", "9999-06-01T00:00:00+00:00"):
        now = _at(iso)
        s, _, sim = await simulate("nudge", {"script": [{"wait": 3 * DAY}, {"choice": "y"}], "now": iso})
        assert s == 200, sim
        assert [(t["who"], t["text"], t["at"] - now) for t in sim["transcript"]] == [
            ("bot", "Tea?", 0), ("system", "timer fired", DAY), ("bot", "Still there?", DAY),
            ("system", "timer fired", 2 * DAY), ("bot", "Another time, then.", 2 * DAY),
            ("user", "y", 3 * DAY), ("system", "not answered: the run has ended", 3 * DAY)]
        assert sim["ended"] == "abandoned"


@pytest.fixture
def server_in_utc(monkeypatch):
    """The server's zone differs from the tenant's (Europe/Paris): a naive `now` read in the
    server's zone would then land an hour off."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


async def test_a_now_without_offset_is_read_in_the_tenants_time_zone(gateway, provider, server_in_utc):
    flow = NUDGE | {"active": {"from": "2027-01-08T08:00:00", "until": "2027-02-04T20:00:00"}}
    _, simulate = await _start(gateway, provider, (flow,), tz="Europe/Paris")
    s, _, sim = await simulate("nudge", {"now": "2027-01-08T07:30:00"})     # 06:30 UTC
    assert s == 200 and sim["transcript"][0]["who"] == "system"
    assert "outside the flow's active period" in sim["transcript"][0]["text"]
    assert sim["transcript"][0]["at"] == _at("2027-01-08T06:30:00+00:00")
    s, _, sim = await simulate("nudge", {"now": "2027-01-08T08:30:00"})
    assert [t["who"] for t in sim["transcript"]] == ["bot"]
    assert sim["transcript"][0]["at"] == datetime(2027, 1, 8, 7, 30, tzinfo=timezone.utc).timestamp()


def _chain(n: int) -> list[dict]:
    """f1 → f2 → ... → fn, each saying its name first; f1 starts conversations."""
    flows = [{"format": 1, "id": f"f{i}", "name": f"f{i}", "engine": "tree", "start": "hi",
              "nodes": {"hi": {"type": "message", "text": f"This is f{i}", "next": "go"},
                        "go": {"type": "goto", "flow": f"f{i + 1}"}}} for i in range(1, n)]
    flows.append({"format": 1, "id": f"f{n}", "name": f"f{n}", "engine": "tree", "start": "hi",
                  "nodes": {"hi": {"type": "end", "text": f"This is f{n}"}}})
    flows[0]["triggers"] = [{"type": "start"}]
    return flows


async def test_a_simulated_turn_runs_as_many_flows_as_a_real_one(gateway, provider):
    gw, simulate = await _start(gateway, provider, _chain(7))
    assert (await post(gw, "acme", {"id": "m1", "sender": "c1", "text": "salut"}))[0] == 200
    real = provider.texts()
    assert real == [f"This is f{i}" for i in range(1, MAX_GOTO + 1)]
    s, _, sim = await simulate("f1", {"script": ["salut", "again"]})
    assert s == 200, sim
    assert [t["text"] for t in sim["transcript"] if t["who"] == "bot"] == real
    said = [t["text"] for t in sim["transcript"] if t["who"] == "system"]
    assert said[-2] == f"goes to flow 'f{MAX_GOTO + 1}': not run, a turn runs at most {MAX_GOTO} flows"
    assert said[-1] == "not answered: the run has ended" and sim["waiting"] == ""
