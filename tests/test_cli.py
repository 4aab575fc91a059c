"""The `causette` command, run as a user would: a subprocess with its own data directory."""
import json
import os
import subprocess
import sys
from pathlib import Path

from gateway.testing import load_demo

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "gateway.cli"]


def run(args, tmp_path, redis_url, stdin=None):
    env = dict(os.environ, CAUSETTE_DATA=str(tmp_path / "var"), REDIS_URL=redis_url)
    return subprocess.run(CLI + args, input=stdin, capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=120)


def test_plugins_lists_every_first_party_plugin_and_what_it_registers(tmp_path, redis_url):
    out = run(["plugins", "--json"], tmp_path, redis_url)
    assert out.returncode == 0, out.stderr
    infos = {p["name"]: p for p in json.loads(out.stdout)}
    assert {"tree", "http", "webchat", "catalogue"} <= set(infos)
    assert infos["tree"]["registers"] == {"engine": ["tree"]}
    assert infos["http"]["registers"] == {"step": ["http.request"]}
    assert "register_routes" in infos["webchat"]["hooks"]
    assert infos["tree"]["dist"] == "causette-tree" and infos["tree"]["version"]
    text = run(["plugins"], tmp_path, redis_url).stdout
    assert "engine: tree" in text and "step: http.request" in text


def test_apply_then_scripted_chat_through_the_pipeline(tmp_path, redis_url):
    applied = run(["tenants", "apply", "tenants/"], tmp_path, redis_url)
    assert applied.returncode == 0, applied.stderr
    assert "demo" in applied.stdout and "published" in applied.stdout
    again = run(["tenants", "apply", "tenants/"], tmp_path, redis_url)
    assert "published" not in again.stdout        # unchanged flows are not republished
    chat = run(["chat", "demo", "--contact", "cli-test"], tmp_path, redis_url,
               stdin="bonjour\n1\nmoins de 50\nnon merci\n")
    assert chat.returncode == 0, chat.stderr
    lines = chat.stdout
    assert "Les soldes d'hiver ont commencé" in lines
    assert "  1) Femme" in lines and "Quel est votre budget ?" in lines
    assert "Voulez-vous recevoir un code" in lines and "Ça vous tente ?" in lines


def test_apply_refuses_an_invalid_tenant_and_writes_nothing(tmp_path, redis_url):
    bad = load_demo()
    bad["flows"][0]["nodes"]["hello"]["next"] = "nowhere"
    bad["plugins"]["http"]["timeout"] = "soon"
    f = tmp_path / "bad.json"
    f.write_text(json.dumps(bad))
    out = run(["tenants", "apply", str(f)], tmp_path, redis_url)
    assert out.returncode == 2
    assert "nowhere" in out.stderr and "$.plugins.http.timeout" in out.stderr
    chat = run(["chat", "demo"], tmp_path, redis_url, stdin="bonjour\n")
    assert chat.returncode == 2 and "unknown tenant" in chat.stderr


def test_flows_validate_reports_problems_with_paths_and_exit_status(tmp_path, redis_url):
    flow = load_demo()["flows"][0]
    good = tmp_path / "good.json"
    good.write_text(json.dumps(flow))
    ok = run(["flows", "validate", str(good)], tmp_path, redis_url)
    assert ok.returncode == 0, ok.stdout
    flow["nodes"]["who"]["choices"][0]["next"] = "nowhere"
    flow["nodes"]["orphan"] = {"type": "message", "text": "?"}
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(flow))
    out = run(["flows", "validate", "--json", str(bad)], tmp_path, redis_url)
    assert out.returncode == 1
    problems = json.loads(out.stdout)
    assert {"path", "code", "severity", "message"} <= set(problems[0])
    paths = {(p["path"], p["severity"]) for p in problems}
    assert ("$.nodes.who.choices[0].next", "error") in paths
    assert any(p["path"] == "$.nodes.orphan" and p["severity"] == "warning" for p in problems)


def test_flows_graph_writes_mermaid_and_svg(tmp_path, redis_url):
    flow = load_demo()["flows"][0]
    f = tmp_path / "soldes.json"
    f.write_text(json.dumps(flow))
    out = run(["flows", "graph", str(f)], tmp_path, redis_url)
    assert out.returncode == 0, out.stderr
    mmd, svg = (tmp_path / "soldes.mmd").read_text(), (tmp_path / "soldes.svg").read_text()
    assert mmd.startswith(("flowchart", "graph")) and "Pour qui cherchez-vous" in mmd
    assert svg.lstrip().startswith(("<svg", "<?xml")) and "Femme" in svg


def test_flows_validate_lints_against_channel_types(tmp_path, redis_url):
    flow = load_demo()["flows"][0]
    f = tmp_path / "soldes.json"
    f.write_text(json.dumps(flow))
    out = run(["flows", "validate", "--json", "--channel", "twilio", str(f)], tmp_path, redis_url)
    assert out.returncode == 0       # warnings only
    lint = [p for p in json.loads(out.stdout) if p["code"].startswith("channel.")]
    assert {p["path"] for p in lint} >= {"$.nodes.who.choices", "$.nodes.budget.choices"}
    assert all("twilio" in p["message"] and p["severity"] == "warning" for p in lint)
    bad = run(["flows", "validate", "--channel", "pigeon", str(f)], tmp_path, redis_url)
    assert bad.returncode == 1 and "pigeon" in bad.stdout


