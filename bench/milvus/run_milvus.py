#!/usr/bin/env python3
"""Measures one Milvus-API server through pymilvus for `quiver-bench milvus`.

    run_milvus.py --uri URI [--name NAME] --base base.fvecs [--max-base N] \
        --query query.fvecs [--queries N] --groundtruth groundtruth.ivecs \
        [--labels train-labels-idx1-ubyte.gz] [--filter-label 3] \
        [--metric l2|ip|cosine] [--k 10] [--m 16] [--ef-construction 200] \
        [--ef 16,32,64] [--nq 1,100] [--batch 1000] [--collection NAME] [--repeat R]

URI is anything `pymilvus.MilvusClient` accepts: `http://127.0.0.1:19530`
for a server (Quiver's Milvus door, a Milvus standalone), or a local
`something.db` path, for which pymilvus starts milvus-lite itself.

Steps, all through `MilvusClient`:

1. drops the collection `--collection` if it exists and creates it:
   INT64 primary key `id` (the base row number), INT64 `label` (the
   Fashion-MNIST class from `--labels`, else 0) and FLOAT_VECTOR `vector`;
2. inserts the base rows in batches of `--batch` row dicts
   (`insert_rows_per_s`, client-side conversion included);
3. creates an HNSW index (M, efConstruction, the metric), flushes, loads
   and polls `describe_index` until every row is indexed (`build_s`);
4. for every ef and every nq of `--nq`: searches all queries with
   limit k, nq query vectors per `search` call, and measures recall@k
   against the ground truth (ids only, so Milvus' squared L2 distances do
   not matter), QPS counting every query vector, and p50/p99 of the
   per-call latency (one call = nq queries);
5. with labels, for every ef: nq=1 searches with the filter
   `label == <filter-label>`, recall@k against the exact filtered answer
   computed here with numpy (float64, ties broken by row number).

Prints one JSON object per point on stdout (the fields of quiver-bench's
records); progress goes to stderr. Run by `quiver-bench milvus` in the venv
made by setup.sh; it can also be run by hand.
"""

import argparse
import gzip
import json
import sys
import time

import numpy as np
from pymilvus import DataType, MilvusClient, __version__ as PYMILVUS_VERSION

VECTOR = "vector"


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def ints(text):
    return [int(x) for x in text.split(",") if x]


def read_vecs(path, dtype, limit):
    """The first `limit` records (all when None) of a TEXMEX .fvecs/.ivecs
    file, as a 2-d array."""
    with open(path, "rb") as f:
        head = f.read(4)
    if len(head) != 4:
        raise SystemExit(f"{path}: empty file")
    dim = int(np.frombuffer(head, dtype="<i4")[0])
    if dim <= 0:
        raise SystemExit(f"{path}: invalid dimension {dim}")
    width = dim + 1
    raw = np.fromfile(path, dtype="<i4", count=-1 if limit is None else width * limit)
    if raw.size % width:
        raise SystemExit(f"{path}: truncated record")
    raw = raw.reshape(-1, width)
    if not (raw[:, 0] == dim).all():
        raise SystemExit(f"{path}: records of different dimensions")
    if limit is not None and raw.shape[0] < limit:
        raise SystemExit(f"{path}: {raw.shape[0]} records, {limit} needed")
    return np.ascontiguousarray(raw[:, 1:].view(dtype))


