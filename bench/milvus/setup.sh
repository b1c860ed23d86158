#!/usr/bin/env bash
# Creates the Python virtual environment used by `quiver-bench milvus`.
#
#   bench/milvus/setup.sh [VENV_DIR]
#
# VENV_DIR defaults to $QUIVER_BENCH_MILVUS_VENV, then
# $HOME/.cache/quiver-bench/milvus-venv. Installs the pinned versions in
# requirements.txt beside this script: pymilvus (the client driven against
# every URI) and milvus-lite (which pymilvus starts for a local `.db` URI).
# Idempotent: rerunning only installs what changed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${1:-${QUIVER_BENCH_MILVUS_VENV:-$HOME/.cache/quiver-bench/milvus-venv}}"
python="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet -r "$here/requirements.txt"
"$venv/bin/python" - <<'PY'
import importlib.metadata as md
import numpy, pymilvus
print("milvus venv ready: pymilvus", pymilvus.__version__, "milvus-lite", md.version("milvus-lite"),
      "numpy", numpy.__version__)
PY
echo "$venv/bin/python"
