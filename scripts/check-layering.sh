#!/usr/bin/env bash
# Checks that crates only depend on lower layers:
#   common, proto -> storage, index -> exec -> planner -> cluster -> sql
#     -> servers -> cmd
# (sqllogictests and bench sit on top and may use anything). The access
# layer is two crates: sql (the SQL frontend) and servers (the Postgres and
# Milvus protocol servers), whose one seam is sql's handler: servers'
# [dependencies] name no Quiver crate but quiver-sql and quiver-common, and
# its code names quiver_sql only through handler, error and complexity.
set -euo pipefail
cd "$(dirname "$0")/.."
declare -A rank=(
  [quiver-common]=0 [quiver-proto]=1 [quiver-storage]=2 [quiver-index]=2
  [quiver-exec]=3 [quiver-planner]=4 [quiver-cluster]=5 [quiver-sql]=6
  [quiver-servers]=7 [quiver-cmd]=8 [quiver-sqllogictests]=9 [quiver-bench]=9
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
# The access layer's one seam (tests, which open a real Instance, aside).
seam_deps=$(awk '/^\[dependencies\]/{on=1;next} /^\[/{on=0} on' servers/Cargo.toml | grep -o '^quiver-[a-z-]*' || true)
for dep in $seam_deps; do
  case $dep in
    quiver-sql|quiver-common) ;;
    *) echo "seam violation: quiver-servers depends on $dep (only quiver-sql's handler and quiver-common)"; status=1 ;;
  esac
done
past_seam=$(grep -rnoE 'quiver_sql::[A-Za-z_]+' servers/src --include=*.rs \
  | grep -vE '_tests\.rs:|/tests(\.rs|/)' \
  | grep -vE 'quiver_sql::(handler|error|complexity|SqlError|Result|QueryHandler|QueryHandlerRef|PgHandler|PgHandlerRef)$' || true)
if [ -n "$past_seam" ]; then
  echo "seam violation: servers/src names quiver_sql past its handler seam:"
  echo "$past_seam"
  status=1
fi
[ $status -eq 0 ] && echo "layering ok"
# Inside each crate: no import loops between modules.
python3 scripts/check-module-cycles.py || status=1
exit $status
