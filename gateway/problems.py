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

_SAFE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_FIELD = re.compile(r"field `(.+)`$")
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


def key_path(base: str, key: str) -> str:
    """`$.vars` + `name` -> `$.vars.name`; a key that is not a name goes in brackets."""
    return f"{base}.{key}" if _SAFE_KEY.match(key) else f"{base}[{msgspec.json.encode(key).decode()}]"


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
    field = _FIELD.search(msg)
    if msg.startswith("Object missing required field"):
        code = "required"
    elif msg.startswith("Object contains unknown field"):
        code = "unknown_field"
    if code in ("required", "unknown_field") and field:
        path = key_path(path, field.group(1))     # the field's own path, as flows give it
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


# Levels of nesting a JSON document may have (tenants/demo.json has 8). msgspec stops near
# Python's recursion limit, but values a little under it were stored and then broke every
# later read of them (the store's decoder runs deeper in the stack), and the Python code that
# walks flows (validation, diff) recurses too.
MAX_DEPTH = 64


def decode_json(raw: bytes | str, type_: Any = Any, *, where: str = "",
                title: str = "Invalid request") -> Any:
    """JSON bytes decoded into `type_`, or a ProblemError: 400 when not JSON (bytes that are
    not UTF-8 included), 422 with the JSON path when of the wrong shape or nested more than
    MAX_DEPTH levels. `where` (a file name) prefixes the paths."""
    at = f"{where}: " if where else ""
    try:
        # Untyped first: it checks every string is UTF-8 (a `msgspec.Raw` field is not looked
        # into) and gives the nesting to measure.
        deep = _too_deep(msgspec.json.decode(raw))
        if deep is None:
            return msgspec.json.decode(raw, type=type_)
    except msgspec.ValidationError as exc:
        raise invalid([from_validation_error(exc, prefix=f"{where}:$" if where else "$")],
                      detail="the JSON does not match the expected shape", title=title) from None
    except msgspec.DecodeError as exc:
        raise ProblemError(400, "Malformed JSON", f"{at}{exc}{_line_column(raw, str(exc))}",
                           code="malformed-json") from None
    except UnicodeDecodeError:    # msgspec raises it, not DecodeError, for bytes that are not UTF-8
        raise ProblemError(400, "Malformed JSON", f"{at}{not_utf8(raw)}", code="malformed-json") from None
    except RecursionError:
        deep = "$"
    raise invalid([Problem(path=join_path(f"{where}:$", deep) if where else deep, code="constraint",
                           message=f"nested more than {MAX_DEPTH} levels deep")],
                  detail=f"{at}nested more than {MAX_DEPTH} levels deep", title=title)


def _line_column(raw: bytes | str, message: str) -> str:
    """", line L column C" for msgspec's "(byte N)": people read files by lines."""
    m = re.search(r"\(byte (\d+)\)", message)
    if m is None:
        return ""
    head = (raw.encode() if isinstance(raw, str) else bytes(raw))[:int(m.group(1))]
    line = head.count(b"\n") + 1
    column = len(head[head.rfind(b"\n") + 1:].decode("utf-8", "replace")) + 1
    return f", line {line} column {column}"


def not_utf8(raw: bytes | str) -> str:
    """Why `raw` cannot be JSON for not being UTF-8, naming the first bad byte's offset in
    `raw` ("" when it is UTF-8). msgspec's own error counts from the start of the string
    that holds the byte, which points nowhere useful."""
    if isinstance(raw, str):
        return ""
    try:
        bytes(raw).decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"JSON is UTF-8; byte {exc.start} is not"
    return ""


def _too_deep(value: Any) -> str | None:
    """The JSON path of the first array or object nested deeper than MAX_DEPTH, or None.
    Iterative: the point is to stay clear of the recursion limit."""
    if not isinstance(value, (dict, list)):
        return None
    stack: list[tuple[Any, int, str]] = [(value, 1, "$")]
    while stack:
        v, depth, path = stack.pop()
        if depth > MAX_DEPTH:
            return path
        pairs = v.items() if isinstance(v, dict) else enumerate(v)
        for k, x in pairs:
            if isinstance(x, (dict, list)):
                stack.append((x, depth + 1, f"{path}.{k}" if isinstance(v, dict) else f"{path}[{k}]"))
    return None
