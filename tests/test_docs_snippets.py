"""Docs as code: every fenced code block in README.md, docs/*.md and docs/reference/*.md runs.

The rules (also written in docs/reference/README.md, "Writing a runnable page"):

- A ```python block is executed. Blocks of one file run in order in one fresh namespace
  (a later block sees the names an earlier one defined), in a temporary working directory.
- A ```toml block must parse (``tomllib``); a ```json block must parse (``json``).
- Any other block (shell commands, output, trees, Dockerfiles, ...) and any python block that
  cannot run here is marked on the line right before its fence with
  ``<!-- not-run: <reason> -->``; the reason is required.
- ``<!-- raises: SchemaError -->`` before a python block: the block must raise an exception of
  that class name (for pages that show an error).
- Fixtures: a python block may be preceded by a hidden setup comment, run first in the same
  namespace and not shown to readers::

      <!-- setup:
      import numpy as np
      request_schema = ...
      -->

  The markers may follow a setup comment; the fence must come right after the last one.

The test fails on an unmarked block that errors, on a marker without a reason, and on an
unknown marker. One test per file; the failure names the file and the block's line.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
MARKER = re.compile(r"^\s*<!--\s*(?P<kind>[a-z-]+)\s*:?(?P<rest>.*?)-->\s*$", re.S)
KNOWN_MARKERS = {"not-run", "raises", "setup"}


@dataclass
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    not_run: str | None = None  # the reason, "" when the marker has none
    raises: str | None = None
    setup: list[tuple[int, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def doc_files() -> list[Path]:
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "docs" / "reference").glob("*.md"))]
    return [f for f in files if f.is_file()]


def _comments_before(lines: list[str], fence_index: int) -> list[tuple[int, str]]:
    """The HTML comments directly above a fence (nearest last), as (1-based line, text)."""
    found: list[tuple[int, str]] = []
    j = fence_index - 1
    while j >= 0 and lines[j].rstrip().endswith("-->"):
        start = j
        while start >= 0 and "<!--" not in lines[start]:
            start -= 1
        if start < 0:
            break
        found.insert(0, (start + 1, "\n".join(lines[start : j + 1])))
        j = start - 1
    return found


def parse_blocks(path: Path) -> list[Block]:
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, info = m["indent"], m["fence"], m["info"].strip()
        body: list[str] = []
        j = i + 1
        while j < len(lines):
            close = FENCE.match(lines[j])
            if close and close["fence"][0] == fence[0] and len(close["fence"]) >= len(fence) and not close["info"].strip():
                break
            line = lines[j]
            body.append(line[len(indent):] if line.startswith(indent) else line.lstrip())
            j += 1
        block = Block(path, i + 1, info.split()[0].lower() if info else "", "\n".join(body) + "\n")
        for line_no, comment in _comments_before(lines, i):
            cm = MARKER.match(comment)
            if not cm:
                continue
            kind, rest = cm["kind"], cm["rest"]
            if kind not in KNOWN_MARKERS:
                if kind.startswith(("not", "raise", "setup", "skip", "no-")):
                    block.problems.append(f"line {line_no}: unknown marker {kind!r} (use one of {sorted(KNOWN_MARKERS)})")
                continue
            if kind == "not-run":
                block.not_run = rest.strip()
                if not block.not_run:
                    block.problems.append(f"line {line_no}: <!-- not-run --> needs a reason: <!-- not-run: why -->")
            elif kind == "raises":
                block.raises = rest.strip()
                if not block.raises:
                    block.problems.append(f"line {line_no}: <!-- raises: ExceptionName --> names no exception")
            else:
                block.setup.append((line_no + 1, rest.strip("\n") + "\n"))
        blocks.append(block)
        i = j + 1
    return blocks


def _where(block: Block) -> str:
    path = block.path.relative_to(ROOT) if block.path.is_relative_to(ROOT) else block.path.name
    return f"{path}:{block.line}"


def _run(code: str, filename: str, namespace: dict) -> None:
    exec(compile(code, filename, "exec"), namespace)  # noqa: S102 - running the docs is the point


def check_file(path: Path, workdir: Path) -> list[str]:
    """Run one page's blocks; return the failures (empty when the page is good)."""
    failures: list[str] = []
    namespace: dict = {"__name__": "__docs__"}
    for block in parse_blocks(path):
        where = _where(block)
        failures += [f"{where}: {p}" for p in block.problems]
        if block.problems or block.not_run:
            continue
        if block.lang in ("toml",):
            try:
                tomllib.loads(block.code)
            except tomllib.TOMLDecodeError as exc:
                failures.append(f"{where}: toml block does not parse: {exc}")
            continue
        if block.lang == "json":
            try:
                json.loads(block.code)
            except json.JSONDecodeError as exc:
                failures.append(f"{where}: json block does not parse: {exc}")
            continue
        if block.lang not in ("python", "py"):
            failures.append(
                f"{where}: a {block.lang or 'plain'} block cannot be run; mark it on the line before the fence "
                "with <!-- not-run: <reason> -->"
            )
            continue
        try:
            for line_no, code in block.setup:
                _run(code, f"{block.path.name}:{line_no} (setup)", namespace)
        except Exception:
            failures.append(f"{where}: the setup comment before the block failed:\n{traceback.format_exc(limit=-3)}")
            continue
        try:
            _run(block.code, f"{block.path.name}:{block.line + 1}", namespace)
        except Exception as exc:
            if block.raises and block.raises in {c.__name__ for c in type(exc).__mro__}:
                continue
            failures.append(
                f"{where}: the python block failed (fix it, or mark it <!-- not-run: reason -->):\n"
                f"{traceback.format_exc(limit=-4)}"
            )
            continue
        if block.raises:
            failures.append(f"{where}: the block was marked <!-- raises: {block.raises} --> but raised nothing")
    return failures


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_doc_snippets(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    failures = check_file(path, tmp_path)
    assert not failures, "\n\n".join(failures)


# --- the runner's own rules -------------------------------------------------------------


def _page(tmp_path: Path, text: str) -> Path:
    page = tmp_path / "page.md"
    page.write_text(text, encoding="utf-8")
    return page


def test_runner_rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    good = _page(tmp_path, (
        "<!-- setup:\nbase = 40\n-->\n```python\nx = base + 1\n```\n\n"
        "```python\nassert x == 41\n```\n"
        "<!-- raises: ZeroDivisionError -->\n```python\n1 / 0\n```\n"
        "<!-- not-run: needs a Redis server -->\n```bash\nredis-server\n```\n"
        "```toml\n[build-system]\nrequires = []\n```\n"
        "  <!-- not-run: output -->\n  ```\n  text\n  ```\n"
    ))
    assert check_file(good, tmp_path) == []
    bad = {
        "```python\nraise ValueError('boom')\n```\n": "ValueError: boom",
        "<!-- not-run -->\n```python\npass\n```\n": "needs a reason",
        "<!-- not-run:   -->\n```bash\nls\n```\n": "needs a reason",
        "```bash\nls\n```\n": "mark it on the line before the fence",
        "```\nplain\n```\n": "a plain block cannot be run",
        "<!-- raises: KeyError -->\n```python\npass\n```\n": "raised nothing",
        "<!-- raises: KeyError -->\n```python\n1 / 0\n```\n": "ZeroDivisionError",
        "```toml\n[a\n```\n": "toml block does not parse",
        "<!-- skip: x -->\n```python\npass\n```\n": "unknown marker",
        "<!-- not-run: reason -->\n\n```bash\nls\n```\n": "mark it on the line before",
    }
    for text, expected in bad.items():
        failures = check_file(_page(tmp_path, text), tmp_path)
        assert failures and expected in failures[0], (text, failures)


def test_every_doc_page_is_checked() -> None:
    names = {str(p.relative_to(ROOT)) for p in doc_files()}
    assert "README.md" in names and "docs/architecture.md" in names
    assert os.path.isdir(ROOT / "docs")


def test_reference_names_every_operator() -> None:
    """Every operator core or a first-party plugin registers is described in docs/reference/."""
    from funnel import registry

    first_party = {"funnel", *(p.name for p in (ROOT / "plugins").iterdir() if (p / "pyproject.toml").is_file())}
    text = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "docs" / "reference").glob("*.md"))
    missing = []
    for info in registry.plugins():
        if info.name == "funnel" or any(info.name == d.split("_")[0] for d in first_party):
            missing += [op for op in info.operators if op.split(".", 1)[1] not in text]
    assert not missing, f"docs/reference/ does not describe operator(s) {missing}; add them to their plugin's page"
