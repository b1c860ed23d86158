#!/usr/bin/env bash
# Checks that crates only depend on lower layers:
#   common, proto -> storage, index -> exec -> planner -> cluster -> sql -> cmd
# (sqllogictests and bench sit on top and may use anything).
set -euo pipefail
cd "$(dirname "$0")/.."
declare -A rank=(
  [quiver-common]=0 [quiver-proto]=1 [quiver-storage]=2 [quiver-index]=2
  [quiver-exec]=3 [quiver-planner]=4 [quiver-cluster]=5 [quiver-sql]=6
  [quiver-cmd]=7 [quiver-sqllogictests]=8 [quiver-bench]=8
)
status=0
for manifest in */Cargo.toml; do
  crate=$(sed -n 's/^name = "\(quiver-[a-z-]*\)"/\1/p' "$manifest" | head -1)
  [ -n "$crate" ] || continue
  own=${rank[$crate]:-}
  if [ -z "$own" ]; then echo "unknown crate $crate in $manifest"; status=1; continue; fi
  # [dependencies], [dev-dependencies] and [build-dependencies] alike: a
  # test that needs a higher layer belongs to that layer's crate.
  deps=$(awk '/^\[(dev-|build-)?dependencies\]/{on=1;next} /^\[/{on=0} on' "$manifest" | grep -o '^quiver-[a-z-]*' || true)
  for dep in $deps; do
    theirs=${rank[$dep]:-}
    if [ -z "$theirs" ] || [ "$theirs" -ge "$own" ]; then
      echo "layering violation: $crate (layer $own) depends on $dep (layer ${theirs:-?})"
      status=1
    fi
  done
done
[ $status -eq 0 ] && echo "layering ok"
# Inside each crate: no import loops between modules.
python3 scripts/check-module-cycles.py || status=1
exit $status
