"""SMS end to end: the demo tenant (tenants/demo.json) with an SMS channel added runs its
winter-sale flow over signed webhooks posted to the whole gateway on 127.0.0.1; replies
come back as TwiML or reach a fake Twilio / Vonage API. STOP / HELP / START on the way."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from urllib.parse import urlencode
from xml.etree import ElementTree

import pytest

from gateway.envsubst import expand
from gateway.problems import ProblemError
from gateway.testing import ROOT


PUBLIC = "https://chat.example.com"
TOKEN = "e2e-twilio-auth-token"
SID = "AC0123456789abcdef0123456789abcdef"
PHONE = "+33611223344"
VONAGE_SIG = "e2e-vonage-signature-secret"


def demo(tenant: dict, channel: dict, **sms_plugin) -> dict:
    t = dict(tenant)
    t["channels"] = [*tenant["channels"], channel]
    t["plugins"] = {**tenant["plugins"], "sms": sms_plugin}
    # The catalogue step calls a local URL that is not served in tests: the flow takes its
    # on_error branch ("all the deals are on ..."), which is part of the demo too.
    t["plugins"]["http"] = {**t["plugins"].get("http", {}), "allowed_hosts": []}
    return t


def twilio_channel(**over) -> dict:
    return {"id": "sms", "type": "twilio", "settings": {
        "account_sid": SID, "auth_token": TOKEN, "from_number": "+33700000000", "attempts": 2, **over}}


def twilio_sign(url: str, pairs: list[tuple[str, str]]) -> str:
    data = url + "".join(k + v for k, v in sorted(pairs))
    return base64.b64encode(hmac.new(TOKEN.encode(), data.encode(), hashlib.sha1).digest()).decode()


class Phone:
    """A person texting the brand's Twilio number: each text is a signed webhook."""

    def __init__(self, gw, channel: str = "sms"):
        self.gw, self.channel, self.n = gw, channel, 0
        self.path = f"/t/demo/channels/{channel}"

    async def post(self, pairs: list[tuple[str, str]], *, signature: str | None = None) -> tuple[int, str]:
        headers = {"Content-Type": "application/x-www-form-urlencoded",
                   "X-Twilio-Signature": signature or twilio_sign(PUBLIC + self.path, pairs)}
        async with self.gw.http.post(self.gw.url + self.path, data=urlencode(pairs), headers=headers) as r:
            return r.status, await r.text()

    async def text(self, body: str, sid: str | None = None, **extra: str) -> list[str]:
        self.n += 1
        pairs = [("MessageSid", sid or f"SM{self.n:032d}"), ("AccountSid", SID), ("From", PHONE),
                 ("To", "+33700000000"), ("Body", body), ("NumMedia", "0"), ("SmsStatus", "received"),
                 *extra.items()]
        status, xml = await self.post(pairs)
        assert status == 200, xml
        root = ElementTree.fromstring(xml)
        assert root.tag == "Response"
        return [m.text or "" for m in root.findall("Message")]


def worked_example() -> dict:
    """docs/channels/sms.md's worked example with its two placeholders filled from
    tenants/demo.json, as `causette tenants apply` reads it (variables at their defaults)."""
    doc = (ROOT / "docs" / "channels" / "sms.md").read_text()
    example = json.loads(re.search(r"## Worked example.*?```json\n(.*?)```", doc, re.S).group(1))
    demo = json.loads((ROOT / "tenants" / "demo.json").read_text())
    assert example["plugins"]["catalogue"]["products"] == ["… the products of tenants/demo.json …"]
    assert example["flows"] == ["… the soldes-hiver flow of tenants/demo.json …"]
    example["plugins"]["catalogue"]["products"] = demo["plugins"]["catalogue"]["products"]
    example["flows"] = demo["flows"]
    tenant, unset = expand(example, {})
    assert not unset
    return tenant


async def test_the_worked_example_applies_and_answers_as_shown(gateway, provider):
    tenant = worked_example()
    tenant["channels"][0]["settings"].update(account_sid=SID, auth_token=TOKEN, api_base=provider.url)
    gw = await gateway(tenants=[tenant], public_url=PUBLIC)
    hello, who = await Phone(gw).text("Soldes")
    assert hello == "Bonjour 👋 Les soldes d'hiver ont commencé : jusqu'à -50 % sur toute la boutique !"
    assert who == "Pour qui cherchez-vous ?\n1. Femme\n2. Homme\n3. Enfant"
    # the flow's catalogue step is an http.request: without the `http` plugin it is refused
    del tenant["plugins"]["http"]
    with pytest.raises(ProblemError) as refused:
        await gw.apply(tenant)
    assert [p.code for p in refused.value.errors if p.severity == "error"] == ["step.plugin_disabled"]


