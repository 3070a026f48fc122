"""Table and Ragged on the GPU: every operation on cupy arrays and CUDA torch tensors gives what
it gives on numpy, and stays on the device (runs on a GPU machine; skipped without a GPU)."""

from __future__ import annotations

import numpy as np
import pytest
from funnel_testing import has_cuda_gpu

from funnel.table import Ragged, Table, array_module, is_gpu_array, like, to_numpy


pytestmark = pytest.mark.skipif(not has_cuda_gpu(), reason="needs an NVIDIA GPU with cupy")


def _host_table() -> Table:
    return Table({
        "user_id": np.array([3, 1, 4], dtype=np.int64),
        "emb": np.arange(12, dtype=np.float32).reshape(3, 4),
        "cands": Ragged.from_lists([[5, 6], [], [7, 8, 9]], dtype="int64"),
    })


def test_to_cupy_keeps_every_column_and_round_trips():
    host = _host_table()
    gpu = host.to_cupy()
    assert gpu.device == "cuda" and all(
        array_module(c.values if isinstance(c, Ragged) else c) == "cupy" for c in gpu.values()
    )
    assert array_module(gpu["cands"].offsets) == "cupy"
    assert gpu.to_numpy() == host
    assert gpu["cands"].to_lists() == [[5, 6], [], [7, 8, 9]]


def test_concat_split_slice_on_the_gpu_equal_numpy():
    host = _host_table()
    gpu = host.to_cupy()
    both = Table.concat([gpu, gpu.slice(1, 3)])
    want = Table.concat([host, host.slice(1, 3)])
    assert both.num_rows == 5 and both.device == "cuda"
    assert array_module(both["cands"].values) == "cupy" and array_module(both["cands"].offsets) == "cupy"
    assert both.to_numpy() == want
    parts = both.split([2, 3])
    assert [p.to_numpy() for p in parts] == want.split([2, 3])
    assert all(p.device == "cuda" for p in parts)


def test_ragged_from_dense_and_take_rows_on_cupy():
    import cupy

    dense = cupy.arange(6, dtype=cupy.int64).reshape(3, 2)
    rag = Ragged.from_dense(dense)
    assert array_module(rag.values) == "cupy" and rag.to_lists() == [[0, 1], [2, 3], [4, 5]]
    empty = Ragged.from_dense(cupy.zeros((2, 0), dtype=cupy.int64))
    assert empty.to_lists() == [[], []]
    picked = Ragged.from_lists([[1], [2, 3], [4, 5, 6]], dtype="int64")
    gpu_picked = Ragged(cupy.asarray(picked.values), cupy.asarray(picked.offsets))
    assert gpu_picked.take_rows(np.array([2, 0])).to_lists() == [[4, 5, 6], [1]]
    assert gpu_picked.to_dense(pad_value=-1).tolist() == [[1, -1, -1], [2, 3, -1], [4, 5, 6]]


def test_like_and_torch_cuda_tensors():
    import cupy
    import torch

    ref = cupy.zeros(1)
    moved = like(np.array([1.5, 2.5]), ref)
    assert array_module(moved) == "cupy" and to_numpy(moved).tolist() == [1.5, 2.5]
    t = torch.arange(4, device="cuda")
    table = Table({"x": t})
    assert table.device == "cuda" and is_gpu_array(table["x"])
    assert array_module(like(np.array([7]), t)) == "torch" and like(np.array([7]), t).is_cuda
    zero_copy = table.to_cupy()["x"]
    assert array_module(zero_copy) == "cupy" and zero_copy.data.ptr == t.data_ptr()
    assert to_numpy(Table.concat([table, table])["x"]).tolist() == [0, 1, 2, 3, 0, 1, 2, 3]
