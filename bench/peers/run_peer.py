#!/usr/bin/env python3
"""Measures one peer vector-search library for `quiver-bench peers`.

    run_peer.py --peer hnswlib|faiss-hnsw|faiss-ivfflat|faiss-flat|usearch \
        --base base.fvecs [--max-base N] --query query.fvecs [--queries N] \
        --groundtruth groundtruth.ivecs --metric l2|ip|cosine [--k 10] \
        [--m 16] [--ef-construction 200] [--ef 10,20,40] \
        [--nlist 245] [--nprobe 1,2,4] [--threads N] [--repeat R]

Builds the index with `--threads` threads, then for every sweep point
(ef for HNSW, nprobe for IVF) measures:

- recall@k and p50/p99 latency of a Python loop calling the library once per
  query on one thread: `qps` (includes the interpreter's per-call overhead,
  a few microseconds per query);
- `qps_batch_1t`: one batched call for all queries on one thread (no
  per-query Python overhead; the fair single-thread comparison);
- `qps_all_cores`: one batched call on `--threads` threads.

Each is timed `--repeat` times and the fastest pass counts.

Prints one JSON object per point on stdout (the fields of quiver-bench's
records); progress goes to stderr. Run by `quiver-bench peers` in the venv
made by setup.sh; it can also be run by hand.
"""

import argparse
import json
import os
import sys
import time

import numpy as np


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def read_vecs(path, dtype, limit):
    """First `limit` records of a TEXMEX .fvecs/.ivecs file."""
    with open(path, "rb") as f:
        head = f.read(4)
    if len(head) != 4:
        raise SystemExit(f"{path}: empty file")
    dim = int(np.frombuffer(head, dtype="<i4")[0])
    if dim <= 0:
        raise SystemExit(f"{path}: invalid dimension {dim}")
    rec = dim + 1
    count = -1 if limit is None else rec * limit
    raw = np.fromfile(path, dtype="<i4", count=count)
    if raw.size % rec:
        raise SystemExit(f"{path}: truncated record")
    raw = raw.reshape(-1, rec)
    if not (raw[:, 0] == dim).all():
        raise SystemExit(f"{path}: records of different dimensions")
    if limit is not None and raw.shape[0] < limit:
        raise SystemExit(f"{path}: {raw.shape[0]} records, {limit} needed")
    return np.ascontiguousarray(raw[:, 1:].view(dtype))


