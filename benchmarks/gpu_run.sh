#!/usr/bin/env bash
# One command on a GPU machine (after carrying .gpu/ and .gpuw/pNN built by benchmarks/gpu_wheels.sh):
# set up the stack, run the GPU tests, then the GPU benchmark cells, results under $OUT (or
# benchmarks/results/gpu-<date>/).
#
#   bash benchmarks/gpu_run.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source benchmarks/gpu_setup.sh
DEST="${OUT:-benchmarks/results/gpu-$(date +%Y-%m-%d)}"
mkdir -p "$DEST"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$DEST/gpu.txt" || true
python -m pytest -q -m gpu core plugins tests 2>&1 | tee "$DEST/gpu-tests.txt"
python benchmarks/triton_gpu.py --out "$DEST" 2>&1 | tee "$DEST/triton_gpu.log"
# the multistage graph on a KIND_GPU instance next to the CPU instance, same run
python benchmarks/multistage.py --workdir /tmp/funnel-multistage-gpu --variants executor,executor-gpu \
  --out "$DEST/multistage-gpu" 2>&1 | tee "$DEST/multistage-gpu.log"
echo "GPU results in $DEST"
