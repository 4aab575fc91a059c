"""The tree engine driven through realistic conversations, turn by turn, with a real
Context and Session (the engine's interface to the gateway)."""
import copy

import pytest

SALE = {
    "format": 1, "id": "winter-sales", "name": "Soldes d'hiver", "engine": "tree", "locale": "fr",
    "start": "hello",
    "nodes": {
        "hello": {"type": "message", "text": {"fr": "Bonjour {{contact.first_name | default: \"toi\"}} !",
                                              "en": "Hello {{contact.first_name | default: \"there\"}}!"},
                  "next": "pick"},
        "pick": {"type": "choice", "text": {"fr": "Que cherchez-vous ?", "en": "What are you after?"},
                 "save_as": "category",
                 "choices": [{"id": "w", "title": {"fr": "Femme", "en": "Women"}, "next": "email"},
                             {"id": "m", "title": {"fr": "Homme", "en": "Men"}, "next": "email"}],
                 "retry": {"text": "Répondez 1 ou 2.", "max": 2, "then": "agent"}},
        "email": {"type": "input", "text": "Votre e-mail ?", "validate": "email",
                  "save_as": "contact.email", "next": "offer"},
        "offer": {"type": "condition",
                  "branches": [{"if": {"var": "category", "eq": "w"}, "next": "done"}], "else": "agent"},
        "agent": {"type": "handoff", "text": "Je vous passe un conseiller.", "queue": "sales"},
        "done": {"type": "end", "outcome": "converted", "text": "Merci, à bientôt sur {{contact.email}} !"},
    },
}


async def test_design_example_converts(conversation):
    c = conversation(SALE, contact_attrs={"first_name": "Léa"})
    t = await c.start()
    assert c.texts(t) == ["Bonjour Léa !", "Que cherchez-vous ?"]
    assert [ch.title for ch in t.replies[1].choices] == ["Femme", "Homme"]
    assert c.session.node == "pick"

    t = await c.say("femme")
    assert c.texts(t) == ["Votre e-mail ?"]
    assert c.session.vars["category"] == "w"

    t = await c.say("lea@exemple")                       # no domain: asked again
    assert "e-mail" in c.texts(t)[0] and c.session.node == "email" and c.session.retries == 1

    t = await c.say("  Lea@Exemple.FR ")
    assert t.ended == "converted"
    assert c.texts(t) == ["Merci, à bientôt sur Lea@exemple.fr !"]
    assert c.session.contact["email"] == "Lea@exemple.fr"
    assert c.session.node == "" and c.session.outcome == "converted"
    assert c.event_types() == ["answer", "answer.invalid", "answer"]


async def test_button_payload_and_handoff(conversation):
    c = conversation(SALE)
    await c.start()
    await c.say("Homme", payload="m")
    t = await c.say("paul@example.com")
    assert t.handoff == {"queue": "sales"}
    assert c.texts(t) == ["Je vous passe un conseiller."]
    assert c.events[0].data == {"choice": "m", "how": "payload"}


async def test_retries_then_goes_to_then_node(conversation):
    c = conversation(SALE)
    await c.start()
    t1 = await c.say("bof")
    assert c.texts(t1) == ["Répondez 1 ou 2."]
    assert [ch.id for ch in t1.replies[0].choices] == ["w", "m"]   # buttons shown again
    await c.say("je sais pas")
    t3 = await c.say("???")
    assert t3.handoff == {"queue": "sales"}
    assert c.event_types().count("answer.invalid") == 3


async def test_retries_without_then_abandon(conversation):
    flow = copy.deepcopy(SALE)
    flow["nodes"]["pick"]["retry"] = {"max": 1}
    c = conversation(flow, locale="en")
    await c.start()
    t = await c.say("hmm")
    assert c.texts(t) == ["Sorry, I didn't get that. Please pick one of the options."]
    t = await c.say("still no")
    assert t.ended == "abandoned" and c.session.outcome == "abandoned"


