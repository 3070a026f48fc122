"""The example plugin: installed through its entry point, listed, used in a graph, saved and loaded."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from funnel import ColumnSchema, ColumnSelector, Ensemble, Node, Ragged, Schema, SchemaError
from funnel.ops import UnrollFeatures
from funnel.registry import get_operator
from funnel_example_plugin import ItemRecency

DAY = 86400
REF = dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc)
T0 = int(REF.timestamp())


def test_installed_with_its_entry_point() -> None:
    (ep,) = importlib.metadata.entry_points(group="funnel.plugins", name="example")
    assert ep.value == "funnel_example_plugin.plugin"
    assert ep.dist is not None and ep.dist.name == "funnel-example-plugin"
    assert get_operator("example.ItemRecency") is ItemRecency


def test_listed_by_funnel_plugins() -> None:
    funnel = Path(sys.executable).with_name("funnel")
    proc = subprocess.run([str(funnel), "plugins", "--json"], capture_output=True, text=True, timeout=120, check=True)
    info = {p["name"]: p for p in json.loads(proc.stdout)}["example"]
    assert info["distribution"] == "funnel-example-plugin"
    assert info["operators"] == ["example.ItemRecency"]
    assert info["hooks"] == ["register_operators"]


def test_age_in_days() -> None:
    request = Schema([ColumnSchema("first_seen", "int64"), ColumnSchema("updated", "datetime64[s]")])
    ens = Ensemble(Node.coerce(["first_seen", "updated"]) >> ItemRecency("2024-05-01T00:00:00"), request)
    out = ens.transform(
        {
            "first_seen": np.array([T0 - 3 * DAY, T0 - 1, T0 + 5 * DAY], dtype=np.int64),
            "updated": np.array(["2024-04-01", "2024-05-01", "2023-05-01"], dtype="datetime64[s]"),
        }
    )
    assert out.column_names == ["first_seen_age_days", "updated_age_days"]
    assert out["first_seen_age_days"].tolist() == [3, 0, 0]  # 1 s old → 0 days; future → 0
    assert out["updated_age_days"].tolist() == [30, 0, 366]
    assert out["first_seen_age_days"].dtype == np.int32


def test_in_a_candidate_graph_and_saved_loaded(tmp_path: Path) -> None:
    request = Schema(
        [
            ColumnSchema("user_id", "int64"),
            ColumnSchema("item_id", "int64", is_list=True),
            ColumnSchema("item_first_seen", "int64", is_list=True),
        ]
    )
    combined = Node.coerce(["item_id", "item_first_seen"]) >> UnrollFeatures("item_id", ColumnSelector(["user_id"]))
    recency = combined["item_first_seen"] >> ItemRecency(REF)
    ens = Ensemble(combined["item_id"] + recency, request)
    assert ens.output_schema["item_first_seen_age_days"].is_ragged
    data = {
        "user_id": np.array([7, 8], dtype=np.int64),
        "item_id": Ragged.from_lists([[1, 2], [3]], dtype="int64"),
        "item_first_seen": Ragged.from_lists([[T0 - 10 * DAY, T0 - DAY], [T0 - 100 * DAY]], dtype="int64"),
    }
    out = ens.transform(data)
    assert out["item_first_seen_age_days"].to_lists() == [[10, 1], [100]]

    loaded = Ensemble.load(ens.save(tmp_path / "graph"))
    graph = json.loads((tmp_path / "graph" / "funnel-graph.json").read_text())
    assert graph["operators"]["example.ItemRecency"]["distribution"] == "funnel-example-plugin"
    assert loaded.transform(data) == out


def test_clear_errors() -> None:
    request = Schema([ColumnSchema("title", "str")])
    with pytest.raises(SchemaError, match="ItemRecency: column 'title' has dtype str"):
        Ensemble(Node.coerce(["title"]) >> ItemRecency(0), request)
    with pytest.raises(SchemaError, match="ISO-8601"):
        ItemRecency("yesterday")
