"""Validation shared by the admin API, `tenants apply` and `causette flows validate`: flows
(by their engine) and settings (by a plugin's or channel's `Settings` Struct)."""
from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Collection, Mapping

import msgspec

from .problems import from_validation_error, join_path
from .types import Problem

if TYPE_CHECKING:
    from .channels import Capabilities
    from .plugins import PluginHost


def validate_flow(host: "PluginHost", flow: Any,
                  channels: "Mapping[str, Capabilities]" = {},
                  flows: "Collection[str] | None" = None,
                  definitions: "Mapping[str, Any] | None" = None,
                  enabled: "Collection[str] | None" = None) -> list[Problem]:
    """Every problem of one flow definition, errors and warnings, with JSON paths.
    `flows` (the tenant's flow ids) lets the engine check `goto` and `active.flow` targets,
    `definitions` (their published definitions by id) gotos that loop between flows,
    `enabled` (the tenant's plugins) steps of plugins it has not enabled; each is given to
    engines whose `validate` takes that keyword (`enabled` as `disabled`: step -> plugin)."""
    if not isinstance(flow, dict):
        return [Problem(path="$", code="flow.not_object", message="a flow is a JSON object")]
    name = flow.get("engine", "tree")
    if not isinstance(name, str):
        return [Problem(path="$.engine", code="flow.invalid",
                        message=f"Expected `str`, got `{type(name).__name__}`: an installed flow engine's name "
                                f"({', '.join(sorted(host.engines)) or 'none installed'})")]
    engine = host.engines.get(name)
    if engine is None:
        return [Problem(path="$.engine", code="flow.unknown_engine",
                        message=f"no installed flow engine is called {name!r} "
                                f"(installed: {', '.join(sorted(host.engines)) or 'none'})")]
    takes = inspect.signature(engine.validate).parameters
    extra: dict[str, Any] = {}
    if flows is not None and "flows" in takes:
        extra["flows"] = set(flows)
    if definitions is not None and "definitions" in takes:
        extra["definitions"] = definitions
    steps = host.steps
    if enabled is not None:
        owner = {name: host.owner("step", name) for name in host.steps}
        steps = {name: step for name, step in host.steps.items() if owner[name] in enabled}
        if "disabled" in takes:
            extra["disabled"] = {name: owner[name] for name in host.steps if name not in steps}
    return list(engine.validate(flow, steps=steps, channels=channels, **extra))


def validate_flow_file(host: "PluginHost", path: str | Path,
                       channel_types: "list[str] | None" = None) -> list[Problem]:
    """Validate a flow file; `channel_types` lints it against those channels' limits. What
    cannot be read as a flow (no file, a folder, bytes that are not UTF-8, malformed JSON,
    nesting deeper than the admin API takes) is a problem too, never an exception."""
    from .problems import ProblemError, decode_json, not_utf8
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        return [Problem(path="$", code="file.missing", message=f"no such file: {path}")]
    except OSError as exc:
        return [Problem(path="$", code="file.unreadable", message=f"cannot read {path}: {exc.strerror}")]
    why = not_utf8(raw)
    if why:
        return [Problem(path="$", code="json.invalid", message=f"not JSON: {why}")]
    try:
        flow = json.loads(raw)
    except json.JSONDecodeError as exc:      # json's message says the line and column
        return [Problem(path="$", code="json.invalid",
                        message=f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")]
    except RecursionError:
        flow = None
    try:
        decode_json(raw)                     # the same depth limit as the admin API
    except ProblemError as exc:
        return exc.errors
    unknown = [t for t in channel_types or () if t not in host.channels]
    if unknown:
        return [Problem(path="$", code="channel.unknown_type",
                        message=f"no installed channel type {t!r} (installed: "
                                f"{', '.join(sorted(host.channels))})") for t in unknown]
    caps = {t: host.channels[t].capabilities for t in channel_types or ()}
    return validate_flow(host, flow, caps)


def settings_problems(value: Any, struct: type[msgspec.Struct], prefix: str = "$",
                      **options: Any) -> list[Problem]:
    """Every problem of `value` as `struct` (a settings Struct), paths under `prefix`; [] when
    `msgspec.convert(value, struct, **options)` takes it. msgspec stops at its first error, so
    on failure each field is checked alone: unknown fields (when the Struct forbids them),
    missing required ones, and each given value converted with the same `options` against
    its field's type. A value that holds a Struct gives that Struct's first problem only.
    Whatever this cannot explain (a `__post_init__` refusal, a tagged or array-like Struct,
    a field-by-field result that misses msgspec's own error) is msgspec's first error."""
    try:
        msgspec.convert(value, struct, **options)
        return []
    except msgspec.ValidationError as exc:
        first = from_validation_error(exc, prefix)
    try:
        found = _field_problems(value, struct, prefix, options)
    except Exception:        # the fallback is the first error, as msgspec gives it
        found = []
    return found if first in found else [first]


def _field_problems(value: Any, struct: type[msgspec.Struct], prefix: str,
                    options: dict[str, Any]) -> list[Problem]:
    """The problems of `value` field by field, in the order of its keys, then the missing
    required fields in the Struct's order (msgspec's order, so its first error comes first)."""
    config = struct.__struct_config__
    if not isinstance(value, dict) or config.tag is not None or config.array_like:
        return []
    fields = {f.encode_name: f for f in msgspec.structs.fields(struct)}
    out = []
    for key, v in value.items():
        field = fields.get(key)
        if field is None:
            if config.forbid_unknown_fields:
                out.append(from_validation_error(f"Object contains unknown field `{key}`", prefix))
            continue
        try:
            msgspec.convert(v, field.type, **options)
        except msgspec.ValidationError as exc:   # msgspec's own path form: `$.<encode name>`
            out.append(from_validation_error(exc, join_path(prefix, f"$.{key}")))
    for key, field in fields.items():
        if field.required and key not in value:
            out.append(from_validation_error(f"Object missing required field `{key}`", prefix))
    return out