@pytest.mark.parametrize("locale,hello,choice", [
    ("en", "Hello there!", "Women"), ("en-GB", "Hello there!", "Women"),
    ("fr", "Bonjour toi !", "Femme"), ("de", "Bonjour toi !", "Femme"), ("", "Bonjour toi !", "Femme"),
])
async def test_locale_picks_texts_with_fallback(conversation, locale, hello, choice):
    c = conversation(SALE, locale=locale)
    t = await c.start()
    assert t.replies[0].text == hello
    assert t.replies[1].choices[0].title == choice


async def test_english_answer_in_french_session(conversation):
    c = conversation(SALE, locale="fr")
    await c.start()
    await c.say("men")
    assert c.session.vars["category"] == "m"


INPUTS = {
    "format": 1, "id": "inputs", "start": "n",
    "nodes": {
        "n": {"type": "input", "text": "Combien ?", "validate": "number", "min": 1, "max": 1000,
              "save_as": "qty", "next": "p"},
        "p": {"type": "input", "text": "Téléphone ?", "validate": "phone", "save_as": "contact.phone", "next": "d"},
        "d": {"type": "input", "text": "Date ?", "validate": "date", "save_as": "day", "next": "z"},
        "z": {"type": "input", "text": "Code postal ?", "validate": "regex", "pattern": "[0-9]{5}",
              "save_as": "zip", "retry": {"text": "5 chiffres, svp."}, "next": "t"},
        "t": {"type": "input", "text": "Un mot ?", "validate": "text", "min": 2, "save_as": "word"},
    },
}


async def test_input_validators(conversation):
    c = conversation(INPUTS)
    await c.start()
    await c.say("douze")
    assert c.session.node == "n"
    await c.say("0")                                   # below min
    assert c.session.node == "n"
    await c.say("12,5")
    assert c.session.vars["qty"] == 12.5
    await c.say("06 12 34")                            # too short
    await c.say("+33 6 12 34 56 78")
    assert c.session.contact["phone"] == "+33612345678"
    await c.say("31/02/2027")                          # no such day
    await c.say("24/12/2027")
    assert c.session.vars["day"] == "2027-12-24"
    t = await c.say("7500")
    assert c.texts(t) == ["5 chiffres, svp."]
    await c.say("75011")
    assert c.session.vars["zip"] == "75011"
    t = await c.say("  bonjour   tout le monde ")
    assert t.ended == "completed"
    assert c.session.vars["word"] == "bonjour tout le monde"


LOGIC = {
    "format": 1, "id": "logic", "start": "s", "vars": {"tier": "gold"},
    "nodes": {
        "s": {"type": "set", "vars": {"age": "{{contact.age}}", "tags": ["vip", "soldes"],
                                      "greeting": "Salut {{contact.first_name | upper}}"}, "next": "c"},
        "c": {"type": "condition", "branches": [
            {"if": {"all": [{"var": "age", "gte": 18}, {"var": "tier", "in": ["gold", "platinum"]},
                            {"not": {"var": "contact.blocked", "exists": True}}]}, "next": "adult"},
            {"if": {"any": [{"var": "tags", "contains": "kids"}, {"var": "age", "lt": 18}]}, "next": "young"}],
            "else": "other"},
        "adult": {"type": "end", "text": "{{greeting}}, offre VIP {{tags | join: \" + \"}}"},
        "young": {"type": "end", "text": "Offre junior"},
        "other": {"type": "end", "text": "Autre"},
    },
}


@pytest.mark.parametrize("attrs,text", [
    ({"age": "34", "first_name": "Léa"}, "Salut LÉA, offre VIP vip + soldes"),
    ({"age": 16}, "Offre junior"),
    ({"age": 40, "blocked": True}, "Autre"),
    ({}, "Autre"),
])
async def test_set_and_conditions(conversation, attrs, text):
    c = conversation(LOGIC, contact_attrs=attrs)
    t = await c.start()
    assert c.texts(t) == [text]


