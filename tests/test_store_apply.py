"""`tenants apply`: validate everything first, write one transaction, publish only changes."""
import copy
import json

import msgspec
import pytest

from gateway.apply import apply_path, apply_tenant
from gateway.channels import Channel
from gateway.hookspecs import hookimpl
from gateway.config import TenantConfig
from gateway.plugins import PluginHost
from gateway.problems import ProblemError
from gateway.store import Store
from gateway.testing import load_demo

TOKEN = "EAAG-apply-secret-77"


@pytest.fixture(scope="module")
def host():
    return PluginHost()


@pytest.fixture
async def store(tmp_path):
    s = await Store.open(str(tmp_path / "c.db"), b"secret")
    yield s
    await s.close()


def demo() -> dict:
    return load_demo()


def cfg(d: dict) -> TenantConfig:
    return msgspec.convert(d, TenantConfig)


async def test_demo_applies_then_is_unchanged_then_publishes_only_what_changed(store, host):
    ch = await apply_tenant(store, host, cfg(demo()))
    assert ch.tenant == ["created"] and ch.published == ["soldes-hiver@1"]
    assert [e for e in ch.warnings if e.severity == "error"] == []
    again = await apply_tenant(store, host, cfg(demo()))
    assert (again.tenant, again.plugins, again.channels, again.flows, again.published) == ([], [], [], [], [])
    d = demo()
    d["flows"][0]["name"] = "Soldes d'hiver (v2)"
    d["name"] = "Maison Lumière Paris"
    third = await apply_tenant(store, host, cfg(d))
    assert third.published == ["soldes-hiver@2"] and third.tenant == ["updated"]
    snap = await store.tenant_snapshot("demo")
    assert snap.name == "Maison Lumière Paris" and snap.flows[0].version == 2


async def test_every_problem_is_reported_at_once_and_nothing_is_written(store, host):
    d = demo()
    d["plugins"]["http"]["timeout"] = "soon"
    d["plugins"]["nosuchplugin"] = {}
    d["channels"].append({"id": "sms", "type": "carrier-pigeon"})
    d["flows"][0]["nodes"]["hello"]["next"] = "nowhere"
    with pytest.raises(ProblemError) as exc:
        await apply_tenant(store, host, cfg(d))
    err = exc.value
    assert err.status == 422
    paths = {p.path: p.code for p in err.errors if p.severity == "error"}
    assert paths["$.plugins.http.timeout"] == "type"
    assert paths["$.plugins.nosuchplugin"] == "plugin.unknown"
    assert paths["$.channels[1].type"] == "channel.unknown_type"
    assert any(p.startswith("$.flows[0].nodes.hello") for p in paths)
    assert await store.get_tenant("demo") is None
    assert await store.list_tenant_slugs() == []


async def test_a_channels_plugin_is_enabled_with_it_when_it_needs_no_settings(store, host):
    d = demo()
    d["channels"].append({"id": "wa", "type": "whatsapp", "settings": {"phone_number_id": "1"}})
    ch = await apply_tenant(store, host, cfg(d))
    assert "whatsapp" in ch.plugins
    assert [(w.path, w.code) for w in ch.warnings] == [("$.channels[1].type", "channel.plugin_implied")]
    assert "whatsapp" in (await store.tenant_snapshot("demo")).plugins


class Needy:
    """A third-party channel plugin whose per-tenant settings have a required field."""

    class Settings(msgspec.Struct, forbid_unknown_fields=True):
        account: str

    class Pigeon(Channel):
        type = "pigeon"

    @hookimpl
    def register_channels(self):
        return [self.Pigeon]


async def test_a_channels_plugin_that_needs_settings_must_be_enabled_explicitly(store):
    h = PluginHost(entrypoints=False, extra=[("needy", Needy())])
    d = {"slug": "acme", "name": "Acme", "channels": [{"id": "p", "type": "pigeon"}]}
    with pytest.raises(ProblemError) as exc:
        await apply_tenant(store, h, cfg(d))
    assert [(p.path, p.code) for p in exc.value.errors if p.severity == "error"] == \
        [("$.channels[0].type", "channel.plugin_disabled")]
    d["plugins"] = {"needy": {}}
    with pytest.raises(ProblemError) as exc:
        await apply_tenant(store, h, cfg(d))
    assert [(p.path, p.code) for p in exc.value.errors] == [("$.plugins.needy.account", "required")]
    d["plugins"] = {"needy": {"account": "a1"}}
    assert (await apply_tenant(store, h, cfg(d))).channels == ["p"]


def with_whatsapp(d: dict) -> dict:
    d["plugins"]["whatsapp"] = {}
    d["channels"].append({"id": "wa", "type": "whatsapp",
                          "settings": {"phone_number_id": "1", "access_token": TOKEN, "app_secret": "s1"}})
    return d


