"""`${VAR}` in tenant files: values taken from the environment when `causette tenants apply`
reads them, so a file in version control names a credential or an address without holding it
(`"access_token": "${WHATSAPP_TOKEN}"`, the demo's own port).

`${NAME}` is the variable's value and an error when it is unset; `${NAME:-default}` is the
default when the variable is unset or empty, as in a shell; `$${` writes `${`. Only string
values are expanded, never keys, and a value comes out as a string (a port is "8080" where
the file wrote "${PORT}"). The admin API takes JSON as sent: nothing is expanded there.
"""
from __future__ import annotations

import re
from typing import Any, Mapping

from .problems import key_path
from .types import Problem

_REF = re.compile(r"\$(\$\{)|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\{([^}]*)\}?")


def expand(value: Any, env: Mapping[str, str], path: str = "$") -> tuple[Any, list[Problem]]:
    """`value` (decoded JSON) with its strings' `${...}` replaced from `env`, and a problem
    (with its JSON path) for each variable that is unset without a default, or written wrong."""
    problems: list[Problem] = []

    def walk(v: Any, at: str) -> Any:
        if isinstance(v, str):
            return _string(v, at) if "$" in v else v
        if isinstance(v, list):
            return [walk(x, f"{at}[{i}]") for i, x in enumerate(v)]
        if isinstance(v, dict):
            return {k: walk(x, key_path(at, k)) for k, x in v.items()}
        return v

    def _string(s: str, at: str) -> str:
        def one(m: re.Match[str]) -> str:
            escaped, name, default, bad = m.groups()
            if escaped:
                return escaped
            if name is None:
                problems.append(Problem(path=at, code="env.syntax", message=(
                    f"{m.group(0)!r} is not a variable reference: write ${{NAME}} or "
                    f"${{NAME:-default}} (a name of letters, digits and _), or $${{ for a literal ${{")))
                return m.group(0)
            got = env.get(name)
            if got:
                return got
            if default is not None:
                return default
            if got is None:
                problems.append(Problem(path=at, code="env.unset", message=(
                    f"environment variable {name} is not set (give it a value, or a default: "
                    f"${{{name}:-...}})")))
            return ""
        return _REF.sub(one, s)

    return walk(value, path), problems
