"""Flows: drafts under ETag / If-Match, validation, publishing, versions, diff, rollback,
graph and simulation."""
from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from ..appkeys import HTTP
from ..apply import channel_caps, check_flow
from ..problems import ProblemError, errors_only, invalid, items, not_found
from ..store import Conflict, NotFound, PreconditionFailed
from ..store.sqlite import etag_matches
from ..types import Problem
from ..validation import validate_flow
from .diff import diff_flows
from .http import host, invalidate, json_response, principal, read_json, require, store
from .simulate import simulate as run_simulation
from .wire import (MAX_VERSION, FlowList, FlowOut, FlowSummary, GraphOut, PublishIn, PublishOut, RollbackIn,
                   SimulateIn, ValidateOut, VersionList, VersionOut)

Definition = dict[str, Any]


# Problems that keep a definition from being saved as a flow's draft at all.
_IDENTITY = ("flow.id", "flow.id_mismatch", "flow.not_object")


def _ids(request: web.Request) -> tuple[str, str]:
    return request.match_info["tenant"], request.match_info["flow"]


async def _context(request: web.Request, flow_id: str) -> dict[str, Any]:
    """What flow validation needs to know about the tenant: channel limits, flow ids, the
    other flows' published definitions (trigger conflicts), and its plugins (steps)."""
    slug, st = request.match_info["tenant"], store(request)
    caps = channel_caps(host(request), await st.list_channels(slug))
    ids = {f.id for f in await st.list_flows(slug)} | {flow_id}
    snap = await st.tenant_snapshot(slug)
    others = [(f.id, f.definition) for f in (snap.flows if snap else []) if f.id != flow_id]
    # Ids to published definitions (None: never published): gotos are checked against it,
    # cycles of gotos between flows included.
    definitions: dict[str, Any] = dict.fromkeys(ids)
    definitions.update(others)
    return {"channels": caps, "flows": ids, "definitions": definitions, "others": others,
            "enabled": set(snap.plugins) if snap else set()}


async def _check(request: web.Request, flow_id: str, definition: Any) -> list[Problem]:
    return check_flow(host(request), definition, "$", flow_id=flow_id, **await _context(request, flow_id))


def _out(rec: Any, problems: list[Problem] | None = None) -> FlowOut:
    return FlowOut(id=rec.id, name=rec.name, engine=rec.engine, revision=rec.revision, etag=rec.etag,
                   latest_version=rec.latest_version, draft_published=rec.draft_published,
                   updated_at=rec.updated_at, draft=rec.draft, problems=items(problems or []))


async def _flow(request: web.Request) -> Any:
    slug, fid = _ids(request)
    rec = await store(request).get_flow(slug, fid)
    if rec is None or rec.archived:
        raise not_found("flow")
    return rec


async def list_flows(request: web.Request) -> web.Response:
    recs = await store(request).list_flows(request.match_info["tenant"])
    return json_response(FlowList(flows=[
        FlowSummary(id=r.id, name=r.name, engine=r.engine, revision=r.revision, etag=r.etag,
                    latest_version=r.latest_version, draft_published=r.draft_published, updated_at=r.updated_at)
        for r in recs]))


async def create_flow(request: web.Request) -> web.Response:
    """A new flow; the body is its definition, which becomes the draft (not published)."""
    definition: Definition = await read_json(request, Definition)
    fid = definition.get("id")
    problems = await _check(request, fid if isinstance(fid, str) else "", definition)
    if wrong := [p for p in problems if p.code in _IDENTITY]:
        raise invalid(wrong)
    slug = request.match_info["tenant"]
    try:
        rec = await store(request).create_flow(slug, fid, definition)
    except Conflict:
        raise ProblemError(409, "Conflict", f"flow {fid!r} exists; PUT its draft with If-Match") from None
    await invalidate(request, slug)
    return json_response(_out(rec, problems), status=201,
                         headers={"ETag": rec.etag, "Location": f"{request.path}/{fid}"})


# One entity-tag of a list (RFC 9110 8.8.3): weak or strong, its opaque part quoted.
_ENTITY_TAG = re.compile(r'\s*(?:W/)?("[^"]*")\s*(?:,|$)')


