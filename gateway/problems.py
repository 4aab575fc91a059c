"""RFC 9457 problem details, shared by the admin API, `tenants apply` and the CLI.

One exception type, `ProblemError`, carries an HTTP status, a title, a sentence and the list
of `Problem`s (each with the JSON path of what is wrong). The admin API turns it into an
`application/problem+json` response; the CLI prints `render()`.
"""
from __future__ import annotations

import re
from typing import Any, Iterable, Literal

import msgspec

from .types import Problem

TYPE_BASE = "urn:causette:problem:"
CONTENT_TYPE = "application/problem+json"

_AT = re.compile(r"^(?P<msg>.*?)(?: - at `(?P<path>[^`]*)`)?$", re.S)


class ProblemItem(msgspec.Struct):
    """One problem on the wire: every field always present (`severity` included)."""
    path: str
    code: str
    message: str
    severity: Literal["error", "warning"] = "error"


def items(problems: Iterable[Problem]) -> list[ProblemItem]:
    return [ProblemItem(path=p.path, code=p.code, message=p.message, severity=p.severity) for p in problems]


class ProblemDoc(msgspec.Struct, omit_defaults=True):
    """The wire shape of an error answer (RFC 9457), `errors` listing each invalid field."""
    type: str
    title: str
    status: int
    detail: str = ""
    instance: str = ""
    code: str = ""
    errors: list[ProblemItem] = []
    etag: str = ""             # with 412: the resource's current ETag


class ProblemError(Exception):
    """Raise anywhere below a handler (or in `apply`): becomes one problem+json answer."""

    def __init__(self, status: int, title: str, detail: str = "", *, code: str = "",
                 errors: Iterable[Problem] = (), etag: str = "",
                 headers: dict[str, str] | None = None):
        super().__init__(detail or title)
        self.status, self.title, self.detail = status, title, detail
        self.code = code or _default_code(status)
        self.errors = list(errors)
        self.etag = etag
        self.headers = headers or {}

    def doc(self, instance: str = "") -> ProblemDoc:
        return ProblemDoc(type=TYPE_BASE + self.code, title=self.title, status=self.status,
                          detail=self.detail, instance=instance, code=self.code,
                          errors=items(self.errors), etag=self.etag)

    def __str__(self) -> str:
        return self.render()

    def render(self) -> str:
        """Human-readable, for the terminal: one line per problem."""
        lines = [f"{self.title}: {self.detail}" if self.detail else self.title]
        for p in self.errors:
            lines.append(f"  {p.severity:7} {p.path}  [{p.code}] {p.message}")
        return "\n".join(lines)


_CODES = {400: "bad-request", 401: "unauthorized", 403: "forbidden", 404: "not-found",
          405: "method-not-allowed", 409: "conflict", 412: "precondition-failed",
          413: "too-large", 415: "unsupported-media-type", 422: "invalid", 428: "precondition-required",
          500: "internal"}


def _default_code(status: int) -> str:
    return _CODES.get(status, f"http-{status}")


def join_path(prefix: str, path: str) -> str:
    """`$.channels[0]` + `$.settings.token` -> `$.channels[0].settings.token`."""
    if not path or path == "$":
        return prefix
    if path.startswith("$"):
        path = path[1:]
    return prefix + path


def from_validation_error(exc: msgspec.ValidationError | str, prefix: str = "$",
                          code: str = "invalid") -> Problem:
    """msgspec says `Expected `int`, got `str` - at `$.a[0].b``: keep the sentence, move the
    path into `path` (under `prefix`, so nested documents report their full path)."""
    m = _AT.match(str(exc))
    assert m is not None
    msg = m.group("msg").strip()
    path = join_path(prefix, m.group("path") or "$")
    if msg.startswith("Object missing required field"):
        code = "required"
    elif msg.startswith("Object contains unknown field"):
        code = "unknown_field"
    elif msg.startswith("Expected") and ", got `" in msg:
        code = "type"
    elif msg.startswith("Expected"):
        code = "constraint"            # a bound, a length, a pattern
    elif msg.startswith("Invalid enum value"):
        code = "enum"
    return Problem(path=path, code=code, message=msg)


def invalid(problems: Iterable[Problem], detail: str = "", title: str = "Invalid request") -> ProblemError:
    """Many problems as one 422 answer. Warnings ride along; only errors make it fail."""
    problems = list(problems)
    n = sum(p.severity == "error" for p in problems)
    return ProblemError(422, title, detail or f"{n} error(s) found; each is listed under `errors` "
                        "with the JSON path of what is wrong",
                        code="validation", errors=problems)


def errors_only(problems: Iterable[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == "error"]


def not_found(what: str) -> ProblemError:
    return ProblemError(404, "Not Found", f"no such {what}")


def conflict(detail: str) -> ProblemError:
    return ProblemError(409, "Conflict", detail)


def problem_dict(status: int, title: str, detail: str = "") -> dict[str, Any]:
    return msgspec.to_builtins(ProblemError(status, title, detail).doc())
