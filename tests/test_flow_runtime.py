"""Flow features that need the gateway around the engine: durable timers, no-answer
timeouts, active periods, triggers, flow switches, experiments, drafts."""
import asyncio
import copy
import time

from gateway.registry import DRAFT
from tests.support.wire import WirePlugin
from tests.test_pipeline_e2e import QUIZ, post, tenant

WAITER = {
    "format": 1, "id": "waiter", "name": "Waiter", "engine": "tree", "locale": "fr",
    "triggers": [{"type": "start"}], "start": "hello",
    "nodes": {
        "hello": {"type": "message", "text": "Je reviens vers vous.", "next": "pause"},
        "pause": {"type": "wait", "for": 0.3, "next": "back"},
        "back": {"type": "choice", "text": "Alors, intéressé ?",
                 "choices": [{"id": "y", "title": "Oui", "next": "done"},
                             {"id": "n", "title": "Non", "next": "done"}],
                 "timeout": {"after": 0.3, "reminder": "Toujours là ?"}},
        "done": {"type": "end", "outcome": "completed", "text": "Merci !"},
    },
}


async def wait_until(cond, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_wait_node_and_no_answer_timeout_run_from_durable_timers(gateway, provider):
    gw = await gateway(tenants=[tenant("acme", provider, flows=(WAITER,))],
                       plugins=[("wire", WirePlugin())])
    await post(gw, "acme", {"id": "m1", "sender": "c1", "text": "salut"})
    assert provider.texts() == ["Je reviens vers vous."]
    assert await gw.redis.zscore("cst:timers", "acme\x1fwire\x1fc1") is not None
    await wait_until(lambda: "Alors, intéressé ?" in provider.texts())       # the wait ended
    await wait_until(lambda: "Toujours là ?" in provider.texts())            # reminder
    await gw.flush_events()
    await wait_until(lambda: len(provider.texts()) == 3)
    await asyncio.sleep(0.5)                                                 # second delay: abandon
    await gw.flush_events()
    ended = [e for e in await gw.store.list_events("acme") if e.type == "flow.ended"]
    assert [e.data["outcome"] for e in ended] == ["abandoned"]
    assert provider.texts() == ["Je reviens vers vous.", "Alors, intéressé ?", "Toujours là ?"]


async def test_timers_survive_a_restart(gateway, provider):
    slow = copy.deepcopy(WAITER)
    # due well after the first process has stopped, however slow the machine (at 1 s, a busy CI
    # machine once let the first process fire it before it stopped)
    slow["nodes"]["pause"]["for"] = 2.0
    gw = await gateway(tenants=[tenant("acme", provider, flows=(slow,))], plugins=[("wire", WirePlugin())])
    await post(gw, "acme", {"id": "m1", "sender": "c1", "text": "salut"})
    await gw.runner.cleanup()                       # the process stops before the timer is due
    gw2 = await gateway(plugins=[("wire", WirePlugin())])   # same Redis and database
    await wait_until(lambda: "Alors, intéressé ?" in provider.texts())
    # the second process ran that turn (its count moves once the turn is saved, just after
    # the reply went out)
    await wait_until(lambda: gw2.pipeline.turns >= 1)
    assert provider.texts().count("Alors, intéressé ?") == 1


async def test_a_timer_whose_tenant_or_channel_is_gone_is_dropped(gateway, provider):
    from gateway.state import TIMERS, timer_member
    gw = await gateway(tenants=[tenant("acme", provider, flows=(WAITER,))], plugins=[("wire", WirePlugin())])
    gone = [timer_member("ghost", "wire", "c1"), timer_member("acme", "nope", "c1")]
    await gw.redis.zadd(TIMERS, {m: time.time() + 3600 for m in gone})
    assert await gw.pipeline.fire_timer("ghost", "wire", "c1") is False
    assert await gw.pipeline.fire_timer("acme", "nope", "c1") is False
    assert await gw.redis.zcard(TIMERS) == 0     # not due again after the lease


async def test_keyword_and_referral_triggers_and_active_period(gateway, provider):
    sale = copy.deepcopy(QUIZ)
    sale["triggers"] = [{"type": "keyword", "any": ["Soldes"]}, {"type": "referral", "ref": "qr-vitrine"}]
    sale["active"] = {"from": "2020-01-01T00:00:00", "until": "2020-02-01T00:00:00",
                      "message": {"fr": "Les soldes sont terminées.", "en": "The sale is over."}}
    other = copy.deepcopy(QUIZ)
    other.update(id="main", triggers=[{"type": "start"}])
    other["nodes"]["hello"]["text"] = "Bienvenue !"
    gw = await gateway(tenants=[tenant("acme", provider, flows=(sale, other))],
                       plugins=[("wire", WirePlugin())])
    await post(gw, "acme", {"id": "m1", "sender": "c1", "text": "  SOLDÉS "})
    assert provider.texts("c1") == ["Les soldes sont terminées."]
    await post(gw, "acme", {"id": "m2", "sender": "c2", "text": "bonjour"})
    assert provider.texts("c2") == ["Bienvenue !", "Femme ou homme ?"]
    # a keyword in the middle of a run restarts on its flow (here: outside its period)
    await post(gw, "acme", {"id": "m3", "sender": "c2", "text": "soldes"})
    assert provider.texts("c2")[-1] == "Les soldes sont terminées."
    # reopen the period: the referral starts the sale flow and records its source
    sale["active"] = {"from": "2020-01-01T00:00:00"}
    await gw.apply(tenant("acme", provider, flows=(sale, other)))
    await post(gw, "acme", {"id": "m4", "sender": "c3", "text": "", "ref": "qr-vitrine", "kind": "referral"})
    assert provider.texts("c3") == ["Bonjour !", "Femme ou homme ?"]
    await gw.flush_events()
    started = [e for e in await gw.store.list_events("acme") if e.type == "flow.started"]
    assert started[-1].flow == "quiz" and started[-1].data["source"] == "qr-vitrine"


SPLIT = {
    "format": 1, "id": "ab", "name": "AB", "engine": "tree", "locale": "fr",
    "triggers": [{"type": "start"}], "start": "split",
    "nodes": {
        "split": {"type": "split", "variants": [{"id": "a", "weight": 1, "next": "va"},
                                                {"id": "b", "weight": 1, "next": "vb"}]},
        "va": {"type": "choice", "text": "A: on y va ?", "choices": [{"id": "y", "title": "Oui", "next": "end"}]},
        "vb": {"type": "choice", "text": "B: on y va ?", "choices": [{"id": "y", "title": "Oui", "next": "end"}]},
        "end": {"type": "end", "outcome": "converted", "text": "Top"},
    },
}


async def test_split_variant_is_sticky_and_on_every_later_event(gateway, provider):
    gw = await gateway(tenants=[tenant("acme", provider, flows=(SPLIT,))], plugins=[("wire", WirePlugin())])
    for n in range(12):
        await post(gw, "acme", {"id": f"m{n}", "sender": f"c{n}", "text": "salut"})
        await post(gw, "acme", {"id": f"r{n}", "sender": f"c{n}", "text": "oui"})
    await gw.flush_events()
    events = await gw.store.list_events("acme", limit=1000)
    ended = [e for e in events if e.type == "flow.ended"]
    assert len(ended) == 12 and {e.data["variant"] for e in ended} == {"a", "b"}
    for e in ended:     # the variant recorded matches the text that contact saw
        first = provider.texts(e.contact)[0]
        assert first.startswith(e.data["variant"].upper() + ":")


async def test_chat_against_a_draft(gateway, provider):
    gw = await gateway(tenants=[tenant("acme", provider)], plugins=[("wire", WirePlugin())])
    draft = copy.deepcopy(QUIZ)
    draft["nodes"]["hello"]["text"] = "Bonjour (brouillon) !"
    await gw.store.save_draft("acme", "quiz", draft, None)
    rt = await gw.registry.get("acme")
    # outside the channel's 24 h window (the contact never wrote) nothing free-form goes out
    await gw.pipeline.start_flow(rt, rt.channels["wire"], "c1", "quiz", version=DRAFT, source="test")
    assert provider.texts("c1") == []
    await post(gw, "acme", {"id": "m0", "sender": "c1", "text": "salut"})
    await gw.pipeline.start_flow(rt, rt.channels["wire"], "c1", "quiz", version=DRAFT, source="test")
    assert provider.texts("c1")[-2:] == ["Bonjour (brouillon) !", "Femme ou homme ?"]
    await post(gw, "acme", {"id": "m00", "sender": "c1", "text": "femme"})
    assert provider.texts("c1")[-1] == "Merci, c'est noté."      # later turns stay on the draft
    await post(gw, "acme", {"id": "m1", "sender": "c2", "text": "salut"})
    assert provider.texts("c2")[0] == "Bonjour !"          # everyone else: the published version


async def test_goto_ends_the_run_it_leaves_and_a_forced_archive_ends_it_abandoned(gateway, provider):
    hop = {"format": 1, "id": "hop", "name": "Hop", "engine": "tree", "locale": "fr",
           "triggers": [{"type": "start"}], "start": "hi",
           "nodes": {"hi": {"type": "message", "text": "On passe au SAV.", "next": "go"},
                     "go": {"type": "goto", "flow": "sav"}}}
    sav = {"format": 1, "id": "sav", "name": "SAV", "engine": "tree", "locale": "fr", "start": "ask",
           "nodes": {"ask": {"type": "choice", "text": "Un souci ?",
                             "choices": [{"id": "y", "title": "Oui", "next": "done"}]},
                     "done": {"type": "end", "outcome": "converted", "text": "Noté."}}}
    gw = await gateway(tenants=[tenant("acme", provider, flows=(hop, sav))], plugins=[("wire", WirePlugin())])
    await post(gw, "acme", {"id": "m1", "sender": "c1", "text": "salut"})
    await post(gw, "acme", {"id": "m2", "sender": "c1", "text": "oui"})
    assert provider.texts("c1") == ["On passe au SAV.", "Un souci ?", "Noté."]
    await gw.flush_events()
    runs = [(e.type, e.flow, e.data.get("outcome"), e.data.get("to"), e.data.get("trigger"))
            for e in await gw.store.list_events("acme", limit=100) if e.type.startswith("flow.")]
    assert sorted(runs, key=str) == sorted([
        ("flow.started", "hop", None, None, "start"), ("flow.ended", "hop", "goto", "sav", None),
        ("flow.started", "sav", None, None, "goto"), ("flow.ended", "sav", "converted", None, None)], key=str)
    # Archived by force while hop still goes there: the next contact's run ends, recorded.
    assert (await gw.admin("DELETE", "/tenants/acme/flows/sav"))[0] == 409
    assert (await gw.admin("DELETE", "/tenants/acme/flows/sav?force=true"))[0] == 204
    await post(gw, "acme", {"id": "m3", "sender": "c2", "text": "salut"})
    assert provider.texts("c2") == ["On passe au SAV."]
    await gw.flush_events()
    c2 = [(e.type, e.data.get("outcome"), e.data.get("to") or e.data.get("flow"))
          for e in await gw.store.list_events("acme", limit=100) if e.contact == "c2" and e.type.startswith("flow.")]
    assert ("flow.missing", None, "sav") in c2 and ("flow.ended", "abandoned", "sav") in c2
    s = await gw.pipeline.state.load_session("acme", "wire", "c2")
    assert (s.flow, s.node, s.outcome) == ("hop", "", "abandoned")


async def test_a_turn_runs_at_most_five_flows_and_ends_the_fifth_run(gateway, provider):
    def hop(i):
        nodes = {"hi": {"type": "message", "text": f"f{i}", "next": "go"}, "go": {"type": "goto", "flow": f"f{i + 1}"}}
        if i == 5:
            nodes = {"hi": {"type": "end", "text": "f5"}}
        return {"format": 1, "id": f"f{i}", "name": f"F{i}", "engine": "tree", "locale": "fr", "start": "hi",
                "nodes": nodes, **({"triggers": [{"type": "start"}]} if i == 0 else {})}
    gw = await gateway(tenants=[tenant("acme", provider, flows=[hop(i) for i in range(6)])],
                       plugins=[("wire", WirePlugin())])
    await post(gw, "acme", {"id": "m1", "sender": "c1", "text": "salut"})
    assert provider.texts("c1") == ["f0", "f1", "f2", "f3", "f4"]        # f5 is not run
    await gw.flush_events()
    runs = [(e.type, e.flow, e.data.get("outcome"), e.data.get("why"))
            for e in await gw.store.list_events("acme", limit=100) if e.type.startswith("flow.")]
    started = sorted(f for t, f, _, _ in runs if t == "flow.started")
    ended = sorted((f, o, w) for t, f, o, w in runs if t == "flow.ended")
    assert started == ["f0", "f1", "f2", "f3", "f4"]                   # every run started is ended
    assert ended == [("f0", "goto", None), ("f1", "goto", None), ("f2", "goto", None),
                     ("f3", "goto", None), ("f4", "abandoned", "max_goto")]


async def test_an_archived_fallback_flow_leaves_the_period_message(gateway, provider):
    sale = copy.deepcopy(QUIZ)
    sale["triggers"] = [{"type": "keyword", "any": ["soldes"]}]
    sale["active"] = {"until": "2020-02-01T00:00:00", "flow": "after",
                      "message": {"fr": "Les soldes sont terminées.", "en": "The sale is over."}}
    after = copy.deepcopy(QUIZ)
    after.update(id="after", triggers=[])
    after["nodes"]["hello"]["text"] = "Nos nouveautés !"
    gw = await gateway(tenants=[tenant("acme", provider, flows=(sale, after))], plugins=[("wire", WirePlugin())])
    await post(gw, "acme", {"id": "m1", "sender": "c1", "text": "soldes"})
    assert provider.texts("c1")[0] == "Nos nouveautés !"             # outside the period: the fallback flow
    assert (await gw.admin("DELETE", "/tenants/acme/flows/after"))[0] == 409
    assert (await gw.admin("DELETE", "/tenants/acme/flows/after?force=true"))[0] == 204
    await post(gw, "acme", {"id": "m2", "sender": "c2", "text": "soldes"})
    assert provider.texts("c2") == ["Les soldes sont terminées."]     # its message, not silence
    await gw.flush_events()
    assert any(e.type == "flow.missing" and e.contact == "c2" and e.data["flow"] == "after"
               for e in await gw.store.list_events("acme", limit=100))
