"""The plugin as the gateway loads it: entry point, registrations, settings schemas."""
from __future__ import annotations

import msgspec

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
