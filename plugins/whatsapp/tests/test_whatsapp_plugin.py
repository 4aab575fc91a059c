"""The plugin as the gateway loads it: entry point and registrations."""
from __future__ import annotations

import msgspec
from causette_whatsapp.channel import WhatsAppChannel

from gateway.plugins import PluginHost


def test_installed_and_listed():
    host = PluginHost()
    assert host.channels["whatsapp"] is WhatsAppChannel
    assert host.owner("channel", "whatsapp") == "whatsapp"
    info = {p.name: p for p in host.plugins}["whatsapp"]
    assert info.dist == "causette-whatsapp" and info.registers == {"channel": ["whatsapp"]}
    # channel settings are per instance (validated by the channel), not plugin settings
    assert host.settings_types["whatsapp"] is None


def test_settings_schema_lists_the_secret_fields():
    schema = msgspec.json.schema(WhatsAppChannel.Settings)
    props = schema["$defs"]["Settings"]["properties"]
    assert set(WhatsAppChannel.secrets) <= set(props)
    assert schema["$defs"]["Settings"]["required"] == ["phone_number_id"]
