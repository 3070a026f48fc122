#!/usr/bin/env bash
# Set up funnel's full stack on a GPU machine that has no package index (the lent H100/H200
# machines): everything arrives as wheels carried in .gpuw/p*/ (TensorFlow split in parts,
# Feast, FAISS, tritonclient, funnel's own wheels, recbole for MovieLens) and .gpu/
# (the trimmed embedded Triton for Python 3.12 + small client wheels). numpy, cupy and torch
# come from the machine's own environment. Usage: source benchmarks/gpu_setup.sh
# (benchmarks/gpu_run.sh does that and then runs the GPU tests and the GPU benchmark cells).
set -euo pipefail
TORCH_SITE=$(python3 -c "import numpy, os; print(os.path.dirname(os.path.dirname(numpy.__file__)))")
V=/tmp/funnel-gpu-venv
python3 -m venv "$V"
SP=$("$V/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
echo "$TORCH_SITE" > "$SP/zz_machine_env.pth"   # after the venv's own packages
# .gpu/ and .gpuw/ are built here by `bash benchmarks/gpu_wheels.sh` (see that script for carrying them)
TF_WHEEL=$(cat .gpu/tensorflow-wheel-name 2>/dev/null || echo tensorflow_cpu-2.21.0-cp312-cp312-manylinux_2_27_x86_64.whl)
rm -f /tmp/tensorflow_cpu-*.whl
cat .gpuw/p*/tfpart.* > "/tmp/$TF_WHEEL"
"$V/bin/pip" install -q --no-index --no-deps .gpu/slim/*.whl
"$V/bin/pip" install -q --no-index --no-deps /tmp/tensorflow_cpu-*.whl .gpuw/p*/*.whl
tar xJf .gpu/pytriton-gpu.tar.xz -C "$SP"
chmod +x "$SP"/pytriton/tritonserver/bin/* "$SP"/pytriton/tritonserver/python_backend_stubs/*/triton_python_backend_stub
export PATH="$V/bin:$PATH"
python -c "import tensorflow as tf, feast, faiss, cupy, funnel_tf, funnel_feast; print('stack ok: tf', tf.__version__, 'feast', feast.__version__, 'faiss', faiss.__version__, 'cupy', cupy.__version__)"
funnel plugins
