"""The `inbound_message` hook of the sms plugin: STOP / START / HELP answered before the
flow, consent kept in the session, the tenant's own texts and language."""
from __future__ import annotations

import pytest

import causette_sms
from causette_sms import Settings, keywords
from gateway.config import TenantSnapshot
from gateway.flows import Context
from gateway.types import InboundMessage, Session


def ctx(channel_type: str = "twilio", *, stopped: bool = False, locale: str = "fr",
        settings: Settings | None = None) -> Context:
    return Context(tenant="acme", channel="sms", channel_type=channel_type, contact="+33611223344",
                   session=Session(stopped=stopped, locale=locale),
                   settings={"sms": settings} if settings else {},
                   tenant_config=TenantSnapshot(slug="acme", name="Maison Acme", locale=locale))


def msg(text: str, kind: str = "text", payload: str = "") -> InboundMessage:
    return InboundMessage(tenant="acme", channel="sms", native_id="SM1", contact="+33611223344",
                          kind=kind, text=text, payload=payload)


# label, context kwargs, message, expected texts (None: the flow goes on), stopped after, confirm
CASES = [
    ("STOP confirmed in French", {}, msg("STOP", "optout", "stop"),
     ["Maison Acme : vous ne recevrez plus de messages. Envoyez START pour vous réabonner."], True, True),
    ("STOP confirmed in English", {"locale": "en"}, msg("stop", "optout", "stop"),
     ["Maison Acme: you are unsubscribed and will get no more messages. Reply START to resubscribe."], True, True),
    ("START resumes", {"stopped": True}, msg("START", "optin", "start"),
     ["Maison Acme : vous êtes de nouveau abonné(e). Envoyez STOP pour ne plus recevoir de messages."], False, False),
    ("OUI from a stopped contact resumes", {"stopped": True}, msg("Oui"),
     ["Maison Acme : vous êtes de nouveau abonné(e). Envoyez STOP pour ne plus recevoir de messages."], False, False),
    ("OUI from a subscribed contact is the flow's", {}, msg("oui"), None, False, False),
    ("HELP answered", {}, msg("AIDE", "text", "help"),
     ["Maison Acme : répondez à nos questions par leur numéro. Envoyez STOP pour ne plus recevoir de messages."],
     False, True),
    ("HELP answered even when stopped", {"stopped": True, "locale": "en"}, msg("HELP", "text", "help"),
     ["Maison Acme: answer our questions with their number. Reply STOP to unsubscribe."], True, True),
    ("tenant's own stop text", {"settings": Settings(stop_text="{brand}: c'est noté, plus de SMS.")},
     msg("ARRET", "optout", "stop"), ["Maison Acme: c'est noté, plus de SMS."], True, True),
    ("provider already confirmed", {}, msg("STOP", "optout", "provider:stop"), [], True, False),
    ("provider confirmed but the tenant answers too", {"settings": Settings(answer_provider_keywords=True)},
     msg("STOP", "optout", "provider:stop"),
     ["Maison Acme : vous ne recevrez plus de messages. Envoyez START pour vous réabonner."], True, True),
    ("plain text goes to the flow", {}, msg("Femme"), None, False, False),
    ("other channels are left alone", {"channel_type": "telegram"}, msg("STOP", "optout", "stop"), None, False, False),
]


@pytest.mark.parametrize("label,kw,message,texts,stopped,confirm", CASES, ids=[c[0] for c in CASES])
def test_hook(label, kw, message, texts, stopped, confirm):
    c = ctx(**kw)
    out = causette_sms.inbound_message(c, message)
    assert (None if out is None else [r.text for r in out]) == texts
    assert c.session.stopped is stopped
    assert bool(c.meta.get("confirm_stop")) is confirm


def test_resume_is_recorded_as_consent():
    c = ctx(stopped=True)
    causette_sms.inbound_message(c, msg("yes"))
    assert [(e.type, e.data) for e in c.events] == [("consent.optin", {"source": "yes"})]


KEYWORDS = [("STOP", "stop"), ("Stop.", "stop"), ("  unsubscribe ", "stop"), ("Opt-Out", "stop"),
            ("arrêt", "stop"), ("STOP SMS", "stop"), ("Désabonner", "stop"), ("stopp", "stop"),
            ("Start", "start"), ("UNSTOP", "start"), ("help", "help"), ("Info ?", "help"), ("aide", "help"),
            ("stop it now", None), ("Bonjour", None), ("", None), ("1", None), ("yes", None)]


@pytest.mark.parametrize("text,kind", KEYWORDS, ids=[k[0] or "empty" for k in KEYWORDS])
def test_classify(text, kind):
    assert keywords.classify(text) == kind
