"""QueryFeast served by the embedded Triton server (executor mode) equals in-process.

Numeric features only: BYTES (string) tensors cannot cross the embedded server's Python
backend under numpy 2 (docs/serving.md, "numpy 2 and the Python backend stub").
"""

from __future__ import annotations

import numpy as np
import pytest
from funnel import ColumnSchema, Ensemble, Ragged, Schema, Table
from funnel.ops import UnrollFeatures
from funnel_triton import TritonServer
from funnel_feast import QueryFeast

REQUEST = Schema([ColumnSchema("user_id", "int64"), ColumnSchema("candidate_ids", "int64", dims=(None,))])


@pytest.fixture(scope="module")
def ensemble(sqlite_repo):
    user = ["user_id"] >> QueryFeast.from_feature_view(
        sqlite_repo, "user_features", "user_id", output_prefix="user", features=["age", "score", "genres"]
    )
    items = ["candidate_ids"] >> QueryFeast.from_feature_view(
        sqlite_repo,
        "item_features",
        "candidate_ids",
        output_prefix="item",
        include_id=True,
        features=["item_category", "item_price", "item_popular"],
        cache_size=1000,
    )
    unrolled = items >> UnrollFeatures("item_id", user[["user_age", "user_score"]])
    return Ensemble(unrolled + user[["user_genres", "user_found"]], REQUEST)


@pytest.fixture(scope="module")
def server(ensemble, tmp_path_factory):
    repo = ensemble.export(tmp_path_factory.mktemp("feast_served") / "repo")
    with TritonServer(repo, timeout=120) as srv:
        yield srv


@pytest.mark.parametrize("rows", [1, 4])
def test_served_equals_in_process(server, ensemble, rows):
    lists = [[1, 2, 3], [50, 999], [], [7, 7, 8, 9]][:rows]
    request = Table(
        {
            "user_id": np.array([3, 999, 1, 20][:rows], dtype=np.int64),
            "candidate_ids": Ragged.from_lists(lists, dtype="int64"),
        }
    )
    expected = ensemble.transform(request)
    got = server.infer(request, model="funnel")
    assert got.column_names == expected.column_names
    assert got["item_found"].to_lists() == expected["item_found"].to_lists()
    assert got == expected
