"""WhatsApp inbound with a valid signature but odd content. One odd timestamp used to refuse
the whole batch (400: every contact's message in it retried, then dropped by Meta);
timestamps like "nan" or "1e400" became NaN / infinity; an empty id made every such message
a duplicate of the first; a message without `from` ran a conversation with nobody."""
from __future__ import annotations

import json
import math

import pytest
from causette_whatsapp.channel import Settings, WhatsAppChannel

from gateway.channels import sha256_signature as signature
from gateway.conformance import FakeProvider, make_webhook

SECRET = "robust-app-secret"
PNID = "106540352242922"
ANA, BEN = "33612345678", "33698765432"


def channel() -> WhatsAppChannel:
    return WhatsAppChannel("demo", "wa", Settings(phone_number_id=PNID, app_secret=SECRET))


def body(*messages, statuses=(), contacts=None) -> bytes:
    value = {"messaging_product": "whatsapp", "metadata": {"phone_number_id": PNID},
             "contacts": contacts if contacts is not None else [{"profile": {"name": "Ana"}, "wa_id": ANA}],
             "messages": list(messages), "statuses": list(statuses)}
    return json.dumps({"object": "whatsapp_business_account", "entry": [
        {"id": "1022", "changes": [{"field": "messages", "value": value}]}]}).encode()


def text(mid, t, sender=ANA, ts="1764147600"):
    return {"from": sender, "id": mid, "timestamp": ts, "type": "text", "text": {"body": t}}


def hook(raw: bytes):
    return make_webhook(body=raw, headers={"Content-Type": "application/json",
                                           "X-Hub-Signature-256": signature(SECRET, raw)})


@pytest.mark.parametrize("ts", ["abc", "", "nan", "inf", "-inf", "1e400", "12:00"])
def test_an_odd_timestamp_does_not_refuse_the_batch(ts):
    msgs = channel().parse(hook(body(text("wamid.1", "hi", ts=ts), text("wamid.2", "hello", sender=BEN),
                                     statuses=[{"id": "wamid.o", "status": "read", "timestamp": ts,
                                                "recipient_id": ANA}])))
    assert [(m.native_id, m.contact) for m in msgs] == [("wamid.1", ANA), ("wamid.2", BEN),
                                                       ("wamid.o:read", ANA)]
    assert msgs[0].ts == 0.0 and msgs[2].ts == 0.0 and msgs[1].ts == 1764147600.0
    assert all(math.isfinite(m.ts) for m in msgs)


def test_a_numeric_timestamp_is_read():
    [m] = channel().parse(hook(body(text("wamid.1", "hi", ts=1764147600))))
    assert m.ts == 1764147600.0
    [m] = channel().parse(hook(body(text("wamid.2", "hi", ts=10 ** 400))))   # float() overflows
    assert m.ts == 0.0


def test_empty_ids_do_not_make_duplicates():
    msgs = channel().parse(hook(body(text("", "un"), text("", "deux", sender=BEN),
                                     text("", "trois", ts="1764147601"))))
    ids = [m.native_id for m in msgs]
    assert all(ids) and len(set(ids)) == 3


def test_a_message_without_from_is_filed_under_the_one_contact_or_skipped():
    [m] = channel().parse(hook(body(text("wamid.1", "hi", sender=""))))
    assert m.contact == ANA
    two = [{"wa_id": ANA}, {"wa_id": BEN}]
    assert channel().parse(hook(body(text("wamid.2", "hi", sender=""), contacts=two))) == []
    assert channel().parse(hook(body(text("wamid.3", "hi", sender=""), contacts=[]))) == []


def test_a_stop_status_without_recipient_is_no_optout():
    st = {"id": "wamid.o", "status": "failed", "timestamp": "1", "recipient_id": "",
          "errors": [{"code": 131050, "title": "stopped"}]}
    assert [m.kind for m in channel().parse(hook(body(statuses=[st])))] == ["status"]
    st["recipient_id"] = ANA
    assert [m.kind for m in channel().parse(hook(body(statuses=[st])))] == ["status", "optout"]


# --- through the whole gateway -------------------------------------------------------------
@pytest.fixture
async def graph():
    def ok(request):
        return 200, {"messaging_product": "whatsapp", "messages": [{"id": "wamid.out"}]}

    async with FakeProvider(default=ok) as fake:
        yield fake


def with_whatsapp(tenant: dict, graph: FakeProvider) -> dict:
    tenant["channels"].append({"id": "wa", "type": "whatsapp", "settings": {
        "phone_number_id": PNID, "access_token": "EAAG-robust-token", "app_secret": SECRET,
        "api_base": graph.url, "attempts": 2}})
    tenant["plugins"]["whatsapp"] = {}
    return tenant


async def test_batch_with_one_odd_timestamp_is_taken_whole(gateway, demo_tenant, graph):
    gw = await gateway(tenants=[with_whatsapp(demo_tenant, graph)])
    raw = body(text("wamid.a", "soldes", ts="not-a-time"), text("wamid.b", "soldes", sender=BEN))
    async with gw.http.post(f"{gw.url}/t/demo/channels/wa", data=raw, headers={
            "Content-Type": "application/json", "X-Hub-Signature-256": signature(SECRET, raw)}) as r:
        assert r.status == 200
    await gw.pipeline.drain()
    for contact in (ANA, BEN):
        session = await gw.pipeline.state.load_session("demo", "wa", contact)
        assert session is not None and session.msgs > 0
    assert {r.json()["to"] for r in graph.requests} == {ANA, BEN}