def step_flow(**step):
    return {"format": 1, "id": "steps", "start": "call", "nodes": {
        "call": {"type": "step", "step": "test.echo", "next": "ok", "on_error": "failed",
                 "branches": {"4xx": "notfound", "promo": "promo"}, **step},
        "ok": {"type": "end", "text": "ok {{n}} {{res.n}}"},
        "failed": {"type": "end", "outcome": "abandoned", "text": "failed"},
        "notfound": {"type": "end", "text": "not found"},
        "promo": {"type": "end", "outcome": "converted", "text": "promo"}}}


@pytest.mark.parametrize("with_,text", [
    ({"vars": {"n": 3}}, "ok 3"),
    ({"ok": False}, "failed"),
    ({"branch": "404"}, "not found"),
    ({"branch": "promo"}, "promo"),
    ({"branch": "other"}, "ok"),
    ({"ok": False, "branch": "404"}, "not found"),       # http.request: a 404 fails, named
    ({"ok": False, "branch": "timeout"}, "failed"),      # no such branch: on_error
])
async def test_step_results_route(conversation, echo_step, with_, text):
    c = conversation(step_flow(**{"with": with_}), steps={"test.echo": echo_step})
    t = await c.start()
    assert c.texts(t)[-1] == text


async def test_step_templates_save_as_and_replies(conversation, echo_step):
    flow = step_flow(**{"with": {"vars": {"n": "{{count}}"}, "say": "Recherche pour {{who}}…"},
                        "save_as": "res"})
    flow["vars"] = {"count": 7, "who": "Léa"}
    c = conversation(flow, steps={"test.echo": echo_step})
    t = await c.start()
    assert c.calls == [("test.echo", {"vars": {"n": 7}, "say": "Recherche pour Léa…"})]
    assert c.texts(t) == ["Recherche pour Léa…", "ok 7"]
    assert c.session.vars["res"] == {"n": 7}


async def test_dry_run_calls_dry_run(conversation, echo_step):
    c = conversation(step_flow(**{"with": {"ok": False}}), steps={"test.echo": echo_step}, dry_run=True)
    await c.start()
    assert c.session.vars["dry"] is True and c.session.outcome == "completed"


GOTO = {"format": 1, "id": "g", "start": "a", "nodes": {
    "a": {"type": "message", "text": "a", "next": "b"},
    "b": {"type": "goto", "node": "c"},
    "c": {"type": "message", "text": "c", "next": "d"},
    "d": {"type": "goto", "flow": "after-sales"}}}


async def test_goto_node_and_flow(conversation):
    c = conversation(GOTO)
    t = await c.start()
    assert c.texts(t) == ["a", "c"]
    assert c.ctx.meta["goto_flow"] == "after-sales"
    assert c.session.node == "" and not t.ended
    assert c.ctx.meta["path"] == ["a", "b", "c", "d"]


WAIT = {"format": 1, "id": "w", "start": "ask", "nodes": {
    "ask": {"type": "message", "text": "Votre panier vous attend.", "next": "pause"},
    "pause": {"type": "wait", "for": "1d", "text": "On vous recontacte demain.", "next": "remind"},
    "remind": {"type": "choice", "text": "Toujours intéressé ?",
               "choices": [{"id": "yes", "title": "Oui", "next": "buy"}, {"id": "no", "title": "Non"}],
               "timeout": {"after": "2h", "reminder": "Dernière chance : -10 % jusqu'à ce soir !"}},
    "buy": {"type": "end", "outcome": "converted", "text": "Super !"}}}


async def test_wait_node_is_a_durable_delay(conversation):
    c = conversation(WAIT)
    t = await c.start()
    assert t.wait == 86400 and c.session.node == "pause"
    assert c.texts(t) == ["Votre panier vous attend.", "On vous recontacte demain."]
    c.now += 3600
    t = await c.say("allo ?")                       # the contact writes during the delay
    assert t.replies == [] and t.wait == 86400 - 3600 and c.session.node == "pause"
    c.now += 86400 - 3600
    t = await c.turn(None, reason="timer")
    assert c.texts(t) == ["Toujours intéressé ?"] and t.wait == 7200


