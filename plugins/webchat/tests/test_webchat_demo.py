"""The demo brand's conversation (tenants/demo.json), end to end over the widget's socket.

The test follows the flow's own buttons rather than a script of the flow: it clicks the first
chip each time, gives an e-mail address when asked for one, and stops when the run ends.
"""
from __future__ import annotations

import time

import pytest

from gateway.appkeys import STATE
from wc_support import Widget, bot

MAX_TURNS = 20


def _point_at(demo: dict, base: str) -> dict:
    """Let the demo's catalogue call reach this test's gateway rather than port 8080."""
    host = base.split("://", 1)[1]
    flow = demo["flows"][0]
    url = flow.get("vars", {}).get("catalogue_url", "")
    if url:
        flow["vars"]["catalogue_url"] = base + url.split("127.0.0.1:8080", 1)[-1]
    http = demo.get("plugins", {}).get("http")
    if http is not None and "allowed_hosts" in http:
        http["allowed_hosts"] = list(http["allowed_hosts"]) + [host]
    return demo


async def test_demo_conversation_over_the_socket(gateway, demo_tenant):
    web = [c["id"] for c in demo_tenant.get("channels", []) if c.get("type") == "webchat"]
    if not web:
        pytest.fail("tenants/demo.json has no webchat channel")
    gw = await gateway(tenants=[demo_tenant])
    await gw.apply(_point_at(demo_tenant, gw.url))
    w = await Widget.connect(gw, tenant=demo_tenant["slug"], channel=web[0])

    started = time.perf_counter()
    _, frames = await w.open()
    transcript = [f["text"] for f in bot(frames)]
    assert transcript and frames[-1].get("choices"), "the widget opening shows a welcome with buttons"
    turns = 1
    state = w.ready
    while turns < MAX_TURNS:
        replies = bot(frames)
        if not replies:
            break
        last = replies[-1]
        if last.get("choices"):
            _, frames = await w.click(last["choices"][0])
        elif "mail" in last["text"].lower():
            _, frames = await w.say("marie.dupont@exemple.fr")
        else:
            break     # a statement without a question: the run has ended
        transcript += [f["text"] for f in bot(frames)]
        turns += 1
    elapsed = time.perf_counter() - started

    session = await gw.app[STATE].load_session(demo_tenant["slug"], web[0], state["visitor"])
    assert session is not None and session.outcome in ("converted", "completed"), transcript
    assert any("marie.dupont@exemple.fr" in t for t in transcript)
    seqs = [f["seq"] for f in w.frames]
    assert seqs == list(range(1, len(seqs) + 1)), "every frame once, in order"
    print(f"\ndemo conversation: {turns} visitor turns, {len(seqs)} frames, {elapsed * 1000:.0f} ms")
    await w.close()