async def test_secrets_left_out_of_a_file_are_kept_and_empty_clears_them(store, host):
    d = with_whatsapp(demo())
    await apply_tenant(store, host, cfg(d))
    without = copy.deepcopy(d)
    without["channels"][1]["settings"] = {"phone_number_id": "2"}
    ch = await apply_tenant(store, host, cfg(without))
    assert ch.channels == ["wa"]
    wa = next(c for c in (await store.tenant_snapshot("demo")).channels if c.id == "wa")
    assert wa.settings == {"phone_number_id": "2", "access_token": TOKEN, "app_secret": "s1"}
    masked = copy.deepcopy(without)
    masked["channels"][1]["settings"].update(access_token="***set***", app_secret="")
    await apply_tenant(store, host, cfg(masked))
    wa = next(c for c in (await store.tenant_snapshot("demo")).channels if c.id == "wa")
    assert wa.settings == {"phone_number_id": "2", "access_token": TOKEN}
    # removing the channel from the file removes it
    await apply_tenant(store, host, cfg(demo() | {"plugins": d["plugins"]}))
    assert [c.id for c in await store.list_channels("demo")] == ["web"]


async def test_apply_path_validates_every_file_before_writing_any(store, host, tmp_path):
    good = demo()
    bad = demo() | {"slug": "other", "channels": [{"id": "web", "type": "webchat", "settings": {"nope": 1}}]}
    (tmp_path / "a.json").write_text(json.dumps(good))
    (tmp_path / "b.json").write_text(json.dumps(bad))
    with pytest.raises(ProblemError) as exc:
        await apply_path(store, host, tmp_path)
    assert any(p.path.startswith("b.json:$.channels[0].settings") for p in exc.value.errors)
    assert await store.list_tenant_slugs() == []
    (tmp_path / "b.json").write_text(json.dumps(demo() | {"slug": "other"}))
    report = await apply_path(store, host, tmp_path)
    assert report.slugs() == ["demo", "other"]
    assert any("published soldes-hiver@1" in line for line in report.lines())
    report = await apply_path(store, host, tmp_path)
    assert report.slugs() == [] and report.lines() == ["demo: unchanged", "other: unchanged"]


async def test_a_folder_with_a_malformed_file_reports_it_with_every_other_problem(store, host, tmp_path):
    (tmp_path / "a-broken.json").write_text('{\n  "slug": "x",\n  "name": "X",\n}\n')
    bad = demo() | {"slug": "other", "channels": [{"id": "web", "type": "webchat", "settings": {"nope": 1}}]}
    (tmp_path / "b.json").write_text(json.dumps(bad))
    (tmp_path / "c.json").write_text(json.dumps(demo()))
    with pytest.raises(ProblemError) as exc:
        await apply_path(store, host, tmp_path)
    found = {(p.path.split(":")[0], p.code) for p in exc.value.errors}
    assert ("a-broken.json", "malformed-json") in found and ("b.json", "unknown_field") in found
    broken, = [p for p in exc.value.errors if p.code == "malformed-json"]
    assert broken.path == "a-broken.json:$" and "line 4 column 1" in broken.message
    assert await store.list_tenant_slugs() == []          # the good file was not applied either


async def test_malformed_and_misshapen_files_are_clear_errors(store, host, tmp_path):
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(ProblemError) as exc:
        await apply_path(store, host, tmp_path / "x.json")
    assert exc.value.status == 400 and "x.json" in exc.value.detail
    (tmp_path / "x.json").write_text(json.dumps({"slug": "Bad Slug", "name": "x"}))
    with pytest.raises(ProblemError) as exc:
        await apply_path(store, host, tmp_path / "x.json")
    assert [p.path for p in exc.value.errors] == ["x.json:$.slug"]
    assert "x.json:$.slug" in exc.value.render()


async def test_a_file_that_is_not_utf8_or_nested_too_deep_is_refused_before_anything_is_written(
        store, host, tmp_path):
    good = tmp_path / "a-good.json"
    good.write_text(json.dumps(demo()))
    latin1 = tmp_path / "b-latin1.json"
    latin1.write_bytes(json.dumps({**demo(), "slug": "other"}).replace("Bonjour", "Caf\\u00e9")
                       .encode().replace(b"Caf\\u00e9", "Café".encode("latin-1")))
    with pytest.raises(ProblemError) as exc:
        await apply_path(store, host, tmp_path)
    [bad] = exc.value.errors          # in a folder: one problem of the file, the others still checked
    assert bad.path == "b-latin1.json:$" and bad.code == "malformed-json" and "UTF-8" in bad.message
    latin1.unlink()

    deep: dict = {"x": 1}
    for _ in range(100):
        deep = {"x": deep}
    d = demo()
    d["slug"] = "other"
    d["locale"] = "fr"
    d["plugins"]["http"] = deep
    (tmp_path / "c-deep.json").write_text(json.dumps(d))
    with pytest.raises(ProblemError) as exc:
        await apply_path(store, host, tmp_path)
    assert exc.value.status == 422
    [p] = exc.value.errors
    assert p.code == "constraint" and p.path.startswith("c-deep.json:$.plugins.http.x.x")
    # Every file is checked before any is written: the good one is not there either.
    assert await store.get_tenant("demo") is None


