"""What changed between two flow definitions, node by node and field by field."""
from __future__ import annotations

from typing import Any

from .wire import Change, FlowDiff, NodeDiff

_MISSING = object()


def _key(k: Any) -> str:
    k = str(k)
    return f".{k}" if k.replace("_", "").replace("-", "").isalnum() and not k[:1].isdigit() else f"[{k!r}]"


def changes(a: Any, b: Any, path: str = "$") -> list[Change]:
    """Field-level differences: objects by key, lists by position, anything else by value."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[Change] = []
        for k in list(a) + [k for k in b if k not in a]:
            out += changes(a.get(k, _MISSING), b.get(k, _MISSING), path + _key(k))
        return out
    if isinstance(a, list) and isinstance(b, list):
        out = []
        for i in range(max(len(a), len(b))):
            out += changes(a[i] if i < len(a) else _MISSING, b[i] if i < len(b) else _MISSING, f"{path}[{i}]")
        return out
    if a is _MISSING and b is _MISSING:
        return []
    if a is _MISSING:
        return [Change(path=path, op="added", after=b)]
    if b is _MISSING:
        return [Change(path=path, op="removed", before=a)]
    if a == b and type(a) is type(b):
        return []
    return [Change(path=path, op="changed", before=a, after=b)]


def diff_flows(flow_id: str, a_label: int | str, a: dict[str, Any], b_label: int | str,
               b: dict[str, Any]) -> FlowDiff:
    na = a.get("nodes") if isinstance(a.get("nodes"), dict) else {}
    nb = b.get("nodes") if isinstance(b.get("nodes"), dict) else {}
    top = changes({k: v for k, v in a.items() if k != "nodes"}, {k: v for k, v in b.items() if k != "nodes"})
    nodes: list[NodeDiff] = []
    for nid in list(na) + [n for n in nb if n not in na]:
        if nid not in nb:
            nodes.append(NodeDiff(node=nid, status="removed", type=_type(na[nid])))
        elif nid not in na:
            nodes.append(NodeDiff(node=nid, status="added", type=_type(nb[nid])))
        else:
            ch = changes(na[nid], nb[nid])
            if ch:
                nodes.append(NodeDiff(node=nid, status="changed", type=_type(nb[nid]), changes=ch))
    summary = {s: sum(n.status == s for n in nodes) for s in ("added", "removed", "changed")}
    summary["flow_fields"] = len(top)
    return FlowDiff(id=flow_id, a=a_label, b=b_label, identical=not top and not nodes, flow=top,
                    nodes=nodes, summary=summary)


def _type(node: Any) -> str:
    return str(node.get("type", "")) if isinstance(node, dict) else ""
