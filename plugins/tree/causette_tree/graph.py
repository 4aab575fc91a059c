"""Pictures of a flow: Mermaid text and a self-contained SVG (layered layout, no dependency).

Nodes are shaped and coloured by type; edges carry the choice title, the condition, the
step outcome or the variant that leads along them. Works on drafts with errors too: nodes
that don't decode are drawn as such, links to unknown nodes are left out.
"""
from __future__ import annotations

import re
from html import escape as _escape
from typing import Any, Mapping

import msgspec

from . import model

STYLE: dict[str, tuple[str, str]] = {     # type -> (fill, stroke)
    "message": ("#e8f1fd", "#3b7dd8"), "choice": ("#fff4d6", "#d49a00"),
    "input": ("#e9f7ef", "#2e9d5b"), "condition": ("#f3e8fd", "#8a4fd0"),
    "set": ("#f0f0f0", "#777777"), "step": ("#e3f6f8", "#14879a"),
    "goto": ("#f0f0f0", "#555555"), "wait": ("#fdf0e6", "#d2691e"),
    "end": ("#fde8e8", "#c0392b"), "handoff": ("#fde6f3", "#c2307f"),
    "split": ("#eaf0ff", "#4a5cd0"), "foreach": ("#eef7e1", "#6b9a1f"),
    "flow": ("#ffffff", "#555555"), "invalid": ("#ffffff", "#c0392b"),
}
_MERMAID_SHAPE = {
    "message": ('["', '"]'), "choice": ('(["', '"])'), "input": ('[/"', '"/]'),
    "condition": ('{"', '"}'), "set": ('[\\"', '"\\]'), "step": ('[["', '"]]'),
    "goto": ('>"', '"]'), "wait": ('("', '")'), "end": ('(("', '"))'),
    "handoff": ('{{"', '"}}'), "split": ('{"', '"}'), "foreach": ('[("', '")]'),
    "flow": ('>"', '"]'), "invalid": ('["', '"]'),
}


# What XML 1.0 forbids even as a character reference: C0 controls but tab and line breaks,
# lone surrogates, U+FFFE and U+FFFF. Texts and ids of a flow may hold them (a pasted ESC,
# a NUL): an SVG that has one is not well-formed and no browser draws it.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _visible(s: str) -> str:
    """`s` with the characters XML forbids shown as U+FFFD: the author sees one was there."""
    return _NOT_XML.sub("\ufffd", s)


def escape(s: str) -> str:
    """For SVG text and attributes: escaped, and without what XML forbids."""
    return _escape(_visible(s))


def _first(text: Any, locale: str) -> str:
    if text is None:
        return ""
    if isinstance(text, str):
        return text
    return text.get(locale) or next(iter(text.values()), "")


def _clip(s: str, n: int = 60) -> str:
    # Every label goes through here: Mermaid gets them without forbidden characters too.
    s = " ".join(_visible(s).split())
    return s if len(s) <= n else s[:n - 1] + "…"


def expr_label(e: model.Expr) -> str:
    if e.all is not msgspec.UNSET:
        return " and ".join(expr_label(x) for x in e.all)
    if e.any is not msgspec.UNSET:
        return " or ".join(expr_label(x) for x in e.any)
    if e.not_ is not msgspec.UNSET:
        return f"not ({expr_label(e.not_)})"
    for op, sym in (("eq", "="), ("ne", "≠"), ("gt", ">"), ("gte", "≥"), ("lt", "<"), ("lte", "≤"),
                    ("in", "in"), ("nin", "not in"), ("contains", "contains"), ("matches", "~")):
        val = getattr(e, "in_" if op == "in" else op)
        if val is not msgspec.UNSET:
            shown = ", ".join(map(_num, val)) if isinstance(val, list) else _num(val)
            return f"{e.var} {sym} {shown}"
    if e.exists is not msgspec.UNSET:
        return f"{e.var} {'is set' if e.exists else 'is not set'}"
    return e.var


