#!/usr/bin/env bash
# Build the wheel set benchmarks/gpu_setup.sh installs on a GPU machine without a package index
# (the lent H100/H200 machines: Ubuntu, Python 3.12, numpy 2 / cupy / torch in the machine's own
# environment). Run here, from the repository root, with this machine's package index:
#
#   bash benchmarks/gpu_wheels.sh            # writes .gpu/ and .gpuw/p01 .. pNN (all ignored by git)
#
# The device tool carries at most 64 MiB per call, so the set is cut into parts of at most
# PART_MIB (default 60) MiB each: carry `.gpu` in one call and each `.gpuw/pNN` in its own call
# (files already on the machine stay there between calls), then run `bash benchmarks/gpu_run.sh`.
#   .gpu/slim/*.whl          small wheels (funnel's own, msgspec, pluggy, click, …)
#   .gpu/pytriton-gpu.tar.xz the embedded Triton from nvidia-pytriton 0.7.0, trimmed to the
#                            binary, the Python backend, the 3.12 stub and its libraries
#   .gpuw/pNN/*.whl          the other wheels, TensorFlow cut into tfpart.* pieces
# numpy, torch, cupy and the nvidia-* CUDA wheels are left out: the GPU machine has its own.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# any Python with pip and this machine's package index configured (the dev venv is uv-managed, without pip)
PY="${PY:-python3.11}"
PART_MIB="${PART_MIB:-60}"
PYVER="${GPU_PYTHON_VERSION:-3.12}"
WORK="$(mktemp -d /tmp/funnel-gpu-wheels.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
PLATFORMS=(--platform manylinux_2_39_x86_64 --platform manylinux_2_35_x86_64 --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
           --platform manylinux2014_x86_64 --platform manylinux_2_5_x86_64 --platform linux_x86_64)
# the stack of requirements/dev.txt that the GPU cells need (same pins)
STACK=(tensorflow-cpu==2.21.0 feast==0.67.0 faiss-cpu==1.15.1 "tritonclient[http,grpc]==2.73.0"
       msgspec==0.22.0 pluggy==1.7.0 click pandas pyarrow)
# provided by the GPU machine's environment (cupy is built against its numpy)
DROP='^(numpy|torch|triton|cupy|cupy_cuda[0-9a-z]*|fastrlock|nvidia_[a-z0-9_]*)-'

echo "[gpu-wheels] resolving for CPython $PYVER on manylinux x86_64 (binary wheels only)"
"$PY" -m pip download --quiet --only-binary=:all: --python-version "$PYVER" --implementation cp "${PLATFORMS[@]}" \
  --dest "$WORK/deps" "${STACK[@]}"
"$PY" -m pip download --quiet --only-binary=:all: --python-version "$PYVER" --implementation cp "${PLATFORMS[@]}" \
  --no-deps --dest "$WORK/nodeps" recbole==1.2.1 nvidia-pytriton==0.7.0
echo "[gpu-wheels] funnel's own wheels (core + every plugin)"
for pkg in core plugins/*/; do
  [ -f "$pkg/pyproject.toml" ] || continue
  "$PY" -m pip wheel --quiet --no-deps --wheel-dir "$WORK/funnel" "./${pkg%/}"
done

rm -rf .gpu .gpuw
mkdir -p .gpu/slim .gpuw
echo "[gpu-wheels] trimming the embedded Triton (bin, Python backend, $PYVER stub, libraries)"
mkdir -p "$WORK/triton"
"$PY" - "$WORK/nodeps" "$WORK/triton" "$PYVER" <<'PY'
import sys, zipfile, pathlib
src, dst, pyver = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3]
wheel = next(src.glob("nvidia_pytriton-*.whl"))
keep = ("pytriton/__init__.py", "pytriton/tritonserver/bin/", "pytriton/tritonserver/backends/python/", "pytriton/tritonserver/caches/",
        f"pytriton/tritonserver/python_backend_stubs/{pyver}/", "nvidia_pytriton.libs/")
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith(keep) and "__pycache__" not in name:
            z.extract(name, dst)
PY
tar cJf .gpu/pytriton-gpu.tar.xz -C "$WORK/triton" .
rm -f "$WORK"/nodeps/nvidia_pytriton-*.whl

# small wheels travel with .gpu (one call); the rest is packed into parts
SLIM_KIB=$((2 * 1024))
for w in "$WORK"/funnel/*.whl "$WORK"/nodeps/*.whl "$WORK"/deps/*.whl; do
  base="$(basename "$w")"
  if [[ "$base" =~ $DROP ]]; then continue; fi
  if [[ "$base" == tensorflow_cpu-* ]]; then
    cp "$w" "$WORK/$base"
    echo "$base" > "$WORK/tfname"
    continue
  fi
  size_kib=$(( $(stat -c %s "$w") / 1024 ))
  if [ "$size_kib" -le "$SLIM_KIB" ]; then cp "$w" .gpu/slim/; else cp "$w" "$WORK/big_$base"; fi
done
slim_mib=$(( $(du -sk .gpu | cut -f1) / 1024 ))
if [ "$slim_mib" -ge "$PART_MIB" ]; then
  echo "[gpu-wheels] .gpu is ${slim_mib} MiB, over ${PART_MIB} MiB: lower SLIM_KIB in this script" >&2
  exit 1
fi
# TensorFlow in pieces (gpu_setup.sh concatenates .gpuw/p*/tfpart.* in name order)
tfname="$(cat "$WORK/tfname")"
split -b "${PART_MIB}M" -a 2 "$WORK/$tfname" "$WORK/tfpart."
part=0
newpart() { part=$((part + 1)); dir=$(printf ".gpuw/p%02d" "$part"); mkdir -p "$dir"; used=0; }
newpart
for piece in "$WORK"/tfpart.*; do
  [ "$used" -eq 0 ] || newpart
  cp "$piece" "$dir/"
  used=$(( $(stat -c %s "$piece") / 1048576 + 1 ))
done
for w in "$WORK"/big_*; do
  [ -e "$w" ] || continue
  mib=$(( $(stat -c %s "$w") / 1048576 + 1 ))
  if [ "$mib" -gt "$PART_MIB" ]; then
    echo "[gpu-wheels] $(basename "$w") is ${mib} MiB, more than one part (${PART_MIB} MiB)" >&2
    exit 1
  fi
  if [ $((used + mib)) -gt "$PART_MIB" ]; then newpart; fi
  cp "$w" "$dir/$(basename "$w" | sed 's/^big_//')"
  used=$((used + mib))
done
echo "$tfname" > .gpu/tensorflow-wheel-name
echo "[gpu-wheels] done: .gpu ($(du -sh .gpu | cut -f1)) and $part part(s):"
du -sh .gpuw/p* | sed 's/^/    /'
echo "[gpu-wheels] carry .gpu in one device call and each .gpuw/pNN in its own call, then: bash benchmarks/gpu_run.sh"
