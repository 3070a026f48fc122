"""build_feature_repo: the repositories every other test uses are built with it; its errors here."""

import pandas as pd
import pytest
from funnel.errors import SchemaError
from funnel_feast import QueryFeast, build_feature_repo


def test_types_are_inferred_and_served(sqlite_repo):
    op = QueryFeast.from_feature_view(sqlite_repo, "user_features", column="user_id")
    assert op.features == {"age": "int32", "score": "float32", "name": "str", "genres": "list<int64>"}


@pytest.mark.parametrize(
    "frame,match",
    [
        (pd.DataFrame({"uid": [1, 2], "x": [1, 2]}), "no join key column 'user_id'"),
        (pd.DataFrame({"user_id": [1, 2], "when": pd.to_datetime(["2024-01-01", "2024-01-02"])}), "column 'when'"),
        (pd.DataFrame({"user_id": [1.5, 2.5], "x": [1, 2]}), "join key 'user_id'"),
    ],
)
def test_unsupported_tables_are_refused_with_the_column(tmp_path, frame, match):
    with pytest.raises(SchemaError, match=match):
        build_feature_repo(tmp_path / "repo", {"v": ("user_id", frame)})