async def test_no_answer_gets_reminder_then_abandon(conversation):
    c = conversation(WAIT)
    await c.start()
    await c.timer()                                 # the wait is over
    t = await c.timer()
    assert c.texts(t) == ["Dernière chance : -10 % jusqu'à ce soir !"]
    assert [ch.id for ch in t.replies[0].choices] == ["yes", "no"] and t.wait == 7200
    t = await c.timer()
    assert t.ended == "abandoned" and c.session.outcome == "abandoned"
    assert c.event_types() == ["reminder.sent", "flow.timeout"]


async def test_answer_after_reminder_goes_on(conversation):
    c = conversation(WAIT)
    await c.start()
    await c.timer()
    await c.timer()
    t = await c.say("oui !")
    assert t.ended == "converted" and "rem" not in c.session.extra


async def test_stale_timer_does_nothing(conversation):
    c = conversation(SALE)
    await c.start()
    t = await c.turn(None, reason="timer")
    assert t.replies == [] and c.session.node == "pick"


async def test_reopened_widget_asks_again(conversation):
    c = conversation(SALE)
    await c.start()
    t = await c.turn(None, kind="open")
    assert c.texts(t) == ["Que cherchez-vous ?"] and c.session.retries == 0


SPLIT = {"format": 1, "id": "ab", "start": "s", "nodes": {
    "s": {"type": "split", "variants": [{"id": "A", "weight": 3, "next": "a"},
                                        {"id": "B", "weight": 1, "next": "b"}]},
    "a": {"type": "choice", "text": "-20 % avec le code A20", "choices": [{"id": "ok", "title": "Je prends", "next": "end"}]},
    "b": {"type": "choice", "text": "Livraison offerte", "choices": [{"id": "ok", "title": "Je prends", "next": "end"}]},
    "end": {"type": "end", "outcome": "converted"}}}


async def test_split_is_sticky_and_weighted(conversation):
    seen = {}
    for i in range(400):
        c = conversation(SPLIT, contact=f"+3361000{i:04d}")
        await c.start()
        seen[c.contact] = c.session.extra["variant"]
    counts = {v: list(seen.values()).count(v) for v in "AB"}
    assert 240 <= counts["A"] <= 360, counts        # 3:1 weights over 400 contacts
    for contact in list(seen)[:20]:                  # the same contact always gets the same variant
        c = conversation(SPLIT, contact=contact)
        await c.start()
        assert c.session.extra["variant"] == seen[contact]


async def test_variant_is_on_every_event(conversation):
    c = conversation(SPLIT)
    await c.start()
    await c.say("1")
    assert c.event_types() == ["experiment.assigned", "answer"]
    v = c.session.extra["variant"]
    assert all(e.data["variant"] == v for e in c.events)


LOOP = {"format": 1, "id": "loop", "start": "find", "nodes": {
    "find": {"type": "step", "step": "test.echo", "with": {"vars": {"products": [
        {"name": "Pull", "price": 29}, {"name": "Jean", "price": 49}, {"name": "Bonnet", "price": 9},
        {"name": "Gants", "price": 12}]}}, "next": "each"},
    "each": {"type": "foreach", "list": "products", "as": "p", "max": 3, "do": "show", "next": "bye"},
    "show": {"type": "message", "text": "{{p_index}}. {{p.name}} : {{p.price}} €", "next": "each"},
    "bye": {"type": "end", "text": "C'est tout !"}}}


async def test_foreach_over_step_results_is_bounded(conversation, echo_step):
    c = conversation(LOOP, steps={"test.echo": echo_step})
    t = await c.start()
    assert c.texts(t) == ["1. Pull : 29 €", "2. Jean : 49 €", "3. Bonnet : 9 €", "C'est tout !"]
    assert "loops" not in c.session.extra


