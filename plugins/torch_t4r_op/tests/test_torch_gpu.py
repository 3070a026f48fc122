"""PredictPyTorch on a CUDA device (skipped without one): cuda inputs through DLPack, top-k on
the device, outputs left on the device, results equal to the CPU run; KIND_GPU served equals CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from funnel import ColumnSchema, Ensemble, Ragged, Schema, Table
from funnel_torch import PredictPyTorch
from funnel_torch.testing import CAT, ITEM, N_ITEMS, sessions

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (torch.cuda.is_available() is False)"),
]

#: GPU vs CPU scores: cuDNN's GRU and matmuls use TF32 on Hopper by default (measured on an H200:
#: ids equal, scores within 2.5e-4 absolute); ids are compared exactly
GPU_TOL = {"rtol": 1e-3, "atol": 5e-4}

REQUEST = Schema([ColumnSchema(ITEM, "int64", dims=(None,)), ColumnSchema(CAT, "int64", dims=(None,))])


def _host(col):
    if isinstance(col, Ragged):
        return Ragged(_host(col.values), _host(col.offsets))
    return col.get() if hasattr(col, "get") else (col.cpu().numpy() if hasattr(col, "cpu") else np.asarray(col))


def test_cuda_device_top_k_equals_cpu(t4r_traced):
    items, cats = sessions(21, 33)
    table = Table({ITEM: items, CAT: cats})
    kwargs = {"top_k": 5, "exclude_seen": True, "item_id_column": ITEM, "id_mapping": np.arange(N_ITEMS) + 100}
    cpu = Ensemble([ITEM, CAT] >> PredictPyTorch(t4r_traced, **kwargs), REQUEST).transform(table)
    gpu_op = PredictPyTorch(t4r_traced, device="cuda", **kwargs)
    gpu = Ensemble([ITEM, CAT] >> gpu_op, REQUEST).transform(table)
    # outputs stay on the device (cupy through DLPack) until the graph ends
    assert type(gpu["item_ids"].values).__module__.split(".")[0] in ("cupy", "torch")
    assert _host(gpu["item_ids"]).to_lists() == cpu["item_ids"].to_lists()
    np.testing.assert_allclose(_host(gpu["item_id_scores"]).values, cpu["item_id_scores"].values, **GPU_TOL)


def test_cupy_and_torch_cuda_tables_go_in_without_host_copies(t4r_traced):
    cupy = pytest.importorskip("cupy")
    items, cats = sessions(22, 9)
    host = Table({ITEM: items, CAT: cats})
    want = Ensemble([ITEM, CAT] >> PredictPyTorch(t4r_traced), REQUEST).transform(host)["output"]
    op = PredictPyTorch(t4r_traced, device="cuda")
    cupy_table = host.to_cupy()
    feeds = op._feeds(cupy_table)
    v = feeds[ITEM + "__values"]
    assert v.is_cuda and v.data_ptr() == cupy_table[ITEM].values.data.ptr  # zero-copy through DLPack
    got = op.transform(cupy_table)["output"]
    np.testing.assert_allclose(cupy.asnumpy(got), want, **GPU_TOL)
    torch_table = Table({
        ITEM: Ragged(torch.as_tensor(items.values, device="cuda"), torch.as_tensor(items.offsets, device="cuda")),
        CAT: Ragged(torch.as_tensor(cats.values, device="cuda"), torch.as_tensor(cats.offsets, device="cuda")),
    })
    np.testing.assert_allclose(_host(op.transform(torch_table)["output"]), want, **GPU_TOL)


def test_padded_program_exported_on_cuda_equals_cpu(padded_export, padded_module, tmp_path):
    """A torch.export program exported on the GPU (export on the device it serves on: a CPU
    program's layouts may not hold on CUDA) gives the CPU program's scores."""
    from funnel_torch.testing import MAX_LEN

    module = type(padded_module)().eval()
    module.load_state_dict(padded_module.state_dict())
    module = module.to("cuda")
    example = torch.randint(1, N_ITEMS, (3, MAX_LEN), device="cuda")
    program = torch.export.export(module, (example,), dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=4096)},))
    torch.export.save(program, str(tmp_path / "cuda.pt2"))
    lists = Ragged.from_lists([[3, 5], list(range(1, 9)), [7]])
    req = Schema([ColumnSchema("item_ids", "int64", dims=(None,))])
    kw = {"max_sequence_length": {"item_ids": MAX_LEN}}
    cpu = Ensemble(["item_ids"] >> PredictPyTorch(padded_export, **kw), req).transform(Table({"item_ids": lists}))
    gpu = Ensemble(["item_ids"] >> PredictPyTorch(tmp_path / "cuda.pt2", device="cuda", **kw), req).transform(
        Table({"item_ids": lists}))
    np.testing.assert_allclose(_host(gpu["output"]), cpu["output"], **GPU_TOL)


@pytest.mark.triton
def test_kind_gpu_served_equals_cpu(t4r_traced, tmp_path):
    from funnel_triton import TritonServer

    ens_gpu = Ensemble([ITEM, CAT] >> PredictPyTorch(t4r_traced, device="instance", top_k=5), REQUEST)
    ens_cpu = Ensemble([ITEM, CAT] >> PredictPyTorch(t4r_traced, top_k=5), REQUEST)
    repo = ens_gpu.export(tmp_path / "repo", instance_kind="gpu")
    with TritonServer(repo, timeout=300) as server:
        for seed, rows in ((1, 1), (2, 64)):
            items, cats = sessions(seed, rows)
            table = Table({ITEM: items, CAT: cats})
            served = server.infer(table, model="funnel")
            local = ens_cpu.transform(table)
            assert served["item_ids"].to_lists() == local["item_ids"].to_lists()
            np.testing.assert_allclose(served["item_id_scores"].values, local["item_id_scores"].values, **GPU_TOL)
