"""MovieLens-100K: load from the installed ``recbole`` wheel, encode features, split by time.

The data set ships inside ``recbole==1.2.1`` (installed ``--no-deps``) as RecBole atomic
files. Its licence forbids redistribution, so it is read from the installed package and
never copied into the repository.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from funnel.errors import ArtifactError

__all__ = ["MovieLens", "GENRES", "find_movielens", "load_movielens", "time_split"]

GENRES = (
    "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
    "War", "Western", "unknown",
)  # fmt: skip


def find_movielens() -> Path:
    """The ``ml-100k`` directory inside the installed recbole package (recbole is not imported)."""
    spec = importlib.util.find_spec("recbole")
    if spec is None or spec.origin is None:
        raise ArtifactError(
            "MovieLens-100K is read from the recbole wheel, which is not installed; "
            "run `uv pip install --no-deps recbole==1.2.1` (make demo does this)"
        )
    path = Path(spec.origin).parent / "dataset_example" / "ml-100k"
    if not (path / "ml-100k.inter").is_file():
        raise ArtifactError(f"{path}/ml-100k.inter not found: the recbole wheel has no MovieLens-100K copy")
    return path


@dataclass
class MovieLens:
    """Encoded MovieLens-100K tables.

    ``users``: user_id, age (bucket), gender, occupation (small ints, 0 = unknown).
    ``items``: item_id, year (bucket), genres (bit mask over :data:`GENRES`), title.
    ``interactions``: user_id, item_id, rating, timestamp. Ids are the original ids (1-based).
    """

    users: pd.DataFrame
    items: pd.DataFrame
    interactions: pd.DataFrame

    @property
    def num_users(self) -> int:
        """Largest user id + 1 (embedding table size)."""
        return int(self.users.user_id.max()) + 1

    @property
    def num_items(self) -> int:
        """Largest item id + 1 (embedding table size)."""
        return int(self.items.item_id.max()) + 1

    def subset(self, num_users: int, num_items: int, seed: int = 0) -> MovieLens:
        """The ``num_items`` most popular items and ``num_users`` random users (seeded) with at
        least 10 interactions on them: a small, realistic slice for tests."""
        inter = self.interactions
        top_items = inter.item_id.value_counts().index[:num_items]
        inter = inter[inter.item_id.isin(top_items)]
        counts = inter.user_id.value_counts()
        eligible = np.sort(counts.index[counts >= 10].to_numpy())
        rng = np.random.default_rng(seed)
        chosen = rng.choice(eligible, size=min(num_users, eligible.size), replace=False)
        inter = inter[inter.user_id.isin(chosen)]
        return MovieLens(
            users=self.users[self.users.user_id.isin(chosen)].reset_index(drop=True),
            items=self.items[self.items.item_id.isin(top_items)].reset_index(drop=True),
            interactions=inter.reset_index(drop=True),
        )


def _codes(values: pd.Series) -> np.ndarray:
    """Dense 1-based codes of a categorical column (0 is kept for unknown values)."""
    return (pd.Categorical(values).codes.astype(np.int64) + 1)


def load_movielens(path: Path | None = None) -> MovieLens:
    """Read and encode the three atomic files (``.inter``, ``.user``, ``.item``)."""
    path = path or find_movielens()
    inter = pd.read_csv(path / "ml-100k.inter", sep="\t")
    inter.columns = ["user_id", "item_id", "rating", "timestamp"]
    inter = inter.astype({"user_id": np.int64, "item_id": np.int64, "rating": np.float32, "timestamp": np.int64})

    users = pd.read_csv(path / "ml-100k.user", sep="\t", dtype=str)
    users.columns = ["user_id", "age", "gender", "occupation", "zip_code"]
    age = users.age.astype(int)
    users = pd.DataFrame(
        {
            "user_id": users.user_id.astype(np.int64),
            "age": np.digitize(age, [18, 25, 35, 45, 50, 56]).astype(np.int64) + 1,
            "gender": _codes(users.gender),
            "occupation": _codes(users.occupation),
        }
    )

    items = pd.read_csv(path / "ml-100k.item", sep="\t", dtype=str, keep_default_na=False)
    items.columns = ["item_id", "title", "year", "genres"]
    year = pd.to_numeric(items.year, errors="coerce").fillna(0).astype(int)
    bit = {g: 1 << i for i, g in enumerate(GENRES)}
    items = pd.DataFrame(
        {
            "item_id": items.item_id.astype(np.int64),
            "year": np.where(year > 0, np.digitize(year, [1950, 1970, 1980, 1990, 1994, 1996, 1997]) + 1, 0).astype(
                np.int64
            ),
            "genres": items.genres.map(lambda s: sum(bit.get(g, 0) for g in s.split())).astype(np.int64),
            "title": items.title,
        }
    )
    return MovieLens(users=users, items=items, interactions=inter)


def time_split(interactions: pd.DataFrame, test_fraction: float = 0.2) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per user, the last ``test_fraction`` of their interactions (by timestamp) are the test set."""
    inter = interactions.sort_values(["user_id", "timestamp", "item_id"], kind="stable")
    rank = inter.groupby("user_id").cumcount()
    count = inter.groupby("user_id").user_id.transform("size")
    n_test = np.floor(count * test_fraction).astype(int)
    is_test = rank >= count - n_test
    return inter[~is_test].reset_index(drop=True), inter[is_test].reset_index(drop=True)
