"""One shape for every first-party plugin under plugins/ (issue 15, item 7).

For each plugin directory:

- ``pyproject.toml`` has a ``[build-system]`` (requires + build-backend) and exactly one
  ``funnel.plugins`` entry point, ``<name> = "<pkg>.plugin"``;
- every operator the plugin registers (asked from ``funnel.registry``) has a type name
  ``<name>.<Operator>``: the entry point's name is the type-name prefix;
- ``README.md`` has sections (headings, matched case-insensitively, synonyms allowed) for
  installing, the operators, the CLI and the limits;
- ``src/<pkg>/__init__.py`` and ``src/<pkg>/plugin.py`` exist;
- ``tests/`` holds test files.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from funnel import registry

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_DIRS = sorted(p for p in (ROOT / "plugins").iterdir() if (p / "pyproject.toml").is_file())

#: README sections every plugin has, each with the heading words that count for it
SECTIONS = {
    "install": ("install", "installation", "setup", "getting started"),
    "operators": ("operator", "operators", "use", "usage", "api"),
    "CLI": ("cli", "command line", "command-line", "commands"),
    "limits": ("limit", "limits", "limitations", "caveats", "known issues", "not supported",
               "differences", "restrictions"),
}


def _pyproject(plugin_dir: Path) -> dict:
    return tomllib.loads((plugin_dir / "pyproject.toml").read_text(encoding="utf-8"))


def _entry_point(plugin_dir: Path) -> tuple[str, str]:
    eps = _pyproject(plugin_dir).get("project", {}).get("entry-points", {}).get("funnel.plugins", {})
    assert len(eps) == 1, (
        f"{plugin_dir.name}/pyproject.toml: expected exactly one [project.entry-points.\"funnel.plugins\"] "
        f"entry, found {eps}"
    )
    return next(iter(eps.items()))


def _headings(readme: Path) -> list[str]:
    text = re.sub(r"^```.*?^```", "", readme.read_text(encoding="utf-8"), flags=re.S | re.M)  # not code comments
    return [m.group(1).strip().lower() for m in re.finditer(r"^#{1,6}\s+(.+)$", text, flags=re.M)]


def _has_section(headings: list[str], words: tuple[str, ...], extra: tuple[str, ...] = ()) -> bool:
    needles = tuple(w.lower() for w in (*words, *extra))
    return any(re.search(rf"(?<![a-z]){re.escape(n)}", h) for h in headings for n in needles)


@pytest.fixture(scope="module")
def registered() -> dict[str, list[str]]:
    """distribution → type names it registers (as funnel's registry reports them)."""
    out: dict[str, list[str]] = {}
    for info in registry.plugins():
        assert not info.error, f"plugin {info.name} failed to load: {info.error}"
        if info.distribution:
            out.setdefault(info.distribution, []).extend(info.operators)
    return out


def test_every_plugin_dir_is_checked() -> None:
    names = {p.name for p in PLUGIN_DIRS}
    assert {"faiss_op", "feast_op", "sampling_op", "tf_op", "torch_t4r_op", "workflow_op"} <= names


@pytest.mark.parametrize("plugin_dir", PLUGIN_DIRS, ids=lambda p: p.name)
def test_pyproject(plugin_dir: Path) -> None:
    data = _pyproject(plugin_dir)
    build = data.get("build-system", {})
    assert build.get("requires") and build.get("build-backend"), (
        f"{plugin_dir.name}/pyproject.toml: [build-system] needs requires and build-backend so pip can build it"
    )
    name, value = _entry_point(plugin_dir)
    assert re.fullmatch(r"[a-z][a-z0-9_]*", name), f"{plugin_dir.name}: entry point name {name!r} is not a plain prefix"
    assert re.fullmatch(r"[a-z_][a-z0-9_]*\.plugin", value), (
        f"{plugin_dir.name}: the entry point should name the hook module '<pkg>.plugin', got {value!r}"
    )
    assert data["project"]["name"].startswith("funnel-"), f"{plugin_dir.name}: distribution should be funnel-<backend>"


@pytest.mark.parametrize("plugin_dir", PLUGIN_DIRS, ids=lambda p: p.name)
def test_type_names_use_the_entry_point_name(plugin_dir: Path, registered: dict[str, list[str]]) -> None:
    name, _ = _entry_point(plugin_dir)
    dist = _pyproject(plugin_dir)["project"]["name"]
    info = next((i for i in registry.plugins() if i.name == name), None)
    assert info is not None, f"{plugin_dir.name}: funnel's registry does not list plugin {name!r} (installed?)"
    if "register_operators" not in info.hooks:  # a commands-only plugin (funnel-scale): no type names
        assert "register_commands" in info.hooks, f"{plugin_dir.name}: {name!r} implements no funnel hook"
        return
    ops = registered.get(dist)
    assert ops, f"{plugin_dir.name}: the registry lists no operators for distribution {dist!r} (installed?)"
    wrong = [op for op in ops if op.split(".", 1)[0] != name]
    assert not wrong, f"{plugin_dir.name}: operator type names {wrong} do not start with the entry point name {name!r}."


@pytest.mark.parametrize("plugin_dir", PLUGIN_DIRS, ids=lambda p: p.name)
def test_readme_sections(plugin_dir: Path, registered: dict[str, list[str]]) -> None:
    readme = plugin_dir / "README.md"
    assert readme.is_file(), f"{plugin_dir.name}: README.md is missing"
    headings = _headings(readme)
    op_names = tuple(op.split(".", 1)[1].lower() for op in registered.get(_pyproject(plugin_dir)["project"]["name"], []))
    missing = [
        section for section, words in SECTIONS.items()
        if not _has_section(headings, words, op_names if section == "operators" else ())
    ]
    assert not missing, (
        f"{readme.relative_to(ROOT)} lacks section(s) {missing} (a heading with one of "
        f"{ {s: SECTIONS[s] for s in missing} }); its headings: {headings}"
    )


@pytest.mark.parametrize("plugin_dir", PLUGIN_DIRS, ids=lambda p: p.name)
def test_package_layout(plugin_dir: Path) -> None:
    _, value = _entry_point(plugin_dir)
    pkg = plugin_dir / "src" / value.split(".", 1)[0]
    for f in ("__init__.py", "plugin.py"):
        assert (pkg / f).is_file(), f"{plugin_dir.name}: {pkg.relative_to(ROOT)}/{f} is missing"
    tests = sorted((plugin_dir / "tests").glob("test_*.py"))
    assert tests, f"{plugin_dir.name}: tests/ holds no test_*.py file"


def test_section_matching() -> None:
    assert _has_section(["install: pick your tensorflow"], SECTIONS["install"])
    assert _has_section(["deliberate differences from nvtabular"], SECTIONS["limits"])
    assert not _has_section(["tests"], SECTIONS["limits"])
    assert not _has_section(["reuse"], ("use",))  # whole words, not inside others
    assert _has_section(["`queryfaiss(index, topk=10)`"], SECTIONS["operators"], ("queryfaiss",))
