"""The rcs plugin as the gateway loads it: entry point, registrations, settings schema."""
from __future__ import annotations

import msgspec
from causette_rcs.channel import RCSChannel

from gateway.plugins import PluginHost


def test_rcs_installed_and_listed():
    host = PluginHost()
    assert host.channels["rcs"] is RCSChannel
    assert host.owner("channel", "rcs") == "rcs"
    info = {p.name: p for p in host.plugins}["rcs"]
    assert info.dist == "causette-rcs" and info.registers == {"channel": ["rcs"]}
    # channel settings are per instance (validated by the channel), not plugin settings
    assert host.settings_types["rcs"] is None


def test_rcs_settings_schema_lists_the_secret_fields():
    schema = msgspec.json.schema(RCSChannel.Settings)
    props = schema["$defs"]["Settings"]["properties"]
    assert set(RCSChannel.secrets) <= set(props) and "api_base" in props