async def test_demo_flow_over_twilio_twiml(gateway, demo_tenant, provider):
    gw = await gateway(tenants=[demo(demo_tenant, twilio_channel(api_base=provider.url))], public_url=PUBLIC)
    phone = Phone(gw)

    hello, who = await phone.text("Soldes")
    assert "soldes d'hiver" in hello and "-50 %" in hello
    assert who == "Pour qui cherchez-vous ?\n1. Femme\n2. Homme\n3. Enfant"
    assert await phone.text("2") == ["Quel est votre budget ?\n1. Moins de 50 €\n2. 50 à 150 €\n3. Plus de 150 €"]
    assert await phone.text("50 à 150") == [
        "Voulez-vous recevoir un code de réduction de 10 % par e-mail ?\n1. Oui, merci\n2. Non merci"]
    offers = await phone.text("1")
    assert offers == ["Quelle est votre adresse e-mail ?"]
    after_email = await phone.text("marie@exemple.fr")
    assert after_email[0] == "C'est noté ! Votre code HIVER10 arrive à marie@exemple.fr."
    assert after_email[-1] == "Ça vous tente ?\n1. Je commande\n2. Un conseiller\n3. Plus tard"
    [done] = await phone.text("1")
    assert done.startswith("Parfait ! Finalisez votre commande ici : https://boutique.example/soldes/men")
    assert provider.requests == []          # TwiML mode: no API call at all

    # Twilio retries a webhook it did not see answered: the same MessageSid gets no second reply.
    again = await phone.text("Soldes", sid="SM-retried-0001")
    assert len(again) == 2
    assert await phone.text("Soldes", sid="SM-retried-0001") == []

    await gw.flush_events()
    events = await gw.store.list_events("demo", type="flow.ended")
    assert [e.data["outcome"] for e in events][:1] == ["converted"]


async def test_stop_help_start_over_twilio(gateway, demo_tenant, provider):
    gw = await gateway(tenants=[demo(demo_tenant, twilio_channel(api_base=provider.url))], public_url=PUBLIC)
    phone = Phone(gw)
    assert len(await phone.text("soldes")) == 2

    assert await phone.text("STOP") == [
        "Maison Lumière : vous ne recevrez plus de messages. Envoyez START pour vous réabonner."]
    assert await phone.text("soldes") == []                 # a stopped contact gets nothing
    assert await phone.text("2") == []
    [help_text] = await phone.text("AIDE")                  # HELP stays answered after STOP
    assert help_text.startswith("Maison Lumière : répondez à nos questions")
    assert await phone.text("START") == [
        "Maison Lumière : vous êtes de nouveau abonné(e). Envoyez STOP pour ne plus recevoir de messages."]
    assert len(await phone.text("soldes")) == 2

    await gw.flush_events()
    contact = await gw.store.get_contact("demo", "sms", PHONE)
    assert contact is not None
    ledger = await gw.store.consent_ledger("demo", contact.id)
    assert [(c.channel, c.status, c.source) for c in ledger] == [("sms", "optout", "STOP"), ("sms", "optin", "START")]


async def test_advanced_opt_out_is_not_confirmed_twice(gateway, demo_tenant, provider):
    gw = await gateway(tenants=[demo(demo_tenant, twilio_channel(api_base=provider.url))], public_url=PUBLIC)
    phone = Phone(gw)
    assert await phone.text("Unsubscribe", OptOutType="STOP") == []
    session = await gw.pipeline.state.load_session("demo", "sms", PHONE)
    assert session is not None and session.stopped