async def test_flows_that_goto_each_other_without_waiting_are_refused(store, host):
    def hop(fid, target):
        return {"format": 1, "id": fid, "name": fid, "engine": "tree", "start": "hi",
                "nodes": {"hi": {"type": "message", "text": fid, "next": "go"},
                          "go": {"type": "goto", "flow": target}}}
    d = demo()
    d["flows"] += [hop("ping", "pong"), hop("pong", "ping")]
    with pytest.raises(ProblemError) as exc:
        await apply_tenant(store, host, cfg(d))
    loops = {(p.path, p.code) for p in exc.value.errors if p.code == "flow.loop_without_input"}
    n = len(demo()["flows"])
    assert loops == {(f"$.flows[{n}].nodes.go", "flow.loop_without_input"),
                     (f"$.flows[{n + 1}].nodes.go", "flow.loop_without_input")}
    assert await store.get_tenant(d["slug"]) is None           # nothing written
    # The same flows with a question on the way back: a turn stops there, so they apply.
    d["flows"][-1] = hop("pong", "ping") | {"nodes": {
        "hi": {"type": "choice", "text": "pong?", "choices": [{"id": "y", "title": "Yes", "next": "go"}]},
        "go": {"type": "goto", "flow": "ping"}}}
    await apply_tenant(store, host, cfg(d))
    assert {f.id for f in await store.list_flows(d["slug"])} >= {"ping", "pong"}


async def test_apply_path_reports_progress_and_writes_the_plans_it_validated(store, host, tmp_path):
    for slug in ("a-brand", "b-brand", "c-brand"):
        (tmp_path / f"{slug}.json").write_text(json.dumps(demo() | {"slug": slug}))
    seen: list[tuple[str, int, int]] = []
    report = await apply_path(store, host, tmp_path, progress=lambda *a: seen.append(a))
    assert seen == [("validate", 1, 3), ("validate", 2, 3), ("validate", 3, 3),
                    ("apply", 1, 3), ("apply", 2, 3), ("apply", 3, 3)]
    assert report.slugs() == ["a-brand", "b-brand", "c-brand"]


async def test_a_tenant_changed_after_its_validation_is_validated_again_not_written_stale(store, host):
    from gateway.apply import plan_tenant
    d = with_whatsapp(demo())
    await apply_tenant(store, host, cfg(d))
    # The file leaves the secrets out (kept as stored): its plan carries the stored ones.
    d["channels"][1]["settings"] = {"phone_number_id": "2"}
    stale = await plan_tenant(store, host, cfg(d))
    # Between the folder's validation pass and its write, the brand rotates its token.
    await store.put_channel("demo", "wa", "whatsapp", {"phone_number_id": "1"},
                            {"access_token": "EAAG-rotated", "app_secret": "s1"})
    changes = await apply_tenant(store, host, cfg(d), planned=stale)
    assert changes.channels == ["wa"]
    wa = next(c for c in (await store.tenant_snapshot("demo")).channels if c.id == "wa")
    assert wa.settings == {"phone_number_id": "2", "access_token": "EAAG-rotated", "app_secret": "s1"}


async def test_duplicate_slugs_across_many_files_are_each_reported_once(store, host, tmp_path):
    for i in range(6):
        (tmp_path / f"{i}.json").write_text(json.dumps(demo() | {"slug": "twin" if i % 2 else "solo-%d" % i}))
    with pytest.raises(ProblemError) as exc:
        await apply_path(store, host, tmp_path)
    dups = [p for p in exc.value.errors if p.code == "tenant.duplicate"]
    assert len(dups) == 1 and "'twin'" in dups[0].message
    assert await store.list_tenant_slugs() == []


async def test_a_byte_that_is_not_utf8_is_named_by_its_offset_in_the_file(store, host, tmp_path):
    raw = b'{"slug": "demo", "name": "abcdefghij\xff"}'
    (tmp_path / "x.json").write_bytes(raw)
    with pytest.raises(ProblemError) as exc:
        await apply_path(store, host, tmp_path / "x.json")
    assert exc.value.detail == f"x.json: JSON is UTF-8; byte {raw.index(0xff)} is not"


async def test_a_step_of_a_plugin_the_tenant_has_not_enabled_is_an_error_before_anything_runs(store, host):
    d = demo()
    del d["plugins"]["http"]                     # the demo's flow calls http.request
    with pytest.raises(ProblemError) as exc:
        await apply_tenant(store, host, cfg(d))
    errors = [p for p in exc.value.errors if p.severity == "error"]
    assert {p.code for p in errors} == {"step.plugin_disabled"}, errors
    assert all(p.path.startswith("$.flows[") and p.path.endswith(".step") for p in errors)
    assert "plugin 'http'" in errors[0].message
    assert await store.get_tenant("demo") is None             # nothing written