async def demo_gateway(gateway, tmp_path, redis_url, demo=None):
    """A gateway with the demo tenant, and the environment for a CLI on its store and Redis."""
    demo = demo or load_demo()
    gw = await gateway(tenants=[demo], secret="test-secret")
    return gw, dict(os.environ, CAUSETTE_DATA=str(tmp_path / "var"), REDIS_URL=redis_url,
                    CAUSETTE_DATABASE=gw.settings.db_path, CAUSETTE_SECRET="test-secret")


async def test_apply_reaches_a_running_gateway_new_conversations_take_the_new_version(
        gateway, tmp_path, redis_url):
    # `tenants apply` writes the store, then tells running gateways (Redis pub/sub) to drop
    # their cached copy: a conversation that starts afterwards runs the new version.
    import asyncio
    from gateway.appkeys import REGISTRY
    d = load_demo()
    gw, env = await demo_gateway(gateway, tmp_path, redis_url, d)
    rt = await gw.app[REGISTRY].get("demo")
    assert (await gw.app[REGISTRY].flow(rt, "soldes-hiver")).version == 1
    d["flows"][0]["name"] = "Soldes d'hiver (v2)"
    f = tmp_path / "demo.json"
    f.write_text(json.dumps(d))
    out = await asyncio.to_thread(subprocess.run, CLI + ["tenants", "apply", str(f)], capture_output=True,
                                  text=True, env=env, cwd=ROOT, timeout=120)
    assert out.returncode == 0 and "published soldes-hiver@2" in out.stdout, out.stderr
    for _ in range(100):
        rt = await gw.app[REGISTRY].get("demo")
        if (await gw.app[REGISTRY].flow(rt, "soldes-hiver")).version == 2:
            break
        await asyncio.sleep(0.05)
    assert (await gw.app[REGISTRY].flow(rt, "soldes-hiver")).version == 2


async def test_a_chat_conversation_can_be_read_through_the_admin_api_not_acted_on(
        gateway, tmp_path, redis_url):
    import asyncio
    gw, env = await demo_gateway(gateway, tmp_path, redis_url)
    out = await asyncio.to_thread(subprocess.run, CLI + ["chat", "demo", "--contact", "cli-read"],
                                  input="bonjour\n", capture_output=True, text=True, env=env,
                                  cwd=ROOT, timeout=120)
    assert out.returncode == 0 and "Les soldes d'hiver" in out.stdout, out.stderr
    url = f"{gw.url}/admin/v1/tenants/demo/conversations/console/cli-read"
    for _ in range(100):      # the chat's own process wrote its events to the store
        async with gw.http.get(url, headers=gw.admin_headers) as r:
            conv = await r.json()
        if any(e["type"] == "message.in" for e in conv["events"]):
            break
        await asyncio.sleep(0.05)
    assert r.status == 200 and conv["session"]["flow"] == "soldes-hiver", conv
    assert [e["data"]["text"] for e in conv["events"] if e["type"] == "message.in"] == ["bonjour"]
    async with gw.http.post(url + "/takeover", json={"agent": "julie"}, headers=gw.admin_headers) as r:
        assert r.status == 409 and "causette chat" in (await r.json())["detail"]
    async with gw.http.get(f"{gw.url}/admin/v1/tenants/demo/conversations/nowhere/cli-read",
                           headers=gw.admin_headers) as r:
        assert r.status == 404


def test_a_plugin_that_fails_to_import_is_listed_with_why(tmp_path, redis_url):
    # An installed distribution (a dist-info on the path, as pip leaves it) whose module raises.
    site = tmp_path / "site"
    (site / "causette_broken-0.0.1.dist-info").mkdir(parents=True)
    (site / "causette_broken-0.0.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: causette-broken\nVersion: 0.0.1\n")
    (site / "causette_broken-0.0.1.dist-info" / "entry_points.txt").write_text("[causette]\nbroken = broken_pkg\n")
    (site / "broken_pkg.py").write_text("raise ImportError('needs libfoo 2')\n")
    env = dict(os.environ, CAUSETTE_DATA=str(tmp_path / "var"), REDIS_URL=redis_url, PYTHONPATH=str(site))
    out = subprocess.run(CLI + ["plugins"], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "broken  (causette-broken 0.0.1)\n    FAILED TO LOAD: ImportError: needs libfoo 2" in out.stdout
    assert "tree  (causette-tree" in out.stdout                 # the others are listed as before
    js = subprocess.run(CLI + ["plugins", "--json"], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    broken, = [p for p in json.loads(js.stdout) if p["name"] == "broken"]
    assert broken["error"] == "ImportError: needs libfoo 2" and broken["hooks"] == []