def _none_match(header: str, etag: str) -> bool:
    """If-None-Match per RFC 9110 13.1.2: `*` (the flow exists), or a list of entity-tags
    compared weakly, so a cache or proxy that weakened our strong ETag still gets its 304."""
    header = header.strip()
    if header == "*":
        return True
    return etag in _ENTITY_TAG.findall(header)


async def get_flow(request: web.Request) -> web.StreamResponse:
    rec = await _flow(request)
    if _none_match(request.headers.get("If-None-Match", ""), rec.etag):
        return web.Response(status=304, headers={"ETag": rec.etag})
    # Checked against the tenant as it is now (a flow or channel may have changed since the
    # draft was written), as PUT answers it.
    problems = await _check(request, rec.id, rec.draft)
    return json_response(_out(rec, problems), headers={"ETag": rec.etag})


async def put_flow(request: web.Request) -> web.Response:
    """Replace the draft. If-Match with the ETag last read is required: a stale one gets 412
    with the current ETag, so two editors never overwrite each other silently."""
    slug, fid = _ids(request)
    if_match = request.headers.get("If-Match")
    if not if_match:
        rec = await _flow(request)
        raise ProblemError(428, "Precondition Required", "send If-Match with the ETag you last read "
                           "(GET the flow), or If-Match: * to overwrite whatever is there", etag=rec.etag)
    definition: Definition = await read_json(request, Definition)
    definition.setdefault("id", fid)
    # Checked before saving: a check that fails must not leave the draft written behind a 500.
    problems = await _check(request, fid, definition)
    # A draft may be invalid while editors work on it, but not name another flow.
    if wrong := [p for p in problems if p.code in _IDENTITY]:
        raise invalid(wrong, detail="the draft was not saved: its `id` must be the URL's flow id")
    try:
        rec = await store(request).save_draft(slug, fid, definition, if_match)
    except PreconditionFailed as exc:
        raise ProblemError(412, "Precondition Failed", "the draft changed since you read it; GET it again, "
                           "merge, and PUT with the new ETag", etag=exc.etag) from None
    except NotFound:
        raise not_found("flow") from None
    await invalidate(request, slug)
    return json_response(_out(rec, problems), headers={"ETag": rec.etag})


async def _callers(request: web.Request, fid: str) -> list[Problem]:
    """Where the tenant's other published flows start flow `fid` (a `goto`, `active.flow`):
    the places the engines' own validation finds unknown once `fid` is gone."""
    slug, st = request.match_info["tenant"], store(request)
    snap = await st.tenant_snapshot(slug)
    ids = {f.id for f in await st.list_flows(slug)}
    out = []
    for f in snap.flows if snap else ():
        if f.id == fid:
            continue
        before = {p.path for p in check_flow(host(request), f.definition, flows=ids) if p.code == "flow.unknown"}
        out += [Problem(path=p.path, code="flow.in_use",
                        message=f"published flow {f.id!r} (version {f.version}) starts {fid!r} here")
                for p in check_flow(host(request), f.definition, flows=ids - {fid})
                if p.code == "flow.unknown" and p.path not in before]
    return out


async def delete_flow(request: web.Request) -> web.Response:
    """Archive: no new conversation starts it; its versions stay for those still on them.
    Refused (409) while another published flow starts it, unless `?force=true`."""
    slug, fid = _ids(request)
    force = request.query.get("force", "false")
    if force not in ("true", "false"):
        raise _bad_query("force", "true or false")
    await _flow(request)
    if force == "false" and (callers := await _callers(request, fid)):
        raise ProblemError(409, "Conflict", f"published flows start {fid!r}: publish them without it "
                           "first, or archive with ?force=true (a goto there then ends the contact's run "
                           "as abandoned; an active.flow gives its period's message)", code="flow.in_use",
                           errors=callers)
    if not await store(request).archive_flow(slug, fid):
        raise not_found("flow")
    await invalidate(request, slug)
    return web.Response(status=204)


