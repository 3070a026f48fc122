#!/usr/bin/env bash
# Build .gpu-ms/, the one folder a GPU machine without a package index (the lent H200: Python 3.12,
# torch + cupy + numpy in its own environment) needs to run funnel's torch/FAISS/sampling GPU tests
# and benchmarks/torch_multistage.py --gpu. Run here, from any directory, with the package index:
#
#   bash benchmarks/gpu_torch_wheels.sh      # writes .gpu-ms/ (ignored by git), at most LIMIT_MIB
#
# then carry `.gpu-ms` in one device call and run `bash benchmarks/gpu_torch_run.sh "$OUT"` there.
#   .gpu-ms/whl/*.whl         cp312 manylinux wheels: faiss-cpu, msgspec, tritonclient[http] and
#                             those of its dependencies the GPU image lacks (gevent, geventhttpclient, ...)
#   .gpu-ms/pytriton.tar.xz   the embedded Triton 2.51 from the nvidia-pytriton 0.7.0 wheel, cut to the
#                             server binary, the Python backend, the 3.12 stub and their libraries
# funnel itself is not carried: gpu_torch_run.sh installs core and the plugins from the working tree.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PY:-python3.11}"            # any Python with pip and the package index (the dev venv has no pip)
PYVER="${GPU_PYTHON_VERSION:-3.12}"
LIMIT_MIB="${LIMIT_MIB:-60}"      # the device tool carries 64 MiB per call, the working tree included
DEST=.gpu-ms
# the pins of requirements/dev.txt
STACK=(faiss-cpu==1.15.1 "tritonclient[http]==2.73.0" msgspec==0.22.0)
# already in the GPU image (KINDS.md, "Python packages already there"): never carried, one version each
MACHINE_HAS='^(numpy|packaging|urllib3|certifi|idna|typing_extensions|attrs|aiohttp|aiohappyeyeballs|aiosignal|frozenlist|multidict|propcache|yarl|ml_dtypes|protobuf|grpcio|pluggy|click|tqdm|torch|cupy[a-z0-9_]*|nvidia_[a-z0-9_]*)-'
PLATFORMS=()
for p in manylinux_2_39 manylinux_2_35 manylinux_2_28 manylinux_2_27 manylinux_2_24 manylinux_2_17 manylinux2014 manylinux_2_5 manylinux1; do
  PLATFORMS+=(--platform "${p}_x86_64")
done
command -v "$PY" >/dev/null || { echo "[gpu-torch-wheels] $PY not found: set PY to a Python that has pip and the package index" >&2; exit 1; }
WORK="$(mktemp -d /tmp/funnel-gpu-ms.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT

echo "[gpu-torch-wheels] resolving ${STACK[*]} for CPython $PYVER, manylinux x86_64, binary wheels only"
"$PY" -m pip download --quiet --only-binary=:all: --python-version "$PYVER" --implementation cp "${PLATFORMS[@]}" \
  --dest "$WORK/deps" "${STACK[@]}"
"$PY" -m pip download --quiet --only-binary=:all: --python-version "$PYVER" --implementation cp "${PLATFORMS[@]}" \
  --no-deps --dest "$WORK/triton" nvidia-pytriton==0.7.0

rm -rf "$DEST"
mkdir -p "$DEST/whl"
for w in "$WORK"/deps/*.whl; do
  base="$(basename "$w")"
  if [[ "$base" =~ $MACHINE_HAS ]]; then continue; fi
  cp "$w" "$DEST/whl/"
done

echo "[gpu-torch-wheels] cutting the embedded Triton down to what a $PYVER Python-backend server loads"
"$PY" - "$WORK/triton" "$WORK/tree" "$PYVER" <<'PY'
import pathlib
import sys
import zipfile

src, dst, pyver = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3]
(wheel,) = src.glob("nvidia_pytriton-*.whl")
# pytriton/__init__.py too: funnel finds the server through the package (importlib.util.find_spec("pytriton"))
wanted = ("pytriton/__init__.py", "pytriton/tritonserver/bin/", "pytriton/tritonserver/backends/python/", "pytriton/tritonserver/caches/",
          f"pytriton/tritonserver/python_backend_stubs/{pyver}/", "nvidia_pytriton.libs/")
with zipfile.ZipFile(wheel) as archive:
    names = [n for n in archive.namelist() if n.startswith(wanted) and "__pycache__" not in n]
    if not any(n.startswith(f"pytriton/tritonserver/python_backend_stubs/{pyver}/") for n in names):
        sys.exit(f"{wheel.name} has no Python backend stub for Python {pyver}")
    for name in names:
        archive.extract(name, dst)
print(f"  {len(names)} files kept from {wheel.name}")
PY
[ -f "$WORK/tree/pytriton/__init__.py" ] || { echo "[gpu-torch-wheels] the nvidia-pytriton wheel has no pytriton/__init__.py" >&2; exit 1; }
XZ_OPT="${XZ_OPT:--6 -T0}" tar cJf "$DEST/pytriton.tar.xz" -C "$WORK/tree" .

# git must never pick the folder up: ignore it locally when no rule does
if git rev-parse --git-dir >/dev/null 2>&1 && ! git check-ignore -q "$DEST/whl"; then
  echo "/$DEST/" >> "$(git rev-parse --git-path info/exclude)"
  echo "[gpu-torch-wheels] added /$DEST/ to $(git rev-parse --git-path info/exclude)"
fi

used_kib=$(du -sk "$DEST" | cut -f1)
tree_kib=$(git ls-files -z --cached --others --exclude-standard 2>/dev/null | xargs -0 -r du -ck 2>/dev/null | tail -1 | cut -f1)
echo "[gpu-torch-wheels] $DEST: $((used_kib / 1024)) MiB ($(ls "$DEST/whl" | wc -l) wheels + Triton); working tree $((${tree_kib:-0} / 1024)) MiB"
ls -l "$DEST/whl" | awk 'NR>1 {printf "    %8.1f MB  %s\n", $5/1e6, $9}'
if [ "$used_kib" -gt $((LIMIT_MIB * 1024)) ]; then
  echo "[gpu-torch-wheels] $DEST is over ${LIMIT_MIB} MiB: the device tool cannot carry it with the working tree in one call" >&2
  exit 1
fi
echo "[gpu-torch-wheels] carry '$DEST' and run: bash benchmarks/gpu_torch_run.sh \"\$OUT\""
