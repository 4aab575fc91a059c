"""Flow authoring over the admin API: ETag / If-Match drafts, validation, publishing,
versions, node-by-node diff, rollback, graph, simulation without side effects."""
import copy
import json

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.admin import mount_admin
from gateway.appkeys import PLUGINS, STORE
from gateway.plugins import PluginHost
from gateway.store import Store

PROBLEM = "application/problem+json"


def quiz(port: int) -> dict:
    return {"format": 1, "id": "quiz", "name": "Quiz", "engine": "tree",
            "triggers": [{"type": "keyword", "any": ["quiz"]}], "start": "ask",
            "nodes": {
                "ask": {"type": "choice", "text": "Tea or coffee?", "save_as": "drink",
                        "choices": [{"id": "tea", "title": "Tea", "next": "fetch"},
                                    {"id": "coffee", "title": "Coffee", "next": "fetch"}]},
                "fetch": {"type": "step", "step": "http.request",
                          "with": {"url": f"http://127.0.0.1:{port}/price", "query": {"d": "{{drink}}"},
                                   "save": {"price": "$.price"}},
                          "next": "done", "on_error": "done"},
                "done": {"type": "end", "outcome": "completed", "text": "Thanks, {{drink}}!"}}}


@pytest.fixture
async def price_api():
    """A local HTTP API the flow's step calls; it counts the calls it gets."""
    calls = []

    async def price(request):
        calls.append(dict(request.query))
        return web.json_response({"price": 3.5})
    app = web.Application()
    app.router.add_get("/price", price)
    server = TestServer(app)
    await server.start_server()
    server.calls = calls
    yield server
    await server.close()


class Api:
    def __init__(self, client, store, keys):
        self.client, self.store, self.keys = client, store, keys

    async def call(self, method, path, role="editor", headers=None, **kw):
        h = {"Authorization": f"Bearer {self.keys[role]}", **(headers or {})}
        async with self.client.request(method, "/admin/v1/tenants/acme" + path, headers=h, **kw) as r:
            raw = await r.read()
            data = json.loads(raw) if raw and r.content_type.endswith("json") else raw.decode()
            return r.status, r.content_type, data, r.headers


@pytest.fixture
async def api(tmp_path, price_api):
    store = await Store.open(str(tmp_path / "c.db"), b"test-secret")
    app = web.Application()
    app[STORE], app[PLUGINS] = store, PluginHost()
    mount_admin(app)
    client = TestClient(TestServer(app))
    await client.start_server()
    from gateway.store import TenantInfo
    await store.create_tenant(TenantInfo(slug="acme", name="Acme", locale="en"))
    await store.set_plugin("acme", "tree", {})
    await store.set_plugin("acme", "http", {"allowed_hosts": [f"127.0.0.1:{price_api.port}"]})
    keys = {r: await store.create_key("acme", r) for r in ("owner", "editor", "viewer")}
    yield Api(client, store, keys)
    await client.close()
    await store.close()


async def test_drafts_use_etags_so_two_editors_never_overwrite_each_other(api, price_api):
    flow = quiz(price_api.port)
    s, _, out, hdr = await api.call("POST", "/flows", json=flow)
    assert s == 201 and hdr["ETag"] == out["etag"] and out["problems"] == [] and out["latest_version"] == 0
    s, _, got, hdr = await api.call("GET", "/flows/quiz", role="viewer")
    etag = hdr["ETag"]
    assert got["draft"] == flow and etag == out["etag"]
    assert (await api.call("GET", "/flows/quiz", headers={"If-None-Match": etag}))[0] == 304
    # Two editors read the same draft...
    alice, bob = copy.deepcopy(flow), copy.deepcopy(flow)
    alice["nodes"]["ask"]["text"] = "Tea, or coffee?"
    bob["nodes"]["done"]["text"] = "Cheers!"
    s, _, a, hdr = await api.call("PUT", "/flows/quiz", json=alice, headers={"If-Match": etag})
    assert s == 200 and hdr["ETag"] != etag and a["revision"] == 2
    # ...the second write is refused with the current ETag, and nothing is lost.
    s, ct, p, hdr = await api.call("PUT", "/flows/quiz", json=bob, headers={"If-Match": etag})
    assert (s, ct) == (412, PROBLEM) and p["etag"] == hdr["ETag"] == a["etag"]
    s, _, got, _ = await api.call("GET", "/flows/quiz")
    assert got["draft"]["nodes"]["ask"]["text"] == "Tea, or coffee?"
    s, _, p, _ = await api.call("PUT", "/flows/quiz", json=bob)
    assert s == 428 and p["etag"] == a["etag"]
    assert (await api.call("PUT", "/flows/quiz", json=bob, headers={"If-Match": "*"}))[0] == 200
    assert (await api.call("PUT", "/flows/quiz", role="viewer", json=bob, headers={"If-Match": "*"}))[0] == 403
    assert (await api.call("POST", "/flows", json=flow))[0] == 409
    # An invalid draft is saved, and reading it says what is wrong, as writing it did.
    broken = copy.deepcopy(flow)
    broken["nodes"]["ask"]["choices"][0]["next"] = "nowhere"
    s, _, put, _ = await api.call("PUT", "/flows/quiz", json=broken, headers={"If-Match": "*"})
    s, _, got, _ = await api.call("GET", "/flows/quiz", role="viewer")
    assert got["problems"] == put["problems"] and ("$.nodes.ask.choices[0].next", "next.unknown") in {
        (p["path"], p["code"]) for p in got["problems"]}


