"""The plugin as the gateway loads it: entry point, registrations, settings schemas, and
settings the admin API refuses because they could never send."""
from __future__ import annotations

import msgspec
import pytest

import causette_sms
from causette_sms import TwilioChannel, VonageChannel
from gateway.plugins import PluginHost


def test_installed_and_listed():
    host = PluginHost()
    assert host.channels["twilio"] is TwilioChannel and host.channels["vonage"] is VonageChannel
    assert host.owner("channel", "twilio") == host.owner("channel", "vonage") == "sms"
    info = {p.name: p for p in host.plugins}["sms"]
    assert info.dist == "causette-sms"
    assert info.registers == {"channel": ["twilio", "vonage"]}
    assert set(info.hooks) == {"register_channels", "inbound_message"}
    # the tenant's plugin settings (consent texts) are the module's Settings
    assert host.settings_types["sms"] is causette_sms.Settings


def test_settings_schemas_list_the_secret_fields():
    for cls, required in ((TwilioChannel, ["account_sid", "auth_token"]),
                          (VonageChannel, ["api_key", "api_secret", "signature_secret"])):
        schema = msgspec.json.schema(cls.Settings)
        [body] = schema["$defs"].values()
        assert set(cls.secrets) <= set(body["properties"])
        assert sorted(body["required"]) == required
        assert "api_base" in body["properties"]
    plugin = msgspec.json.schema(causette_sms.Settings)
    assert not next(iter(plugin["$defs"].values())).get("required")   # every text has a default


# --- settings that can never send, over the real admin API --------------------------------------
TWILIO = {"account_sid": "AC0123456789abcdef0123456789abcdef", "auth_token": "tw-settings-token"}
VONAGE = {"api_key": "abcd1234", "api_secret": "vonage-api-secret", "signature_secret": "vonage-sig-secret"}
NO_TWILIO_SENDER = 'reply_mode "rest" needs `from_number` (the sender, E.164) or `messaging_service_sid` (MG…)'
REST = {**TWILIO, "reply_mode": "rest"}

SETTINGS = [
    ("twilio in rest mode without a sender", "twilio", REST, NO_TWILIO_SENDER),
    ("twilio in rest mode with blank senders", "twilio",
     {**REST, "from_number": " ", "messaging_service_sid": ""}, NO_TWILIO_SENDER),
    # TwiML answers go from the number written to: accepted (its API sends fail, said the doc)
    ("twilio in twiml mode without a sender", "twilio", {**TWILIO, "reply_mode": "twiml"}, None),
    ("twilio with a number", "twilio", {**REST, "from_number": "+33700000000"}, None),
    ("twilio with a Messaging Service", "twilio",
     {**REST, "messaging_service_sid": "MG0123456789abcdef0123456789abcdef"}, None),
    # a receive-only Vonage number: accepted, its sends fail with code config (below)
    ("vonage without a sender", "vonage", VONAGE, None),
    ("vonage with a number", "vonage", {**VONAGE, "from_number": "+33700000000"}, None),
    ("vonage with an alphanumeric sender", "vonage", {**VONAGE, "from_number": "MLumiere"}, None),
]


async def admin(gw, method: str, path: str, body=None):
    status, _, got = await gw.admin(method, path, body)
    return status, got


@pytest.mark.parametrize("label,type_,settings,problem", SETTINGS, ids=[c[0] for c in SETTINGS])
async def test_the_admin_api_refuses_a_channel_that_could_never_send(gateway, demo_tenant, label, type_,
                                                                      settings, problem):
    gw = await gateway(tenants=[demo_tenant])
    status, body = await admin(gw, "POST", "/tenants/demo/channels",
                               {"id": "sms", "type": type_, "settings": settings})
    if problem is None:
        assert status == 201, body
        return
    assert status == 422 and body["code"] == "validation"
    assert body["errors"] == [{"path": "$.settings", "code": "invalid", "message": problem,
                               "severity": "error"}]
    assert (await admin(gw, "GET", "/tenants/demo/channels/sms"))[0] == 404


async def test_an_update_that_drops_the_sender_is_refused_and_changes_nothing(gateway, demo_tenant):
    gw = await gateway(tenants=[demo_tenant])
    channel = {"id": "sms", "type": "twilio", "settings": {**REST, "from_number": "+33700000000"}}
    assert (await admin(gw, "POST", "/tenants/demo/channels", channel))[0] == 201
    _, before = await admin(gw, "GET", "/tenants/demo/channels/sms")
    status, body = await admin(gw, "PUT", "/tenants/demo/channels/sms",
                               {"type": "twilio", "settings": {**REST, "from_number": ""}})
    assert status == 422 and [(e["path"], e["code"]) for e in body["errors"]] == [("$.settings", "invalid")]
    assert (await admin(gw, "GET", "/tenants/demo/channels/sms"))[1] == before