async def test_rest_mode_sends_through_the_api_and_reads_statuses(gateway, demo_tenant, provider):
    provider.default = lambda seen: (201, {"sid": f"SM{len(provider.requests):04d}", "status": "queued"})
    channel = twilio_channel(api_base=provider.url, reply_mode="rest",
                             status_callback=f"{PUBLIC}/t/demo/channels/sms")
    gw = await gateway(tenants=[demo(demo_tenant, channel)], public_url=PUBLIC)
    phone = Phone(gw)
    assert await phone.text("soldes") == []                 # empty TwiML: replies went through REST
    assert [s.path for s in provider.requests] == [f"/2010-04-01/Accounts/{SID}/Messages.json"] * 2
    forms = [dict(s.form) for s in provider.requests]
    assert forms[1] == {"To": PHONE, "From": "+33700000000",
                        "Body": "Pour qui cherchez-vous ?\n1. Femme\n2. Homme\n3. Enfant",
                        "StatusCallback": f"{PUBLIC}/t/demo/channels/sms"}
    expected = "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
    assert all(s.headers["Authorization"] == expected for s in provider.requests)

    status = [("MessageSid", "SM0002"), ("MessageStatus", "delivered"), ("SmsStatus", "delivered"),
              ("AccountSid", SID), ("From", "+33700000000"), ("To", PHONE)]
    assert (await phone.post(status))[0] == 200
    await gw.flush_events()
    [ev] = await gw.store.list_events("demo", type="message.status")
    assert ev.data == {"status": "delivered", "refers_to": "SM0002"}


async def test_provider_errors_are_retried_then_reported(gateway, demo_tenant, provider):
    channel = twilio_channel(api_base=provider.url, reply_mode="rest")
    gw = await gateway(tenants=[demo(demo_tenant, channel)], public_url=PUBLIC)
    phone = Phone(gw)
    # First reply: 500 then created. Second: unsubscribed at Twilio (21610) -> stopped.
    provider.answer(500, {"code": 20500, "message": "Internal Server Error"})
    provider.answer(201, {"sid": "SMok1"})
    provider.answer(400, {"code": 21610, "message": "Attempt to send to unsubscribed recipient"})
    assert await phone.text("soldes") == []
    assert len(provider.requests) == 3
    await gw.flush_events()
    sent = await gw.store.list_events("demo", type="message.out")
    stopped = await gw.store.list_events("demo", type="send.stopped")
    assert [e.data.get("provider_id") for e in sent] == ["SMok1"]
    assert [e.data["code"] for e in stopped] == ["21610"]
    session = await gw.pipeline.state.load_session("demo", "sms", PHONE)
    assert session is not None and session.stopped


async def test_bad_signatures_are_refused_and_change_nothing(gateway, demo_tenant, provider):
    gw = await gateway(tenants=[demo(demo_tenant, twilio_channel(api_base=provider.url))], public_url=PUBLIC)
    phone = Phone(gw)
    pairs = [("MessageSid", "SMbad"), ("From", PHONE), ("Body", "soldes")]
    assert (await phone.post(pairs, signature="AAAAAAAAAAAAAAAAAAAAAAAAAAA="))[0] == 403
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    async with gw.http.post(gw.url + phone.path, data=urlencode(pairs), headers=headers) as r:
        assert r.status == 403
    # Signed for the gateway's internal URL rather than the public one Twilio calls.
    internal = twilio_sign(gw.url + phone.path, pairs)
    assert (await phone.post(pairs, signature=internal))[0] == 403
    assert await gw.pipeline.state.load_session("demo", "sms", PHONE) is None
    assert provider.requests == []


def vonage_channel(provider, prefix: str) -> dict:
    """A Vonage instance whose API is `provider`, which accepts every SMS (ids `<prefix>0001`...)."""
    provider.default = lambda seen: (200, {"message-count": "1", "messages": [
        {"to": "33611223344", "message-id": f"{prefix}{len(provider.requests):04d}", "status": "0"}]})
    return {"id": "vonage", "type": "vonage", "settings": {
        "api_key": "e2ekey01", "api_secret": "e2e-vonage-api-secret", "signature_secret": VONAGE_SIG,
        "from_number": "+33700000000", "api_base": provider.url, "attempts": 2}}


def vonage_params(text: str, mid: str) -> dict[str, str]:
    p = {"msisdn": PHONE.lstrip("+"), "to": "33700000000", "messageId": mid, "text": text, "type": "unicode",
         "keyword": text.split()[0].upper() if text else "", "api-key": "e2ekey01",
         "message-timestamp": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()), "timestamp": str(int(time.time())),
         "nonce": f"n-{mid}"}
    data = "".join(f"&{k}={p[k].replace('&', '_').replace('=', '_')}" for k in sorted(p))
    p["sig"] = hmac.new(VONAGE_SIG.encode(), data.encode(), hashlib.sha256).hexdigest()
    return p