class _Graph:
    def __init__(self, flow: Mapping[str, Any]):
        self.locale = str(flow.get("locale") or "fr")
        self.start = flow.get("start") if isinstance(flow.get("start"), str) else ""
        raw = flow.get("nodes") if isinstance(flow.get("nodes"), dict) else {}
        self.nodes: dict[str, tuple[str, str]] = {}          # id -> (type, label)
        self.edges: list[tuple[str, str, str]] = []          # (src, dst, label)
        specs: dict[str, Any] = {}
        for nid, r in raw.items():
            try:
                specs[nid] = msgspec.convert(r, model.AnyNode)
            except (msgspec.ValidationError, TypeError):
                self.nodes[nid] = ("invalid", f"{nid}: invalid")
        for nid, n in specs.items():
            self._node(nid, n)
        self.edges = [(a, b, lbl) for a, b, lbl in self.edges if b in self.nodes]

    def _edge(self, src: str, dst: str, label: str = "") -> None:
        if dst:
            self.edges.append((src, dst, _clip(label, 32)))

    def _node(self, nid: str, n: Any) -> None:
        t = n.__struct_config__.tag
        loc = self.locale
        text = _first(getattr(n, "text", None), loc)
        label = n.label or ""
        if t == "message":
            label = label or text or "(media)"
            self._edge(nid, n.next)
        elif t == "choice":
            label = label or text
            for c in n.choices:
                self._edge(nid, c.next or n.next, _first(c.title, loc))
            for part, name in ((n.retry, "retries"), (n.timeout, "no answer")):
                if part is not None:
                    self._edge(nid, part.then, name)
        elif t == "input":
            label = label or f"{text} [{n.validate}]"
            self._edge(nid, n.next, n.save_as)
            for part, name in ((n.retry, "retries"), (n.timeout, "no answer")):
                if part is not None:
                    self._edge(nid, part.then, name)
        elif t == "condition":
            label = label or "condition"
            for b in n.branches:
                self._edge(nid, b.next, expr_label(b.if_))
            self._edge(nid, n.else_, "else")
        elif t == "set":
            label = label or "set " + ", ".join(n.vars)
            self._edge(nid, n.next)
        elif t == "step":
            label = label or n.step
            self._edge(nid, n.next, "ok" if (n.on_error or n.branches) else "")
            self._edge(nid, n.on_error, "error")
            for b, target in n.branches.items():
                self._edge(nid, target, b)
        elif t == "goto":
            if n.flow:
                ext = f"flow:{n.flow}"
                self.nodes.setdefault(ext, ("flow", _clip(f"flow {n.flow}")))
                self._edge(nid, ext)
                label = label or f"go to flow {n.flow}"
            else:
                self._edge(nid, n.node)
                label = label or f"go to {n.node}"
        elif t == "wait":
            label = label or f"wait {n.for_}"
            self._edge(nid, n.next)
        elif t == "end":
            label = label or f"end: {n.outcome}"
        elif t == "handoff":
            label = label or f"handoff to {n.queue}"
            self._edge(nid, n.next, "released")
        elif t == "split":
            label = label or "A/B split"
            weights = model.weights(n.variants)
            total = sum(weights) or 1
            for v, w in zip(n.variants, weights):
                self._edge(nid, v.next, f"{v.id} {round(100 * w / total)}%")
        elif t == "foreach":
            label = label or f"for each {n.as_} in {n.list} (max {n.max})"
            self._edge(nid, n.do, "each")
            self._edge(nid, n.next, "done")
        self.nodes[nid] = (t, _clip(label))

    # --- mermaid -------------------------------------------------------------------------
    def mermaid(self) -> str:
        ids = {nid: f"n{i}" for i, nid in enumerate(self.nodes)}
        q = lambda s: s.replace('"', "#quot;")  # noqa: E731
        lines = ["flowchart TD"]
        for nid, (t, label) in self.nodes.items():
            a, b = _MERMAID_SHAPE[t]
            lines.append(f"  {ids[nid]}{a}{q(label)}{b}")
        for src, dst, label in self.edges:
            arrow = f'-->|"{q(label)}"|' if label else "-->"
            lines.append(f"  {ids[src]} {arrow} {ids[dst]}")
        for t, (fill, stroke) in STYLE.items():
            members = [ids[n] for n, (tt, _) in self.nodes.items() if tt == t]
            if members:
                lines.append(f"  classDef {t} fill:{fill},stroke:{stroke},color:#222")
                lines.append(f"  class {','.join(members)} {t}")
        if self.start in ids:
            lines.append(f"  style {ids[self.start]} stroke-width:3px")
        return "\n".join(lines) + "\n"

    # --- svg -------------------------------------------------------------------------------
    def merged_edges(self) -> list[tuple[str, str, str]]:
        """One arrow per pair of nodes; the labels of parallel edges are joined."""
        out: dict[tuple[str, str], list[str]] = {}
        for a, b, label in self.edges:
            labels = out.setdefault((a, b), [])
            if label and label not in labels:
                labels.append(label)
        return [(a, b, _clip(" / ".join(ls), 40)) for (a, b), ls in out.items()]

    def layout(self, edges: list[tuple[str, str, str]]):
        """Layers by longest path over forward edges (DFS back edges are loops), dummy
        points where an edge skips layers, then barycentre ordering."""
        succ: dict[str, list[str]] = {n: [] for n in self.nodes}
        for a, b, _ in edges:
            succ[a].append(b)
        order: list[str] = []
        back: set[tuple[str, str]] = set()
        state: dict[str, int] = {}
        roots = ([self.start] if self.start in self.nodes else []) + list(self.nodes)
        for root in roots:
            if root in state:
                continue
            stack = [(root, iter(succ[root]))]
            state[root] = 1
            while stack:
                node, it = stack[-1]
                for nxt in it:
                    if state.get(nxt) == 1:
                        back.add((node, nxt))
                    elif nxt not in state:
                        state[nxt] = 1
                        stack.append((nxt, iter(succ[nxt])))
                        break
                else:
                    stack.pop()
                    state[node] = 2
                    order.append(node)
        order.reverse()
        rank: dict[str, int] = {n: 0 for n in self.nodes}
        for n in order:
            for nxt in succ[n]:
                if (n, nxt) not in back:
                    rank[nxt] = max(rank[nxt], rank[n] + 1)
        layers: list[list[str]] = [[] for _ in range(max(rank.values(), default=0) + 1)]
        for n in order:
            layers[rank[n]].append(n)
        preds: dict[str, list[str]] = {n: [] for n in self.nodes}
        chains: dict[tuple[str, str], list[str]] = {}
        for a, b, _ in edges:
            if (a, b) in back or rank[b] <= rank[a]:
                continue
            prev, chain = a, []
            for r in range(rank[a] + 1, rank[b]):
                d = f"\0{a}\0{b}\0{r}"
                layers[r].append(d)
                preds[d] = [prev]
                chain.append(d)
                prev = d
            preds[b].append(prev)
            chains[(a, b)] = chain
        pos = {n: i for layer in layers for i, n in enumerate(layer)}
        for _ in range(3):
            for layer in layers[1:]:
                layer.sort(key=lambda n: (sum(pos[p] for p in preds[n]) / len(preds[n]))
                           if preds[n] else pos[n])
                for i, n in enumerate(layer):
                    pos[n] = i
        return rank, layers, back, chains

    def svg(self) -> str:
        if not self.nodes:
            return ('<svg xmlns="http://www.w3.org/2000/svg" width="200" height="40">'
                    '<text x="10" y="25" font-family="sans-serif" font-size="13">empty flow</text></svg>')
        edges = self.merged_edges()
        rank, layers, back, chains = self.layout(edges)
        gap_x, gap_y, pad, dummy_w = 36, 64, 90, 16
        sizes: dict[str, tuple[float, float, list[str]]] = {}
        for layer in layers:
            for n in layer:
                if n in self.nodes:
                    lines = _wrap(self.nodes[n][1], 26)
                    w = max(120, min(230, 7.2 * max(len(s) for s in lines) + 34))
                    sizes[n] = (w, 36 + 16 * len(lines), lines)
                else:
                    sizes[n] = (dummy_w, 0, [])
        row_h = [max((sizes[n][1] for n in layer), default=0) for layer in layers]
        widths = [sum(sizes[n][0] for n in layer) + gap_x * max(len(layer) - 1, 0) for layer in layers]
        boxes: dict[str, tuple[float, float, float, float, list[str]]] = {}
        rows: list[tuple[float, float]] = []
        y = 30.0
        for li, layer in enumerate(layers):
            x = pad + (max(widths) - widths[li]) / 2
            for n in layer:
                w, h, lines = sizes[n]
                boxes[n] = (x, y + (row_h[li] - h) / 2, w, h, lines)
                x += w + gap_x
            rows.append((y, y + row_h[li]))
            y += row_h[li] + gap_y
        right = max(widths) + pad
        center = pad + max(widths) / 2
        total_w, total_h = right + 90, y - gap_y + 30
        out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {total_w:.0f} {total_h:.0f}" '
               f'width="{total_w:.0f}" height="{total_h:.0f}" font-family="Helvetica, Arial, sans-serif">',
               '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
               'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#666"/>'
               '</marker></defs>', '<rect width="100%" height="100%" fill="#fcfcfc"/>']
        labels = []
        loops = 0
        for a, b, label in edges:
            ax, ay, aw, ah, _ = boxes[a]
            bx, by, bw, bh, _ = boxes[b]
            if (a, b) in back or rank[b] <= rank[a]:
                # Loops go round the nearer side so they don't cross the main flow.
                y1, y2 = ay + ah / 2, by + bh / 2
                if ax + aw / 2 < center:
                    x1, x2 = ax, bx - 2
                    bulge = pad - 30 - 12 * (loops % 4)
                else:
                    x1, x2 = ax + aw, bx + bw + 2
                    bulge = right + 30 + 12 * (loops % 4)
                loops += 1
                d = f"M{x1:.1f},{y1:.1f} C{bulge:.1f},{y1:.1f} {bulge:.1f},{y2:.1f} {x2:.1f},{y2:.1f}"
                lx, ly = bulge, (y1 + y2) / 2
                dash = ' stroke-dasharray="5,4"'
            else:
                pts = [(ax + aw / 2, ay + ah)]
                for k, dmy in enumerate(chains.get((a, b), ())):
                    dx = boxes[dmy][0] + dummy_w / 2
                    top, bottom = rows[rank[a] + 1 + k]
                    pts += [(dx, top), (dx, bottom)]
                pts.append((bx + bw / 2, by - 2))
                d = f"M{pts[0][0]:.1f},{pts[0][1]:.1f}"
                for i in range(0, len(pts) - 1, 2):
                    (x1, y1), (x2, y2) = pts[i], pts[i + 1]
                    mid = (y1 + y2) / 2
                    d += f" C{x1:.1f},{mid:.1f} {x2:.1f},{mid:.1f} {x2:.1f},{y2:.1f}"
                    if i + 2 < len(pts):
                        d += f" L{pts[i + 2][0]:.1f},{pts[i + 2][1]:.1f}"
                # Labels sit where sibling edges have already parted (t = 0.7 of the curve).
                (x1, y1), (x2, y2) = pts[0], pts[1]
                lx, ly = x1 + (x2 - x1) * 0.784, y1 + (y2 - y1) * 0.7
                dash = ""
            out.append(f'<path d="{d}" fill="none" stroke="#777" stroke-width="1.4"{dash} '
                       f'marker-end="url(#arrow)"><title>{escape(a)} → {escape(b)}</title></path>')
            if label:
                tw = 6.2 * len(label) + 10
                labels.append(f'<g class="edge-label"><rect x="{lx - tw / 2:.1f}" y="{ly - 9:.1f}" '
                              f'width="{tw:.1f}" height="16" rx="4" fill="#ffffff" stroke="#ddd"/>'
                              f'<text x="{lx:.1f}" y="{ly + 3:.1f}" font-size="11" text-anchor="middle" '
                              f'fill="#333">{escape(label)}</text></g>')
        for n, (t, _) in self.nodes.items():
            x, y0, w, h, lines = boxes[n]
            fill, stroke = STYLE[t]
            width = 3 if n == self.start else 1.6
            out.append(f'<g class="node {t}" data-id="{escape(n)}"><title>{escape(n)}</title>')
            out.append(_shape(t, x, y0, w, h, fill, stroke, width))
            out.append(f'<text x="{x + w / 2:.1f}" y="{y0 + 15:.1f}" font-size="9" text-anchor="middle" '
                       f'fill="{stroke}" letter-spacing="1">{escape(t.upper())} · {escape(_clip(n, 24))}</text>')
            for j, line in enumerate(lines):
                out.append(f'<text x="{x + w / 2:.1f}" y="{y0 + 33 + 16 * j:.1f}" font-size="12.5" '
                           f'text-anchor="middle" fill="#222">{escape(line)}</text>')
            out.append("</g>")
        out.extend(labels)
        out.append("</svg>")
        return "\n".join(out) + "\n"


