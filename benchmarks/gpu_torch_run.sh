#!/usr/bin/env bash
# One command on a GPU machine without a package index (the lent H200), after carrying .gpu-ms/
# (built here by `bash benchmarks/gpu_torch_wheels.sh`): install the carried wheels and the embedded
# Triton, install funnel core (+ funnel-testing, funnel-triton) + funnel-torch + funnel-faiss + funnel-sampling from the working tree,
# run the GPU tests, then the GPU cells of benchmarks/torch_multistage.py. Everything lands in OUTDIR:
#   gpu.txt                       nvidia-smi's view of the GPU
#   gpu_tests.log                 the tests (KIND_GPU serving, funnel-torch on CUDA, FAISS and sampling
#                                 suites on the carried faiss-cpu, the GPU smoke runs of both GPU benchmarks)
#   torch_multistage_gpu.{json,md} and bench.log   the cells
# torch, cupy, numpy, pluggy, click and pytest come from the machine's own environment.
#
#   bash benchmarks/gpu_torch_run.sh "$OUT"
#   SKIP_CELLS=1 bash benchmarks/gpu_torch_run.sh "$OUT"    # install and tests only (~3 min less)
#   PYTEST_WORKERS=8 ...                                     # pytest-xdist workers (default 4)
set -uo pipefail
OUT=${1:?usage: gpu_torch_run.sh OUTDIR}
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
PY=python3
[ -d .gpu-ms/whl ] || { echo "no .gpu-ms/ here: build it with 'bash benchmarks/gpu_torch_wheels.sh' and carry it" >&2; exit 1; }
$PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir .gpu-ms/whl/*.whl || exit 1
# core/testing (funnel-testing: the demo graphs core's KIND_GPU test and triton_gpu.py serve) when the tree has it
TESTING=(); [ -f core/testing/pyproject.toml ] && TESTING=(-e core/testing)
# funnel-triton (the launcher and client the served cells use) when the tree has it
[ -f plugins/triton/pyproject.toml ] && TESTING+=(-e plugins/triton)
$PY -m pip install -q --no-index --no-deps --no-build-isolation \
  -e core "${TESTING[@]}" -e plugins/torch_t4r_op -e plugins/faiss_op -e plugins/sampling_op || exit 1
SP=$($PY -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
tar xJf .gpu-ms/pytriton.tar.xz -C "$SP" || exit 1
chmod +x "$SP"/pytriton/tritonserver/bin/* "$SP"/pytriton/tritonserver/python_backend_stubs/*/triton_python_backend_stub
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/gpu.txt" 2>&1 || true
$PY -c "import torch, cupy, numpy, faiss; print('torch', torch.__version__, torch.cuda.get_device_name(0), '| cupy', cupy.__version__, '| numpy', numpy.__version__, '| faiss', faiss.__version__)" || exit 1
$PY -m funnel.cli plugins || true

# the GPU tests (files, not -m gpu: core's KIND_GPU test is gated by a skipif only), bounded in time
timeout 170 $PY -m pytest -q -p no:cacheprovider -n "${PYTEST_WORKERS:-4}" --dist loadfile \
  core/tests/triton/test_triton_gpu.py core/tests/test_table_gpu.py plugins/torch_t4r_op/tests/test_torch_gpu.py \
  plugins/faiss_op/tests plugins/sampling_op/tests \
  tests/test_torch_multistage_bench.py "tests/test_benchmarks_smoke.py::test_triton_gpu_smoke" \
  2>&1 | tee "$OUT/gpu_tests.log"
tests_rc=${PIPESTATUS[0]}
summary=$(grep -E "^(=+ )?[0-9]+ (passed|failed)|^=+ .*(passed|failed|error)" "$OUT/gpu_tests.log" | tail -1 | sed 's/=//g; s/^ *//; s/ *$//')
summary="pytest on core/tests/triton/test_triton_gpu.py, core/tests/test_table_gpu.py, plugins/torch_t4r_op/tests/test_torch_gpu.py, plugins/faiss_op/tests, plugins/sampling_op/tests, tests/test_torch_multistage_bench.py, test_triton_gpu_smoke: ${summary:-no summary (exit $tests_rc)}"

bench_rc=0
if [ -z "${SKIP_CELLS:-}" ]; then
  $PY benchmarks/torch_multistage.py --gpu --out "$OUT" --gpu-tests "$summary" 2>&1 | tee "$OUT/bench.log"
  bench_rc=${PIPESTATUS[0]}
fi
echo "tests exit $tests_rc, benchmark exit $bench_rc; results in $OUT"
[ "$tests_rc" -eq 0 ] && [ "$bench_rc" -eq 0 ]
