"""Settings from the environment: every variable README.md lists reaches its setting, and a
value that doesn't read stops the CLI with the variable named."""
import pytest

from gateway import cli
from gateway.settings import ENV, Settings, SettingsError

# variable -> (value set, what the setting reads)
EVERY = {
    "CAUSETTE_HOST": ("0.0.0.0", "0.0.0.0"), "CAUSETTE_PORT": ("8181", 8181),
    "CAUSETTE_DATA": ("/srv/causette", "/srv/causette"), "REDIS_URL": ("redis://r:6379/2", "redis://r:6379/2"),
    "CAUSETTE_DATABASE": ("/srv/c.db", "/srv/c.db"), "CAUSETTE_SECRET": (" s3cret\n", " s3cret\n"),
    "CAUSETTE_PUBLIC_URL": ("https://bots.example.com/", "https://bots.example.com"),
    "CAUSETTE_MAX_BODY": ("2048", 2048), "CAUSETTE_PLUGIN_TIMEOUT": ("2.5", 2.5),
    "CAUSETTE_LOCK_TTL": ("12", 12.0), "CAUSETTE_LOCK_WAIT": ("7", 7.0),
    "CAUSETTE_DEDUP_TTL": ("3600", 3600), "CAUSETTE_EVENTS_MAXLEN": ("5000", 5000),
    "CAUSETTE_FLUSH_INTERVAL": ("0.2", 0.2), "CAUSETTE_TIMER_INTERVAL": ("1", 1.0),
    "CAUSETTE_EVENTS_NICE": ("0", 0), "CAUSETTE_HUGEPAGES": ("off", False),
}


@pytest.fixture
def clean(monkeypatch):
    for variables in ENV.values():
        for var in variables:
            monkeypatch.delenv(var, raising=False)
    return monkeypatch


def test_each_variable_sets_its_setting(clean):
    assert {v for vs in ENV.values() for v in vs} == set(EVERY) | {"PORT"}
    for var, (value, _) in EVERY.items():
        clean.setenv(var, value)
    s = Settings.from_env()
    for name, variables in ENV.items():
        if variables[0] in EVERY:
            assert getattr(s, name) == EVERY[variables[0]][1], name
    assert s.secret == " s3cret\n"          # exactly as set: it derives the secrets' key


def test_port_falls_back_to_the_platforms_and_blanks_count_as_unset(clean):
    clean.setenv("PORT", "9000")
    assert Settings.from_env().port == 9000
    clean.setenv("CAUSETTE_PORT", "  ")
    clean.setenv("CAUSETTE_LOCK_TTL", "")
    s = Settings.from_env()
    assert (s.port, s.lock_ttl) == (9000, 30.0)
    clean.setenv("CAUSETTE_PORT", "8181")
    assert Settings.from_env().port == 8181


def test_every_variable_is_documented():
    readme = open("README.md", encoding="utf-8").read()
    assert [v for vs in ENV.values() for v in vs if f"`{v}`" not in readme] == []


@pytest.mark.parametrize("var, value, says", [
    ("CAUSETTE_PORT", "abc", "expected an integer"),
    ("CAUSETTE_PORT", "70000", "from 1 to 65,535"),
    ("CAUSETTE_PLUGIN_TIMEOUT", "0", "from 0.001"),
    ("CAUSETTE_LOCK_TTL", "0.0004", "from 0.01"),
    ("CAUSETTE_LOCK_TTL", "inf", "from 0.01"),
    ("CAUSETTE_DEDUP_TTL", "1e17", "expected an integer"),
    ("CAUSETTE_LOCK_WAIT", "nan", "from 0.001"),
    ("CAUSETTE_HUGEPAGES", "maybe", "expected one of"),
])
def test_a_value_that_does_not_read_is_refused_by_name(clean, capsys, var, value, says):
    clean.setenv(var, value)
    with pytest.raises(SettingsError, match=says):
        Settings.from_env()
    # `tenants apply` of a path that isn't there: were the check gone, a quick error, no server
    assert cli.main(["tenants", "apply", "/nonexistent/tenants"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"causette: {var}={value!r}") and says in err


def test_an_unknown_log_level_is_refused_by_name(clean, capsys):
    clean.setenv("CAUSETTE_LOG", "verbose")
    assert cli.main(["tenants", "apply", "/nonexistent/tenants"]) == 2
    assert capsys.readouterr().err.startswith("causette: CAUSETTE_LOG='VERBOSE'")


def test_plugins_that_cannot_work_together_stop_the_cli_with_one_line(clean, capsys):
    # Two installed distributions registering one step: what PluginHost raises (its own tests
    # cover when), and what the command line makes of it.
    import gateway.plugins as plugins

    def conflicting(*a, **kw):
        raise plugins.PluginError("step 'loyalty.points' registered by both paloyalty and paorder")
    clean.setattr(plugins, "PluginHost", conflicting)
    assert cli.main(["plugins"]) == 2
    err = capsys.readouterr().err
    assert err == "causette: step 'loyalty.points' registered by both paloyalty and paorder\n"