async def test_concurrent_writes_with_one_etag_let_exactly_one_through(api, price_api):
    import asyncio
    _, _, out, _ = await api.call("POST", "/flows", json=quiz(price_api.port))

    async def edit(i):
        f = quiz(price_api.port)
        f["nodes"]["done"]["text"] = f"Thanks #{i}"
        return (await api.call("PUT", "/flows/quiz", json=f, headers={"If-Match": out["etag"]}))[0]
    statuses = await asyncio.gather(*(edit(i) for i in range(12)))
    assert sorted(statuses) == [200] + [412] * 11
    assert (await api.call("GET", "/flows/quiz"))[2]["revision"] == 2


async def test_publish_validates_everything_at_once_then_numbers_versions(api, price_api):
    bad = quiz(price_api.port)
    bad["nodes"]["ask"]["choices"][0]["next"] = "nowhere"
    bad["nodes"]["fetch"]["step"] = "no.such.step"
    s, _, out, hdr = await api.call("POST", "/flows", json=bad)
    assert s == 201 and len([p for p in out["problems"] if p["severity"] == "error"]) >= 2   # drafts may be invalid
    s, _, v, _ = await api.call("POST", "/flows/quiz/validate", role="viewer")
    assert not v["valid"] and v["errors"] >= 2
    paths = {p["path"] for p in v["problems"]}
    assert "$.nodes.ask.choices[0].next" in paths and any(p.startswith("$.nodes.fetch") for p in paths)
    s, ct, p, _ = await api.call("POST", "/flows/quiz/publish", json={"note": "first"})
    assert (s, ct) == (422, PROBLEM) and {e["path"] for e in p["errors"]} >= {"$.nodes.ask.choices[0].next"}
    assert all(set(e) == {"path", "code", "message", "severity"} for e in p["errors"])
    assert (await api.call("GET", "/flows/quiz/versions"))[2]["versions"] == []
    # a definition is checked against the tenant before it is saved anywhere
    s, _, v, _ = await api.call("POST", "/flows/validate", role="viewer", json=bad | {"id": "other"})
    assert s == 200 and not v["valid"] and "$.nodes.ask.choices[0].next" in {p["path"] for p in v["problems"]}
    # the body of validate is checked without being saved
    s, _, v, _ = await api.call("POST", "/flows/quiz/validate", json=quiz(price_api.port))
    assert v["valid"] and (await api.call("GET", "/flows/quiz"))[2]["draft"] == bad
    s, _, got, hdr = await api.call("GET", "/flows/quiz")
    await api.call("PUT", "/flows/quiz", json=quiz(price_api.port), headers={"If-Match": hdr["ETag"]})
    s, _, pub, _ = await api.call("POST", "/flows/quiz/publish", json={"note": "first"})
    assert s == 201 and pub["version"] == 1 and pub["created"]
    s, _, pub, _ = await api.call("POST", "/flows/quiz/publish")
    assert s == 200 and pub["version"] == 1 and not pub["created"]
    assert (await api.call("POST", "/flows/quiz/publish", role="viewer"))[0] == 403
    s, _, p, _ = await api.call("POST", "/flows/quiz/publish", headers={"If-Match": '"1-stale"'})
    assert s == 412
    snap = await api.store.tenant_snapshot("acme")
    assert [(f.id, f.version) for f in snap.flows] == [("quiz", 1)]


