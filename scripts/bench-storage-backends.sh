#!/usr/bin/env bash
# Local WAL/objects/meta vs etcd + S3 (moto) + object-store WAL: binary COPY rows/s, pymilvus
# inserts in batches of 1,000, single-row INSERT latency and restart-to-ready, release builds,
# one run each way (docs/benchmarks.md).
set -u
Q=${CARGO_TARGET_DIR:-$HOME/.cache/quiver-target}/release/quiver
B=${CARGO_TARGET_DIR:-$HOME/.cache/quiver-target}/release/quiver-bench
DS=${QUIVER_BENCH_DATASET:-../shared/datasets/fashion-mnist-784-euclidean}
PY=${QUIVER_VENV:-$HOME/.cache/quiver-venv}/bin/python
MPY=${QUIVER_MILVUS_VENV:-$HOME/.cache/quiver-milvus-venv-3}/bin/python
RUN=bench-$$
start() { # name port extra-env... (the Milvus door on port + 1000)
  local name=$1 port=$2; shift 2
  mkdir -p /tmp/$RUN-$name; chmod 700 /tmp/$RUN-$name
  env AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test "$@" $Q standalone --data-dir /tmp/$RUN-$name \
    --pg-addr 127.0.0.1:$port --milvus-addr 127.0.0.1:$((port + 1000)) > /tmp/$RUN-$name.log 2>&1 &
  echo $! > /tmp/$RUN-$name.pid
}
ready() { # port -> seconds until a query answers
  local port=$1 t0=$(date +%s.%N)
  until psql "postgresql://quiver@127.0.0.1:$port/quiver" -XAtqc "SELECT count(*) FROM bench" >/dev/null 2>&1 \
     || psql "postgresql://quiver@127.0.0.1:$port/quiver" -XAtqc "SELECT 1" >/dev/null 2>&1; do sleep 0.05; done
  echo "$(date +%s.%N) - $t0" | bc
}
REAL=(QUIVER__META__BACKEND=etcd QUIVER__META__ETCD_ENDPOINTS=http://127.0.0.1:23891 QUIVER__META__ROOT=/bench/$RUN
      QUIVER__OBJECTS__BACKEND=s3 QUIVER__OBJECTS__S3_ENDPOINT=http://127.0.0.1:9123 QUIVER__OBJECTS__S3_BUCKET=quiver-test
      QUIVER__OBJECTS__S3_PREFIX=$RUN QUIVER__WAL__BACKEND=object_store)
start local 56001
start real 56002 "${REAL[@]}"
sleep 3
for pass in 1 2; do
  for which in local:56001 real:56002; do
    name=${which%%:*}; port=${which##*:}
    echo "== $name pass $pass: binary COPY of fashion-mnist (60,000 x 784)"
    $B sql --url "postgresql://quiver@127.0.0.1:$port/quiver" --dataset $DS --index none --queries 10 --table bench 2>&1 | grep -iE 'insert|rows/s|load' | head -5
    echo "== $name pass $pass: pymilvus insert of fashion-mnist in batches of 1,000"
    $MPY "$(dirname "$0")/milvus-batch-insert.py" "http://127.0.0.1:$((port + 1000))" $DS 1000
    echo "== $name pass $pass: single-row INSERT latency"
    $PY "$(dirname "$0")/insert-latency.py" "postgresql://quiver@127.0.0.1:$port/quiver" 500
  done
done
for which in local:56001 real:56002; do
  name=${which%%:*}; port=${which##*:}
  kill -9 $(cat /tmp/$RUN-$name.pid); sleep 0.5
  if [ $name = local ]; then start local 56001; else start real 56002 "${REAL[@]}"; fi
  echo "== $name restart-to-ready after SIGKILL (60,000 rows): $(ready $port) s"
  psql "postgresql://quiver@127.0.0.1:$port/quiver" -XAtqc "SELECT count(*) FROM bench"
done
kill $(cat /tmp/$RUN-local.pid) $(cat /tmp/$RUN-real.pid)
