"""The plugin as the gateway loads it: entry point, registrations, settings schema, CLI."""
from __future__ import annotations

import msgspec

from causette_telegram import TelegramChannel
from causette_telegram.admin import main
from gateway.plugins import PluginHost


def test_installed_and_listed():
    host = PluginHost()
    assert host.channels["telegram"] is TelegramChannel
    assert host.owner("channel", "telegram") == "telegram"
    info = {p.name: p for p in host.plugins}["telegram"]
    assert info.dist == "causette-telegram" and info.registers == {"channel": ["telegram"]}
    assert host.settings_types["telegram"] is None


def test_settings_schema_lists_the_secret_fields():
    schema = msgspec.json.schema(TelegramChannel.Settings)
    [body] = schema["$defs"].values()
    assert set(TelegramChannel.secrets) <= set(body["properties"])
    assert sorted(body["required"]) == ["secret_token", "token"]


def test_cli_wants_the_token_from_the_environment(monkeypatch, capsys):
    monkeypatch.delenv("TELEGRAM_BOT_TOKEN", raising=False)
    assert main(["webhook-info"]) == 2
    assert "TELEGRAM_BOT_TOKEN" in capsys.readouterr().err
