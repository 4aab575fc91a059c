"""Turning runs into bench/results/latest.json, a Markdown table, an SVG plot and the
figures section of docs/benchmarks.md."""
from __future__ import annotations

import datetime as dt
import html
import re
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- bench:figures:begin -->", "<!-- bench:figures:end -->"

TARGETS = [  # issue 6, item 5
    ("ratio_floor", ">=", 1.0, "Causette / redis-py floor"),
    ("ratio_lean", ">=", 0.5, "Causette / lean floor"),
    ("ratio_peer", ">=", 3.0, "Causette / Botkit"),
    ("causette_p99_ms", "<", 25.0, "Causette p99 at c=64 (ms)"),
    ("redis_round_trips_per_turn", "<=", 2.0, "Redis round trips per turn"),
    ("session_bytes", "<", 512, "bytes per session (MEMORY USAGE)"),
    ("tenants_10k_ratio", ">=", 0.9, "10k tenants / 1 tenant"),
    ("tenants_10k_own_ratio", ">=", 0.9, "10k tenants, each its own flow definition / 1 tenant"),
    # The same three ratios on the sustained rate (the store writes of the burst included).
    ("ratio_floor_sustained", ">=", 1.0, "sustained Causette / redis-py floor"),
    ("ratio_lean_sustained", ">=", 0.5, "sustained Causette / lean floor"),
    ("ratio_peer_sustained", ">=", 3.0, "sustained Causette / Botkit"),
]


def _med(results: dict, name: str, key: str = "rps") -> float | None:
    return results.get(name, {}).get("median", {}).get(key)


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def _instr(results: dict, name: str) -> float | None:
    return (results.get(name, {}).get("instructions") or {}).get("per_request")


def _paired(results: dict, name: str, base: str = "causette", key: str = "rps") -> list[float]:
    """name / base for each interleaved run i (run i of both measured within the same minute or
    two), over the runs both kept."""
    a, b = results.get(name, {}).get("runs", []), results.get(base, {}).get("runs", [])
    return [round(x[key] / y[key], 3) for x, y in zip(a, b)
            if x.get("accepted") and y.get("accepted") and y.get(key)]