def _shape(t: str, x: float, y: float, w: float, h: float, fill: str, stroke: str, sw: float) -> str:
    common = f'fill="{fill}" stroke="{stroke}" stroke-width="{sw}"'
    if t in ("condition", "split"):
        k = 16
        pts = [(x + k, y), (x + w - k, y), (x + w, y + h / 2), (x + w - k, y + h), (x + k, y + h), (x, y + h / 2)]
    elif t == "input":
        k = 12
        pts = [(x + k, y), (x + w, y), (x + w - k, y + h), (x, y + h)]
    elif t in ("goto", "flow"):
        pts = [(x, y), (x + w - 14, y), (x + w, y + h / 2), (x + w - 14, y + h), (x, y + h)]
    else:
        rx = {"choice": 16, "end": h / 2, "wait": 10, "handoff": 6}.get(t, 3)
        extra = ""
        if t == "step":
            extra = (f'<line x1="{x + 8:.1f}" y1="{y:.1f}" x2="{x + 8:.1f}" y2="{y + h:.1f}" stroke="{stroke}"/>'
                     f'<line x1="{x + w - 8:.1f}" y1="{y:.1f}" x2="{x + w - 8:.1f}" y2="{y + h:.1f}" stroke="{stroke}"/>')
        dash = ' stroke-dasharray="4,3"' if t in ("set", "invalid") else ""
        return (f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" rx="{rx:.1f}" '
                f'{common}{dash}/>' + extra)
    return f'<polygon points="{" ".join(f"{a:.1f},{b:.1f}" for a, b in pts)}" {common}/>'


def _wrap(text: str, width: int, max_lines: int = 3) -> list[str]:
    words, lines, cur = text.split(), [], ""
    for w in words:
        if cur and len(cur) + 1 + len(w) > width:
            lines.append(cur)
            cur = w
        else:
            cur = f"{cur} {w}".strip()
    if cur:
        lines.append(cur)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1][:width - 1] + "…"
    return [(s if len(s) <= width + 8 else s[:width + 7] + "…") for s in lines] or [""]


def graph(flow: Mapping[str, Any]) -> dict[str, str]:
    g = _Graph(flow)
    return {"mermaid": g.mermaid(), "svg": g.svg()}


def _num(v: Any) -> str:
    return str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)
