"""Tenants with equal flow definitions share one compiled flow (an agency's template rolled out
to many brands): what they share is read-only, and a change of one tenant's flow is its own."""
import copy

from tests.support.wire import WirePlugin
from tests.test_pipeline_e2e import QUIZ, post, tenant


async def test_equal_flows_share_their_compiled_form_and_nothing_else(gateway, provider):
    gw = await gateway(tenants=[tenant("acme", provider), tenant("globex", provider)],
                       plugins=[("wire", WirePlugin())])
    acme, globex = await gw.registry.get("acme"), await gw.registry.get("globex")
    assert acme is not globex
    la, lg = await gw.registry.flow(acme, "quiz"), await gw.registry.flow(globex, "quiz")
    fa, ca, fg, cg = la.fv, la.compiled, lg.fv, lg.compiled
    assert (la.id, la.version) == (fa.id, fa.version)
    assert ca is cg and fa.definition is fg.definition
    assert (fa.id, fa.version) == (fg.id, fg.version) and fa is not fg
    assert acme.keywords is globex.keywords and acme.enabled is globex.enabled

    # Conversations stay apart: each tenant's session and events are its own.
    await post(gw, "acme", {"id": "a1", "sender": "ca", "text": "salut"})
    await post(gw, "globex", {"id": "g1", "sender": "cg", "text": "salut"})
    await post(gw, "acme", {"id": "a2", "sender": "ca", "payload": "w"})
    assert provider.texts("ca") == ["Bonjour !", "Femme ou homme ?", "Merci, c'est noté."]
    assert provider.texts("cg") == ["Bonjour !", "Femme ou homme ?"]
    await gw.flush_events()
    assert {e.contact for e in await gw.store.list_events("acme")} == {"ca"}
    assert {e.contact for e in await gw.store.list_events("globex")} == {"cg"}

    # globex publishes its own wording: its new conversations get it, acme keeps the template,
    # and globex's conversation that started on version 1 finishes on version 1.
    changed = copy.deepcopy(QUIZ)
    changed["nodes"]["done"]["text"] = "Merci de la part de Globex."
    changed["nodes"]["hello"]["text"] = "Bienvenue chez Globex !"
    await gw.apply(tenant("globex", provider, flows=(changed,)))
    globex2 = await gw.registry.get("globex")
    lg2 = await gw.registry.flow(globex2, "quiz")
    fg2, cg2 = lg2.fv, lg2.compiled
    assert fg2.version == 2 and cg2 is not ca
    assert (await gw.registry.flow(acme, "quiz")).compiled is ca
    await post(gw, "globex", {"id": "g2", "sender": "cg", "payload": "m"})
    assert provider.texts("cg")[-1] == "Merci, c'est noté."            # version 1, to the end
    await post(gw, "globex", {"id": "g3", "sender": "cg2", "text": "salut"})
    assert provider.texts("cg2")[0] == "Bienvenue chez Globex !"
    await post(gw, "acme", {"id": "a3", "sender": "ca2", "text": "salut"})
    assert provider.texts("ca2")[0] == "Bonjour !"
    # an older version, read back from the store, is compiled once and shared like the rest
    old = await gw.registry.flow(globex2, "quiz", 1)
    assert old.fv.version == 1 and old.compiled is ca
