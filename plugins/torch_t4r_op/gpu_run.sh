#!/usr/bin/env bash
# funnel-torch's GPU tests and benchmark cells on a GPU machine without a package index (the lent
# H200). Carried in .gpu-torch/ (ignored by git, made on a CPU machine with pip download):
#   whl/            cp312 wheels: msgspec, tritonclient + geventhttpclient, gevent, greenlet,
#                   zope.event, zope.interface, brotli, python-rapidjson
#   pytriton.tar.xz the embedded Triton 2.51 (pytriton/tritonserver with the 3.12 stub +
#                   nvidia_pytriton.libs) from the nvidia-pytriton 0.7.0 wheel
# torch, cupy, numpy, pluggy, click, tqdm and transformers come from the machine's own environment.
# Usage (repo root): bash plugins/torch_t4r_op/gpu_run.sh OUTDIR
set -uo pipefail
OUT=${1:?usage: gpu_run.sh OUTDIR}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir .gpu-torch/whl/*.whl || exit 1
python3 -m pip install -q --no-index --no-deps --no-build-isolation -e core -e plugins/torch_t4r_op || exit 1
SP=$(python3 -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
tar xJf .gpu-torch/pytriton.tar.xz -C "$SP" || exit 1
chmod +x "$SP"/pytriton/tritonserver/bin/* "$SP"/pytriton/tritonserver/python_backend_stubs/*/triton_python_backend_stub
python3 -c "import torch, cupy, numpy; print('torch', torch.__version__, torch.cuda.get_device_name(0), 'cupy', cupy.__version__, 'numpy', numpy.__version__)"
"$(dirname "$(command -v python3)")/funnel" plugins || python3 -m funnel.cli plugins
python3 -m pytest -q -rs -p no:cacheprovider plugins/torch_t4r_op/tests/test_torch_gpu.py \
  plugins/torch_t4r_op/tests/test_torch_predict.py 2>&1 | tee "$OUT/gpu_tests.log"
python3 benchmarks/torch_overhead.py --gpu --served --iters 300 --threads 1 --out "$OUT" 2>&1 | tee "$OUT/bench.log"
