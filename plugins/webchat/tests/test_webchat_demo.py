"""The demo brand's conversation (tenants/demo.json), end to end over the widget's socket.

The test follows the flow's own buttons rather than a script of the flow: it clicks the first
chip each time, gives an e-mail address when asked for one, and stops when the run ends.
"""
from __future__ import annotations

import math
import re
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


def _texts(value, locale: str) -> str:
    return value.get(locale, "") if isinstance(value, dict) else value


async def test_the_demo_page_says_what_the_demo_bot_says(gateway, demo_tenant):
    # The page is the README's `make run` address; its prices, discounts and end date are the
    # bot's (the catalogue and the `later` node), not figures of its own.
    gw = await gateway(tenants=[demo_tenant])
    async with gw.http.get(gw.url + "/t/demo/demo") as r:
        assert r.status == 200
        page = await r.text()
    catalogue = {p["name"]: p for p in demo_tenant["plugins"]["catalogue"]["products"]}
    shown = re.findall(r'<span class="off">-(\d+) %</span></div>\s*<div class="info"><h3>([^<]+)</h3>'
                       r'<div class="price">(\d+) €<s>(\d+) €</s>', page)
    assert len(shown) == 4, shown
    for off, name, price, was in shown:
        assert name in catalogue, f"{name} is not in the catalogue"
        product = catalogue[name]
        assert (int(price), int(was)) == (product["price"], product["was"]), name
        assert int(off) == math.floor(100 * (1 - product["price"] / product["was"])), name  # never overstated
    nodes = demo_tenant["flows"][0]["nodes"]
    end = re.search(r"jusqu'au (\d+ \w+)", nodes["later"]["text"]["fr"]).group(1)
    assert re.search(rf"au {end}\b", page), f"the page's sale does not end on {end}"
    assert re.search(rf"until {end.split()[0]} February", nodes["later"]["text"]["en"])
    best = max(math.floor(100 * (1 - p["price"] / p["was"])) for p in catalogue.values())
    assert f"-{best} %" in page and f"up to {best}% off" in nodes["hello"]["text"]["en"]


def test_the_demo_retry_texts_name_the_options_in_every_language(demo_tenant):
    # "Répondez 1, 2 ou 3." read oddly under chips that have no numbers.
    flow = demo_tenant["flows"][0]
    checked = 0
    for nid, node in flow["nodes"].items():
        retry = (node.get("retry") or {}).get("text")
        if node.get("type") != "choice" or not retry:
            continue
        for locale in flow["locales"]:
            text = _texts(retry, locale)
            assert text, (nid, locale)
            assert not re.search(r"\b\d\b", text), (nid, locale, text)
            for choice in node["choices"]:
                assert _texts(choice["title"], locale) in text, (nid, locale, text)
            checked += 1
    assert checked >= 2


async def test_typing_an_option_named_in_the_retry_text_answers_it(gateway, demo_tenant):
    web = [c["id"] for c in demo_tenant["channels"] if c["type"] == "webchat"][0]
    gw = await gateway(tenants=[demo_tenant])
    w = await Widget.connect(gw, tenant="demo", channel=web)
    await w.open()
    _, frames = await w.say("je ne sais pas")
    [retry] = [f["text"] for f in bot(frames)]
    assert retry == demo_tenant["flows"][0]["nodes"]["who"]["retry"]["text"]["fr"]
    _, frames = await w.say("Enfant")             # the word the retry text names
    assert "budget" in bot(frames)[-1]["text"]
    await w.close()