async def test_versions_diff_node_by_node_and_rollback_republishes(api, price_api):
    v1 = quiz(price_api.port)
    _, _, out, _ = await api.call("POST", "/flows", json=v1)
    await api.call("POST", "/flows/quiz/publish")
    v2 = copy.deepcopy(v1)
    v2["nodes"]["ask"]["text"] = "Tea or coffee today?"
    v2["nodes"]["ask"]["choices"].append({"id": "juice", "title": "Juice", "next": "done"})
    del v2["nodes"]["fetch"]
    for c in v2["nodes"]["ask"]["choices"]:
        c["next"] = "thanks"
    v2["nodes"]["thanks"] = {"type": "message", "text": "Noted.", "next": "done"}
    v2["name"] = "Quiz 2"
    await api.call("PUT", "/flows/quiz", json=v2, headers={"If-Match": out["etag"]})
    s, _, pub, _ = await api.call("POST", "/flows/quiz/publish", json={"note": "no more prices"})
    assert pub["version"] == 2
    s, _, d, _ = await api.call("GET", "/flows/quiz/versions/1/diff/2", role="viewer")
    assert s == 200 and not d["identical"]
    nodes = {n["node"]: n for n in d["nodes"]}
    assert nodes["fetch"]["status"] == "removed" and nodes["thanks"]["status"] == "added"
    ask = {c["path"]: c for c in nodes["ask"]["changes"]}
    assert ask["$.text"] == {"path": "$.text", "op": "changed", "before": "Tea or coffee?",
                             "after": "Tea or coffee today?"}
    assert ask["$.choices[2]"]["op"] == "added" and ask["$.choices[0].next"]["after"] == "thanks"
    assert "done" not in nodes
    assert d["flow"] == [{"path": "$.name", "op": "changed", "before": "Quiz", "after": "Quiz 2"}]
    assert d["summary"] == {"added": 1, "removed": 1, "changed": 1, "flow_fields": 1}
    s, _, d, _ = await api.call("GET", "/flows/quiz/versions/2/diff/draft")
    assert d["identical"]
    assert (await api.call("GET", "/flows/quiz/versions/1/diff/9"))[0] == 404
    # rollback: version 1 again, as version 3
    s, _, rb, _ = await api.call("POST", "/flows/quiz/rollback", json={"version": 1})
    assert s == 201 and rb["version"] == 3
    s, _, vs, _ = await api.call("GET", "/flows/quiz/versions")
    assert [(v["version"], v["rollback_of"]) for v in vs["versions"]] == [(1, 0), (2, 0), (3, 1)]
    assert vs["versions"][1]["note"] == "no more prices"
    assert (await api.call("GET", "/flows/quiz/versions/1/diff/3"))[2]["identical"]
    s, _, v, _ = await api.call("GET", "/flows/quiz/versions/3")
    assert v["definition"] == v1 and v["rollback_of"] == 1
    assert (await api.store.tenant_snapshot("acme")).flows[0].version == 3
    assert (await api.call("POST", "/flows/quiz/rollback", json={"version": 7}))[0] == 404
    assert (await api.call("POST", "/flows/quiz/rollback", json={"version": 0}))[0] == 422


async def test_graph_as_json_mermaid_and_svg(api, price_api):
    await api.call("POST", "/flows", json=quiz(price_api.port))
    s, _, g, _ = await api.call("GET", "/flows/quiz/graph", role="viewer")
    assert s == 200 and g["mermaid"].startswith("flowchart") and g["svg"].lstrip().startswith("<svg")
    s, ct, text, _ = await api.call("GET", "/flows/quiz/graph?format=mermaid")
    assert ct == "text/vnd.mermaid" and "Tea" in text
    s, ct, svg, _ = await api.call("GET", "/flows/quiz/graph?format=svg&version=draft")
    assert ct == "image/svg+xml" and "<svg" in svg
    assert (await api.call("GET", "/flows/quiz/graph?version=1"))[0] == 404
    assert (await api.call("GET", "/flows/quiz/graph?format=png"))[0] == 400


