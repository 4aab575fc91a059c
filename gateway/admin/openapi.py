"""`/admin/v1/openapi.json`, generated from the route table and the Structs it names."""
from __future__ import annotations

import re
from typing import Any, Iterable

import msgspec

from .. import __version__
from ..problems import CONTENT_TYPE, ProblemDoc

REF = "#/components/schemas/{name}"
_PARAM = re.compile(r"{(\w+)}")
_PARAM_DOC = {"tenant": "tenant slug", "flow": "flow id", "channel": "channel instance id", "plugin": "plugin name",
              "key": "key id", "version": "version number", "a": "version number or `draft`",
              "b": "version number or `draft`"}
_STATUS = {400: "Malformed JSON or bad parameter", 401: "No or invalid API key",
           403: "The key's role does not allow this", 404: "No such tenant or resource (or not yours)",
           409: "Conflict", 412: "If-Match is stale (the problem carries the current `etag`)",
           413: "Body too large", 415: "Not JSON", 422: "Invalid: `errors` lists each problem with its JSON path",
           428: "If-Match is required", 500: "Internal error (logged)"}


def openapi_document(routes: Iterable[Any]) -> dict[str, Any]:
    routes = list(routes)
    types = [ProblemDoc]
    for r in routes:
        for t in (r.body, r.response):
            if t is not None and t not in types:
                types.append(t)
    schemas, components = msgspec.json.schema_components(types, ref_template=REF)
    by_type = dict(zip(types, schemas))
    paths: dict[str, dict[str, Any]] = {}
    for r in routes:
        op: dict[str, Any] = {"summary": r.summary, "operationId": _op_id(r),
                              "tags": [_tag(r.path)],
                              "x-access": r.access}
        params = [{"name": n, "in": "path", "required": True, "description": _PARAM_DOC.get(n, n),
                   "schema": {"type": "string"}} for n in _PARAM.findall(r.path)]
        params += [{"name": n, "in": "query", "required": False, "description": d, "schema": {"type": "string"}}
                   for n, d in r.query]
        params += [{"name": n, "in": "header", "required": False, "description": d, "schema": {"type": "string"}}
                   for n, d in r.headers]
        if params:
            op["parameters"] = params
        if r.body is not None:
            schema = by_type[r.body]
            if r.body is dict:    # a flow definition: its format belongs to its engine
                schema = {"type": "object", "description": "a flow definition; its JSON Schema is "
                          "GET /admin/v1/schemas/flow.json?engine=<the flow's engine>"}
            op["requestBody"] = {"required": r.method != "POST" or r.body is dict,
                                 "content": {"application/json": {"schema": schema}}}
        ok: dict[str, Any] = {"description": "OK" if r.status == 200 else
                              "Created" if r.status == 201 else "No Content"}
        if r.response is not None and r.status != 204:
            ok["content"] = {r.produces: {"schema": by_type[r.response]}}
        responses: dict[str, Any] = {str(r.status): ok}
        if r.status == 201:
            responses["200"] = {"description": "Nothing new (e.g. publishing an unchanged draft)"}
        for extra in r.also:
            responses[str(extra)] = {**ok, "description": "Created" if extra == 201 else "OK"}
        problem = {"content": {CONTENT_TYPE: {"schema": by_type[ProblemDoc]}}}
        codes = [400, 422] if r.body is not None else []
        if r.access != "public":
            codes += [401, 403]
        if "{" in r.path:
            codes.append(404)
        if r.writes:
            codes.append(409)
        if any(h == "If-Match" for h, _ in r.headers):
            codes += [412, 428]
        codes += r.fails
        for c in sorted(set(codes)):
            responses[str(c)] = {"description": _STATUS[c], **problem}
        op["responses"] = responses
        if r.access == "public":
            op["security"] = []
        paths.setdefault(_PARAM.sub(r"{\1}", r.path), {})[r.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "Causette admin API", "version": __version__,
                 "description": "Tenants, keys, plugins, channels and flows. Errors are RFC 9457 "
                                "problem+json with the JSON path of each invalid field."},
        "servers": [{"url": "/admin/v1"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {"schemas": components,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                                      "description": "cst_<id>_<secret>: an agency key, "
                                                                     "or a tenant key with a role"}}},
    }


def _tag(path: str) -> str:
    parts = [p for p in path.split("/") if p and not p.startswith("{")]
    return parts[1] if len(parts) > 1 and parts[0] == "tenants" else parts[0] if parts else "admin"


def _op_id(r: Any) -> str:
    words = [p.strip("{}") for p in r.path.split("/") if p]
    return r.method.lower() + "_" + "_".join(w.replace(".", "_") for w in words)