async def test_demo_flow_over_vonage(gateway, demo_tenant, provider):
    channel = vonage_channel(provider, "0A")
    gw = await gateway(tenants=[demo(demo_tenant, channel)])
    url = f"{gw.url}/t/demo/channels/vonage"

    async def text(body: str, mid: str) -> int:
        async with gw.http.post(url, json=vonage_params(body, mid)) as r:
            return r.status

    assert await text("soldes", "0C01") == 200
    assert await text("soldes", "0C01") == 200          # Vonage's retry: no second answer
    texts = [dict(s.form)["text"] for s in provider.requests]
    assert len(texts) == 2 and texts[1] == "Pour qui cherchez-vous ?\n1. Femme\n2. Homme\n3. Enfant"
    first = dict(provider.requests[0].form)
    assert first["type"] == "unicode" and first["to"] == "33611223344" and first["from"] == "33700000000"
    assert re.fullmatch(r".+:0:0", first["client-ref"])

    assert await text("1", "0C02") == 200
    assert dict(provider.requests[-1].form)["text"].startswith("Quel est votre budget ?\n1. Moins de 50 €")

    bad = vonage_params("soldes", "0C03")
    bad["sig"] = "0" * 64
    async with gw.http.post(url, json=bad) as r:
        assert r.status == 401
    assert len(provider.requests) == 3

    assert await text("STOP", "0C04") == 200
    assert dict(provider.requests[-1].form)["text"].startswith("Maison Lumière : vous ne recevrez plus")
    session = await gw.pipeline.state.load_session("demo", "vonage", PHONE)
    assert session is not None and session.stopped


async def test_a_vonage_message_id_is_remembered_while_its_signature_is_valid(gateway, demo_tenant, provider):
    # Vonage retries for 24 h (reference, Vonage) and a signed request is accepted for
    # `max_age`, 25 h: a replay that comes after the gateway's default 24 h must still be
    # recognised, or it would be answered twice.
    channel = vonage_channel(provider, "0D")
    gw = await gateway(tenants=[demo(demo_tenant, channel)])
    url = f"{gw.url}/t/demo/channels/vonage"
    signed = vonage_params("soldes", "0D01")
    async with gw.http.post(url, json=signed) as r:
        assert r.status == 200
    key = "cst:{demo}:d:vonage:0D01"
    ttl = await gw.redis.ttl(key)
    assert 25 * 3600 < ttl <= 26 * 3600
    await gw.redis.expire(key, ttl - (25 * 3600 - 60))          # 24 h 59 min later
    before = len(provider.requests)
    async with gw.http.post(url, json=signed) as r:             # the same signed request again
        assert r.status == 200
    assert before == 2 and len(provider.requests) == before    # answered once


async def test_vonage_long_sms_parts_on_two_processes_make_one_message(gateway, demo_tenant, provider):
    """Each part of a long SMS is its own webhook, and may reach another gateway process."""
    channel = vonage_channel(provider, "0B")
    one = await gateway(tenants=[demo(demo_tenant, channel)])
    two = await gateway()                                # same Redis and database, another process

    def part(text: str, mid: str, n: int) -> dict[str, str]:
        p = vonage_params(text, mid)
        p.update({"concat": "true", "concat-ref": "42", "concat-total": "2", "concat-part": str(n)})
        data = "".join(f"&{k}={p[k].replace('&', '_').replace('=', '_')}" for k in sorted(p) if k != "sig")
        p["sig"] = hmac.new(VONAGE_SIG.encode(), data.encode(), hashlib.sha256).hexdigest()
        return p

    async with one.http.post(f"{one.url}/t/demo/channels/vonage", json=part("sol", "0P01", 1)) as r:
        assert r.status == 200
    assert provider.requests == []                            # half a message: no answer yet
    async with two.http.post(f"{two.url}/t/demo/channels/vonage", json=part("des", "0P02", 2)) as r:
        assert r.status == 200
    texts = [dict(s.form)["text"] for s in provider.requests]
    assert len(texts) == 2 and texts[1].startswith("Pour qui cherchez-vous ?")   # "soldes" started it
    assert await one.redis.keys("cst:{demo}:vonage:*") == []
