"""`${VAR}` in tenant files: values taken from the environment when `causette tenants apply`
reads them, so a file in version control names a credential or an address without holding it
(`"access_token": "${WHATSAPP_TOKEN}"`, the demo's own port).

`${NAME}` is the variable's value and an error when it is unset; `${NAME:-default}` is the
default when the variable is unset or empty, as in a shell, and the default may itself hold
references (`${CAUSETTE_PORT:-${PORT:-8080}}`); `$${` writes `${`, and `${{` is text (a
dollar before a template, `${{total}}`); any other `${` that no name follows is an error.
Only string values are expanded, never keys, and a value comes out as a string. The admin
API takes JSON as sent: nothing is expanded there (a tenant's key must not read the
server's environment).
"""
from __future__ import annotations

from typing import Any, Mapping

from .problems import key_path
from .types import Problem

_START = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")
_NAME = _START | frozenset("0123456789")
MAX_NESTING = 10      # `${A:-${B:-...}}` levels


class _Syntax(ValueError):
    pass


def expand(value: Any, env: Mapping[str, str], path: str = "$") -> tuple[Any, list[Problem]]:
    """`value` (decoded JSON) with its strings' `${...}` replaced from `env`, and a problem
    (with its JSON path) for each variable that is unset without a default, or written wrong."""
    problems: list[Problem] = []

    def walk(v: Any, at: str) -> Any:
        if isinstance(v, str):
            if "${" not in v:
                return v
            unset: list[str] = []
            try:
                out, _ = _expand(v, 0, env, unset, nested=False)
            except _Syntax as exc:
                problems.append(Problem(path=at, code="env.syntax", message=str(exc)))
                return v
            for name in unset:
                problems.append(Problem(path=at, code="env.unset", message=(
                    f"environment variable {name} is not set (give it a value, or a default: "
                    f"${{{name}:-...}})")))
            return out
        if isinstance(v, list):
            return [walk(x, f"{at}[{i}]") for i, x in enumerate(v)]
        if isinstance(v, dict):
            return {k: walk(x, key_path(at, k)) for k, x in v.items()}
        return v

    return walk(value, path), problems


def _expand(s: str, i: int, env: Mapping[str, str], unset: list[str], nested: bool,
            depth: int = 0) -> tuple[str, int]:
    """`s` from `i` expanded, up to its end, or (in a default, `nested`) up to the `}` that
    closes the reference: (text, index after it)."""
    out: list[str] = []
    n = len(s)
    while i < n:
        c = s[i]
        if nested and c == "}":
            return "".join(out), i + 1
        if s.startswith("$${", i):
            out.append("${")
            i += 3
        elif s.startswith("${{", i):      # a dollar before a template: `${{total}}`
            out.append("${")
            i += 2
        elif s.startswith("${", i) and (i + 2 >= n or s[i + 2] not in _START):
            raise _Syntax(f"{s[i:i + 3]!r}... is not a variable reference: write ${{NAME}} or "
                          f"${{NAME:-default}} (a name of letters, digits and _), or $${{ for a "
                          f"literal ${{")
        elif s.startswith("${", i):
            j = i + 2
            while j < n and s[j] in _NAME:
                j += 1
            name = s[i + 2:j]
            if s.startswith("}", j):
                got = env.get(name)
                if got is None:
                    unset.append(name)
                out.append(got or "")
                i = j + 1
            elif s.startswith(":-", j):
                if depth >= MAX_NESTING:
                    raise _Syntax(f"defaults nested more than {MAX_NESTING} deep")
                inner: list[str] = []
                default, i = _expand(s, j + 2, env, inner, nested=True, depth=depth + 1)
                got = env.get(name)
                if not got:
                    unset += inner         # the default is used: what it names must be set
                out.append(got if got else default)
            else:
                raise _Syntax(f"{s[i:j + 1]!r}... is not a variable reference: write ${{NAME}} "
                              f"or ${{NAME:-default}} (a name of letters, digits and _), or $${{ "
                              f"for a literal ${{")
        else:
            out.append(c)
            i += 1
    if nested:
        raise _Syntax("a ${NAME:-default} without its closing }")
    return "".join(out), i
