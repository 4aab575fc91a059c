"""`{{path}}` templates: safe substitution, never code.

A template is parsed once (at compile time) into literal parts and lookups. A lookup is a
dotted path with optional filters: `{{contact.first_name | default: "toi" | capitalize}}`.
Paths read flow variables (`category`, `vars.category`, `product.title`, `products.0.price`)
and contact attributes (`contact.email`); a missing value renders as "".
"""
from __future__ import annotations

import json
import re
from typing import Any, Callable, Mapping
from urllib.parse import quote

_TAG = re.compile(r"\{\{(.*?)\}\}", re.S)
_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$")
# Spaces before a newline, and each space followed by another. `(?<! )` starts the first
# alternative at a run's first space only: without it a long run of spaces costs n² steps.
_SPACES = re.compile(r"(?<! ) +(?=\n)| (?= )")
_FILTER = re.compile(r'^([a-z_]+)\s*(?::\s*(?:"([^"]*)"|\'([^\']*)\'|(-?\d+)))?$')


class TemplateError(ValueError):
    pass


def _text(v: Any, depth: int = 8) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, list):
        # Lists nested deeper than a few levels (a JSON answer can nest ~1000) render as "…"
        # rather than recursing past Python's limit.
        return ", ".join(_text(x, depth - 1) for x in v) if depth else "…"
    if isinstance(v, dict):
        return _json(v, depth)
    return str(v)


def _json(v: Any, depth: int) -> str:
    """An object in a text: JSON, as the brand's API gave it (not Python's repr), with the
    same depth bound as lists."""
    if isinstance(v, dict):
        return ("{" + ", ".join(f"{_json(str(k), depth)}: {_json(x, depth - 1)}" for k, x in v.items()) + "}"
                if depth else "{…}")
    if isinstance(v, list):
        return "[" + ", ".join(_json(x, depth - 1) for x in v) + "]" if depth else "[…]"
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    return "null" if v is None else _text(v)


FILTERS: dict[str, Callable[[Any, Any], Any]] = {
    "default": lambda v, a: v if v not in (None, "", [], {}) else (a if a is not None else ""),
    "upper": lambda v, a: _text(v).upper(),
    "lower": lambda v, a: _text(v).lower(),
    "capitalize": lambda v, a: (lambda s: s[:1].upper() + s[1:])(_text(v)),
    "trim": lambda v, a: _text(v).strip(),
    "truncate": lambda v, a: (lambda s, n: s if len(s) <= n else s[:max(n - 1, 0)] + "…")(_text(v), int(a or 50)),
    "length": lambda v, a: len(v) if isinstance(v, (list, dict, str)) else 0,
    "join": lambda v, a: (a if a is not None else ", ").join(_text(x) for x in v) if isinstance(v, list) else _text(v),
    "first": lambda v, a: v[0] if isinstance(v, list) and v else "",
    "url": lambda v, a: quote(_text(v), safe=""),
}
_NEEDS_ARG = {"default"}
# The kind of argument a filter takes, when it takes one: `truncate: "x"` or `join: 5` would
# fail at every rendering, so they are refused when the template is parsed.
_ARG_KIND = {"truncate": int, "join": str}


