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


def test_cli_says_in_one_line_when_telegram_cannot_be_reached(monkeypatch, capsys):
    import socket
    with socket.socket() as s:           # a local port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123:SECRET")
    code = main(["--api-base", f"http://127.0.0.1:{port}", "set-webhook",
                 "--url", "https://chat.example.com/t/acme/channels/tg", "--secret", "s"])
    out, err = capsys.readouterr()
    assert code == 1 and out == ""
    assert err.startswith(f"causette-telegram: set-webhook failed (http://127.0.0.1:{port}): ")
    assert err.count("\n") == 1 and "Traceback" not in err and "SECRET" not in err
