"""The pipeline end to end over real HTTP: a signed webhook in, replies at a fake provider."""
import asyncio
import json


from gateway.appkeys import PLUGINS
from gateway.hookspecs import hookimpl
from gateway.state import conv_key
from gateway.types import Reply
from tests.support.wire import WirePlugin, sign, wire_body

SECRET = "wire-secret"

QUIZ = {
    "format": 1, "id": "quiz", "name": "Quiz", "engine": "tree", "locale": "fr",
    "triggers": [{"type": "start"}, {"type": "keyword", "any": ["soldes"]}],
    "start": "hello",
    "nodes": {
        "hello": {"type": "message", "text": "Bonjour !", "next": "pick"},
        "pick": {"type": "choice", "text": "Femme ou homme ?", "save_as": "category",
                 "choices": [{"id": "w", "title": "Femme", "next": "done"},
                             {"id": "m", "title": "Homme", "next": "done"}]},
        "done": {"type": "end", "outcome": "converted", "text": "Merci, c'est noté."},
    },
}

ECHO = {
    "format": 1, "id": "echo", "name": "Echo", "engine": "tree", "locale": "fr",
    "triggers": [{"type": "start"}], "start": "ask",
    "nodes": {
        "ask": {"type": "input", "text": "Dites quelque chose", "save_as": "said", "next": "echo"},
        "echo": {"type": "message", "text": "echo {{said}}", "next": "ask"},
    },
}


def tenant(slug, provider, flows=(QUIZ,), plugins=None):
    return {"slug": slug, "name": slug.title(), "locale": "fr",
            "plugins": plugins or {"tree": {}, "wire": {}},
            "channels": [{"id": "wire", "type": "testwire",
                          "settings": {"secret": SECRET, "api_base": provider.url}}],
            "flows": list(flows)}


async def post(gw, slug, *items, secret=SECRET, channel="wire"):
    body = wire_body(*items)
    async with gw.http.post(f"{gw.url}/t/{slug}/channels/{channel}", data=body,
                            headers=sign(secret, body)) as r:
        return r.status, await r.text()


async def test_conversation_runs_the_flow_and_replies_reach_the_provider(gateway, provider):
    gw = await gateway(tenants=[tenant("acme", provider)], plugins=[("wire", WirePlugin())])
    assert (await post(gw, "acme", {"id": "m1", "sender": "+33600000001", "text": "salut"}))[0] == 200
    assert provider.texts() == ["Bonjour !", "Femme ou homme ?"]
    assert [b["id"] for b in provider.sent[1]["buttons"]] == ["w", "m"]
    assert (await post(gw, "acme", {"id": "m2", "sender": "+33600000001", "payload": "w"}))[0] == 200
    assert provider.texts()[-1] == "Merci, c'est noté."
    await gw.flush_events()
    kinds = [e.type for e in await gw.store.list_events("acme")]
    assert kinds.count("message.in") == 2 and "flow.ended" in kinds


async def test_same_webhook_three_times_concurrently_gives_one_reply(gateway, provider):
    gw = await gateway(tenants=[tenant("acme", provider)], plugins=[("wire", WirePlugin())])
    provider.delay = 0.05
    item = {"id": "dup-1", "sender": "+33600000002", "text": "salut"}
    results = await asyncio.gather(*(post(gw, "acme", item) for _ in range(3)))
    assert [s for s, _ in results] == [200, 200, 200]
    await asyncio.sleep(0.2)
    assert provider.texts() == ["Bonjour !", "Femme ou homme ?"]


async def test_bad_input_gets_a_clear_error_and_changes_nothing(gateway, provider):
    gw = await gateway(tenants=[tenant("acme", provider)], plugins=[("wire", WirePlugin())],
                       max_body=4096)
    item = {"id": "m1", "sender": "+33600000003", "text": "salut"}
    # bad signature
    assert (await post(gw, "acme", item, secret="wrong"))[0] == 401
    # malformed JSON, correctly signed
    body = b'[{"id": "m1", "sender": '
    async with gw.http.post(f"{gw.url}/t/acme/channels/wire", data=body, headers=sign(SECRET, body)) as r:
        assert r.status == 400
    # oversized
    big = wire_body({"id": "m9", "sender": "+33600000003", "text": "x" * 10000})
    async with gw.http.post(f"{gw.url}/t/acme/channels/wire", data=big, headers=sign(SECRET, big)) as r:
        assert r.status == 413
    # unknown tenant / channel
    status, text = await post(gw, "nobody", item)
    assert status == 404 and json.loads(text)["title"] == "Not Found"
    assert (await post(gw, "acme", item, channel="nope"))[0] == 404
    assert provider.sent == []
    assert await gw.redis.keys("cst:{acme}:*") == []
    # and the same message, once right, still runs (nothing was marked as seen)
    assert (await post(gw, "acme", item))[0] == 200
    assert provider.texts() == ["Bonjour !", "Femme ou homme ?"]


class Faulty:
    """A plugin that raises on one tenant's messages and hangs on another's."""

    @hookimpl(tryfirst=True)
    async def inbound_message(self, ctx, message):
        if message.text == "boom":
            raise RuntimeError("plugin bug")
        if message.text == "hang":
            await asyncio.sleep(30)
        return None