def rss_bytes():
    """Resident set size of this process."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def settle():
    """Lets idle OpenMP workers of a previous multi-threaded call stop
    spinning before the next timed phase (they would steal a core)."""
    time.sleep(0.5)


def timed(f):
    """Seconds one call of f takes, after letting the machine settle."""
    settle()
    t = time.perf_counter()
    f()
    return time.perf_counter() - t


def ints(text):
    return [int(x) for x in text.split(",") if x]


class Hnswlib:
    system, index = "hnswlib", "hnsw"

    def __init__(self, a, dim):
        import hnswlib

        self.version = getattr(hnswlib, "__version__", "0.8.0")
        space = {"l2": "l2", "ip": "ip", "cosine": "cosine"}[a.metric]
        self.lib = hnswlib.Index(space=space, dim=dim)
        self.a = a

    def build(self, base):
        n = base.shape[0]
        self.lib.init_index(max_elements=n, ef_construction=self.a.ef_construction, M=self.a.m, random_seed=100)
        self.lib.set_num_threads(self.a.threads)
        self.lib.add_items(base, np.arange(n), num_threads=self.a.threads)

    def sweep(self):
        for ef in self.a.ef:
            self.lib.set_ef(ef)
            yield {"m": self.a.m, "ef_construction": self.a.ef_construction, "ef": ef}

    def search_one(self, q, k):
        labels, _ = self.lib.knn_query(q, k=k, num_threads=1)
        return labels[0]

    def search_batch(self, qs, k, threads):
        labels, _ = self.lib.knn_query(qs, k=k, num_threads=threads)
        return labels

    def memory(self):
        return None, None


class Faiss:
    system = "faiss"

    def __init__(self, a, dim, kind):
        import faiss

        self.faiss, self.a, self.dim, self.kind = faiss, a, dim, kind
        self.version = faiss.__version__
        self.index = {"hnsw": "HNSWFlat", "ivfflat": "IVFFlat", "flat": "Flat"}[kind]
        self.metric = faiss.METRIC_L2 if a.metric == "l2" else faiss.METRIC_INNER_PRODUCT
        self.normalize = a.metric == "cosine"

    def prep(self, x):
        if self.normalize:
            x = x.copy()
            self.faiss.normalize_L2(x)
        return x

    def build(self, base):
        f = self.faiss
        f.omp_set_num_threads(self.a.threads)
        base = self.prep(base)
        if self.kind == "hnsw":
            self.lib = f.IndexHNSWFlat(self.dim, self.a.m, self.metric)
            self.lib.hnsw.efConstruction = self.a.ef_construction
        elif self.kind == "ivfflat":
            quantizer = f.IndexFlat(self.dim, self.metric)
            self.lib = f.IndexIVFFlat(quantizer, self.dim, self.a.nlist, self.metric)
            self.lib.train(base)
        else:
            self.lib = f.IndexFlat(self.dim, self.metric)
        self.lib.add(base)

    def sweep(self):
        if self.kind == "hnsw":
            for ef in self.a.ef:
                self.lib.hnsw.efSearch = ef
                yield {"m": self.a.m, "ef_construction": self.a.ef_construction, "ef": ef}
        elif self.kind == "ivfflat":
            for p in self.a.nprobe:
                self.lib.nprobe = p
                yield {"nlist": self.a.nlist, "nprobe": p}
        else:
            yield {}

    def search_one(self, q, k):
        _, ids = self.lib.search(self.prep(q.reshape(1, -1)), k)
        return ids[0]

    def search_batch(self, qs, k, threads):
        self.faiss.omp_set_num_threads(threads)
        try:
            _, ids = self.lib.search(self.prep(qs), k)
        finally:
            self.faiss.omp_set_num_threads(1)
        return ids

    def before_single(self):
        self.faiss.omp_set_num_threads(1)

    def memory(self):
        return int(self.faiss.serialize_index(self.lib).nbytes), "faiss.serialize_index size"


class Usearch:
    system, index = "usearch", "hnsw"

    def __init__(self, a, dim):
        import usearch
        from usearch.index import Index

        self.version = usearch.__version__
        metric = {"l2": "l2sq", "ip": "ip", "cosine": "cos"}[a.metric]
        self.lib = Index(
            ndim=dim,
            metric=metric,
            dtype="f32",
            connectivity=a.m,
            expansion_add=a.ef_construction,
            expansion_search=a.ef[0],
        )
        self.a = a

    def build(self, base):
        self.lib.add(np.arange(base.shape[0], dtype=np.uint64), base, threads=self.a.threads)

    def sweep(self):
        for ef in self.a.ef:
            self.lib.expansion_search = ef
            yield {"m": self.a.m, "ef_construction": self.a.ef_construction, "ef": ef}

    def search_one(self, q, k):
        return self.lib.search(q, k, threads=1).keys

    def search_batch(self, qs, k, threads):
        return self.lib.search(qs, k, threads=threads).keys

    def memory(self):
        return int(self.lib.memory_usage), "usearch Index.memory_usage"


def make_peer(a, dim):
    if a.peer == "hnswlib":
        return Hnswlib(a, dim)
    if a.peer == "usearch":
        return Usearch(a, dim)
    if a.peer.startswith("faiss-"):
        kind = a.peer[len("faiss-"):]
        if kind in ("hnsw", "ivfflat", "flat"):
            return Faiss(a, dim, kind)
    raise SystemExit(f"unknown peer {a.peer}")


def recall_at_k(truth, ids, k):
    hits = 0
    for t, got in zip(truth, ids):
        hits += len(set(t[:k].tolist()) & set(np.asarray(got)[:k].tolist()))
    return hits / (k * len(truth))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--peer", required=True)
    p.add_argument("--base", required=True)
    p.add_argument("--max-base", type=int)
    p.add_argument("--query", required=True)
    p.add_argument("--queries", type=int)
    p.add_argument("--groundtruth", required=True)
    p.add_argument("--metric", choices=["l2", "ip", "cosine"], default="l2")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--m", type=int, default=16)
    p.add_argument("--ef-construction", type=int, default=200)
    p.add_argument("--ef", type=ints, default=[10, 20, 40, 80, 160])
    p.add_argument("--nlist", type=int, default=256)
    p.add_argument("--nprobe", type=ints, default=[1, 2, 4, 8, 16, 32])
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--repeat", type=int, default=1, help="timed passes per point; the fastest counts")
    a = p.parse_args()
    a.repeat = max(1, a.repeat)

    base = read_vecs(a.base, np.float32, a.max_base)
    queries = read_vecs(a.query, np.float32, a.queries)
    truth = read_vecs(a.groundtruth, np.int32, queries.shape[0])
    if truth.shape[1] < a.k:
        raise SystemExit(f"{a.groundtruth}: {truth.shape[1]} neighbours per query, fewer than k = {a.k}")
    if base.shape[1] != queries.shape[1]:
        raise SystemExit("base and query dimensions differ")
    n, dim = base.shape
    nq = queries.shape[0]

    peer = make_peer(a, dim)
    log(f"{a.peer} {peer.version}: building over {n} x {dim} with {a.threads} threads ...")
    rss0 = rss_bytes()
    t0 = time.perf_counter()
    peer.build(base)
    build_s = time.perf_counter() - t0
    mem, mem_method = peer.memory()
    if mem is None:
        mem, mem_method = rss_bytes() - rss0, "RSS growth during build"
    log(f"{a.peer}: built in {build_s:.2f} s")

    for params in peer.sweep():
        if hasattr(peer, "before_single"):
            peer.before_single()
        peer.search_batch(queries[: min(nq, 100)], a.k, 1)  # warm-up
        single, lat, recall = None, None, None
        for _ in range(a.repeat):
            settle()
            times = np.empty(nq)
            ids = []
            start = time.perf_counter()
            for i in range(nq):
                t = time.perf_counter()
                got = peer.search_one(queries[i], a.k)
                times[i] = time.perf_counter() - t
                ids.append(got)
            wall = time.perf_counter() - start
            if recall is None:
                recall = recall_at_k(truth, ids, a.k)
            if single is None or wall < single:
                single, lat = wall, times
        batch_1t = min(timed(lambda: peer.search_batch(queries, a.k, 1)) for _ in range(a.repeat))
        batch_all = min(timed(lambda: peer.search_batch(queries, a.k, a.threads)) for _ in range(a.repeat))

        record = {
            "system": peer.system,
            "index": peer.index,
            "version": peer.version,
            "params": params,
            "recall": recall,
            "k": a.k,
            "qps": nq / single,
            "qps_batch_1t": nq / batch_1t,
            "qps_all_cores": nq / batch_all,
            "p50_ms": float(np.percentile(lat, 50, method="inverted_cdf")) * 1e3,
            "p99_ms": float(np.percentile(lat, 99, method="inverted_cdf")) * 1e3,
            "build_s": build_s,
            "mem_bytes": int(mem),
            "mem_method": mem_method,
            "threads": a.threads,
            "queries": nq,
            "base_rows": n,
        }
        log(f"{a.peer}: {params} recall {recall:.4f} qps {record['qps']:.0f} "
            f"batch-1t {record['qps_batch_1t']:.0f} all {record['qps_all_cores']:.0f}")
        print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
