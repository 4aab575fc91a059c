"""The wechat plugin as the gateway loads it: entry point, registrations, settings schema."""
from __future__ import annotations

import msgspec
from causette_wechat.channel import WeChatChannel

from gateway.plugins import PluginHost


def test_wechat_installed_and_listed():
    host = PluginHost()
    assert host.channels["wechat"] is WeChatChannel
    assert host.owner("channel", "wechat") == "wechat"
    info = {p.name: p for p in host.plugins}["wechat"]
    assert info.dist == "causette-wechat" and info.registers == {"channel": ["wechat"]}
    # channel settings are per instance (validated by the channel), not plugin settings
    assert host.settings_types["wechat"] is None


def test_wechat_settings_schema_lists_the_secret_fields():
    schema = msgspec.json.schema(WeChatChannel.Settings)
    props = schema["$defs"]["Settings"]["properties"]
    assert set(WeChatChannel.secrets) <= set(props) and "api_base" in props