def read_labels(path, rows):
    """The first `rows` labels of an IDX1 file (gzip'd or not): magic
    0x00000801 and the item count, big-endian, then one byte per item."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise SystemExit(f"{path}: not an IDX1 label file")
    magic, count = int.from_bytes(raw[0:4], "big"), int.from_bytes(raw[4:8], "big")
    if magic != 0x801 or len(raw) != 8 + count:
        raise SystemExit(f"{path}: not an IDX1 label file (magic {magic:#x}, {len(raw)} bytes)")
    if count < rows:
        raise SystemExit(f"{path}: {count} labels, but the base has {rows} rows")
    return np.frombuffer(raw, dtype=np.uint8, count=rows, offset=8).astype(np.int64)


def exact_filtered(base, queries, mask, metric, k):
    """Row numbers of the k nearest base rows among those in `mask` for
    every query, closest first, ties by row number."""
    rows = np.flatnonzero(mask)
    cand = base[rows].astype(np.float64)
    qs = queries.astype(np.float64)
    if metric == "cosine":
        cand /= np.maximum(np.linalg.norm(cand, axis=1, keepdims=True), 1e-30)
        qs /= np.maximum(np.linalg.norm(qs, axis=1, keepdims=True), 1e-30)
    norms = (cand * cand).sum(axis=1)
    out = []
    for start in range(0, qs.shape[0], 500):
        dots = qs[start:start + 500] @ cand.T
        # L2: |b|^2 - 2 q.b (|q|^2 is the same for every row of a query).
        score = norms - 2.0 * dots if metric == "l2" else -dots
        order = np.argsort(score, axis=1, kind="stable")[:, :k]
        out.extend(rows[order].tolist())
    return out


def recall_at_k(truth, got, k):
    hits, wanted = 0, 0
    for t, g in zip(truth, got):
        want = set(list(t)[:k])
        hits += len(want & set(g[:k]))
        wanted += len(want)
    return hits / wanted if wanted else 1.0


def percentile_ms(seconds, p):
    """Nearest-rank percentile, in milliseconds (like quiver-bench's)."""
    s = np.sort(np.asarray(seconds))
    rank = int(np.ceil(p / 100.0 * len(s)))
    return float(s[min(max(rank, 1), len(s)) - 1]) * 1e3


def wait_for_index(client, collection, rows, timeout_s=24 * 3600):
    """Polls describe_index until all `rows` are indexed."""
    deadline = time.monotonic() + timeout_s
    pause = 0.02
    while True:
        d = client.describe_index(collection, index_name=VECTOR)
        indexed = int(d.get("indexed_rows", 0) or 0)
        pending = int(d.get("pending_index_rows", 0) or 0)
        state = str(d.get("state", "Finished"))
        if indexed >= rows and pending == 0 and state in ("Finished", "3", "IndexState.Finished"):
            return d
        if state in ("Failed", "4", "IndexState.Failed"):
            raise SystemExit(f"index build failed: {d}")
        if time.monotonic() > deadline:
            raise SystemExit(f"index not built after {timeout_s} s: {d}")
        time.sleep(pause)
        pause = min(pause * 2, 1.0)


def settle_milvus_lite(db_path, collection, timeout_s=24 * 3600):
    """Waits for milvus-lite's background work after a flush.

    milvus-lite 3.2 compacts the flushed files and builds an index for each
    new data file on a background thread after `flush`, while
    `describe_index` already reports every row indexed. Searches before
    that end run on the old files. No RPC tells when it is done, so this
    watches the collection folder: done when every data file of the
    manifest has its index file and nothing changed for two seconds.
    Returns the seconds waited, or None when the folder has another layout.
    """
    import glob
    import os

    folder = os.path.join(db_path, "collections", collection)
    manifest = os.path.join(folder, "manifest.json")
    if not os.path.isfile(manifest):
        return None
    start = time.monotonic()

    def snapshot():
        with open(manifest) as f:
            m = json.load(f)
        data = [d for p in m.get("partitions", {}).values() for d in p.get("data_files", [])]
        indexes = sorted(glob.glob(os.path.join(folder, "partitions", "*", "indexes", "*")))
        names = {os.path.basename(i) for i in indexes}
        complete = all(
            any(n.startswith(os.path.basename(d).rsplit(".", 1)[0] + ".") for n in names) for d in data
        )
        return complete, (tuple(data), tuple(indexes))

    last, since = None, time.monotonic()
    while time.monotonic() - start < timeout_s:
        try:
            complete, state = snapshot()
        except (OSError, ValueError):  # a manifest being replaced
            complete, state = False, None
        if state != last:
            last, since = state, time.monotonic()
        elif complete and time.monotonic() - since >= 2.0:
            return time.monotonic() - start - 2.0
        time.sleep(0.2)
    raise SystemExit(f"milvus-lite still busy after {timeout_s} s: {last}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--uri", required=True)
    p.add_argument("--name", help="`system` of the records [default: from the URI]")
    p.add_argument("--token", default="")
    p.add_argument("--base", required=True)
    p.add_argument("--max-base", type=int)
    p.add_argument("--query", required=True)
    p.add_argument("--queries", type=int)
    p.add_argument("--groundtruth", required=True)
    p.add_argument("--labels", help="IDX1 labels of the base rows (Fashion-MNIST train labels)")
    p.add_argument("--filter-label", type=int, default=3)
    p.add_argument("--metric", choices=["l2", "ip", "cosine"], default="l2")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--m", type=int, default=16)
    p.add_argument("--ef-construction", type=int, default=200)
    p.add_argument("--ef", type=ints, default=[16, 32, 64, 128, 256])
    p.add_argument("--nq", type=ints, default=[1, 100])
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--collection", default="quiver_bench")
    p.add_argument("--repeat", type=int, default=1, help="timed passes per point; the fastest counts")
    a = p.parse_args()
    if a.batch < 1 or a.repeat < 1 or not a.nq or min(a.nq) < 1 or not a.ef or min(a.ef) < a.k:
        raise SystemExit("--batch, --repeat and --nq must be at least 1 and every --ef at least k")
    name = a.name or ("milvus-lite" if a.uri.endswith(".db") else "quiver")

    base = read_vecs(a.base, np.float32, a.max_base)
    queries = read_vecs(a.query, np.float32, a.queries)
    truth = read_vecs(a.groundtruth, np.int32, queries.shape[0])
    if truth.shape[1] < a.k:
        raise SystemExit(f"{a.groundtruth}: {truth.shape[1]} neighbours per query, fewer than k = {a.k}")
    if base.shape[1] != queries.shape[1]:
        raise SystemExit("base and query dimensions differ")
    n, dim = base.shape
    nq_total = queries.shape[0]
    labels = read_labels(a.labels, n) if a.labels else np.zeros(n, dtype=np.int64)
    metric = a.metric.upper()

    log(f"{name}: connecting to {a.uri} (pymilvus {PYMILVUS_VERSION}) ...")
    client = MilvusClient(uri=a.uri, token=a.token)
    try:
        version = client.get_server_version()
    except Exception as e:  # an optional RPC; the run does not need it
        log(f"{name}: get_server_version failed: {e}")
        version = None
    if a.uri.endswith(".db"):
        from importlib.metadata import version as package_version

        version = package_version("milvus-lite")

    if a.uri.endswith(".db") and (a.m, a.ef_construction) != (16, 200):
        log(f"{name}: warning: milvus-lite 3.2 reads only a JSON `params` index parameter, but pymilvus "
            f"2.6 sends M and efConstruction flattened: the index gets milvus-lite's defaults "
            f"(M 16, efConstruction 200), not M {a.m}, efConstruction {a.ef_construction}")

    c = a.collection
    if client.has_collection(c):
        client.drop_collection(c)
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("label", DataType.INT64)
    schema.add_field(VECTOR, DataType.FLOAT_VECTOR, dim=dim)
    client.create_collection(c, schema=schema)

    log(f"{name}: inserting {n} x {dim} in batches of {a.batch} ...")
    t0 = time.perf_counter()
    for start in range(0, n, a.batch):
        stop = min(n, start + a.batch)
        rows = [{"id": i, "label": int(labels[i]), VECTOR: base[i]} for i in range(start, stop)]
        res = client.insert(c, rows)
        if res.get("insert_count", stop - start) != stop - start:
            raise SystemExit(f"insert of rows {start}..{stop} reported {res.get('insert_count')} rows")
    insert_s = time.perf_counter() - t0
    insert_rows_per_s = n / insert_s
    log(f"{name}: inserted in {insert_s:.2f} s ({insert_rows_per_s:.0f} rows/s)")

    t0 = time.perf_counter()
    index_params = client.prepare_index_params()
    index_params.add_index(
        field_name=VECTOR,
        index_name=VECTOR,
        index_type="HNSW",
        metric_type=metric,
        params={"M": a.m, "efConstruction": a.ef_construction},
    )
    client.create_index(c, index_params)
    t_index = time.perf_counter()
    client.flush(c)
    t_flush = time.perf_counter()
    client.load_collection(c)
    t_load = time.perf_counter()
    desc = wait_for_index(client, c, n)
    t_ready = time.perf_counter()
    settle = settle_milvus_lite(a.uri, c) if a.uri.endswith(".db") else None
    build_s = time.perf_counter() - t0 - (2.0 if settle is not None else 0.0)
    log(f"{name}: index built in {build_s:.2f} s (create_index {t_index - t0:.2f}, flush "
        f"{t_flush - t_index:.2f}, load {t_load - t_flush:.2f}, describe_index wait "
        f"{t_ready - t_load:.2f}, background compaction/index wait "
        f"{'-' if settle is None else f'{settle:.2f}'}): {desc}")
    stats = client.get_collection_stats(c)
    if int(stats.get("row_count", n)) != n:
        log(f"{name}: warning: get_collection_stats reports {stats.get('row_count')} rows, {n} inserted")

    flt = f"label == {a.filter_label}"
    filtered_truth = None
    if a.labels:
        mask = labels == a.filter_label
        log(f"{name}: exact answers of `{flt}` ({int(mask.sum())} of {n} rows) ...")
        filtered_truth = exact_filtered(base, queries, mask, a.metric, a.k)

    def search_all(ef, nq, expr):
        """ids of every query and the latency of every call of one pass."""
        params = {"metric_type": metric, "params": {"ef": ef}}
        ids, lat = [], []
        start = time.perf_counter()
        for i in range(0, nq_total, nq):
            t = time.perf_counter()
            res = client.search(c, data=queries[i:i + nq], filter=expr, limit=a.k, output_fields=["id"],
                                search_params=params, anns_field=VECTOR)
            got = [[hit["id"] for hit in hits] for hits in res]
            lat.append(time.perf_counter() - t)
            ids.extend(got)
        return ids, lat, time.perf_counter() - start

    def measure(ef, nq, expr, want):
        for i in range(0, min(nq_total, 20 * nq), nq):  # warm-up: up to 20 calls
            client.search(c, data=queries[i:i + nq], filter=expr, limit=a.k, output_fields=["id"],
                          search_params={"metric_type": metric, "params": {"ef": ef}}, anns_field=VECTOR)
        best = None
        for _ in range(a.repeat):
            ids, lat, wall = search_all(ef, nq, expr)
            if best is None or wall < best[2]:
                best = (ids, lat, wall)
        ids, lat, wall = best
        short = sum(1 for g in ids if len(g) < a.k)
        if short:
            log(f"{name}: ef={ef} nq={nq} filter={expr or '-'}: {short} queries got fewer than {a.k} hits")
        record = {
            "system": name,
            "index": "hnsw",
            "version": version,
            "uri": a.uri,
            "params": {"m": a.m, "ef_construction": a.ef_construction, "ef": ef},
            "recall": recall_at_k(want, ids, a.k),
            "k": a.k,
            "qps": nq_total / wall,
            "p50_ms": percentile_ms(lat, 50),
            "p99_ms": percentile_ms(lat, 99),
            "build_s": build_s,
            "insert_rows_per_s": insert_rows_per_s,
            "nq": nq,
            "filter": expr or None,
            "queries": nq_total,
            "base_rows": n,
        }
        if record["version"] is None:
            del record["version"]
        log(f"{name}: ef={ef} nq={nq} filter={expr or '-'}: recall {record['recall']:.4f} "
            f"qps {record['qps']:.0f} p50 {record['p50_ms']:.2f} ms")
        print(json.dumps(record), flush=True)

    failures = 0
    for ef in a.ef:
        points = [(nq, "", truth) for nq in a.nq]
        if filtered_truth is not None:
            points.append((1, flt, filtered_truth))
        for nq, expr, want in points:
            try:
                measure(ef, nq, expr, want)
            except Exception as e:  # report it, measure the other points
                failures += 1
                log(f"{name}: FAILED ef={ef} nq={nq} filter={expr or '-'}: {type(e).__name__}: {e}")

    client.drop_collection(c)
    client.close()
    if failures:
        raise SystemExit(f"{name}: {failures} measurement point(s) failed")


if __name__ == "__main__":
    main()
