"""`causette` given input it cannot use (bytes that are not UTF-8, paths that are no file,
names that are unknown): one line on stderr and a usage exit status, never a traceback."""
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "gateway.cli"]
# Ends in a latin-1 "é": the file is not UTF-8.
LATIN1_FLOW = b'{"format":1,"id":"x","name":"caf\xe9","start":"e","nodes":{"e":{"type":"end"}}}'


def run(args, tmp_path, redis_url, stdin=b""):
    """Bytes in, text out: arguments and stdin may carry bytes that are not UTF-8."""
    env = dict(os.environ, CAUSETTE_DATA=str(tmp_path / "var"), REDIS_URL=redis_url)
    out = subprocess.run(CLI + args, input=stdin, capture_output=True, env=env, cwd=ROOT, timeout=120)
    return subprocess.CompletedProcess(out.args, out.returncode, out.stdout.decode(errors="replace"),
                                       out.stderr.decode(errors="replace"))


def assert_usage_error(out, *words):
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert all(w in out.stderr for w in words), out.stderr


def applied(tmp_path, redis_url):
    out = run(["tenants", "apply", "tenants/"], tmp_path, redis_url)
    assert out.returncode == 0, out.stderr


def test_flows_validate_reports_a_file_not_utf8_as_json_invalid(tmp_path, redis_url):
    f = tmp_path / "latin1.json"
    f.write_bytes(LATIN1_FLOW)
    out = run(["flows", "validate", str(f), "--json"], tmp_path, redis_url)
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert json.loads(out.stdout) == [{"path": "$", "code": "json.invalid", "severity": "error",
                                       "message": "not JSON: JSON is UTF-8; byte 32 is not"}]
    text = run(["flows", "validate", str(f)], tmp_path, redis_url)
    assert text.returncode == 1 and "[json.invalid]" in text.stdout and "1 error(s)" in text.stdout


@pytest.mark.parametrize("name, content, code", [
    ("folder", None, "file.unreadable"),
    ("deep.json", b"[" * 5000 + b"]" * 5000, "constraint"),        # json.loads would recurse
])
def test_flows_validate_reports_what_it_cannot_read(tmp_path, redis_url, name, content, code):
    f = tmp_path / name
    f.mkdir() if content is None else f.write_bytes(content)
    out = run(["flows", "validate", str(f), "--json"], tmp_path, redis_url)
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert [p["code"] for p in json.loads(out.stdout)] == [code]


def test_flows_validate_json_quotes_a_file_name_not_utf8(tmp_path, redis_url):
    missing = os.fsencode(tmp_path) + b"/caf\xe9.json"
    out = run(["flows", "validate", missing, "--json"], tmp_path, redis_url)
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert [p["code"] for p in json.loads(out.stdout)] == ["file.missing"]


@pytest.mark.parametrize("name, content, words", [
    ("latin1.json", LATIN1_FLOW, ["Malformed JSON", "byte 32"]),
    ("missing.json", None, ["Cannot read", "No such file"]),
    ("folder", b"", ["Cannot read", "directory"]),
    ("truncated.json", b'{"format":1,', ["Malformed JSON"]),
    ("list.json", b"[1]", ["Invalid flow", "object"]),
    ("engine.json", b'{"engine":[1]}', ["no flow engine"]),
])
def test_flows_graph_says_what_is_wrong_in_one_line(tmp_path, redis_url, name, content, words):
    f = tmp_path / name
    if content == b"":
        f.mkdir()
    elif content is not None:
        f.write_bytes(content)
    assert_usage_error(run(["flows", "graph", str(f)], tmp_path, redis_url), *words)


def test_chat_line_not_utf8_gets_the_retry_answer(tmp_path, redis_url):
    applied(tmp_path, redis_url)
    chat = run(["chat", "demo", "--contact", "utf8test1"], tmp_path, redis_url,
               stdin=b"bonjour\n\xff\xfe\n")
    assert chat.returncode == 0, chat.stderr
    # Without decoding, the turn ran but its session could not be saved (a flow.failed event).
    assert "surrogates" not in chat.stderr and "not saved" not in chat.stderr, chat.stderr
    assert chat.stdout.count("Pour qui cherchez-vous ?") == 1
    assert "Je n'ai pas compris 🙂 Répondez Femme, Homme ou Enfant." in chat.stdout