async def test_a_plugin_that_raises_or_hangs_leaves_conversations_and_tenants_working(gateway, provider):
    gw = await gateway(
        tenants=[tenant("acme", provider, plugins={"tree": {}, "wire": {}, "faulty": {}}),
                 tenant("other", provider)],
        plugins=[("wire", WirePlugin()), ("faulty", Faulty())], plugin_timeout=0.3)
    assert (await post(gw, "acme", {"id": "a1", "sender": "c1", "text": "boom"}))[0] == 200
    assert (await post(gw, "acme", {"id": "a2", "sender": "c2", "text": "hang"}))[0] == 200
    assert provider.texts("c1") == ["Bonjour !", "Femme ou homme ?"]
    assert provider.texts("c2") == ["Bonjour !", "Femme ou homme ?"]
    assert gw.host.failures[("acme", "faulty")] == 2
    assert (await post(gw, "acme", {"id": "a3", "sender": "c1", "text": "Femme"}))[0] == 200
    assert provider.texts("c1")[-1] == "Merci, c'est noté."
    assert (await post(gw, "other", {"id": "o1", "sender": "c9", "text": "boom"}))[0] == 200
    assert provider.texts("c9") == ["Bonjour !", "Femme ou homme ?"]
    assert ("other", "faulty") not in gw.host.failures


class Hooks:
    """Exercises the chain hooks a helpdesk or compliance plugin uses."""
    def __init__(self):
        self.events, self.handoffs = [], []

    @hookimpl
    def outbound_message(self, reply):
        if reply.text.startswith("Merci"):
            return Reply(text=reply.text + " STOP au 36180", choices=reply.choices)
        if reply.text == "Femme ou homme ?":
            return False
        return None

    @hookimpl
    async def conversation_event(self, event):
        self.events.append(event.type)

    @hookimpl
    def handoff_requested(self, ctx, handoff):
        self.handoffs.append(("requested", ctx.contact, handoff["queue"]))

    @hookimpl
    def handoff_released(self, handoff):
        self.handoffs.append(("released", handoff["queue"]))


async def test_outbound_and_event_hooks(gateway, provider):
    hooks = Hooks()
    gw = await gateway(tenants=[tenant("acme", provider, plugins={"tree": {}, "wire": {}, "hooks": {}})],
                       plugins=[("wire", WirePlugin()), ("hooks", hooks)])
    await post(gw, "acme", {"id": "m1", "sender": "c1", "text": "salut"})
    await post(gw, "acme", {"id": "m2", "sender": "c1", "text": "homme"})
    assert provider.texts() == ["Bonjour !", "Merci, c'est noté. STOP au 36180"]
    await gw.pipeline.drain()
    assert hooks.events.count("message.in") == 2 and "message.held" in hooks.events
    assert "flow.ended" in hooks.events


HANDOFF = {
    "format": 1, "id": "help", "name": "Help", "engine": "tree", "locale": "fr",
    "triggers": [{"type": "start"}], "start": "agent",
    "nodes": {"agent": {"type": "handoff", "text": "Je vous passe un conseiller.", "queue": "sales"}},
}


async def test_handoff_silences_the_bot_until_released(gateway, provider):
    hooks = Hooks()
    gw = await gateway(tenants=[tenant("acme", provider, flows=(HANDOFF,),
                                       plugins={"tree": {}, "wire": {}, "hooks": {}})],
                       plugins=[("wire", WirePlugin()), ("hooks", hooks)])
    await post(gw, "acme", {"id": "m1", "sender": "c1", "text": "aide"})
    assert provider.texts() == ["Je vous passe un conseiller."]
    assert hooks.handoffs == [("requested", "c1", "sales")]
    await post(gw, "acme", {"id": "m2", "sender": "c1", "text": "allo ?"})
    assert provider.texts() == ["Je vous passe un conseiller."]      # the bot stays silent
    rt = await gw.registry.get("acme")
    ch = rt.channels["wire"]
    await gw.pipeline.agent(rt, ch, "c1", action="reply", agent="julie", text="Bonjour, Julie ici.")
    await gw.pipeline.agent(rt, ch, "c1", action="release", agent="julie")
    await gw.pipeline.drain()
    assert provider.texts()[-1] == "Bonjour, Julie ici."
    assert hooks.handoffs[-1] == ("released", "sales")
    s = await gw.pipeline.state.load_session("acme", "wire", "c1")
    assert s.human == ""


async def test_one_tenants_key_cannot_reach_anothers_conversation(gateway, provider):
    gw = await gateway(tenants=[tenant("acme", provider), tenant("other", provider)],
                       plugins=[("wire", WirePlugin())])
    await post(gw, "acme", {"id": "m1", "sender": "c1", "text": "salut"})
    # the same contact address and message id on another tenant is another conversation
    await post(gw, "other", {"id": "m1", "sender": "c1", "text": "salut"})
    assert len(provider.texts("c1")) == 4
    assert await gw.redis.exists(conv_key("acme", "wire", "c1") + ":s")
    assert await gw.redis.exists(conv_key("other", "wire", "c1") + ":s")


