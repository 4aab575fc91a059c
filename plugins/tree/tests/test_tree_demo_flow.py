"""The demo brand's seasonal-sale flow (tenants/demo.json), in French and in English, with
the real http.request step calling a catalogue served on 127.0.0.1."""
import copy

import aiohttp
import pytest
from aiohttp import web

from causette_http import HttpRequest, Settings
from gateway.testing import load_demo

FLOW = load_demo()["flows"][0]
PRODUCTS = {
    "women": [{"name": "Manteau laine", "price": 89, "was": 149}, {"name": "Pull col roulé", "price": 29, "was": 49},
              {"name": "Bottines", "price": 59, "was": 99}, {"name": "Écharpe", "price": 15, "was": 25}],
    "men": [{"name": "Parka", "price": 99, "was": 179}],
}


@pytest.fixture
async def catalogue(aiohttp_server):
    queries = []

    async def handler(request):
        queries.append(dict(request.query))
        items = PRODUCTS.get(request.query.get("category", ""), [])
        return web.json_response({"count": len(items), "products": items})

    app = web.Application()
    app.router.add_get("/catalogue.json", handler)
    server = await aiohttp_server(app, host="127.0.0.1")
    server.queries = queries
    return server


@pytest.fixture
async def demo(conversation, catalogue):
    flow = copy.deepcopy(FLOW)
    flow["vars"]["catalogue_url"] = str(catalogue.make_url("/catalogue.json"))
    async with aiohttp.ClientSession() as http:
        def make(**kw):
            return conversation(flow, steps={"http.request": HttpRequest()}, http=http,
                                settings={"http": Settings(allowed_hosts=["127.0.0.1"])}, **kw)
        yield make


async def test_french_conversation_converts(demo, catalogue):
    c = demo(contact_attrs={"first_name": "Léa"})
    t = await c.start()
    assert c.texts(t)[0].startswith("Bonjour Léa 👋 Les soldes d'hiver ont commencé")
    assert [ch.title for ch in t.replies[1].choices] == ["Femme", "Homme", "Enfant"]
    assert t.wait == 1800                                   # reminder after 30 minutes
    t = await c.say("pour moi, femme")
    assert c.texts(t) == ["Quel est votre budget ?"]
    await c.say("2")
    t = await c.say("ouais")
    assert c.texts(t) == ["Quelle est votre adresse e-mail ?"]
    t = await c.say("lea.martin@exemple")
    assert "pas valide" in c.texts(t)[0]
    t = await c.say("lea.martin@exemple.fr")
    assert c.texts(t) == [
        "C'est noté ! Votre code HIVER10 arrive à lea.martin@exemple.fr.",
        "Voici nos meilleures offres pour vous :",
        "1. Manteau laine : 89 € au lieu de 149 €",
        "2. Pull col roulé : 29 € au lieu de 49 €",
        "3. Bottines : 59 € au lieu de 99 €",
        "Ça vous tente ?"]
    assert catalogue.queries == [{"category": "women", "budget": "mid", "limit": "3"}]
    t = await c.say("je commande")
    assert t.ended == "converted"
    assert c.texts(t) == ["Parfait ! Finalisez votre commande ici : https://boutique.example/soldes/women"]
    assert c.session.contact["email"] == "lea.martin@exemple.fr"
    assert c.session.vars["optin_email"] is True


async def test_english_conversation_without_email(demo):
    c = demo(locale="en-GB")
    t = await c.start()
    assert c.texts(t)[0] == "Hello 👋 Our winter sale is on: up to 50% off everything!"
    await c.say("Men", payload="men")
    await c.say("over 150")
    t = await c.say("no thanks")
    assert c.texts(t) == ["Here are our best deals for you:", "1. Parka: €99 instead of €179", "Tempted?"]
    t = await c.say("later")
    assert t.ended == "completed"


async def test_empty_catalogue_and_advisor(demo):
    c = demo()
    await c.start()
    await c.say("3")
    await c.say("petit budget")
    t = await c.say("non")
    assert c.texts(t) == ["Toutes les offres sont sur https://boutique.example/soldes.", "Ça vous tente ?"]
    t = await c.say("un conseiller svp")
    assert t.handoff == {"queue": "sales", "reason": "soldes"}


async def test_catalogue_down_still_offers_the_shop(demo):
    c = demo()
    c.settings["http"] = Settings(allowed_hosts=["boutique.example"])   # catalogue host refused
    await c.start()
    await c.say("1")
    await c.say("1")
    t = await c.say("2")
    assert c.texts(t) == ["Toutes les offres sont sur https://boutique.example/soldes.", "Ça vous tente ?"]


async def test_no_answer_reminder_then_abandoned(demo):
    c = demo()
    await c.start()
    t = await c.timer()
    assert c.texts(t) == ["Toujours là ? Les meilleures affaires partent vite !"]
    t = await c.timer()
    assert t.ended == "abandoned"


async def test_three_wrong_answers_reach_an_advisor(demo):
    c = demo()
    await c.start()
    t = await c.say("bonjour")
    assert c.texts(t) == ["Je n'ai pas compris 🙂 Répondez Femme, Homme ou Enfant."]
    await c.say("quoi ?")
    t = await c.say("je ne sais pas")
    assert t.handoff == {"queue": "sales", "reason": "soldes"}
