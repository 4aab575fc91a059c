"""`trigger.conflict` through the whole gateway: the admin API over HTTP, then a message on
the generic webhook channel. Of flows sharing a trigger, the one whose id sorts first starts
on it, whichever was published first; the warning names that flow, and a flow is warned only
at its own triggers."""
from __future__ import annotations

import json
import uuid

import pytest

from causette_webhook import sign
from gateway.triggers import RULE

SECRET = "trigger-conflict-secret"
TENANT = "/admin/v1/tenants/tc"
CHANNEL = {"id": "app", "type": "webhook", "settings": {"secret": SECRET}}


def flow(fid: str, *triggers: dict) -> dict:
    """A flow that says its own id and ends; no `triggers` field when none are given."""
    out = {"format": 1, "id": fid, "name": fid, "engine": "tree", "locale": "en", "start": "hi",
           "nodes": {"hi": {"type": "end", "outcome": "completed", "text": f"this is {fid}"}}}
    return {**out, "triggers": list(triggers)} if triggers else out


def keyword(*words: str) -> dict:
    return {"type": "keyword", "any": list(words)}


def conflict(fid: str, rivals: str, winner: str, word: str = "promo") -> str:
    return f"keyword {word!r} of flow {fid!r} is also a trigger of {rivals}; {winner!r} wins: {RULE}"


async def admin(gw, method: str, path: str, body=None, headers=None):
    async with gw.http.request(method, gw.url + path, json=body,
                               headers={**gw.admin_headers, **(headers or {})}) as r:
        return r.status, await r.json(), r.headers


async def new_tenant(gw) -> None:
    for method, path, body in [("POST", "/admin/v1/tenants", {"slug": "tc", "name": "TC", "locale": "en"}),
                               ("PUT", TENANT + "/plugins/tree", {}),
                               ("PUT", TENANT + "/plugins/webhook", {}),
                               ("POST", TENANT + "/channels", CHANNEL)]:
        status, answer, _ = await admin(gw, method, path, body)
        assert status == 201, answer


async def publish(gw, definition: dict) -> tuple[list, list]:
    """Create the flow and publish it: the problems the creation answered, the publish's warnings."""
    status, created, _ = await admin(gw, "POST", TENANT + "/flows", definition)
    assert status == 201, created
    status, published, _ = await admin(gw, "POST", f"{TENANT}/flows/{definition['id']}/publish")
    assert status == 201, published
    return created["problems"], published["warnings"]


def conflicts(problems: list) -> list[tuple[str, str, str]]:
    return [(p["path"], p["severity"], p["message"]) for p in problems if p["code"] == "trigger.conflict"]


async def say(gw, text: str) -> list[str]:
    """A message from a new contact on the webhook channel; the texts of the replies."""
    raw = json.dumps({"id": uuid.uuid4().hex, "from": uuid.uuid4().hex, "text": text}).encode()
    async with gw.http.post(gw.url + "/t/tc/channels/app", data=raw,
                            headers={"Content-Type": "application/json",
                                     "X-Causette-Signature": sign(SECRET, raw)}) as r:
        assert r.status == 200
        return [m["text"] for m in await r.json()]


@pytest.mark.parametrize("first, second", [("zeta", "alpha"), ("alpha", "zeta")])
async def test_the_warning_names_the_flow_the_shared_keyword_starts(gateway, first, second):
    gw = await gateway()
    await new_tenant(gw)
    triggers = {"zeta": [keyword("promo", "zeta")], "alpha": [keyword("promo")]}
    assert conflicts(sum(await publish(gw, flow(first, *triggers[first])), [])) == []
    assert await say(gw, "promo") == [f"this is {first}"]

    created, published = await publish(gw, flow(second, *triggers[second]))
    # `alpha` sorts first: it starts on "promo", whichever of the two was published first
    assert await say(gw, "PROMO") == ["this is alpha"]
    assert await say(gw, "zeta") == ["this is zeta"]       # zeta keeps its other keyword
    warning = [("$.triggers[0].any[0]", "warning", conflict(second, f"flow {first!r}", "alpha"))]
    assert conflicts(created) == conflicts(published) == warning
    # each flow, validated now, is told the same winner at its own keyword
    for fid, rival in (("zeta", "alpha"), ("alpha", "zeta")):
        status, out, _ = await admin(gw, "POST", f"{TENANT}/flows/{fid}/validate")
        assert status == 200 and out["valid"]
        assert conflicts(out["problems"]) == [
            ("$.triggers[0].any[0]", "warning", conflict(fid, f"flow {rival!r}", "alpha"))]


async def test_a_flow_is_warned_only_at_its_own_triggers(gateway):
    gw = await gateway()
    await new_tenant(gw)
    await publish(gw, flow("zeta", keyword("promo")))
    await publish(gw, flow("alpha", keyword("promo")))

    # no triggers at all: the conflict between alpha and zeta is none of its business,
    # on creation, draft update, validation (saved or not) and publish alike
    plain = flow("plain")
    status, created, headers = await admin(gw, "POST", TENANT + "/flows", plain)
    assert status == 201 and conflicts(created["problems"]) == []
    status, put, _ = await admin(gw, "PUT", TENANT + "/flows/plain", plain, {"If-Match": headers["ETag"]})
    assert status == 200 and conflicts(put["problems"]) == []
    for path, body in ((TENANT + "/flows/plain/validate", None), (TENANT + "/flows/validate", plain)):
        status, out, _ = await admin(gw, "POST", path, body)
        assert status == 200 and out["valid"] and conflicts(out["problems"]) == []
    status, published, _ = await admin(gw, "POST", TENANT + "/flows/plain/publish")
    assert status == 201 and conflicts(published["warnings"]) == []

    # triggers of its own, none shared: nothing either
    created, published = await publish(gw, flow("other", keyword("hello"), {"type": "referral", "ref": "qr-1"}))
    assert conflicts(created) == conflicts(published) == []

    # a third flow on "promo": one warning, at its keyword, naming both rivals and the winner
    created, published = await publish(gw, flow("beta", {"type": "start"}, keyword("bonjour", "Prómo")))
    assert conflicts(published) == [
        ("$.triggers[1].any[1]", "warning", conflict("beta", "flows 'alpha', 'zeta'", "alpha", "Prómo"))]
    assert await say(gw, "promo") == ["this is alpha"]


async def test_a_tenant_file_warns_each_flow_of_a_shared_trigger_whatever_its_order(gateway):
    gw = await gateway()
    tenant = {"slug": "tc", "name": "TC", "locale": "en", "plugins": {"tree": {}, "webhook": {}},
              "channels": [CHANNEL],
              "flows": [flow("zeta", keyword("promo")), flow("plain"), flow("alpha", keyword("promo"))]}
    status, out, _ = await admin(gw, "PUT", TENANT, tenant)
    assert status == 201, out
    assert conflicts(out["warnings"]) == [
        ("$.flows[0].triggers[0].any[0]", "warning", conflict("zeta", "flow 'alpha'", "alpha")),
        ("$.flows[2].triggers[0].any[0]", "warning", conflict("alpha", "flow 'zeta'", "alpha"))]
    assert await say(gw, "promo") == ["this is alpha"]

    # a published flow the file leaves out still runs, and still shares the keyword
    status, out, _ = await admin(gw, "PUT", TENANT, {**tenant, "flows": [flow("zeta", keyword("promo"))]})
    assert status == 200, out
    assert conflicts(out["warnings"]) == [
        ("$.flows[0].triggers[0].any[0]", "warning", conflict("zeta", "flow 'alpha'", "alpha"))]
    assert await say(gw, "promo") == ["this is alpha"]