class Lookup:
    __slots__ = ("source", "path", "raw", "filters")

    def __init__(self, raw: str):
        self.raw = raw
        parts = [p.strip() for p in raw.split("|")]
        path = parts[0]
        if not path or not _PATH.match(path):
            raise TemplateError(f"{{{{{raw}}}}}: {path!r} is not a variable path")
        segs = path.split(".")
        if segs[0] == "contact":
            self.source, segs = "contact", segs[1:]
        elif segs[0] == "vars":
            self.source, segs = "vars", segs[1:]
        else:
            self.source = "vars"
        if not segs:
            raise TemplateError(f"{{{{{raw}}}}}: name an attribute after {path!r}")
        self.path = tuple(segs)
        self.filters: list[tuple[Callable[[Any, Any], Any], Any]] = []
        for f in parts[1:]:
            m = _FILTER.match(f)
            if not m or m.group(1) not in FILTERS:
                raise TemplateError(f"{{{{{raw}}}}}: unknown filter {f!r} "
                                    f"(filters: {', '.join(sorted(FILTERS))})")
            arg = m.group(2) if m.group(2) is not None else m.group(3)
            if arg is None and m.group(4) is not None:
                arg = int(m.group(4))
            if m.group(1) in _NEEDS_ARG and arg is None:
                raise TemplateError(f"{{{{{raw}}}}}: filter {m.group(1)!r} needs an argument")
            kind = _ARG_KIND.get(m.group(1))
            if arg is not None and kind is not None and not isinstance(arg, kind):
                raise TemplateError(f"{{{{{raw}}}}}: filter {m.group(1)!r} takes "
                                    f"{'a number' if kind is int else 'a quoted text'}")
            self.filters.append((FILTERS[m.group(1)], arg))

    @property
    def var(self) -> str:
        """The variable this lookup reads (`contact.x` for contact attributes)."""
        return ("contact." if self.source == "contact" else "") + self.path[0]

    def value(self, vars: Mapping[str, Any], contact: Mapping[str, Any]) -> Any:
        cur: Any = contact if self.source == "contact" else vars
        for seg in self.path:
            if isinstance(cur, Mapping):
                cur = cur.get(seg)
            elif isinstance(cur, list) and seg.isdigit() and int(seg) < len(cur):
                cur = cur[int(seg)]
            else:
                cur = None
            if cur is None:
                break
        for fn, arg in self.filters:
            cur = fn(cur, arg)
        return cur


class Template:
    """A parsed text: literal strings and lookups, in order."""
    __slots__ = ("parts", "source", "literal")

    def __init__(self, source: str):
        self.source = source
        self.parts: list[str | Lookup] = []
        pos = 0
        for m in _TAG.finditer(source):
            if m.start() > pos:
                self._literal(source[pos:m.start()])
            self.parts.append(Lookup(m.group(1).strip()))
            pos = m.end()
        if pos < len(source):
            self._literal(source[pos:])
        # Most texts hold no lookup: their rendering is known now (None when it is not).
        self.literal: str | None = "".join(self.parts) if self.static else None  # type: ignore[arg-type]

    def _literal(self, s: str) -> None:
        if "{{" in s or "}}" in s:
            raise TemplateError(f"unbalanced braces in {s[:40]!r}")
        self.parts.append(s)

    @property
    def lookups(self) -> list[Lookup]:
        return [p for p in self.parts if isinstance(p, Lookup)]

    @property
    def static(self) -> bool:
        return all(isinstance(p, str) for p in self.parts)

    def render(self, vars: Mapping[str, Any], contact: Mapping[str, Any]) -> str:
        if self.literal is not None:
            return self.literal
        out, blank = [], False
        for p in self.parts:
            if isinstance(p, str):
                out.append(p)
            else:
                s = _text(p.value(vars, contact))
                blank = blank or not s
                out.append(s)
        text = "".join(out)
        # "Bonjour {{contact.first_name}} !" without a name reads "Bonjour !", not "Bonjour  !".
        return _SPACES.sub("", text).strip(" ") if blank else text

    def value(self, vars: Mapping[str, Any], contact: Mapping[str, Any]) -> Any:
        """Like render, but a template that is exactly one lookup keeps the value's type
        (a list of products stays a list)."""
        if len(self.parts) == 1 and isinstance(self.parts[0], Lookup):
            return self.parts[0].value(vars, contact)
        return self.render(vars, contact)


def walk_strings(value: Any, fn: Callable[[str], Any]) -> Any:
    """Apply fn to every string inside a JSON value, keeping its shape."""
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, list):
        return [walk_strings(v, fn) for v in value]
    if isinstance(value, dict):
        return {k: walk_strings(v, fn) for k, v in value.items()}
    return value