def test_keys_create_for_an_unknown_tenant_is_a_usage_error(tmp_path, redis_url):
    out = run(["keys", "create", "--tenant", "nope", "--role", "owner"], tmp_path, redis_url)
    assert_usage_error(out, "unknown tenant 'nope'")
    assert out.stdout == ""


def test_chat_and_keys_refuse_unknown_flows_and_names_not_utf8(tmp_path, redis_url):
    applied(tmp_path, redis_url)
    for args, words in [
        (["chat", "demo", "--flow", "nope"], ["no published flow 'nope'"]),
        (["chat", "demo", "--flow", "nope", "--draft"], ["no draft of flow 'nope'"]),
        (["chat", b"d\xe9mo"], ["tenant", "not UTF-8"]),
        (["chat", "demo", "--contact", b"caf\xe9"], ["contact", "not UTF-8"]),
        (["chat", "demo", "--flow", b"caf\xe9"], ["flow", "not UTF-8"]),
        (["keys", "create", "--tenant", b"d\xe9mo"], ["tenant", "not UTF-8"]),
        (["keys", "create", "--tenant", "demo", "--name", b"caf\xe9"], ["name", "not UTF-8"]),
        (["keys", "create", "--tenant", "demo", "--name", "x" * 101], ["name", "longer than 100"]),
    ]:
        out = run(args, tmp_path, redis_url, stdin=b"bonjour\n")
        assert_usage_error(out, *words)
        assert "Bonjour" not in out.stdout        # nothing ran


def test_keys_create_gives_a_tenant_key_the_least_role_unless_told(tmp_path, redis_url):
    """As the admin API does: a key nobody chose a role for can read, not change."""
    applied(tmp_path, redis_url)
    plain = run(["keys", "create", "--tenant", "demo"], tmp_path, redis_url)
    named = run(["keys", "create", "--tenant", "demo", "--role", "editor", "--name", "CMS"],
                tmp_path, redis_url)
    assert plain.returncode == 0 and named.returncode == 0, (plain.stderr, named.stderr)
    with sqlite3.connect(tmp_path / "var" / "causette.db") as db:
        rows = dict(db.execute("SELECT id, role || '/' || name FROM api_keys WHERE tenant = 'demo'"))
    assert rows == {plain.stdout.split("_")[1]: "viewer/", named.stdout.split("_")[1]: "editor/CMS"}


def test_keys_create_takes_agency_or_tenant_and_a_role_only_for_a_tenant(tmp_path, redis_url):
    applied(tmp_path, redis_url)
    both = run(["keys", "create", "--agency", "--tenant", "demo"], tmp_path, redis_url)
    assert both.returncode == 2 and "not allowed with argument" in both.stderr and both.stdout == ""
    role = run(["keys", "create", "--agency", "--role", "editor"], tmp_path, redis_url)
    assert_usage_error(role, "--role", "every tenant")
    assert role.stdout == ""
    neither = run(["keys", "create"], tmp_path, redis_url)
    assert neither.returncode == 2 and "one of the arguments --agency --tenant is required" in neither.stderr
    ok = run(["keys", "create", "--tenant", "demo"], tmp_path, redis_url)
    assert ok.returncode == 0 and ok.stdout.strip()


def test_unknown_tenant_names_the_store_read(tmp_path, redis_url):
    out = run(["chat", "nope"], tmp_path, redis_url, stdin=b"bonjour\n")
    assert_usage_error(out, "unknown tenant 'nope' in", str(tmp_path / "var" / "causette.db"), "CAUSETTE_DATA")


def test_chat_in_the_contacts_language(tmp_path, redis_url):
    applied(tmp_path, redis_url)
    en = run(["chat", "demo", "--locale", "en"], tmp_path, redis_url, stdin=b"hello\n")
    assert en.returncode == 0, en.stderr
    assert "Our winter sale is on" in en.stdout and "soldes" not in en.stdout
    assert_usage_error(run(["chat", "demo", "--locale", "EN_us"], tmp_path, redis_url), "--locale", "language tag")
    started = run(["chat", "demo", "--locale", "en", "--flow", "soldes-hiver"], tmp_path, redis_url, stdin=b"")
    assert started.returncode == 0 and "Our winter sale is on" in started.stdout, started.stderr