async def test_redis_outage_gets_503_so_the_provider_retries_and_nothing_is_lost(gateway, provider):
    from gateway.appkeys import STATE
    gw = await gateway(tenants=[tenant("acme", provider)], plugins=[("wire", WirePlugin())])
    state = gw.app[STATE]
    real = state._enter
    from gateway.leanredis import LeanRedis
    state._enter = LeanRedis("127.0.0.1", 9).register_script("return 1")   # Redis is "down"
    item = {"id": "m1", "sender": "c1", "text": "salut"}
    status, _ = await post(gw, "acme", item)
    assert status == 503 and provider.sent == []
    state._enter = real                              # Redis is back: the provider's retry works
    assert (await post(gw, "acme", item))[0] == 200
    assert provider.texts() == ["Bonjour !", "Femme ou homme ?"]


class Hoarder:
    """Leaves in the session what msgpack cannot hold (an integer beyond 64 bits)."""

    armed = ""

    @hookimpl
    def inbound_message(self, ctx, message):
        if self.armed == "in":
            ctx.session.vars["huge"] = 2 ** 70
        return None

    @hookimpl
    def outbound_message(self, ctx, reply):
        if self.armed == "out":
            ctx.session.vars["huge"] = 2 ** 70
        return None


async def _hoarding(gateway, provider, first_id):
    """A gateway whose tenant runs the Hoarder, with contact c1 already at the quiz's question."""
    hoard = Hoarder()
    gw = await gateway(tenants=[tenant("acme", provider, plugins={"tree": {}, "wire": {}, "hoard": {}})],
                       plugins=[("wire", WirePlugin()), ("hoard", hoard)])
    assert (await post(gw, "acme", {"id": first_id, "sender": "c1", "text": "salut"}))[0] == 200
    return gw, hoard


async def test_a_session_that_cannot_be_saved_keeps_the_conversation_as_it_was_and_released(
        gateway, provider):
    gw, hoard = await _hoarding(gateway, provider, "p1")
    hoard.armed = "out"
    # The replies of the turn went out before the save failed: the webhook is answered 200
    # (a 503 would make the provider retry a message whose replies were sent).
    assert (await post(gw, "acme", {"id": "p2", "sender": "c1", "text": "poison"}))[0] == 200
    assert provider.texts("c1")[-1].startswith("Je n'ai pas compris")
    hoard.armed = ""
    # Released at once (not after the 30 s lock), at the node it was on before that turn.
    status, _ = await asyncio.wait_for(post(gw, "acme", {"id": "p3", "sender": "c1", "payload": "w"}), 5)
    assert status == 200 and provider.texts("c1")[-1] == "Merci, c'est noté."
    await gw.flush_events()
    failed = [e for e in await gw.store.list_events("acme") if e.type == "flow.failed"]
    assert len(failed) == 1 and "state not saved" in failed[0].data["error"]


async def test_a_turn_that_fails_before_its_replies_leaves_the_stored_session_untouched(
        gateway, provider):
    gw, hoard = await _hoarding(gateway, provider, "q1")
    stored = await gw.redis.get(conv_key("acme", "wire", "c1") + ":s")
    hoard.armed = "in"     # the turn cannot even snapshot the session: it fails, 503
    assert (await post(gw, "acme", {"id": "q2", "sender": "c1", "payload": "w"}))[0] == 503
    assert await gw.redis.get(conv_key("acme", "wire", "c1") + ":s") == stored
    hoard.armed = ""
    # The provider's retry of the same message runs from the stored state, at once.
    status, _ = await asyncio.wait_for(post(gw, "acme", {"id": "q2", "sender": "c1", "payload": "w"}), 5)
    assert status == 200 and provider.texts("c1")[-1] == "Merci, c'est noté."


class BuggyParsePlugin:
    """A third party's channel whose parser has a bug some bodies reach."""
    from tests.support.wire import WireChannel as _Base

    class Channel(_Base):
        type = "buggywire"

        def parse(self, hook):
            messages = super().parse(hook)
            if any(m.text == "BOOM" for m in messages):
                return messages[5].text             # IndexError: the bug
            return messages

    @hookimpl
    def register_channels(self):
        return [self.Channel]


async def test_a_channel_plugins_parse_bug_asks_for_a_retry_and_is_counted(gateway, provider):
    t = tenant("acme", provider, plugins={"tree": {}, "buggy": {}})
    t["channels"][0]["type"] = "buggywire"
    gw = await gateway(tenants=[t], plugins=[("buggy", BuggyParsePlugin())])
    status, text = await post(gw, "acme", {"id": "b1", "sender": "+33600000009", "text": "BOOM"})
    assert (status, text) == (503, "temporarily unavailable")         # redelivered, not lost
    assert gw.app[PLUGINS].failures[("acme", "buggy")] == 1
    assert provider.sent == [] and not await gw.redis.exists("cst:{acme}:d:wire:b1")
    assert (await post(gw, "acme", {"id": "b2", "sender": "+33600000009", "text": "salut"}))[0] == 200
    assert provider.texts() == ["Bonjour !", "Femme ou homme ?"]
