"""Pictures of a graph: Graphviz DOT text, rendered to SVG/PNG by the ``dot`` program.

Works from the plain-data graph description (``Graph.to_dict()`` / ``funnel-graph.json``),
so an exported repository can be drawn without the plugins that run it.
"""

from __future__ import annotations

import html
import shutil
import subprocess
from pathlib import Path
from typing import Any

from funnel.errors import FunnelError

__all__ = ["to_dot", "render_dot"]

_COLORS = {"op": "#dbeafe", "select": "#f3f4f6", "concat": "#fef3c7", "drop": "#fee2e2"}


def _columns(schema: dict[str, Any], limit: int = 6) -> str:
    cols = []
    for c in schema.get("columns", []):
        dims = "x".join(str(d) for d in c.get("dims") or ())
        shape = "[ ]" if c.get("is_list") else f"[{dims}]" if dims else ""
        cols.append(f"{c['name']}{shape}: {c['dtype']}")
    if len(cols) > limit:
        cols = cols[:limit] + [f"... (+{len(cols) - limit})"]
    return "<br/>".join(html.escape(c) for c in cols)


def to_dot(graph: dict[str, Any], title: str = "funnel") -> str:
    """DOT source for a graph description (``Graph.to_dict()`` output)."""
    lines = [
        f'digraph "{title}" {{',
        "  rankdir=TB;",
        '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10];',
        '  edge [fontname="Helvetica", fontsize=9, color="#6b7280"];',
        f'  request [label=<<b>request</b><br/>{_columns(graph["request_schema"])}>, fillcolor="#dcfce7"];',
    ]
    for node in graph["nodes"]:
        idx, kind = node["index"], node["kind"]
        if kind == "op":
            head = f"<b>{html.escape(node['op']['type'])}</b>"
        elif kind == "select":
            head = f"<i>select</i> {html.escape(', '.join(node.get('columns', [])))}"
        else:
            head = f"<i>{kind}</i>"
        label = f"{head}<br/><font point-size='8'>{_columns(node['output_schema'])}</font>"
        lines.append(f'  n{idx} [label=<{label}>, fillcolor="{_COLORS.get(kind, "#ffffff")}"];')
        if not node["parents"]:
            lines.append(f"  request -> n{idx};")
        dep_parents = {v: k for k, v in node.get("dep_parents", {}).items()}
        for parent in node["parents"]:
            style = f' [style=dashed, label="{dep_parents[parent]}"]' if parent in dep_parents else ""
            lines.append(f"  n{parent} -> n{idx}{style};")
    output = next((n["output_schema"] for n in graph["nodes"] if n["index"] == graph["output"]), {"columns": []})
    lines.append(f'  response [label=<<b>response</b><br/>{_columns(output)}>, fillcolor="#dcfce7"];')
    return "\n".join([*lines, f"  n{graph['output']} -> response;", "}"]) + "\n"


def render_dot(dot: str, path: str | Path) -> Path:
    """Write ``dot`` to ``path``: ``.dot``/``.gv`` as text, ``.svg``/``.png``/``.pdf`` via Graphviz."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = path.suffix.lstrip(".").lower()
    if fmt in ("dot", "gv"):
        path.write_text(dot)
        return path
    if fmt not in ("svg", "png", "pdf"):
        raise FunnelError(f"cannot render a graph to {path.name!r}: use a .svg, .png, .pdf or .dot file name")
    exe = shutil.which("dot")
    if exe is None:
        raise FunnelError("rendering needs Graphviz's `dot` program (Debian/Ubuntu: apt-get install graphviz; "
                          f"macOS: brew install graphviz); or write {path.with_suffix('.dot').name} instead")
    proc = subprocess.run([exe, f"-T{fmt}", "-o", str(path)], input=dot.encode(), capture_output=True, timeout=60)
    if proc.returncode != 0:
        raise FunnelError(f"graphviz failed to render {path}: {proc.stderr.decode(errors='replace').strip()}")
    return path
