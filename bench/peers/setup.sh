#!/usr/bin/env bash
# Creates the Python virtual environment used by `quiver-bench peers`.
#
#   bench/peers/setup.sh [VENV_DIR]
#
# VENV_DIR defaults to $QUIVER_BENCH_PEERS_VENV, then
# $HOME/.cache/quiver-bench/peers-venv. Installs the pinned versions in
# requirements.txt beside this script (hnswlib is compiled from source, so
# g++ must be installed). Idempotent: rerunning only installs what changed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${1:-${QUIVER_BENCH_PEERS_VENV:-$HOME/.cache/quiver-bench/peers-venv}}"
python="${PYTHON:-python3}"
if ! command -v c++ >/dev/null 2>&1; then
  echo "setup.sh: a C++ compiler is needed to build hnswlib (apt-get install g++)" >&2
  exit 1
fi
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet -r "$here/requirements.txt"
"$venv/bin/python" - <<'PY'
import faiss, hnswlib, numpy, usearch
print("peers venv ready: numpy", numpy.__version__, "faiss", faiss.__version__,
      "usearch", usearch.__version__, "hnswlib", getattr(hnswlib, "__version__", "0.8.0"))
PY
echo "$venv/bin/python"
