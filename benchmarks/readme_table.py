"""Regenerate README.md's performance table from the committed results files.

Every number in the table is read from a results file under benchmarks/results/ and links
to it, so the README cannot drift from what the scripts measured:

- the newest results of benchmarks/multistage.py from a 2-core machine (funnel, its floor
  and the Merlin peer, all from one run);
- ``feast_overhead.json`` (the Zipf item-cache cells) and ``faiss_overhead.json``;
- ``torch_multistage_gpu.json`` (benchmarks/torch_multistage.py --gpu on a GPU machine: the torch
  pipeline served KIND_GPU next to KIND_CPU in the same run).

    python benchmarks/readme_table.py           # rewrite the section between the markers
    python benchmarks/readme_table.py --check   # exit 1 when README.md is not what the results say

The section sits between ``<!-- perf-table:begin -->`` and ``<!-- perf-table:end -->``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
README = ROOT / "README.md"
BEGIN, END = "<!-- perf-table:begin -->", "<!-- perf-table:end -->"


def _newest_multistage(cpus: int = 2) -> Path | None:
    """The newest multistage.py results (``<date>-<machine>.json``) from a ``cpus``-core machine
    (the CI machine type the README describes), smoke runs excluded."""
    found = []
    for path in RESULTS.glob("20*.json"):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        meta = data.get("meta", {}) if isinstance(data, dict) else {}
        if "cells" in data and meta.get("cpus") == cpus and not meta.get("smoke"):
            found.append((str(meta.get("date", "")), path.name, path))
    return max(found)[2] if found else None


def _cell(cells: list[dict[str, Any]], variant: str, protocol: str, users: int, conc: int = 1) -> dict[str, Any] | None:
    return next((c for c in cells if (c["variant"], c["protocol"], c["users_per_request"], c["concurrency"])
                 == (variant, protocol, users, conc)), None)


def _spread(c: dict[str, Any]) -> str:
    reps = c.get("extra", {}).get("p50_per_repeat_ms") or []
    return f", p50 {min(reps):.1f}–{max(reps):.1f} over {len(reps)} runs" if len(reps) > 1 else ""


def table() -> str:
    """The generated markdown (without the markers)."""
    ms_path = _newest_multistage()
    if ms_path is None:
        return "No multistage results yet: run `make benchmark`.\n"
    data = json.loads(ms_path.read_text())
    meta, cells = data["meta"], data["cells"]
    link = lambda text, path=ms_path: f"[{text}](benchmarks/results/{path.with_suffix('.md').name})"  # noqa: E731
    dash = "–"

    def ratio(a: dict | None, b: dict | None) -> str:
        return link(f"{a['p50_ms'] / b['p50_ms']:.2f}×") if a and b else dash

    f1, i1 = _cell(cells, "floor", "-", 1), _cell(cells, "in-process", "-", 1)
    f64, i64 = _cell(cells, "floor", "-", 64), _cell(cells, "in-process", "-", 64)
    e1 = _cell(cells, "executor", "http", 1)
    mf, mi = _cell(cells, "merlin-floor", "-", 1), _cell(cells, "merlin-in-process", "-", 1)
    me = _cell(cells, "merlin-executor", "http", 1)
    e8, m8 = _cell(cells, "executor", "http", 1, 8), _cell(cells, "merlin-executor", "http", 1, 8)
    c64, c1 = _cell(cells, "in-process+item-cache", "-", 64), _cell(cells, "in-process+item-cache", "-", 1)

    rows = []
    funnel = f"{ratio(i1, f1)} / {ratio(i64, f64)}"
    if i1 and f1:
        funnel += f" ({i1['p50_ms']:.2f} vs {f1['p50_ms']:.2f} ms at 1 user{_spread(i1)})"
    merlin = f"{ratio(mi, mf)} ({mi['p50_ms']:.1f} vs {mf['p50_ms']:.1f} ms at 1 user{_spread(mi)})" if mi and mf else dash
    rows.append(("in-process p50 ÷ its own hand-written floor, 1 user / 64 users", funnel, merlin))
    if i1 and mi:
        rows.append(("in-process p50, 1 user", link(f"{i1['p50_ms']:.2f} ms"),
                     link(f"{mi['p50_ms']:.1f} ms ({mi['p50_ms'] / i1['p50_ms']:.1f}× funnel)")))
    if e1:
        diff = e1.get("extra", {}).get("served_minus_in_process_p50_ms")
        funnel = link(f"{diff:+.2f} ms") + f" (served {e1['p50_ms']:.2f} ms; interleaved with in-process calls)" if diff is not None else dash
        side = e1.get("extra", {}).get("server_side", {})
        if "python_backend_ipc_ms" in side:
            funnel += (f"; of a request's mean: HTTP+client {side['protocol_and_client_ms']:.2f}, backend IPC "
                       f"{side['python_backend_ipc_ms']:.2f}, funnel around the graph {side['funnel_execute_overhead_ms']:.2f} ms")
        merlin = link(f"served p50 {me['p50_ms']:.1f} ms") + (f" ({me['p50_ms'] - mi['p50_ms']:+.1f} ms vs in-process, back to back)" if mi else "") if me else dash
        rows.append(("served (executor, HTTP) p50 − in-process p50, 1 user", funnel, merlin))
    u64 = lambda a, b: link(f"{a['users_per_s'] / b['users_per_s']:.1f}×") if a and b else dash  # noqa: E731
    multi = meta.get("merlin", {}).get("multi_user_served") or meta.get("merlin", {}).get("multi_user_in_process")
    merlin_multi = "one user per request only" + (" (a 4-user request fails)" if multi and not multi.get("ok", True) else "")
    rows.append(("users/s, 64 users per request ÷ 1 user per request",
                 f"{u64(i64, i1)} (with the item cache {u64(c64, c1)}; floor {u64(f64, f1)})", merlin_multi))
    if e8 or m8:
        rows.append(("users/s at concurrency 8 (served, 1 user per request)",
                     link(f"{e8['users_per_s']:.0f}") + " (dynamic batching)" if e8 else dash,
                     link(f"{m8['users_per_s']:.0f}") if m8 else dash))
    feast = RESULTS / "feast_overhead.json"
    if feast.is_file():
        frows = json.loads(feast.read_text())["rows"]
        z = [r for r in frows if r["case"] == "zipf_items_100_steady" and r["path"] == "op_cached"]
        if z:
            z = max(z, key=lambda r: r["cache_size"])
            rows.append((f"item cache, Zipf stream over {z['catalogue']} items, cache of {z['cache_size']} (steady state)",
                         f"[{z['hit_rate']:.0%} hits, p50 {z['p50_vs_direct']:.2f}× a direct Feast call]"
                         "(benchmarks/results/feast_overhead.md)", dash))
    rows += _gpu_rows(dash)
    notes = ms_path.with_suffix(".notes.md")
    lines = [
        f"Measured by `benchmarks/multistage.py{' --quick' if meta.get('quick') else ''}` "
        f"{'--peers ' + ','.join(meta['peers']) + ' ' if meta.get('peers') else ''}on "
        f"{meta.get('cpus')} CPUs ({meta.get('date', '')[:10]}, load average {meta.get('load_avg_before')} → "
        f"{meta.get('load_avg_after')}, {meta.get('repeats', 1)} repeat(s) per cell: median of medians"
        f"{', **quick run**' if meta.get('quick') else ''}). Funnel and Merlin run in the same invocation on the same "
        "data, models, FAISS index and requests; the machine is shared, so compare ratios within the run."
        + (f" Conditions of this run (load during it, what each figure means): [{notes.name}](benchmarks/results/{notes.name})."
           if notes.is_file() else ""),
        "",
        "| | funnel | Merlin Systems 23.08, same pipeline, same run |",
        "|---|---|---|",
        *[f"| {a} | {b} | {c} |" for a, b, c in rows],
        "",
        "Generated by `benchmarks/readme_table.py` from the results files linked in each cell.",
    ]
    return "\n".join(lines) + "\n"


def _gpu_rows(dash: str) -> list[tuple[str, str, str]]:
    """The KIND_GPU vs KIND_CPU row from torch_multistage_gpu.json (a full run, not a smoke run)."""
    path = RESULTS / "torch_multistage_gpu.json"
    if not path.is_file():
        return []
    data = json.loads(path.read_text())
    if data["meta"].get("smoke"):
        return []
    cell = {(r["graph"], r["users"], r["path"]): r for r in data["rows"]}
    rg, rc = cell.get(("rank", 64, "served/KIND_GPU")), cell.get(("rank", 64, "served/KIND_CPU"))
    fg, fc = cell.get(("full", 64, "served/KIND_GPU")), cell.get(("full", 64, "served/KIND_CPU"))
    if not (rg and rc and fg and fc):
        return []
    meta = data["meta"]
    link = f"benchmarks/results/{path.with_suffix('.md').name}"
    label = (f"{meta.get('gpu')} host, `benchmarks/torch_multistage.py --gpu` ({meta.get('date', '')[:10]}; torch query "
             "tower + torch ranker, FAISS on the CPU): served p50 / p99, ranking 64 users × 100 candidates; "
             "users/s of the whole pipeline at 64 users per request")
    text = (f"[KIND_GPU {rg['p50_ms']:.2f} / {rg['p99_ms']:.2f} ms vs KIND_CPU {rc['p50_ms']:.2f} / {rc['p99_ms']:.2f} ms]"
            f"({link}); [{fg['users_per_s']:.0f} vs {fc['users_per_s']:.0f} users/s]({link}) "
            f"({meta.get('repeats')} repeats, same run)")
    return [(label, text, dash)]


def render(text: str) -> str:
    """README text with the section between the markers replaced."""
    if BEGIN not in text or END not in text:
        raise SystemExit(f"README.md has no {BEGIN} … {END} section to fill")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{table()}{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if README.md differs from the results")
    args = parser.parse_args(argv)
    current = README.read_text()
    new = render(current)
    if args.check:
        if new != current:
            print("README.md's performance table is not what benchmarks/results say; "
                  "run `python benchmarks/readme_table.py` and commit README.md", file=sys.stderr)
            return 1
        return 0
    README.write_text(new)
    print(f"README.md performance table regenerated from {_newest_multistage()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
