"""The plugin as the gateway loads it: entry point, registrations, and the handoff hooks run
through the plugin host's chain runner against a fake Graph API."""
from __future__ import annotations

import aiohttp
import pytest
from causette_messenger.channel import PAGE_INBOX_APP_ID, MessengerChannel

from gateway.config import ChannelConfig, TenantSnapshot
from gateway.conformance import FakeProvider
from gateway.flows import Context
from gateway.plugins import PluginHost
from gateway.types import Reply, Session

PSID = "6789012345678901"


@pytest.fixture(scope="module")
def host():
    return PluginHost()


def test_installed_and_listed(host):
    assert host.channels["messenger"] is MessengerChannel
    assert host.owner("channel", "messenger") == "messenger"
    info = {p.name: p for p in host.plugins}["messenger"]
    assert info.dist == "causette-messenger"
    assert {"register_channels", "handoff_requested", "handoff_released"} <= set(info.hooks)
    # channel settings are per instance, not plugin settings
    assert host.settings_types["messenger"] is None


def snapshot(api_base: str, **kw) -> TenantSnapshot:
    settings = {"page_id": "104293835684410", "page_access_token": "EAAB-hook-token",
                "app_secret": "s" * 12, "api_base": api_base, "attempts": 1, **kw}
    return TenantSnapshot(slug="demo", name="Demo", plugins={"messenger": {}},
                          channels=[ChannelConfig(id="fb", type="messenger", settings=settings),
                                    ChannelConfig(id="wa", type="whatsapp", settings={})])


def ctx(snap: TenantSnapshot, http, channel="fb", channel_type="messenger") -> Context:
    return Context(tenant="demo", channel=channel, channel_type=channel_type, contact=PSID,
                   session=Session(), http=http, tenant_config=snap)


async def test_handoff_hooks_pass_and_take_the_thread(host):
    async with FakeProvider(default=lambda r: (200, {"success": True})) as fake, \
            aiohttp.ClientSession() as http:
        c = ctx(snapshot(fake.url), http)
        enabled = frozenset({"messenger"})
        await host.call_each("handoff_requested", "demo", enabled, ctx=c,
                             handoff={"queue": "sales", "reason": "soldes"})
        await host.call_each("handoff_released", "demo", enabled, ctx=c,
                             handoff={"queue": "sales", "agent": "lea"})
        assert [(r.path, r.json()) for r in fake.requests] == [
            ("/v21.0/104293835684410/pass_thread_control",
             {"recipient": {"id": PSID}, "target_app_id": int(PAGE_INBOX_APP_ID),
              "metadata": '{"queue": "sales", "reason": "soldes"}'}),
            ("/v21.0/104293835684410/take_thread_control",
             {"recipient": {"id": PSID}, "metadata": '{"agent": "lea"}'})]
        assert [e.type for e in c.events] == ["handover.passed", "handover.taken"]


async def test_handoff_refused_by_meta_is_recorded(host):
    err = {"error": {"message": "(#10) app is not a secondary receiver", "code": 10, "error_subcode": 2018300}}
    async with FakeProvider(default=lambda r: (400, err)) as fake, aiohttp.ClientSession() as http:
        c = ctx(snapshot(fake.url), http)
        await host.call_each("handoff_requested", "demo", frozenset({"messenger"}), ctx=c,
                             handoff={"queue": "sales"})
        [ev] = c.events
        assert (ev.type, ev.data["code"]) == ("handover.failed", "10.2018300")


@pytest.mark.parametrize("label,kw,channel,channel_type,enabled", [
    ("another channel type", {}, "wa", "whatsapp", {"messenger"}),
    ("handover switched off for the instance", {"handover_app_id": ""}, "fb", "messenger", {"messenger"}),
    ("plugin not enabled by the tenant", {}, "fb", "messenger", set()),
])
async def test_handoff_hooks_stay_out_of_the_way(host, label, kw, channel, channel_type, enabled):
    async with FakeProvider() as fake, aiohttp.ClientSession() as http:
        c = ctx(snapshot(fake.url, **kw), http, channel, channel_type)
        await host.call_each("handoff_requested", "demo", frozenset(enabled), ctx=c, handoff={"queue": "q"})
        assert fake.requests == [] and c.events == []


@pytest.mark.parametrize("label,hours_ago,kw,reply,tag", [
    ("agent reply after 30 h: tagged", 30, {}, Reply(text="Bonjour", from_agent="lea"), "HUMAN_AGENT"),
    ("agent reply within 24 h: untouched", 2, {}, Reply(text="Bonjour", from_agent="lea"), None),
    ("agent reply after 8 days: untouched (held by the gateway)", 8 * 24, {},
     Reply(text="Bonjour", from_agent="lea"), None),
    ("bot reply after 30 h: untouched", 30, {}, Reply(text="Bonjour"), None),
    ("a tag already set is kept", 30, {}, Reply(text="x", from_agent="lea", tag="POST_PURCHASE_UPDATE"), None),
    ("switched off for the instance", 30, {"human_agent_tag": False}, Reply(text="x", from_agent="lea"), None),
])
async def test_agent_replies_get_the_human_agent_tag(host, label, hours_ago, kw, reply, tag):
    c = ctx(snapshot("http://127.0.0.1:9", **kw), None)
    c.session.last_in = c.now - hours_ago * 3600
    [res] = await host.call_each("outbound_message", "demo", frozenset({"messenger"}), ctx=c, reply=reply)
    if tag is None:
        assert res is None
    else:
        assert res == Reply(text=reply.text, from_agent=reply.from_agent, tag=tag)
