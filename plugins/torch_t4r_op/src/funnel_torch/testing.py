"""Small real PyTorch models with the signatures funnel_torch serves (tests, benchmarks, GPU runs).

- ``T4RStandIn``: the Transformers4Rec serving signature — a dict of
  ``<feature>-list_seq__values`` / ``__offsets`` tensors in, next-item logits out — in plain
  PyTorch (a GRU over item + category embeddings); trace it to get what a user's
  Transformers4Rec environment produces, without installing transformers4rec.
- ``PaddedSession``: a session model over (B, L) padded item ids with positional
  embeddings that attend over every position (padding included), so its scores depend on
  the padded length: a fixed length is what keeps a session independent of its batch.
- ``Ranker``: scores one (user, item) row: (B,) int32 age + (B,) int64 item → (B, 1).

Importing this module imports torch.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from funnel import Ragged

__all__ = ["N_ITEMS", "N_CATS", "MAX_LEN", "ITEM", "CAT", "T4RStandIn", "PaddedSession", "Ranker", "sessions",
           "t4r_inputs", "direct"]

N_ITEMS = 40
N_CATS = 6
MAX_LEN = 8
ITEM = "item_id-list_seq"
CAT = "category-list_seq"



class T4RStandIn(torch.nn.Module):
    """Transformers4Rec-style serving signature, plain PyTorch."""

    def __init__(self, n_items: int = N_ITEMS, max_len: int = MAX_LEN, dim: int = 16) -> None:
        super().__init__()
        self.max_len = max_len
        self.dim = dim
        self.items = torch.nn.Embedding(n_items, dim, padding_idx=0)
        self.cats = torch.nn.Embedding(N_CATS, 4, padding_idx=0)
        self.gru = torch.nn.GRU(dim + 4, dim, batch_first=True)
        self.out = torch.nn.Linear(dim, n_items)

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        # tensor-derived sizes and devices only, so a trace made on the CPU runs on a GPU too
        values = inputs[ITEM + "__values"]
        offsets = inputs[ITEM + "__offsets"]
        cats = inputs[CAT + "__values"]
        lengths = offsets[1:] - offsets[:-1]
        rows = torch.cumsum(torch.ones_like(lengths), 0) - 1
        row_ids = torch.repeat_interleave(rows, lengths)
        pos = torch.cumsum(torch.ones_like(values), 0) - 1 - torch.repeat_interleave(offsets[:-1], lengths)
        emb = torch.cat([self.items(values), self.cats(cats)], dim=1)
        x = emb.new_zeros((lengths.shape[0], self.max_len, emb.shape[1]))
        x = x.index_put((row_ids, pos), emb)
        h, _ = self.gru(x, emb.new_zeros((1, lengths.shape[0], self.dim)))
        last = h[rows, (lengths - 1).clamp(min=0)]
        return self.out(last)


class PaddedSession(torch.nn.Module):
    """(B, L) padded ids → logits; every position (padding too) shapes the result."""

    def __init__(self) -> None:
        super().__init__()
        self.items = torch.nn.Embedding(N_ITEMS, 16, padding_idx=0)
        self.pos = torch.nn.Embedding(64, 16)
        self.attn = torch.nn.MultiheadAttention(16, 2, batch_first=True)
        self.out = torch.nn.Linear(16, N_ITEMS)

    def forward(self, item_ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(item_ids.shape[1], device=item_ids.device).unsqueeze(0)
        x = self.items(item_ids) + self.pos(positions)
        h, _ = self.attn(x, x, x, need_weights=False)
        return self.out(h.mean(dim=1))


class Ranker(torch.nn.Module):
    def __init__(self, n_items: int = N_ITEMS) -> None:
        super().__init__()
        self.items = torch.nn.Embedding(n_items, 8)
        self.mlp = torch.nn.Sequential(torch.nn.Linear(9, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))

    def forward(self, user_age: torch.Tensor, item_id: torch.Tensor) -> torch.Tensor:
        x = torch.cat([self.items(item_id), (user_age.float() / 100.0).unsqueeze(1)], dim=1)
        return torch.sigmoid(self.mlp(x))


def sessions(seed: int, rows: int, max_len: int = MAX_LEN, n_items: int = N_ITEMS,
             fixed: bool = False) -> tuple[Ragged, Ragged]:
    """Random sessions (``fixed``: all of ``max_len`` items): item ids 1.. and categories 1.., as ragged lists."""
    rng = np.random.default_rng(seed)
    lengths = np.full(rows, max_len) if fixed else rng.integers(1, max_len + 1, rows)
    items = rng.integers(1, n_items, int(lengths.sum())).astype("int64")
    cats = rng.integers(1, N_CATS, int(lengths.sum())).astype("int64")
    return Ragged.from_lengths(items, lengths), Ragged.from_lengths(cats, lengths)


def t4r_inputs(items: Ragged, cats: Ragged) -> dict[str, torch.Tensor]:
    """The dict a Transformers4Rec-traced model is called with (a fresh one per call)."""
    return {
        ITEM + "__values": torch.as_tensor(items.values),
        ITEM + "__offsets": torch.as_tensor(items.offsets.astype("int64")),
        CAT + "__values": torch.as_tensor(cats.values),
        CAT + "__offsets": torch.as_tensor(cats.offsets.astype("int64")),
    }


def direct(model: Any, *args: Any) -> np.ndarray:
    with torch.inference_mode():
        return model(*args).numpy()