async def test_simulation_has_no_side_effects_and_dry_runs_steps(api, price_api):
    await api.call("POST", "/flows", json=quiz(price_api.port))
    before = (await api.store.tenant_snapshot("acme")).revision
    body = {"script": ["quiz", "2"], "contact": {"first_name": "Léa"}, "now": "2027-01-10T10:00:00+01:00"}
    s, _, sim, _ = await api.call("POST", "/flows/quiz/simulate", role="viewer", json=body)
    assert s == 200, sim
    assert [(t["who"], t["text"]) for t in sim["transcript"]] == [
        ("user", "quiz"), ("bot", "Tea or coffee?"), ("user", "2"), ("bot", "Thanks, coffee!")]
    assert sim["transcript"][1]["choices"][0] == {"id": "tea", "title": "Tea"}
    assert sim["path"] == ["ask", "fetch", "done"] and sim["ended"] == "completed" and sim["waiting"] == ""
    assert sim["vars"]["drink"] == "coffee" and "price" not in sim["vars"]
    assert sim["contact"] == {"first_name": "Léa"} and sim["version"] == "draft"
    assert sim["steps"] == [{"step": "http.request", "args": sim["steps"][0]["args"], "dry_run": True, "ok": True}]
    assert sim["transcript"][0]["at"] == 1799571600.0
    assert price_api.calls == []                               # the step was not called
    assert await api.store.count_events("acme") == 0           # nothing recorded, no contact made
    assert await api.store.get_contact("acme", "simulator", "simulator") is None
    assert (await api.store.tenant_snapshot("acme")).revision == before
    # live steps need an editor, and then really call
    assert (await api.call("POST", "/flows/quiz/simulate", role="viewer",
                           json={**body, "live_steps": True}))[0] == 403
    s, _, sim, _ = await api.call("POST", "/flows/quiz/simulate", json={**body, "live_steps": True})
    assert price_api.calls == [{"d": "coffee"}] and sim["vars"]["price"] == 3.5
    assert sim["steps"][0]["dry_run"] is False


async def test_simulation_stops_where_the_script_ends_and_reports_retries(api, price_api):
    await api.call("POST", "/flows", json=quiz(price_api.port))
    s, _, sim, _ = await api.call("POST", "/flows/quiz/simulate", json={"script": []})
    assert [t["text"] for t in sim["transcript"]] == ["Tea or coffee?"] and sim["waiting"] == "ask"
    s, _, sim, _ = await api.call("POST", "/flows/quiz/simulate",
                                  json={"script": ["hi", "what?", {"choice": "tea"}, "more"]})
    assert sim["transcript"][-3]["who"] == "bot" and sim["ended"] == "completed"
    assert sim["transcript"][-1] == {"who": "system", "text": "not answered: the run has ended",
                                     "at": sim["transcript"][-1]["at"]}
    assert any(e["type"] == "answer.invalid" for e in sim["events"])
    s, _, p, _ = await api.call("POST", "/flows/quiz/simulate", json={"script": [3]})
    assert s == 422 and p["errors"][0]["path"] == "$.script[0]"
    s, _, p, _ = await api.call("POST", "/flows/quiz/simulate", json={"version": 4})
    assert s == 404


async def test_simulation_tells_when_the_clock_is_outside_the_active_period(api, price_api):
    flow = quiz(price_api.port) | {"active": {"from": "2027-01-08T08:00:00", "until": "2027-02-04T20:00:00"}}
    await api.call("POST", "/flows", json=flow)
    s, _, sim, _ = await api.call("POST", "/flows/quiz/simulate",
                                  json={"script": ["quiz"], "now": "2027-03-01T10:00:00+01:00"})
    assert sim["transcript"][0]["who"] == "system" and "outside the flow's active period" in sim["transcript"][0]["text"]
    # 08:30 in Paris (the tenant's zone) is inside; 07:30 UTC is the same instant
    s, _, sim, _ = await api.call("POST", "/flows/quiz/simulate",
                                  json={"script": ["quiz"], "now": "2027-01-08T07:30:00Z"})
    assert sim["transcript"][0]["who"] == "user"


