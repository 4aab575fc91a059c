"""The apple plugin as the gateway loads it: entry point, registrations, settings schema."""
from __future__ import annotations

import msgspec
from causette_apple.channel import AppleChannel

from gateway.plugins import PluginHost


def test_apple_installed_and_listed():
    host = PluginHost()
    assert host.channels["apple"] is AppleChannel
    assert host.owner("channel", "apple") == "apple"
    info = {p.name: p for p in host.plugins}["apple"]
    assert info.dist == "causette-apple" and info.registers == {"channel": ["apple"]}
    # channel settings are per instance (validated by the channel), not plugin settings
    assert host.settings_types["apple"] is None


def test_apple_settings_schema_lists_the_secret_fields():
    schema = msgspec.json.schema(AppleChannel.Settings)
    props = schema["$defs"]["Settings"]["properties"]
    assert set(AppleChannel.secrets) <= set(props) and "api_base" in props
