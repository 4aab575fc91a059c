"""Settings from the environment: every variable README.md lists reaches its setting, and a
value that doesn't read stops the CLI with the variable named."""
import pytest

from gateway import cli
from gateway.settings import ENV, Settings, SettingsError


def test_each_variable_sets_its_setting(monkeypatch):
    for name in ENV:
        for var in ENV[name]:
            monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CAUSETTE_PLUGIN_TIMEOUT", "2.5")
    monkeypatch.setenv("CAUSETTE_LOCK_TTL", "12")
    monkeypatch.setenv("PORT", "9000")                     # the platform's, when ours is unset
    monkeypatch.setenv("CAUSETTE_HUGEPAGES", "off")
    monkeypatch.setenv("CAUSETTE_PUBLIC_URL", "https://bots.example.com/")
    s = Settings.from_env()
    assert (s.plugin_timeout, s.lock_ttl, s.port, s.hugepages) == (2.5, 12.0, 9000, False)
    assert s.public_url == "https://bots.example.com"
    monkeypatch.setenv("CAUSETTE_PORT", "8181")            # ours wins over PORT
    assert Settings.from_env().port == 8181


def test_every_variable_is_documented():
    readme = open("README.md", encoding="utf-8").read()
    assert [v for vs in ENV.values() for v in vs if f"`{v}`" not in readme and v != "PORT"] == []


@pytest.mark.parametrize("var, value, says", [
    ("CAUSETTE_PORT", "abc", "expected an integer"),
    ("CAUSETTE_PLUGIN_TIMEOUT", "0", "above 0"),
    ("CAUSETTE_LOCK_TTL", "inf", "finite"),
    ("CAUSETTE_LOCK_WAIT", "nan", "finite"),
    ("CAUSETTE_HUGEPAGES", "maybe", "expected one of"),
])
def test_a_value_that_does_not_read_is_refused_by_name(monkeypatch, capsys, var, value, says):
    monkeypatch.setenv(var, value)
    with pytest.raises(SettingsError, match=says):
        Settings.from_env()
    assert cli.main(["serve"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"causette: {var}={value!r}") and says in err