async def validate(request: web.Request) -> web.Response:
    """Validate the draft when the request has no body; else the definition in the body,
    whatever it holds (`{}` is checked, and found wanting). Nothing is saved."""
    rec = await _flow(request)
    definition = rec.draft
    if request.body_exists:
        try:
            definition = await read_json(request, Definition)
        except ProblemError as exc:
            # A body that turned out empty (chunked, no bytes; only blanks) is no body:
            # read_json's "Missing body" is its only 400 without a more specific code.
            if (exc.status, exc.code) != (400, "bad-request"):
                raise
    problems = await _check(request, rec.id, definition)
    n = len(errors_only(problems))
    return json_response(ValidateOut(valid=n == 0, errors=n, warnings=len(problems) - n, problems=items(problems)))


async def validate_any(request: web.Request) -> web.Response:
    """Validate a definition in the body against this tenant (channels, other flows), before
    it is saved anywhere: what an editor's "check" button calls."""
    definition = await read_json(request, Definition)
    fid = definition.get("id") if isinstance(definition.get("id"), str) else ""
    problems = await _check(request, fid, definition)
    n = len(errors_only(problems))
    return json_response(ValidateOut(valid=n == 0, errors=n, warnings=len(problems) - n, problems=items(problems)))


async def publish(request: web.Request) -> web.Response:
    """Validate the whole draft and freeze it as the next version. If-Match (optional) pins
    the draft that was reviewed."""
    slug, fid = _ids(request)
    body: PublishIn = await read_json(request, PublishIn, optional=True)
    rec = await _flow(request)
    if_match = request.headers.get("If-Match")
    if if_match and not etag_matches(if_match, rec.etag):   # as PUT reads it: `*` or a list
        raise ProblemError(412, "Precondition Failed", "the draft changed since you read it", etag=rec.etag)
    problems = await _check(request, fid, rec.draft)
    if errors_only(problems):
        raise invalid(problems, title="The draft cannot be published",
                      detail=f"{len(errors_only(problems))} error(s); nothing was published")
    try:
        fv, created = await store(request).publish(slug, fid, if_match=rec.etag, by=principal(request).id,
                                                   note=body.note)
    except PreconditionFailed as exc:   # changed between our read and the write
        raise ProblemError(412, "Precondition Failed", "the draft changed while publishing", etag=exc.etag) from None
    if created:
        await invalidate(request, slug)
    return json_response(PublishOut(id=fid, version=fv.version, created=created, published_at=fv.published_at,
                                    warnings=items(problems)), status=201 if created else 200)


async def list_versions(request: web.Request) -> web.Response:
    slug, fid = _ids(request)
    await _flow(request)
    return json_response(VersionList(versions=await store(request).list_versions(slug, fid)))


# A version as the API writes it: `int()` would also take " 1", "+2", "01", "1_0" and other
# scripts' digits, each a second URL for one version (caches and logs would not see one).
_VERSION = re.compile(r"[1-9][0-9]{0,9}")


def _version(raw: str) -> int | str | None:
    """`draft`, or a version number written canonically; None for anything else."""
    if raw == "draft":
        return raw
    if not _VERSION.fullmatch(raw) or int(raw) > MAX_VERSION:
        return None
    return int(raw)


def _version_param(raw: str) -> int | str:
    """A version in the path: anything but a canonical one names no resource (404)."""
    which = _version(raw)
    if which is None:
        raise not_found("version")
    return which


def _bad_query(name: str, message: str) -> ProblemError:
    """400 naming the query parameter, in `detail` and as the `errors` item's path (`?name`)."""
    return ProblemError(400, "Bad query parameter", f"`{name}`: {message}",
                        errors=[Problem(path=f"?{name}", code="constraint", message=message)])


async def _definition(request: web.Request, which: int | str) -> dict[str, Any]:
    """The draft or a published version of a flow that is not archived: an archived flow's
    versions are kept for the conversations still on them, not served here."""
    slug, fid = _ids(request)
    rec = await _flow(request)
    if which == "draft":
        return rec.draft
    fv = await store(request).get_flow_version(slug, fid, int(which))
    if fv is None:
        raise not_found(f"version {which}")
    return fv.definition


