"""Shared fixtures: one small Keras ranking model, trained for a few steps and exported once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from funnel import ColumnSchema, Schema

N_ITEMS = 50


def build_model() -> Any:
    """A tiny ranking model: user_age (B,1) int32, item_id (B,1) int64, item_score (B,) float32."""
    import keras

    keras.utils.set_random_seed(0)
    age = keras.Input(shape=(1,), name="user_age", dtype="int32")
    item = keras.Input(shape=(1,), name="item_id", dtype="int64")
    score = keras.Input(shape=(), name="item_score", dtype="float32")
    emb = keras.layers.Flatten()(keras.layers.Embedding(N_ITEMS, 4)(item))
    x = keras.layers.Concatenate()(
        [emb, keras.ops.cast(age, "float32") / 100.0, keras.ops.expand_dims(score, -1)]
    )
    x = keras.layers.Dense(8, activation="relu")(x)
    out = keras.layers.Dense(1, activation="sigmoid")(x)
    model = keras.Model({"user_age": age, "item_id": item, "item_score": score}, out)
    model.compile("adam", "binary_crossentropy")
    rng = np.random.default_rng(0)
    n = 256
    feats = make_rows(rng, n)
    labels = (feats["item_id"] % 2 == 0).astype("float32")
    model.fit(
        {
            "user_age": feats["user_age"][:, None],
            "item_id": feats["item_id"][:, None],
            "item_score": feats["item_score"],
        },
        labels[:, None],
        epochs=2,
        batch_size=64,
        verbose=0,
    )
    return model


def make_rows(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """n flat rows of the model's three inputs, as per-row scalars."""
    return {
        "user_age": rng.integers(18, 80, n).astype("int32"),
        "item_id": rng.integers(0, N_ITEMS, n).astype("int64"),
        "item_score": rng.random(n).astype("float32"),
    }


def direct_call(model: Any, rows: dict[str, np.ndarray]) -> np.ndarray:
    """The Keras model called directly on flat rows: (n,) scores."""
    out = model(
        {
            "user_age": rows["user_age"][:, None],
            "item_id": rows["item_id"][:, None],
            "item_score": rows["item_score"],
        },
        training=False,
    )
    return np.asarray(out).reshape(-1)


@pytest.fixture(scope="session")
def keras_model() -> Any:
    return build_model()


@pytest.fixture(scope="session")
def savedmodel_dir(keras_model: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tfmodel") / "ranker"
    keras_model.export(str(path), verbose=False)
    return path


@pytest.fixture(scope="session")
def flat_request_schema() -> Schema:
    return Schema(
        [
            ColumnSchema("user_age", "int32"),
            ColumnSchema("item_id", "int64"),
            ColumnSchema("item_score", "float32"),
        ]
    )


@pytest.fixture(scope="session")
def rows_maker() -> Any:
    """``rows_maker(seed, n)``: n random flat rows of the model's inputs."""
    return lambda seed, n: make_rows(np.random.default_rng(seed), n)


@pytest.fixture(scope="session")
def direct(keras_model: Any) -> Any:
    """``direct(rows)``: the Keras model called directly on flat rows."""
    return lambda rows: direct_call(keras_model, rows)