async def test_flow_schema_is_the_engines(api):
    async with api.client.get("/admin/v1/schemas/flow.json") as r:
        assert r.status == 200
        schema = await r.json()
    assert schema == PluginHost().engines["tree"].schema()
    async with api.client.get("/admin/v1/schemas/flow.json?engine=nope") as r:
        assert r.status == 404 and r.content_type == PROBLEM


async def test_archived_flows_leave_service_but_keep_versions(api, price_api):
    await api.call("POST", "/flows", json=quiz(price_api.port))
    await api.call("POST", "/flows/quiz/publish")
    assert (await api.call("DELETE", "/flows/quiz", role="viewer"))[0] == 403
    assert (await api.call("DELETE", "/flows/quiz"))[0] == 204
    assert (await api.call("GET", "/flows/quiz"))[0] == 404
    assert (await api.call("GET", "/flows"))[2] == {"flows": []}
    assert (await api.store.tenant_snapshot("acme")).flows == []
    assert await api.store.get_flow_version("acme", "quiz", 1) is not None
    s, _, out, _ = await api.call("POST", "/flows", json=quiz(price_api.port))   # revive
    assert s == 201 and out["latest_version"] == 1


def _hop(fid: str, target: str, ask: bool = False) -> dict:
    """A flow that greets, asks first when `ask`, then starts flow `target`."""
    nodes = {"hi": {"type": "message", "text": f"This is {fid}", "next": "ask" if ask else "go"},
             "go": {"type": "goto", "flow": target}}
    if ask:
        nodes["ask"] = {"type": "choice", "text": "Go on?",
                        "choices": [{"id": "y", "title": "Yes", "next": "go"}]}
    return {"format": 1, "id": fid, "name": fid, "engine": "tree", "start": "hi", "nodes": nodes}


async def test_publish_refuses_flows_that_goto_each_other_without_waiting(api):
    # b goes to a, which is not published yet: nothing loops so far.
    for f in (_hop("a", "b"), _hop("b", "a")):
        assert (await api.call("POST", "/flows", json=f))[0] == 201
    assert (await api.call("POST", "/flows/b/publish"))[0] == 201
    # a would go to b, whose published start comes straight back: refused, at a's goto.
    s, ct, p, _ = await api.call("POST", "/flows/a/publish")
    assert (s, ct) == (422, PROBLEM)
    loop, = [e for e in p["errors"] if e["code"] == "flow.loop_without_input"]
    assert loop["path"] == "$.nodes.go" and "a → b → a" in loop["message"]
    assert (await api.call("GET", "/flows/a/versions"))[2]["versions"] == []
    # b asks a question on the way: a turn stops there, so a may go live.
    _, _, b, _ = await api.call("GET", "/flows/b")
    assert (await api.call("PUT", "/flows/b", json=_hop("b", "a", ask=True), headers={"If-Match": b["etag"]}))[0] == 200
    assert (await api.call("POST", "/flows/b/publish"))[0] == 201
    assert (await api.call("POST", "/flows/a/publish"))[0] == 201


async def test_a_rollback_is_checked_against_the_tenants_flows_of_today(api):
    # a v1 goes to b, which then stops at a question; a v2 stops going to b.
    for f in (_hop("a", "b"), _hop("b", "a", ask=True)):
        assert (await api.call("POST", "/flows", json=f))[0] == 201
    assert (await api.call("POST", "/flows/b/publish"))[0] == 201
    assert (await api.call("POST", "/flows/a/publish"))[0] == 201          # a v1
    _, _, a, _ = await api.call("GET", "/flows/a")
    calm = _hop("a", "b") | {"nodes": {"hi": {"type": "end", "text": "bye"}}}
    assert (await api.call("PUT", "/flows/a", json=calm, headers={"If-Match": a["etag"]}))[0] == 200
    assert (await api.call("POST", "/flows/a/publish"))[0] == 201          # a v2
    # b drops its question: fine with a v2, which goes nowhere.
    _, _, b, _ = await api.call("GET", "/flows/b")
    assert (await api.call("PUT", "/flows/b", json=_hop("b", "a"), headers={"If-Match": b["etag"]}))[0] == 200
    assert (await api.call("POST", "/flows/b/publish"))[0] == 201
    # Rolling a back to v1 would close the loop: refused, and a stays on v2.
    s, ct, p, _ = await api.call("POST", "/flows/a/rollback", json={"version": 1})
    assert (s, ct) == (422, PROBLEM)
    assert [e["code"] for e in p["errors"]] == ["flow.loop_without_input"]
    assert [v["version"] for v in (await api.call("GET", "/flows/a/versions"))[2]["versions"]] == [1, 2]
    assert (await api.call("POST", "/flows/a/rollback", json={"version": 7}))[0] == 404


