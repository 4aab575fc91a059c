"""The admin API's HTTP plumbing: the route table type, bearer auth with tenant scope and
roles, JSON bodies decoded into Structs, and every error as RFC 9457 problem+json.

Scope before role: a tenant key naming another tenant gets 404 (as if the tenant did not
exist, so keys cannot probe for slugs); a key of the right tenant without the role gets 403;
no key or a bad one gets 401.
"""
from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable, NamedTuple

import msgspec
from aiohttp import web

from ..appkeys import PLUGINS, REGISTRY, STORE
from ..problems import CONTENT_TYPE, ProblemError, decode_json
from ..store import NotFound
from ..store.records import KeyInfo, role_rank

log = logging.getLogger("causette.admin")
MAX_BODY = 2 * 1024 * 1024          # bytes; flows are the largest bodies
_enc = msgspec.json.Encoder()
KEY = web.RequestKey("causette.key", KeyInfo)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Route(NamedTuple):
    method: str
    path: str                      # `{tenant}` marks tenant-scoped routes
    handler: Handler
    access: str                    # "public", "any" (any valid key), "agency", or a tenant role
    summary: str
    body: Any = None               # request Struct (or None)
    response: Any = None           # response Struct (or None)
    status: int = 200
    produces: str = "application/json"
    query: tuple[tuple[str, str], ...] = ()        # (name, description)
    headers: tuple[tuple[str, str], ...] = ()      # request headers that matter (If-Match)
    writes: bool = False           # changes something (used by the security test)
    creates: bool = False          # an agency key may name a tenant that does not exist yet
    also: tuple[int, ...] = ()     # other success statuses (201 when a PUT created the thing)
    fails: tuple[int, ...] = ()    # problem statuses beyond those the route's shape implies


def principal(request: web.Request) -> KeyInfo:
    return request[KEY]


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=_enc.encode(obj), status=status, headers=headers,
                        content_type="application/json")


def problem_response(exc: ProblemError, request: web.Request) -> web.Response:
    headers = dict(exc.headers)
    if exc.etag:
        headers["ETag"] = exc.etag
    return web.Response(body=_enc.encode(exc.doc(instance=request.path)), status=exc.status,
                        headers=headers, content_type=CONTENT_TYPE)


async def read_json(request: web.Request, type_: Any, *, optional: bool = False) -> Any:
    """The body decoded into `type_`: 415 for a non-JSON content type, 413 when too large,
    400 when not JSON, 422 with the JSON path when JSON of the wrong shape."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise ProblemError(413, "Payload Too Large", f"the body is limited to {MAX_BODY} bytes")
    ctype = request.content_type
    if request.body_exists and ctype not in ("application/json", "application/octet-stream") \
            and not ctype.endswith("+json"):
        raise ProblemError(415, "Unsupported Media Type", "send JSON with Content-Type: application/json")
    body = b""
    if request.body_exists:
        body = await _read_limited(request)
    if not body.strip():
        if optional:
            return msgspec.convert({}, type_)
        raise ProblemError(400, "Missing body", "this request needs a JSON body")
    return decode_json(body, type_, title="Invalid request")


async def _read_limited(request: web.Request) -> bytes:
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > MAX_BODY:
            raise ProblemError(413, "Payload Too Large", f"the body is limited to {MAX_BODY} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _bearer(request: web.Request) -> str:
    auth = request.headers.get("Authorization", "")
    scheme, _, token = auth.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def guard(route: Route) -> Handler:
    """Authenticate, check tenant scope and role, then call the handler."""
    async def handler(request: web.Request) -> web.StreamResponse:
        if route.access == "public":
            return await route.handler(request)
        token = _bearer(request)
        key = await request.config_dict[STORE].check_key(token) if token else None
        if key is None:
            raise ProblemError(401, "Unauthorized", "give a valid API key: Authorization: Bearer cst_...",
                               headers={"WWW-Authenticate": 'Bearer realm="causette"'})
        request[KEY] = key
        tenant = request.match_info.get("tenant")
        if tenant is not None:
            if key.tenant is not None and key.tenant != tenant:
                raise ProblemError(404, "Not Found", "no such tenant")
            if not (route.creates and key.role == "agency") and \
                    await request.config_dict[STORE].get_tenant(tenant) is None:
                raise ProblemError(404, "Not Found", "no such tenant")
        if route.access == "agency":
            if key.role != "agency":
                raise ProblemError(403, "Forbidden", "this needs an agency key")
        elif route.access != "any" and role_rank(key.role) < role_rank(route.access):
            raise ProblemError(403, "Forbidden", f"this needs the {route.access} role or higher; "
                                                 f"this key is {key.role}")
        return await route.handler(request)
    handler.__name__ = getattr(route.handler, "__name__", "handler")
    return handler


def require(request: web.Request, role: str) -> None:
    """A finer role check inside a handler (e.g. simulate with live steps)."""
    key = principal(request)
    if role_rank(key.role) < role_rank(role):
        raise ProblemError(403, "Forbidden", f"this needs the {role} role or higher; this key is {key.role}")


async def _problems(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every admin error as RFC 9457 problem+json."""
    try:
        return await handler(request)
    except ProblemError as exc:
        return problem_response(exc, request)
    except NotFound as exc:     # the tenant (or flow) was deleted while this request ran
        return problem_response(ProblemError(404, "Not Found", str(exc)), request)
    except web.HTTPRequestEntityTooLarge:
        return problem_response(ProblemError(413, "Payload Too Large", "the body is too large"), request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "www-authenticate")}
        detail = {404: "no such route", 405: f"method {request.method} is not allowed here"}.get(exc.status, exc.text or "")
        return problem_response(ProblemError(exc.status, exc.reason, detail, headers=headers), request)
    except Exception:
        log.exception("admin %s %s failed", request.method, request.path)
        return problem_response(ProblemError(500, "Internal Server Error", "the error was logged"), request)


def with_problems(handler: Handler) -> Handler:
    """Wraps one admin handler. A middleware would do the same, but any middleware in a
    sub-app makes aiohttp run the middleware machinery for every request of the parent app,
    webhooks included."""
    async def wrapped(request: web.Request) -> web.StreamResponse:
        return await _problems(request, handler)
    wrapped.__name__ = getattr(handler, "__name__", "handler")
    return wrapped


async def unmatched(request: web.Request) -> web.StreamResponse:
    """The admin app's last route: 405 with Allow when another route has this path, else 404."""
    allowed: set[str] = set()
    for resource in request.app.router.resources():
        if resource is not request.match_info.route.resource:
            _, methods = await resource.resolve(request)
            allowed |= methods
    if allowed:
        raise ProblemError(405, "Method Not Allowed", f"method {request.method} is not allowed here",
                           headers={"Allow": ",".join(sorted(allowed))})
    raise ProblemError(404, "Not Found", "no such route")


async def invalidate(request: web.Request, slug: str) -> None:
    """Every process drops its cached copy of the tenant (Redis pub/sub)."""
    registry = request.config_dict.get(REGISTRY)
    if registry is not None:
        await registry.invalidate(slug)


def host(request: web.Request) -> Any:
    return request.config_dict[PLUGINS]


def store(request: web.Request) -> Any:
    return request.config_dict[STORE]