def assemble(results: dict[str, Any], machine: dict[str, Any], tool: str, notes: list[str],
             a: Any) -> dict[str, Any]:
    c = _med(results, "causette")
    causette = results.get("causette", {})
    rss1, rss10k = _med(results, "causette", "rss_bytes"), _med(results, "causette_10k", "rss_bytes")
    rss_own = _med(results, "causette_10k_own", "rss_bytes")
    out: dict[str, Any] = {
        "when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine,
        "load_tool": tool,
        "settings": {"runs": a.runs, "warmup_s": a.warmup, "duration_s": a.duration,
                     "connections": a.connections, "users": 10_000, "tenants_scale": a.tenants,
                     "quick": a.quick},
        "notes": notes,
        "causette_rps": c,
        "floor_rps": _med(results, "redispy"),
        "lean_floor_rps": _med(results, "lean"),
        "bare_rps": _med(results, "bare"),
        "peer_rps": _med(results, "botkit"),
        "ratio_floor": _ratio(c, _med(results, "redispy")),
        "ratio_lean": _ratio(c, _med(results, "lean")),
        "ratio_peer": _ratio(c, _med(results, "botkit")),
        "ratio_bare": _ratio(c, _med(results, "bare")),
        "causette_p99_ms": _med(results, "causette", "p99_ms"),
        "causette_cpu_us": _med(results, "causette", "cpu_us"),
        # Causette writes events to the store at low priority: a burst leaves some waiting in
        # Redis, which the bench drains after each run. "All" counts that work too; the
        # sustained rate is requests / (run + drain).
        "causette_cpu_us_all": _med(results, "causette", "cpu_us_total"),
        "causette_backlog_entries": _med(results, "causette", "backlog_entries"),
        "causette_drain_s": _med(results, "causette", "drain_s"),
        "causette_sustained_rps": _med(results, "causette", "sustained_rps"),
        "ratio_floor_sustained": _ratio(_med(results, "causette", "sustained_rps"), _med(results, "redispy")),
        "ratio_lean_sustained": _ratio(_med(results, "causette", "sustained_rps"), _med(results, "lean")),
        "ratio_peer_sustained": _ratio(_med(results, "causette", "sustained_rps"), _med(results, "botkit")),
        "redis_cmds_per_turn": _med(results, "causette", "redis_cmds_per_turn"),
        "redis_round_trips_per_turn": causette.get("round_trips_per_turn"),
        "session_bytes": causette.get("session_bytes"),
        "session_value_bytes": causette.get("session_value_bytes"),
        "tenants_10k_ratio": _ratio(_med(results, "causette_10k"), c),
        "memory_per_tenant_bytes": round((rss10k - rss1) / a.tenants) if rss1 and rss10k else None,
        "tenants_10k_own_ratio": _ratio(_med(results, "causette_10k_own"), c),
        "memory_per_tenant_own_bytes": round((rss_own - rss1) / a.tenants) if rss1 and rss_own else None,
        # Per interleaved run: the slow minutes of a shared machine hit both of a pair.
        "tenants_10k_ratio_runs": _paired(results, "causette_10k"),
        "tenants_10k_own_ratio_runs": _paired(results, "causette_10k_own"),
        "tenants_10k_sustained_ratio": _ratio(_med(results, "causette_10k", "sustained_rps"),
                                              _med(results, "causette", "sustained_rps")),
        "tenants_10k_own_sustained_ratio": _ratio(_med(results, "causette_10k_own", "sustained_rps"),
                                                  _med(results, "causette", "sustained_rps")),
        # The store's work per waiting turn after a run: on the event loop (reading and
        # acknowledging the streams) and in the store's thread (SQLite).
        "drain_us_per_entry": {n: [_med(results, n, "drain_loop_us"), _med(results, n, "drain_thread_us")]
                               for n in ("causette", "causette_10k", "causette_10k_own")
                               if _med(results, n, "drain_loop_us") is not None},
        "procs_2_ratio": _ratio(_med(results, "causette_2proc"), c),
        "p99s": {n: r.get("median", {}).get("p99_ms") for n, r in results.items()},
        # The same comparisons in server CPU per request: steadier than req/s on a shared
        # machine (neighbours slow everyone's wall clock, much less each request's CPU).
        "cpu_ratio_floor": _ratio(_med(results, "redispy", "cpu_us"), _med(results, "causette", "cpu_us")),
        "cpu_ratio_lean": _ratio(_med(results, "lean", "cpu_us"), _med(results, "causette", "cpu_us")),
        "cpu_ratio_peer": _ratio(_med(results, "botkit", "cpu_us"), _med(results, "causette", "cpu_us")),
        "cpu_ratio_10k": _ratio(_med(results, "causette", "cpu_us"), _med(results, "causette_10k", "cpu_us")),
        "cpu_ratio_10k_own": _ratio(_med(results, "causette", "cpu_us"), _med(results, "causette_10k_own", "cpu_us")),
        "cpu_all_ratio_floor": _ratio(_med(results, "redispy", "cpu_us"), _med(results, "causette", "cpu_us_total")),
        "cpu_all_ratio_lean": _ratio(_med(results, "lean", "cpu_us"), _med(results, "causette", "cpu_us_total")),
        "cpu_all_ratio_peer": _ratio(_med(results, "botkit", "cpu_us"), _med(results, "causette", "cpu_us_total")),
        # Instructions per request under callgrind: the one figure that neighbours on a shared
        # machine cannot move (bench/instructions.py).
        "instructions_lean": _instr(results, "lean"),
        "instructions_causette": _instr(results, "causette"),
        "instr_ratio_lean": _ratio(_instr(results, "lean"), _instr(results, "causette")),
        "configs": results,
    }
    out["targets"] = {}
    for key, op, target, label in TARGETS:
        v = out.get(key)
        met = None if v is None else {">=": v >= target, "<": v < target, "<=": v <= target}[op]
        out["targets"][key] = {"label": label, "target": f"{op} {target}", "value": v, "met": met}
    return out


def _f(v: Any, fmt: str = "{:,.0f}") -> str:
    return "–" if v is None else fmt.format(v)