async def test_validate_checks_the_body_it_is_given_even_an_empty_object(api, price_api):
    await api.call("POST", "/flows", json=quiz(price_api.port))
    s, _, v, _ = await api.call("POST", "/flows/quiz/validate", role="viewer")         # no body: the draft
    assert s == 200 and v["valid"]
    async def nothing():        # chunked, no bytes
        return
        yield
    for empty in (b"", b" \n", nothing()):
        s, _, v, _ = await api.call("POST", "/flows/quiz/validate", role="viewer", data=empty,
                                    headers={"Content-Type": "application/json"})
        assert s == 200 and v["valid"], empty
    s, _, v, _ = await api.call("POST", "/flows/quiz/validate", role="viewer", json={})
    assert s == 200 and not v["valid"] and v["errors"] >= 1
    s, ct, p, _ = await api.call("POST", "/flows/quiz/validate", role="viewer", json=None, data=b"null",
                                 headers={"Content-Type": "application/json"})
    assert (s, ct) == (422, PROBLEM)


async def test_if_none_match_compares_weakly_and_takes_lists_and_star(api, price_api):
    await api.call("POST", "/flows", json=quiz(price_api.port))
    etag = (await api.call("GET", "/flows/quiz"))[3]["ETag"]
    for header in (etag, f"W/{etag}", f'"0-other", W/{etag}', f'W/"0-other",{etag}', "*"):
        s, _, _, hdr = await api.call("GET", "/flows/quiz", role="viewer", headers={"If-None-Match": header})
        assert s == 304 and hdr["ETag"] == etag, header
    for header in ('"0-other"', 'W/"0-other", "1-other"', etag.strip('"'), ""):
        assert (await api.call("GET", "/flows/quiz", headers={"If-None-Match": header}))[0] == 200, header


async def test_an_archived_flow_serves_no_version_anywhere(api, price_api):
    await api.call("POST", "/flows", json=quiz(price_api.port))
    await api.call("POST", "/flows/quiz/publish")
    assert (await api.call("GET", "/flows/quiz/graph?version=1"))[0] == 200
    assert (await api.call("DELETE", "/flows/quiz"))[0] == 204
    for path in ("/flows/quiz/graph?version=1", "/flows/quiz/graph", "/flows/quiz/versions/1",
                 "/flows/quiz/versions/1/diff/1", "/flows/quiz/versions"):
        s, ct, _, _ = await api.call("GET", path, role="viewer")
        assert (s, ct) == (404, PROBLEM), path
    assert (await api.call("POST", "/flows/quiz/simulate", json={"version": 1}))[0] == 404


async def test_graph_answers_400_naming_a_bad_query_parameter(api, price_api):
    await api.call("POST", "/flows", json=quiz(price_api.port))
    await api.call("POST", "/flows/quiz/publish")
    for query, name in (("version=abc", "version"), ("version=01", "version"), ("version=0", "version"),
                        ("version=", "version"), ("format=png", "format")):
        s, ct, p, _ = await api.call("GET", f"/flows/quiz/graph?{query}", role="viewer")
        assert (s, ct) == (400, PROBLEM), query
        assert f"`{name}`" in p["detail"] and [e["path"] for e in p["errors"]] == [f"?{name}"], query
    assert (await api.call("GET", "/flows/quiz/graph?version=1"))[0] == 200
    assert (await api.call("GET", "/flows/quiz/graph?version=2"))[0] == 404     # well written, not published


async def test_version_paths_take_only_canonical_numbers(api, price_api):
    await api.call("POST", "/flows", json=quiz(price_api.port))
    await api.call("POST", "/flows/quiz/publish")
    assert (await api.call("GET", "/flows/quiz/versions/1"))[0] == 200
    assert (await api.call("GET", "/flows/quiz/versions/1/diff/draft"))[0] == 200
    for bad in ("01", "%201", "+1", "1_0", "%D9%A1", "1.0", "0", "2147483648", "Draft"):
        s, ct, _, _ = await api.call("GET", f"/flows/quiz/versions/{bad}", role="viewer")
        assert (s, ct) == (404, PROBLEM), bad
        assert (await api.call("GET", f"/flows/quiz/versions/{bad}/diff/draft"))[0] == 404, bad
        assert (await api.call("GET", f"/flows/quiz/versions/1/diff/{bad}"))[0] == 404, bad


