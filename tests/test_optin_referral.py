"""A contact who opts in (follows the account) through a flow's referral starts that flow;
an opt-in without one only records the consent, as before."""
from tests.support.wire import WirePlugin
from tests.test_pipeline_e2e import QUIZ, post, tenant

WINTER = {
    "format": 1, "id": "winter", "name": "Hiver", "engine": "tree", "locale": "fr",
    "triggers": [{"type": "referral", "ref": "winter-sale"}], "start": "hi",
    "nodes": {"hi": {"type": "end", "outcome": "completed", "text": "Bienvenue aux soldes !"}},
}


async def test_an_optin_with_a_flows_ref_starts_it_and_one_without_only_consents(gateway, provider):
    gw = await gateway(tenants=[tenant("acme", provider, flows=(QUIZ, WINTER))],
                       plugins=[("wire", WirePlugin())])
    # a new follower from a QR code with the scene "winter-sale" (WeChat's subscribe)
    assert (await post(gw, "acme", {"id": "s1", "sender": "o1", "kind": "optin",
                                    "ref": "winter-sale"}))[0] == 200
    assert provider.texts("o1") == ["Bienvenue aux soldes !"]
    # a plain follow, or SMS START: consent recorded, no flow, no reply
    assert (await post(gw, "acme", {"id": "s2", "sender": "o2", "kind": "optin"}))[0] == 200
    assert (await post(gw, "acme", {"id": "s3", "sender": "o3", "kind": "optin",
                                    "ref": "unknown-scene"}))[0] == 200
    assert provider.texts("o2") == [] and provider.texts("o3") == []
    await gw.flush_events()
    events = await gw.store.list_events("acme")
    started = {(e.contact, e.data.get("trigger")) for e in events if e.type == "flow.started"}
    assert started == {("o1", "referral")}
    assert {e.contact for e in events if e.type == "consent.optin"} == {"o1", "o2", "o3"}