async def test_foreach_body_can_wait_for_the_contact(conversation, echo_step):
    flow = copy.deepcopy(LOOP)
    flow["nodes"]["show"] = {"type": "choice", "text": "{{p.name}} ?", "save_as": "last",
                             "choices": [{"id": "add", "title": "Ajouter"}, {"id": "skip", "title": "Suivant"}],
                             "next": "each"}
    c = conversation(flow, steps={"test.echo": echo_step})
    t = await c.start()
    assert c.texts(t) == ["Pull ?"]
    t = await c.say("suivant")
    assert c.texts(t) == ["Jean ?"]
    await c.say("1")
    t = await c.say("2")
    assert c.texts(t) == ["C'est tout !"] and t.ended == "completed"


async def test_empty_list_skips_the_loop(conversation, echo_step):
    flow = copy.deepcopy(LOOP)
    flow["nodes"]["find"]["with"] = {"vars": {"products": []}}
    c = conversation(flow, steps={"test.echo": echo_step})
    t = await c.start()
    assert c.texts(t) == ["C'est tout !"]


async def test_runaway_loop_ends_instead_of_spinning(conversation):
    flow = {"format": 1, "id": "bad", "start": "a", "nodes": {
        "a": {"type": "set", "vars": {"x": 1}, "next": "b"}, "b": {"type": "goto", "node": "a"}}}
    c = conversation(flow)
    t = await c.start()
    assert t.ended == "abandoned" and c.event_types() == ["flow.error"]


async def test_handoff_with_next_resumes_after_release(conversation):
    flow = {"format": 1, "id": "h", "start": "h", "nodes": {
        "h": {"type": "handoff", "text": "Un conseiller arrive.", "queue": "vip", "reason": "gros panier",
              "next": "back"},
        "back": {"type": "end", "text": "Re-bonjour ! Le bot reprend la main."}}}
    c = conversation(flow)
    t = await c.start()
    assert t.handoff == {"queue": "vip", "reason": "gros panier"} and c.session.node == "h"
    t = await c.say("merci pour l'aide")            # first message after the agent released
    assert c.texts(t) == ["Re-bonjour ! Le bot reprend la main."]


async def test_message_without_next_completes(conversation):
    c = conversation({"format": 1, "id": "m", "start": "m", "nodes": {
        "m": {"type": "message", "text": "Bonjour", "media": [
            {"url": "https://cdn.example/{{img}}.jpg", "caption": "Soldes"}]}},
        "vars": {"img": "affiche"}})
    t = await c.start()
    assert t.ended == "completed"
    assert t.replies[0].media[0].url == "https://cdn.example/affiche.jpg"


async def test_raw_definition_is_compiled_on_the_fly(conversation):
    c = conversation(SALE)
    from gateway.flows import Context
    ctx = Context(tenant="t", channel="web", channel_type="webchat", contact="x", session=c.session)
    t = await c.engine.advance(ctx, SALE, None)
    assert c.session.node == "pick" and len(t.replies) == 2


async def test_resting_on_a_node_that_does_not_wait_goes_on(conversation):
    c = conversation(SALE)
    c.session.node = "offer"                        # left there by a run cut short
    c.session.vars["category"] = "w"
    t = await c.say("allo ?")
    assert t.ended == "converted"


async def test_a_draft_with_broken_nodes_still_runs(conversation):
    flow = copy.deepcopy(SALE)
    flow["nodes"]["email"]["validate"] = "postcode"            # broken node
    flow["nodes"]["hello"]["text"] = "Bonjour {{oops"          # broken template
    flow["nodes"]["hello"]["type"] = "message"
    flow["start"] = "pick"
    c = conversation(flow)
    t = await c.start()
    assert c.texts(t) == ["Que cherchez-vous ?"]
    t = await c.say("1")
    assert t.ended == "abandoned" and c.event_types()[-1] == "flow.error"


def test_a_flow_that_cannot_run_says_why():
    from causette_tree import TreeEngine
    with pytest.raises(ValueError, match="cannot run"):
        TreeEngine().compile({"format": 1, "id": "x", "nodes": {}})
