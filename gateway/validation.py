"""Flow validation shared by the admin API, `tenants apply` and `causette flows validate`."""
from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Collection, Mapping

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
    engine = host.engines.get(name) if isinstance(name, str) else None
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
