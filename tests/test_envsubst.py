"""`${VAR}` in tenant files, expanded by `causette tenants apply` from its environment."""
import json
import os
import subprocess
import sys
from pathlib import Path

from gateway.envsubst import expand

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "gateway.cli"]


def test_references_defaults_and_escapes():
    env = {"TOKEN": "t0k", "EMPTY": "", "PORT": "9000"}
    out, problems = expand({"a": "http://h:${PORT:-8080}/x", "b": ["${TOKEN}", "$${TOKEN}",
                            "${EMPTY}", "${EMPTY:-d}", "${MISSING:-}", "cost $5 ${TOKEN}$"],
                            "${TOKEN}": 3, "n": 8080}, env)
    assert out == {"a": "http://h:9000/x", "b": ["t0k", "${TOKEN}", "", "d", "", "cost $5 t0k$"],
                   "${TOKEN}": 3, "n": 8080}             # keys and non-strings as written
    assert problems == []


def test_unset_and_malformed_references_are_problems_with_their_paths():
    _, problems = expand({"channels": [{"settings": {"token": "${WA_TOKEN}"}}],
                          "odd key": ["${not a name}", "${open"]}, {})
    assert [(p.path, p.code) for p in problems] == [
        ("$.channels[0].settings.token", "env.unset"),
        ('$["odd key"][0]', "env.syntax"), ('$["odd key"][1]', "env.syntax")]
    assert "WA_TOKEN" in problems[0].message


def run(args, tmp_path, redis_url, **env):
    full = dict(os.environ, CAUSETTE_DATA=str(tmp_path / "var"), REDIS_URL=redis_url, **env)
    return subprocess.run(CLI + args, capture_output=True, text=True, env=full, cwd=ROOT, timeout=120)


def test_apply_takes_values_from_its_environment_and_writes_nothing_when_one_is_missing(
        tmp_path, redis_url):
    f = tmp_path / "acme.json"
    f.write_text(json.dumps({"slug": "acme", "name": "Acme", "plugins": {
        "http": {"allowed_hosts": ["api.acme.test:${ACME_PORT:-443}"]}},
        "channels": [{"id": "hook", "type": "webhook", "settings": {"secret": "${ACME_SECRET}"}}]}))
    bad = run(["tenants", "apply", str(f)], tmp_path, redis_url)
    assert bad.returncode != 0
    assert "acme.json:$.channels[0].settings.secret" in bad.stderr + bad.stdout
    assert "ACME_SECRET" in bad.stderr + bad.stdout
    ok = run(["tenants", "apply", str(f)], tmp_path, redis_url, ACME_SECRET="s3cret-from-env", ACME_PORT="8443")
    assert ok.returncode == 0, ok.stderr
    check = subprocess.run(
        [sys.executable, "-c", "import asyncio, json, sys\n"
         "from gateway.settings import Settings\n"
         "from gateway.store.sqlite import Store\n"
         "async def main():\n"
         "    s = Settings.from_env(); st = await Store.open(s.db_path, s.secret_bytes())\n"
         "    snap = await st.tenant_snapshot('acme')\n"
         "    print(json.dumps([snap.plugins['http']['allowed_hosts'], snap.channels[0].settings['secret']]))\n"
         "    await st.close()\n"
         "asyncio.run(main())"],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
        env=dict(os.environ, CAUSETTE_DATA=str(tmp_path / "var"), REDIS_URL=redis_url))
    assert check.returncode == 0, check.stderr
    assert json.loads(check.stdout) == [["api.acme.test:8443"], "s3cret-from-env"]


def test_nested_defaults_and_dollar_templates():
    assert expand("${CAUSETTE_PORT:-${PORT:-8080}}", {})[0] == "8080"
    assert expand("${CAUSETTE_PORT:-${PORT:-8080}}", {"PORT": "9000"})[0] == "9000"
    assert expand("${CAUSETTE_PORT:-${PORT:-8080}}", {"CAUSETTE_PORT": "7000", "PORT": "9"})[0] == "7000"
    # a price before a template is text; another `${` that no name follows is a typo
    assert expand("Total: ${{total}} ({{n}} x ${{unit}})", {}) == ("Total: ${{total}} ({{n}} x ${{unit}})", [])
    for typo in ("${ TOKEN}", "${1X}", "${-X}", "end ${"):
        assert [p.code for p in expand(typo, {})[1]] == ["env.syntax"], typo
    deep = "${A:-" * 50 + "x" + "}" * 50                  # a traceback before, now a problem
    assert [p.code for p in expand(deep, {})[1]] == ["env.syntax"]
    # a default that is used must have what it names
    assert [p.code for p in expand("${A:-${B}}", {})[1]] == ["env.unset"]
    assert expand("${A:-${B}}", {"A": "a"}) == ("a", [])
    assert [p.code for p in expand("${A:-never closed", {})[1]] == ["env.syntax"]