def table(out: dict[str, Any]) -> str:
    rows = ["| Configuration | req/s (median) | req/s range | p50 ms | p90 ms | p99 ms | server CPU µs/req "
            "| CPU µs/turn with store writes | sustained req/s "
            "| Redis CPU µs/req | Redis cmds/turn | round trips/turn | session bytes | RSS MB (on huge pages) | runs kept |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in out["configs"].items():
        m, g = r.get("median", {}), r.get("range", {})
        rng = g.get("rps")
        rows.append("| " + " | ".join([
            r.get("label", name), _f(m.get("rps")),
            f"{rng[0]:,.0f}–{rng[1]:,.0f}" if rng else "–",
            _f(m.get("p50_ms"), "{:.1f}"), _f(m.get("p90_ms"), "{:.1f}"), _f(m.get("p99_ms"), "{:.1f}"),
            _f(m.get("cpu_us")), _f(m.get("cpu_us_total")), _f(m.get("sustained_rps")),
            _f(m.get("redis_cpu_us")), _f(m.get("redis_cmds_per_turn"), "{:.1f}"),
            _f(r.get("round_trips_per_turn"), "{:.2f}"), _f(r.get("session_bytes")),
            _f(m.get("rss_bytes") / 1e6 if m.get("rss_bytes") else None, "{:.0f}")
            + (f" ({m['huge_bytes'] / 1e6:.0f})" if m.get("huge_bytes") else ""),
            f"{r.get('accepted', 0)}/{r.get('accepted', 0) + r.get('rejected', 0)}"]) + " |")
    lines = ["\n".join(rows), "", "| Figure | Value | Target | Met |", "|---|---:|---:|:---:|"]
    for key, t in out["targets"].items():
        v = t["value"]
        lines.append(f"| {t['label']} (`{key}`) | {_f(v, '{:,.3g}') if isinstance(v, float) else _f(v)} "
                     f"| {t['target']} | {'–' if t['met'] is None else ('yes' if t['met'] else 'no')} |")
    cpu = [f"{label} {out[k]:.2f}" for k, label in (("cpu_ratio_floor", "vs redis-py floor"),
                                                     ("cpu_ratio_lean", "vs lean floor"),
                                                     ("cpu_ratio_peer", "vs Botkit"),
                                                     ("cpu_ratio_10k", "10k tenants vs 1"),
                                                     ("cpu_ratio_10k_own", "10k tenants with own flows vs 1"))
           if out.get(k) is not None]
    if cpu:
        lines += ["", "The same ratios in server CPU per request (theirs / Causette's; steadier on a "
                  "shared machine): " + ", ".join(cpu) + "."]
    if out.get("instr_ratio_lean") is not None:
        lines += ["", f"Instructions per request, counted by valgrind's callgrind (a count that the "
                  f"machine's other guests cannot move): lean floor {out['instructions_lean'] / 1e3:,.0f} k, "
                  f"Causette {out['instructions_causette'] / 1e3:,.0f} k: lean floor / Causette "
                  f"{out['instr_ratio_lean']:.2f}."]
    if out.get("causette_sustained_rps"):
        sus = [f"{label} {out[k]:.2f}" for k, label in (("ratio_floor_sustained", "redis-py floor"),
                                                        ("ratio_lean_sustained", "lean floor"),
                                                        ("ratio_peer_sustained", "Botkit"))
               if out.get(k) is not None]
        alls = [f"{label} {out[k]:.2f}" for k, label in (("cpu_all_ratio_floor", "redis-py floor"),
                                                         ("cpu_all_ratio_lean", "lean floor"),
                                                         ("cpu_all_ratio_peer", "Botkit"))
                if out.get(k) is not None]
        lines += ["", f"Store writes: Causette answers first and writes events to SQLite from a "
                  f"low-priority thread, so a burst leaves some in Redis; after each run the bench "
                  f"waits until all are stored (median backlog {_f(out.get('causette_backlog_entries'))} "
                  f"turns, {_f(out.get('causette_drain_s'), '{:.1f}')} s). Counting that work, a turn "
                  f"costs {_f(out.get('causette_cpu_us_all'))} µs of CPU and the sustained rate "
                  f"(requests / (run + drain)) is {_f(out.get('causette_sustained_rps'))} req/s: "
                  f"sustained ratios " + ", ".join(sus) + "; CPU ratios with the store writes "
                  + ", ".join(alls) + "."]
    drain = out.get("drain_us_per_entry") or {}
    if drain:
        names = {"causette": "1 tenant", "causette_10k": "10k tenants", "causette_10k_own": "10k own flows"}
        lines += ["", "Store writes per waiting turn (median, µs of CPU on the event loop + in the "
                  "store's thread): " + ", ".join(f"{names[n]} {lp:.0f} + {th:.0f}"
                                                  for n, (lp, th) in drain.items()) + "."]
    scale = [f"{label} {', '.join(f'{r:.2f}' for r in out[k])}"
             for k, label in (("tenants_10k_ratio_runs", "one template"),
                              ("tenants_10k_own_ratio_runs", "own flows")) if out.get(k)]
    if scale:
        lines += ["", "10k tenants / 1 per interleaved run (req/s): " + "; ".join(scale)
                  + ". Sustained (with the store writes): "
                  + ", ".join(f"{label} {out[k]:.2f}" for k, label in
                              (("tenants_10k_sustained_ratio", "one template"),
                               ("tenants_10k_own_sustained_ratio", "own flows"))
                              if out.get(k) is not None) + "."]
    extra = []
    if out.get("memory_per_tenant_bytes") is not None:
        extra.append(f"memory per tenant: {out['memory_per_tenant_bytes']:,} bytes of server RSS")
    if out.get("memory_per_tenant_own_bytes") is not None:
        extra.append(f"with a flow of its own: {out['memory_per_tenant_own_bytes']:,} bytes")
    if out.get("procs_2_ratio") is not None:
        extra.append(f"2 processes / 1: {out['procs_2_ratio']:.2f}")
    cold = out["configs"].get("causette_10k", {}).get("cold_start_s")
    if cold is not None:
        extra.append(f"first pass over every tenant (each loaded from the store): {cold} s")
    if extra:
        lines += ["", "; ".join(extra) + "."]
    return "\n".join(lines)


def svg(out: dict[str, Any]) -> str:
    names = [n for n, r in out["configs"].items() if r.get("median")]
    row, top, label_w, panel_w, gap = 30, 50, 210, 300, 40
    height = top + row * len(names) + 40
    width = label_w + 2 * panel_w + gap + 30
    colours = {"bare": "#9aa0a6", "redispy": "#80868b", "lean": "#5f6368", "botkit": "#e8710a"}
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
             '<rect width="100%" height="100%" fill="white"/>',
             f'<text x="{label_w}" y="20" font-weight="bold">requests/s (median, bar = range of runs)</text>',
             f'<text x="{label_w + panel_w + gap}" y="20" font-weight="bold">p99 latency, ms (c=64)</text>']
    for p, key in enumerate(("rps", "p99_ms")):
        x0 = label_w + p * (panel_w + gap)
        vmax = max((out["configs"][n]["range"][key][1] for n in names), default=1) or 1
        scale = (panel_w - 50) / vmax
        parts.append(f'<line x1="{x0}" y1="{top - 8}" x2="{x0}" y2="{top + row * len(names)}" stroke="#333"/>')
        for i, n in enumerate(names):
            r = out["configs"][n]
            med, (lo, hi) = r["median"][key], r["range"][key]
            y = top + i * row
            colour = colours.get(n, "#1a73e8")
            parts.append(f'<rect x="{x0}" y="{y}" width="{med * scale:.1f}" height="{row - 10}" fill="{colour}"/>')
            yc = y + (row - 10) / 2
            parts.append(f'<line x1="{x0 + lo * scale:.1f}" y1="{yc}" x2="{x0 + hi * scale:.1f}" y2="{yc}" '
                         f'stroke="black" stroke-width="1.5"/>')
            txt = f"{med:,.0f}" if key == "rps" else f"{med:.1f}"
            parts.append(f'<text x="{x0 + max(med, hi) * scale + 4:.1f}" y="{yc + 4}">{txt}</text>')
            if p == 0:
                parts.append(f'<text x="{label_w - 8}" y="{yc + 4}" text-anchor="end">'
                             f'{html.escape(r.get("label", n))}</text>')
    m = out["machine"]
    parts.append(f'<text x="10" y="{height - 12}" fill="#555">{html.escape(m.get("cpu", ""))}, '
                 f'{m.get("cores")} cores; server pinned to core {m.get("server_core")}, load '
                 f'({out["load_tool"]}) and Redis to core {m.get("load_core")}; {out["when"]}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def write_docs(out: dict[str, Any], json_path: Path) -> None:
    svg_path = json_path.with_suffix(".svg")
    svg_path.write_text(svg(out))
    md = table(out)
    json_path.with_suffix(".md").write_text(md + "\n")
    if not DOC.exists() or json_path.parent != ROOT / "bench" / "results":
        return
    text = DOC.read_text()
    if BEGIN not in text or END not in text:
        return
    m = out["machine"]
    s = out["settings"]
    block = (f"{BEGIN}\nMeasured {out['when']} on {m.get('cpu')} ({m.get('cores')} cores, "
             f"{m.get('memory_bytes', 0) / 2**30:.0f} GiB, Linux {m.get('kernel')}, Python {m.get('python')}, "
             f"{m.get('redis')}, node {m.get('node') or '–'}), load from **{out['load_tool']}**; "
             f"{s['runs']} interleaved run(s) per configuration of {s['warmup_s']:g} s warm-up + "
             f"{s['duration_s']:g} s at c={s['connections']}, {s['users']:,} users"
             + (" (quick run)" if s.get("quick") else "") + ".\n\n"
             + md + "\n\n![requests/s and p99 per configuration](../bench/results/latest.svg)\n"
             + ("\nNotes: " + "; ".join(out["notes"]) + ".\n" if out["notes"] else "") + END)
    DOC.write_text(re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _m: block, text, flags=re.S))


def top_frames(raw: Path, n: int = 25) -> list[dict[str, Any]]:
    """Self and inclusive sample shares per function from py-spy's collapsed-stack output."""
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        k = int(count)
        total += k
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";")]
        own[frames[-1]] += k
        for f in set(frames):
            incl[f] += k
    if not total:
        return []
    return [{"frame": f, "self_pct": round(100 * c / total, 1), "incl_pct": round(100 * incl[f] / total, 1)}
            for f, c in own.most_common(n)]