async def get_version(request: web.Request) -> web.Response:
    slug, fid = _ids(request)
    await _flow(request)
    v = _version_param(request.match_info["version"])
    if v == "draft":
        raise not_found("version (the draft is GET .../flows/{flow})")
    infos = {i.version: i for i in await store(request).list_versions(slug, fid)}
    fv = await store(request).get_flow_version(slug, fid, int(v))
    if fv is None:
        raise not_found(f"version {v}")
    i = infos[int(v)]
    return json_response(VersionOut(id=fid, version=fv.version, published_at=fv.published_at,
                                    definition=fv.definition, hash=i.hash, note=i.note, by=i.by,
                                    rollback_of=i.rollback_of))


async def diff(request: web.Request) -> web.Response:
    """`versions/{a}/diff/{b}`: what changed from a to b, node by node; `draft` names the draft."""
    a = _version_param(request.match_info["a"])
    b = _version_param(request.match_info["b"])
    da, db = await _definition(request, a), await _definition(request, b)
    return json_response(diff_flows(request.match_info["flow"], a, da, b, db))


async def rollback(request: web.Request) -> web.Response:
    """Publish an older version again, under a new number."""
    slug, fid = _ids(request)
    body: RollbackIn = await read_json(request, RollbackIn)
    await _flow(request)
    old = await store(request).get_flow_version(slug, fid, body.version)
    if old is None:
        raise not_found(f"version {body.version}")
    # Valid when it was published, but the tenant's other flows may have changed since
    # (a goto to a flow now gone, or one that now comes straight back).
    problems = await _check(request, fid, old.definition)
    if errors_only(problems):
        raise invalid(problems, title="This version cannot be published again",
                      detail=f"{len(errors_only(problems))} error(s) against the tenant's flows today; "
                             "nothing was published")
    try:
        fv = await store(request).rollback(slug, fid, body.version, by=principal(request).id, note=body.note)
    except NotFound:
        raise not_found(f"version {body.version}") from None
    await invalidate(request, slug)
    return json_response(PublishOut(id=fid, version=fv.version, created=True, published_at=fv.published_at),
                         status=201)


async def graph(request: web.Request) -> web.Response:
    """The flow as Mermaid text and SVG. `?version=` a number or `draft` (default: draft);
    `?format=json|mermaid|svg`."""
    which = _version(request.query.get("version", "draft"))
    if which is None:
        raise _bad_query("version", "a version number (1, 2...) or `draft`")
    fmt = request.query.get("format", "json")
    if fmt not in ("json", "mermaid", "svg"):
        raise _bad_query("format", "json, mermaid or svg")
    definition = await _definition(request, which)
    name = definition.get("engine", "tree")     # a draft may hold anything here, a list included
    engine = host(request).engines.get(name) if isinstance(name, str) else None
    if engine is None:
        raise invalid(validate_flow(host(request), definition), title="Cannot draw this flow",
                      detail="its engine is not installed")
    try:
        pics = engine.graph(definition) or {}
    except Exception as exc:  # an invalid draft may not draw; say why
        raise ProblemError(422, "Cannot draw this flow", f"{type(exc).__name__}: {exc}; validate it first") from None
    if fmt == "mermaid":
        return web.Response(text=pics.get("mermaid", ""), content_type="text/vnd.mermaid")
    if fmt == "svg":
        return web.Response(text=pics.get("svg", ""), content_type="image/svg+xml")
    return json_response(GraphOut(mermaid=pics.get("mermaid", ""), svg=pics.get("svg", "")))


async def simulate(request: web.Request) -> web.Response:
    """Run the draft (or a version) against a script of inputs; no side effects."""
    slug, fid = _ids(request)
    req: SimulateIn = await read_json(request, SimulateIn, optional=True)
    if req.live_steps:
        require(request, "editor")
    definition = await _definition(request, req.version)
    problems = await _check(request, fid, definition)
    if errors_only(problems):
        raise invalid(problems, title="This flow cannot run", detail="fix its errors first (see `errors`)")
    snap = await store(request).tenant_snapshot(slug)
    if snap is None:                   # deleted while this request ran
        raise not_found("tenant")
    flows = {f.id: f.definition for f in snap.flows}
    out = await run_simulation(host(request), snap, fid, req.version, definition, req, flows,
                               http=request.config_dict.get(HTTP))
    out.problems = items(problems)
    return json_response(out)

