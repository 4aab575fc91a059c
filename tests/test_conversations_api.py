"""Human agents through the admin API: take over, answer, hand back."""
from urllib.parse import quote

from tests.support.wire import WirePlugin
from tests.test_pipeline_e2e import QUIZ, post, tenant


async def test_takeover_reply_release(gateway, provider):
    gw = await gateway(tenants=[tenant("acme", provider, flows=(QUIZ,))], plugins=[("wire", WirePlugin())])
    agent = await gw.store.create_key("acme", "agent")
    viewer = await gw.store.create_key("acme", "viewer")
    base = f"{gw.url}/admin/v1/tenants/acme/conversations/wire/{quote('+33611', safe='')}"

    async def call(method, path="", body=None, key=agent):
        async with gw.http.request(method, base + path, json=body,
                                   headers={"Authorization": f"Bearer {key}"}) as r:
            return r.status, await r.json()

    assert (await call("GET"))[0] == 404         # no conversation yet: not an empty one
    await post(gw, "acme", {"id": "m1", "sender": "+33611", "text": "salut"})
    await gw.flush_events()
    status, conv = await call("GET")
    assert status == 200 and conv["session"]["node"] == "pick" and conv["session"]["human"] == ""
    assert [e["data"]["text"] for e in conv["events"] if e["type"] == "message.in"] == ["salut"]
    assert (await call("POST", "/takeover", {}, key=viewer))[0] == 403
    status, conv = await call("POST", "/takeover", {"agent": "julie"})
    assert status == 200 and conv["session"]["human"] == "julie"
    await post(gw, "acme", {"id": "m2", "sender": "+33611", "text": "femme"})
    assert provider.texts() == ["Bonjour !", "Femme ou homme ?"]       # the bot is silent
    status, conv = await call("POST", "/reply", {"agent": "julie", "text": "Bonjour, ici Julie."})
    assert status == 200 and [e["type"] for e in conv["events"]] == ["message.out"]
    assert provider.texts()[-1] == "Bonjour, ici Julie."
    status, problem = await call("POST", "/reply", {"text": "  "})
    assert (status, problem["code"]) == (422, "validation") and problem["errors"][0]["path"] == "$.text"
    status, conv = await call("POST", "/release", {"agent": "julie"})
    assert status == 200 and conv["session"]["human"] == ""
    await post(gw, "acme", {"id": "m3", "sender": "+33611", "text": "homme"})
    assert provider.texts()[-1] == "Merci, c'est noté."                  # the bot is back
    assert (await call("GET", "/../../nope/" + quote("+1", safe="")))[0] == 404


async def test_agent_reply_outside_the_window_is_held_with_its_reason(gateway, provider):
    gw = await gateway(tenants=[tenant("acme", provider, flows=(QUIZ,))], plugins=[("wire", WirePlugin())])
    base = f"{gw.url}/admin/v1/tenants/acme/conversations/wire/never-wrote"
    async with gw.http.post(base + "/reply", json={"text": "Une offre pour vous"},
                            headers=gw.admin_headers) as r:
        conv = await r.json()
    assert r.status == 200
    assert [(e["type"], e["data"]["reason"]) for e in conv["events"]] == [("message.held", "outside_window")]
    assert provider.sent == []