async def test_archiving_a_flow_that_a_published_flow_starts_needs_force(api):
    # a goes to b once the contact says yes; b goes back to a: neither can go without force
    for f in (_hop("a", "b", ask=True), _hop("b", "a", ask=True)):
        assert (await api.call("POST", "/flows", json=f))[0] == 201
    assert (await api.call("POST", "/flows/b/publish"))[0] == 201
    assert (await api.call("POST", "/flows/a/publish"))[0] == 201
    s, ct, p, _ = await api.call("DELETE", "/flows/b")
    assert (s, ct, p["code"]) == (409, PROBLEM, "flow.in_use")
    assert [(e["path"], e["code"]) for e in p["errors"]] == [("$.nodes.go.flow", "flow.in_use")]
    assert "'a' (version 1)" in p["errors"][0]["message"]
    assert (await api.call("GET", "/flows/b"))[0] == 200              # still there
    s, _, p, _ = await api.call("DELETE", "/flows/b?force=yes")
    assert s == 400 and p["errors"][0]["path"] == "?force"
    assert (await api.call("DELETE", "/flows/b?force=true"))[0] == 204
    assert (await api.call("GET", "/flows/b"))[0] == 404
    # b is gone: nothing starts a any more, and a says why it no longer validates
    assert (await api.call("DELETE", "/flows/a"))[0] == 204
    s, _, out, _ = await api.call("POST", "/flows/validate", json=_hop("a", "b"))
    assert "flow.unknown" in {p["code"] for p in out["problems"]}


async def test_a_draft_keeps_its_flow_id_and_engine_types_are_checked(api, price_api):
    await api.call("POST", "/flows", json=quiz(price_api.port))
    _, _, before, etag = await api.call("GET", "/flows/quiz")
    other = quiz(price_api.port) | {"id": "other", "name": "Renamed"}
    s, ct, p, _ = await api.call("PUT", "/flows/quiz", json=other, headers={"If-Match": before["etag"]})
    assert (s, ct) == (422, PROBLEM)
    assert [(e["path"], e["code"]) for e in p["errors"]] == [("$.id", "flow.id_mismatch")]
    _, _, after, _ = await api.call("GET", "/flows/quiz")
    assert after["etag"] == before["etag"] and after["name"] == "Quiz"   # nothing saved
    s, _, p, _ = await api.call("POST", "/flows", json=quiz(price_api.port) | {"id": 5})
    assert s == 422 and p["errors"][0]["message"].startswith("Expected `str`, got `int`")
    _, _, out, _ = await api.call("POST", "/flows/validate", json=quiz(price_api.port) | {"engine": 5})
    assert [(e["path"], e["code"]) for e in out["problems"]] == [("$.engine", "flow.invalid")]
    bad = quiz(price_api.port)
    bad["nodes"]["ask"] = {"text": "no type"}
    _, _, out, _ = await api.call("POST", "/flows/validate", json=bad)
    typ, = [e for e in out["problems"] if e["path"] == "$.nodes.ask.type"]
    assert typ["message"].startswith("a node needs a `type`")


async def test_unknown_engine_or_channel_is_a_problem_with_its_path(api, price_api):
    await api.call("POST", "/flows", json=quiz(price_api.port))
    s, ct, p, _ = await api.call("POST", "/flows/quiz/simulate", json={"script": ["quiz"], "channel": "nope"})
    assert (s, ct) == (422, PROBLEM) and [e["path"] for e in p["errors"]] == ["$.channel"]
    _, _, cur, _ = await api.call("GET", "/flows/quiz")
    draft = quiz(price_api.port) | {"engine": "graph"}
    assert (await api.call("PUT", "/flows/quiz", json=draft, headers={"If-Match": cur["etag"]}))[0] == 200
    s, ct, p, _ = await api.call("GET", "/flows/quiz/graph")
    assert (s, ct) == (422, PROBLEM)
    assert [(e["path"], e["code"]) for e in p["errors"]] == [("$.engine", "flow.unknown_engine")]


