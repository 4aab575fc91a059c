"""Messenger inbound with a valid signature but odd content: app ids sent as numbers still
hand the conversation back to the bot; messages without a mid are not all one duplicate."""
from __future__ import annotations

import json

import pytest
from causette_messenger.channel import PAGE_INBOX_APP_ID, MessengerChannel, Settings

from gateway.channels import sha256_signature as signature
from gateway.conformance import FakeProvider, make_webhook

SECRET = "robust-app-secret"
PAGE = "104293835684410"
PSID = "6789012345678901"
BOT_APP = "263902037430900"


def channel() -> MessengerChannel:
    return MessengerChannel("demo", "fb", Settings(page_id=PAGE, app_secret=SECRET, app_id=BOT_APP))


def body(*events) -> bytes:
    return json.dumps({"object": "page", "entry": [{"id": PAGE, "time": 1764147600500, "messaging": [
        {"sender": {"id": PSID}, "recipient": {"id": PAGE}, "timestamp": 1764147600123 + i, **e}
        for i, e in enumerate(events)]}]}).encode()


def hook(raw: bytes):
    return make_webhook(body=raw, headers={"Content-Type": "application/json",
                                           "X-Hub-Signature-256": signature(SECRET, raw)})


@pytest.mark.parametrize("app_id", [int(BOT_APP), BOT_APP])
def test_pass_thread_control_to_our_app_is_a_handback_whatever_the_id_type(app_id):
    [msg] = channel().parse(hook(body({"pass_thread_control": {
        "new_owner_app_id": app_id, "previous_owner_app_id": int(PAGE_INBOX_APP_ID), "metadata": "done"}})))
    assert (msg.kind, msg.status, msg.payload) == ("status", "handback", BOT_APP)


def test_pass_thread_control_to_another_app_is_not_a_handback():
    [msg] = channel().parse(hook(body({"pass_thread_control": {"new_owner_app_id": 1517776481860111}})))
    assert msg.status == "pass_thread_control"


def test_messages_without_mid_get_distinct_ids():
    msgs = channel().parse(hook(body({"message": {"text": "un"}}, {"message": {"mid": "", "text": "deux"}})))
    ids = [m.native_id for m in msgs]
    assert all(ids) and len(set(ids)) == 2
    assert ids == [f"message:{PSID}:1764147600123", f"message:{PSID}:1764147600124"]
    # the same webhook again (Meta's retry) gives the same ids: deduplication still works
    assert [m.native_id for m in channel().parse(hook(body({"message": {"text": "un"}})))] == ids[:1]


# --- through the whole gateway -------------------------------------------------------------
@pytest.fixture
async def graph():
    def ok(request):
        if request.path.endswith("_thread_control"):
            return 200, {"success": True}
        return 200, {"recipient_id": PSID, "message_id": "m_out"}

    async with FakeProvider(default=ok) as fake:
        yield fake


def with_messenger(tenant: dict, graph: FakeProvider) -> dict:
    tenant["channels"].append({"id": "fb", "type": "messenger", "settings": {
        "page_id": PAGE, "page_access_token": "EAAB-robust-token", "app_secret": SECRET,
        "app_id": BOT_APP, "api_base": graph.url, "attempts": 2}})
    tenant["plugins"]["messenger"] = {}
    return tenant


async def post(gw, raw: bytes) -> int:
    async with gw.http.post(f"{gw.url}/t/demo/channels/fb", data=raw, headers={
            "Content-Type": "application/json", "X-Hub-Signature-256": signature(SECRET, raw)}) as r:
        return r.status


async def test_numeric_app_id_gives_the_conversation_back(gateway, demo_tenant, graph):
    gw = await gateway(tenants=[with_messenger(demo_tenant, graph)])
    rt = await gw.registry.get("demo")
    await gw.pipeline.agent(rt, rt.channels["fb"], PSID, action="takeover", agent="ana")
    await gw.pipeline.drain()
    assert (await gw.pipeline.state.load_session("demo", "fb", PSID)).human != ""
    back = {"pass_thread_control": {"new_owner_app_id": int(BOT_APP),
                                    "previous_owner_app_id": int(PAGE_INBOX_APP_ID), "metadata": "done"}}
    assert await post(gw, body(back)) == 200
    assert (await gw.pipeline.state.load_session("demo", "fb", PSID)).human == ""


async def test_messages_without_mid_are_each_answered(gateway, demo_tenant, graph):
    gw = await gateway(tenants=[with_messenger(demo_tenant, graph)])
    assert await post(gw, body({"message": {"text": "soldes"}})) == 200
    await gw.pipeline.drain()
    first = await gw.pipeline.state.load_session("demo", "fb", PSID)
    sent = len(graph.requests)
    raw = json.loads(body({"message": {"text": "1"}}))
    raw["entry"][0]["messaging"][0]["timestamp"] += 5000        # another message, later, no mid
    assert await post(gw, json.dumps(raw).encode()) == 200
    await gw.pipeline.drain()
    second = await gw.pipeline.state.load_session("demo", "fb", PSID)
    assert second.msgs > first.msgs and len(graph.requests) > sent   # taken, and answered


async def test_a_timestamp_too_large_for_a_float_is_refused_as_unreadable(gateway, demo_tenant, graph):
    gw = await gateway(tenants=[with_messenger(demo_tenant, graph)])
    raw = json.loads(body({"message": {"mid": "m_huge", "text": "soldes"}}))
    raw["entry"][0]["messaging"][0]["timestamp"] = 10 ** 400     # was OverflowError: a 500
    assert await post(gw, json.dumps(raw).encode()) == 400
    assert await gw.pipeline.state.load_session("demo", "fb", PSID) is None and graph.requests == []
