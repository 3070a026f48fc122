#!/usr/bin/env bash
# Build NVIDIA Merlin Systems 23.08 in its own virtualenv (.venv-merlin/ at the repository root,
# ignored by git through `.venv-*/`). The pins are the set that resolves on Python 3.11
# (issue 17): newer pip rejects direct-URL metadata in Merlin's dependency tree, hence pip 24.0
# first. Takes 5-15 minutes on a 2-core machine. Idempotent: re-running only checks the imports.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"
VENV="${MERLIN_VENV:-$ROOT/.venv-merlin}"
PYTHON="${PYTHON:-python3.11}"

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip)
"${PIP[@]}" install --quiet "pip==24.0"
# One resolve for everything, so no later install moves a pin.
"${PIP[@]}" install -r "$HERE/requirements.txt"
"$VENV/bin/python" - <<'PY'
import merlin.systems, nvtabular, feast, faiss, tensorflow, tritonclient.grpc, numpy, pandas
print("merlin venv ok: numpy", numpy.__version__, "pandas", pandas.__version__,
      "tensorflow", tensorflow.__version__, "feast", feast.__version__, "faiss", faiss.__version__)
PY