async def test_simulation_records_the_flow_switch_and_the_variant_as_the_pipeline_does(api):
    split = {"format": 1, "id": "ab", "name": "AB", "engine": "tree", "start": "split",
             "nodes": {"split": {"type": "split", "variants": [{"id": "only", "weight": 1, "next": "go"}]},
                       "go": {"type": "goto", "flow": "b"}}}
    b = {"format": 1, "id": "b", "name": "B", "engine": "tree", "start": "bye",
         "nodes": {"bye": {"type": "end", "outcome": "converted", "text": "Bye"}}}
    for f in (b, split):
        assert (await api.call("POST", "/flows", json=f))[0] == 201
    assert (await api.call("POST", "/flows/b/publish"))[0] == 201
    s, _, sim, _ = await api.call("POST", "/flows/ab/simulate", json={"script": []})
    assert s == 200, sim
    flow_events = [(e["type"], e["flow"], e["data"]) for e in sim["events"] if e["type"].startswith("flow.")]
    assert flow_events == [
        ("flow.started", "ab", {"source": "simulation", "trigger": "start"}),
        ("flow.ended", "ab", {"outcome": "goto", "to": "b", "variant": "only"}),
        ("flow.started", "b", {"source": "simulation", "trigger": "goto", "variant": "only"}),
        ("flow.ended", "b", {"outcome": "converted", "variant": "only"})]
    assert sim["ended"] == "converted"


async def test_simulation_stops_at_five_flows_a_turn_as_the_pipeline_does(api):
    for i in range(6):
        f = _hop(f"f{i}", f"f{i + 1}") if i < 5 else {
            "format": 1, "id": "f5", "name": "f5", "engine": "tree", "start": "hi",
            "nodes": {"hi": {"type": "end", "text": "f5"}}}
        assert (await api.call("POST", "/flows", json=f))[0] == 201
    for i in range(5, 0, -1):
        assert (await api.call("POST", f"/flows/f{i}/publish"))[0] == 201, i
    s, _, sim, _ = await api.call("POST", "/flows/f0/simulate", json={"script": []})
    assert s == 200, sim
    runs = [(e["type"], e["flow"], e["data"].get("outcome"), e["data"].get("why"))
            for e in sim["events"] if e["type"].startswith("flow.")]
    assert [f for t, f, _, _ in runs if t == "flow.started"] == ["f0", "f1", "f2", "f3", "f4"]
    assert runs[-1] == ("flow.ended", "f4", "abandoned", "max_goto") and sim["ended"] == "abandoned"


async def test_disabling_a_plugin_that_published_flows_need_needs_force(api, price_api):
    assert (await api.call("POST", "/flows", json=quiz(price_api.port)))[0] == 201
    assert (await api.call("DELETE", "/plugins/http", role="owner"))[0] == 204    # a draft only: free
    await api.call("PUT", "/plugins/http", role="owner",
                   json={"settings": {"allowed_hosts": [f"127.0.0.1:{price_api.port}"]}})
    assert (await api.call("POST", "/flows/quiz/publish"))[0] == 201
    s, ct, p, _ = await api.call("DELETE", "/plugins/http", role="owner")
    assert (s, ct, p["code"]) == (409, PROBLEM, "plugin.in_use")
    assert [(e["path"], e["code"]) for e in p["errors"]] == [("$.nodes.fetch.step", "plugin.in_use")]
    s, _, p, _ = await api.call("DELETE", "/plugins/tree", role="owner")
    assert s == 409 and p["errors"][0]["path"] == "$.engine" and "'quiz'" in p["errors"][0]["message"]
    assert (await api.call("DELETE", "/plugins/http?force=yes", role="owner"))[0] == 400
    assert (await api.call("DELETE", "/plugins/http?force=true", role="owner"))[0] == 204
    assert "http" not in (await api.store.tenant_snapshot("acme")).plugins
    # the flow still calls http.request, whose plugin is off now: not another plugin's business
    assert (await api.call("PUT", "/plugins/webhook", role="owner", json={"settings": {}}))[0] in (200, 201)
    assert (await api.call("DELETE", "/plugins/webhook", role="owner"))[0] == 204
