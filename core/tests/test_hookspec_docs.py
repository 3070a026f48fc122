"""Every hook specification is documented (a section in docs/plugins.md) and tested."""

import inspect
from pathlib import Path

from funnel import hookspecs

DOCS = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"
TESTS = Path(__file__).resolve().parent


def hook_names():
    return [
        name
        for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(fn, "funnel_spec")
    ]


def test_there_are_hooks():
    assert set(hook_names()) >= {"register_operators", "register_commands"}


def test_every_hook_has_a_docs_section_with_its_parameters():
    text = DOCS.read_text()
    for name in hook_names():
        params = list(inspect.signature(getattr(hookspecs, name)).parameters)
        heading = f"## {name}({', '.join(params)})"
        assert heading in text, f"docs/plugins.md has no section {heading!r}"
        section = text.split(heading, 1)[1].split("\n## ", 1)[0]
        for p in params:
            assert f"`{p}`" in section, f"section {name} does not document parameter {p!r}"
        assert "```python" in section, f"section {name} has no example"


def test_every_hook_is_exercised_by_a_test():
    sources = "".join(p.read_text() for p in TESTS.rglob("test_*.py") if p.name != Path(__file__).name)
    for name in hook_names():
        assert f"def {name}(" in sources, f"no test implements hook {name}"
