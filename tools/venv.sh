#!/usr/bin/env bash
# Create (or reuse) the development virtualenv at $VENV (default .venv).
# It is rebuilt only when the requirements or any package's pyproject.toml change: the
# hash of those files is stored inside the venv.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
packages=(core core/testing plugins/*/ examples/plugin_example/)
hash=$(cat requirements/*.txt tools/venv.sh $(for p in "${packages[@]}"; do [ -f "$p/pyproject.toml" ] && echo "$p/pyproject.toml"; done) | sha256sum | cut -c1-16)
if [ -f "$VENV/.funnel-hash" ] && [ "$(cat "$VENV/.funnel-hash")" = "$hash" ]; then
  echo "venv: reusing $VENV ($hash)"
  exit 0
fi
echo "venv: building $VENV ($hash) ..."
start=$(date +%s)
if ! command -v uv >/dev/null; then
  "$PYTHON" -m pip install -q "uv==0.13.8"
fi
UV=$(command -v uv || echo "$PYTHON -m uv")
# local package mirrors on these machines are extra indexes; consider every index equally
export UV_INDEX_STRATEGY=unsafe-best-match
if [ -n "$(pip config get global.extra-index-url 2>/dev/null || true)" ]; then
  export UV_EXTRA_INDEX_URL="$(pip config get global.extra-index-url)"
fi
[ -d /opt/wheels ] && export UV_FIND_LINKS=/opt/wheels
rm -rf "$VENV"
$UV venv -q -p "$PYTHON" "$VENV"
export VIRTUAL_ENV="$PWD/$VENV"
editable=(-e "core[triton,pandas]" -e core/testing)
for p in plugins/*/ examples/plugin_example/; do
  [ -f "$p/pyproject.toml" ] && editable+=(-e "$p")
done
$UV pip install -q -r requirements/dev.txt "${editable[@]}"
$UV pip install -q --no-deps -r requirements/no-deps.txt
echo "$hash" > "$VENV/.funnel-hash"
echo "venv: ready in $(( $(date +%s) - start )) s"
