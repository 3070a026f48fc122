"""The two TensorFlow models of the demo: a two-tower retrieval model and a ranking model.

* Two-tower: a query tower over user features and an item tower over item features, both
  ending in L2-normalised 64-d vectors, trained with in-batch softmax whose logits are
  corrected by ``-log(item frequency)`` (sampling-bias correction; without it the model
  learns popularity and loses to the popularity baseline).
* Ranking: an MLP over user + item features plus the (frozen) two-tower score, trained on
  the task the demo evaluates: among the retrieved, not yet seen candidates, which movies
  does the user watch next. Its training data come from a time split *inside* the training
  interactions (towers trained on the earlier part retrieve candidates, the later part
  labels them), so the ranker learns to re-order retrieval output, not to predict ratings.

Everything is plain Keras 3 on the TensorFlow backend; models are saved with
``model.export()`` (SavedModel, ``serve`` endpoint) so ``funnel_tf.PredictTensorflow`` can
load them without this module.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

__all__ = [
    "USER_FEATURES",
    "ITEM_FEATURES",
    "TowerConfig",
    "TwoTower",
    "train_two_tower",
    "train_ranker",
    "serving_query_tower",
    "serving_ranker",
]

#: user feature columns (int64 codes) used by the query tower and the ranker
USER_FEATURES = ("user_id", "age", "gender", "occupation")
#: item feature columns used by the item tower (int64) and the ranker (+ ``popularity``)
ITEM_FEATURES = ("item_id", "year", "genres")
NUM_GENRES = 19


def _keras():  # imported lazily: TensorFlow takes seconds to import
    import keras  # noqa: PLC0415

    return keras


@dataclass
class TowerConfig:
    """Sizes of the embedding tables (largest code + 1) and the training knobs."""

    num_users: int
    num_items: int
    num_ages: int = 8
    num_genders: int = 3
    num_occupations: int = 22
    num_years: int = 9
    dim: int = 64
    temperature: float = 0.05
    epochs: int = 8
    batch_size: int = 512
    learning_rate: float = 3e-3
    seed: int = 42


class _GenreMultiHot:
    """Factory of a Keras layer turning a genre bit mask (int64) into a multi-hot float vector."""

    @staticmethod
    def make():
        keras = _keras()

        class GenreMultiHot(keras.layers.Layer):
            def call(self, mask):
                bits = keras.ops.convert_to_tensor([1 << i for i in range(NUM_GENRES)], dtype="int64")
                mask = keras.ops.reshape(keras.ops.cast(mask, "int64"), (-1, 1))
                return keras.ops.cast(keras.ops.not_equal(keras.ops.bitwise_and(mask, bits), 0), "float32")

        return GenreMultiHot()


def _inputs(names: Mapping[str, str], dtypes: Mapping[str, str]) -> dict:
    """Keras inputs named ``names[feature]`` (the column name served), keyed by feature."""
    keras = _keras()
    return {f: keras.Input(shape=(), dtype=dtypes.get(f, "int64"), name=col) for f, col in names.items()}


class TwoTower:
    """Query tower + item tower (two Keras models sharing nothing)."""

    def __init__(self, cfg: TowerConfig) -> None:
        keras = _keras()
        keras.utils.set_random_seed(cfg.seed)
        self.cfg = cfg
        L = keras.layers
        # query tower
        q_in = _inputs({f: f for f in USER_FEATURES}, {})
        q = L.Concatenate()(
            [
                L.Embedding(cfg.num_users, 64, name="user_id_emb")(q_in["user_id"]),
                L.Embedding(cfg.num_ages, 8, name="age_emb")(q_in["age"]),
                L.Embedding(cfg.num_genders, 4, name="gender_emb")(q_in["gender"]),
                L.Embedding(cfg.num_occupations, 8, name="occupation_emb")(q_in["occupation"]),
            ]
        )
        q = L.Dense(128, activation="relu")(q)
        q = L.Dense(cfg.dim)(q)
        q = L.UnitNormalization()(q)
        self.query = keras.Model(q_in, q, name="query_tower")
        # item tower
        i_in = _inputs({f: f for f in ITEM_FEATURES}, {})
        i = L.Concatenate()(
            [
                L.Embedding(cfg.num_items, 64, name="item_id_emb")(i_in["item_id"]),
                L.Embedding(cfg.num_years, 8, name="year_emb")(i_in["year"]),
                _GenreMultiHot.make()(i_in["genres"]),
            ]
        )
        i = L.Dense(128, activation="relu")(i)
        i = L.Dense(cfg.dim)(i)
        i = L.UnitNormalization()(i)
        self.item = keras.Model(i_in, i, name="item_tower")

    def user_embeddings(self, users: Mapping[str, np.ndarray]) -> np.ndarray:
        """Query vectors (float32, L2-normalised) for a dict of user feature arrays."""
        return np.asarray(self.query.predict({f: np.asarray(users[f]) for f in USER_FEATURES}, batch_size=4096, verbose=0))

    def item_embeddings(self, items: Mapping[str, np.ndarray]) -> np.ndarray:
        """Item vectors (float32, L2-normalised) for a dict of item feature arrays."""
        return np.asarray(self.item.predict({f: np.asarray(items[f]) for f in ITEM_FEATURES}, batch_size=4096, verbose=0))


def train_two_tower(
    cfg: TowerConfig,
    users: Mapping[str, np.ndarray],
    items: Mapping[str, np.ndarray],
    train_user_idx: np.ndarray,
    train_item_idx: np.ndarray,
    log: Callable[[str], None] = print,
) -> TwoTower:
    """Train with in-batch softmax and the ``-log(item frequency)`` logit correction.

    ``users``/``items`` are feature arrays indexed by row; ``train_*_idx`` are the row
    indices of the positive (user, item) pairs.
    """
    import tensorflow as tf  # noqa: PLC0415

    keras = _keras()
    model = TwoTower(cfg)
    counts = np.bincount(train_item_idx, minlength=len(items["item_id"])).astype(np.float64)
    log_q = tf.constant(np.log(np.maximum(counts, 1.0) / counts.sum()), dtype=tf.float32)
    user_t = {f: tf.constant(np.asarray(users[f], dtype=np.int64)) for f in USER_FEATURES}
    item_t = {f: tf.constant(np.asarray(items[f], dtype=np.int64)) for f in ITEM_FEATURES}
    opt = keras.optimizers.Adam(cfg.learning_rate)
    variables = model.query.trainable_variables + model.item.trainable_variables

    @tf.function
    def step(u_idx: tf.Tensor, i_idx: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            u = model.query({f: tf.gather(t, u_idx) for f, t in user_t.items()}, training=True)
            v = model.item({f: tf.gather(t, i_idx) for f, t in item_t.items()}, training=True)
            logits = tf.matmul(u, v, transpose_b=True) / cfg.temperature - tf.gather(log_q, i_idx)[None, :]
            # the same item twice in a batch is not a negative of itself
            same = tf.equal(i_idx[:, None], i_idx[None, :]) & ~tf.eye(tf.shape(i_idx)[0], dtype=tf.bool)
            logits = tf.where(same, -1e9, logits)
            labels = tf.range(tf.shape(u_idx)[0])
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
        opt.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=False))
        return loss

    rng = np.random.default_rng(cfg.seed)
    n = train_user_idx.size
    for epoch in range(cfg.epochs):
        perm = rng.permutation(n)
        losses = []
        for s in range(0, n - cfg.batch_size + 1, cfg.batch_size):
            b = perm[s : s + cfg.batch_size]
            losses.append(float(step(tf.constant(train_user_idx[b]), tf.constant(train_item_idx[b]))))
        log(f"    two-tower epoch {epoch + 1}/{cfg.epochs}: loss {np.mean(losses):.3f}")
    return model


def _ranker_head(cfg: TowerConfig):
    """The trainable part of the ranker: features (+ tower score) → MLP → logit."""
    keras = _keras()
    L = keras.layers
    inp = {
        "score": keras.Input(shape=(), dtype="float32", name="score"),
        "popularity": keras.Input(shape=(), dtype="float32", name="popularity"),
        "age": keras.Input(shape=(), dtype="int64", name="age"),
        "gender": keras.Input(shape=(), dtype="int64", name="gender"),
        "occupation": keras.Input(shape=(), dtype="int64", name="occupation"),
        "year": keras.Input(shape=(), dtype="int64", name="year"),
        "genres": keras.Input(shape=(), dtype="int64", name="genres"),
    }
    x = L.Concatenate()(
        [
            L.Reshape((1,))(inp["score"]),
            L.Reshape((1,))(inp["popularity"]),
            L.Embedding(cfg.num_ages, 4)(inp["age"]),
            L.Embedding(cfg.num_genders, 2)(inp["gender"]),
            L.Embedding(cfg.num_occupations, 4)(inp["occupation"]),
            L.Embedding(cfg.num_years, 4)(inp["year"]),
            _GenreMultiHot.make()(inp["genres"]),
        ]
    )
    x = L.Dense(64, activation="relu")(x)
    x = L.Dense(32, activation="relu")(x)
    out = L.Dense(1)(x)
    return keras.Model(inp, L.Reshape(())(out), name="ranker_head")


def train_ranker(
    cfg: TowerConfig,
    features: Mapping[str, np.ndarray],
    labels: np.ndarray,
    valid: np.ndarray,
    epochs: int = 8,
    log: Callable[[str], None] = print,
):
    """Train the ranker head listwise: per user, softmax over that user's candidates.

    ``features`` hold the head's inputs as ``(users, k)`` arrays (k candidates per user),
    ``labels`` marks the candidates the user watched next, ``valid`` the real candidates.
    The loss is the softmax cross-entropy of each positive against its user's candidates,
    which optimizes the order *within* a user's list, the quantity recall@10 measures.
    """
    import tensorflow as tf  # noqa: PLC0415

    keras = _keras()
    keras.utils.set_random_seed(cfg.seed)
    head = _ranker_head(cfg)
    opt = keras.optimizers.Adam(3e-3)
    users, k = labels.shape
    keep = labels.any(axis=1)
    feats = {n: tf.constant(np.asarray(a)[keep]) for n, a in features.items()}
    lab = tf.constant(labels[keep].astype(np.float32))
    val = tf.constant(valid[keep])

    @tf.function
    def step(idx: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            flat = {n: tf.reshape(tf.gather(a, idx), [-1]) for n, a in feats.items()}
            logits = tf.reshape(head(flat, training=True), [-1, k])
            logits = tf.where(tf.gather(val, idx), logits, -1e9)
            y = tf.gather(lab, idx)
            logp = tf.nn.log_softmax(logits, axis=1)
            loss = -tf.reduce_sum(y * logp) / tf.reduce_sum(y)
        grads = tape.gradient(loss, head.trainable_variables)
        opt.apply_gradients(zip(grads, head.trainable_variables, strict=False))
        return loss

    rng = np.random.default_rng(cfg.seed)
    n = int(keep.sum())
    batch = 32
    for _epoch in range(epochs):
        perm = rng.permutation(n)
        losses = [float(step(tf.constant(perm[s : s + batch]))) for s in range(0, n, batch)]
    log(f"    ranker (listwise, {n} users with a later positive): loss {np.mean(losses):.3f} after {epochs} epochs")
    return head


def serving_query_tower(towers: TwoTower, names: Mapping[str, str]):
    """The query tower with inputs named as the served columns (``names``: feature → column)."""
    keras = _keras()
    inp = _inputs({f: names.get(f, f) for f in USER_FEATURES}, {})
    return keras.Model(inp, {"query_embedding": towers.query(inp)}, name="query_tower")


def serving_ranker(towers: TwoTower, head, names: Mapping[str, str]):
    """Ranker = frozen towers' score + head; inputs named as served columns, output ``relevance``.

    ``relevance`` is the listwise logit: a softmax over one user's candidates is the
    model's probability of each being watched next.

    ``names`` maps ``user:<feature>`` / ``item:<feature>`` to the column name the model
    reads in the graph (after the item lookup's prefix and the unroll).
    """
    keras = _keras()
    L = keras.layers
    user = _inputs({f: names[f"user:{f}"] for f in USER_FEATURES}, {})
    item = _inputs(
        {f: names[f"item:{f}"] for f in (*ITEM_FEATURES, "popularity")}, {"popularity": "float32"}
    )
    u = towers.query(user)
    v = towers.item({f: item[f] for f in ITEM_FEATURES})
    score = L.Lambda(lambda uv: keras.ops.sum(uv[0] * uv[1], axis=-1) / towers.cfg.temperature)([u, v])
    logit = head(
        {
            "score": score,
            "popularity": item["popularity"],
            "age": user["age"],
            "gender": user["gender"],
            "occupation": user["occupation"],
            "year": item["year"],
            "genres": item["genres"],
        }
    )
    inputs = {names[f"user:{f}"]: t for f, t in user.items()} | {names[f"item:{f}"]: t for f, t in item.items()}
    return keras.Model(inputs, {"relevance": logit}, name="ranker")
