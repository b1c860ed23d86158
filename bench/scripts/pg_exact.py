"""Measures the Postgres door on fashion-mnist: binary COPY throughput of the
60,000 base vectors and exact-search QPS (one client, one prepared statement)
with recall@10 against the dataset's ground truth.

    python bench/scripts/pg_exact.py --url postgresql://quiver@127.0.0.1:5433/quiver \
        --dataset ../shared/datasets/fashion-mnist-784-euclidean [--queries 200]
"""

import argparse
import gzip
import json
import os
import time

import numpy as np
import psycopg
from pgvector.psycopg import register_vector


def read_idx_images(path):
    raw = gzip.decompress(open(path, "rb").read())
    n, rows, cols = np.frombuffer(raw[4:16], dtype=">u4")
    return np.frombuffer(raw[16:], dtype=np.uint8).reshape(int(n), int(rows) * int(cols)).astype(np.float32)


def read_ivecs(path):
    a = np.fromfile(path, dtype=np.int32)
    dim = a[0]
    return a.reshape(-1, dim + 1)[:, 1:]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url", default="postgresql://quiver@127.0.0.1:5433/quiver")
    p.add_argument("--dataset", default="../shared/datasets/fashion-mnist-784-euclidean")
    p.add_argument("--queries", type=int, default=200)
    args = p.parse_args()
    base = read_idx_images(os.path.join(args.dataset, "train-images-idx3-ubyte.gz"))
    queries = read_idx_images(os.path.join(args.dataset, "t10k-images-idx3-ubyte.gz"))
    truth = read_ivecs(os.path.join(args.dataset, "groundtruth.ivecs"))
    with psycopg.connect(args.url, autocommit=True) as conn:
        register_vector(conn)
        conn.execute("DROP TABLE IF EXISTS fmnist")
        conn.execute("CREATE TABLE fmnist (id BIGINT PRIMARY KEY, v vector(784))")
        start = time.perf_counter()
        with conn.cursor() as cur:
            with cur.copy("COPY fmnist (id, v) FROM STDIN WITH (FORMAT BINARY)") as copy:
                copy.set_types(["int8", "vector"])
                for i, vec in enumerate(base):
                    copy.write_row((i, vec))
        copy_s = time.perf_counter() - start
        n = conn.execute("SELECT count(*) FROM fmnist").fetchone()[0]
        assert n == len(base), n
        latencies, hits = [], 0
        with conn.cursor() as cur:
            for qi in range(args.queries):
                t0 = time.perf_counter()
                cur.execute("SELECT id FROM fmnist ORDER BY v <-> %s LIMIT 10", (queries[qi],), prepare=True)
                ids = [r[0] for r in cur.fetchall()]
                latencies.append(time.perf_counter() - t0)
                hits += len(set(ids) & set(truth[qi][:10].tolist()))
        lat = np.array(latencies)
        result = {
            "dataset": "fashion-mnist-784-euclidean",
            "copy_rows": int(n),
            "copy_s": round(copy_s, 2),
            "copy_rows_per_s": round(n / copy_s),
            "queries": args.queries,
            "recall_at_10": hits / (10 * args.queries),
            "qps": round(args.queries / lat.sum(), 2),
            "p50_ms": round(float(np.percentile(lat, 50)) * 1000, 2),
            "p99_ms": round(float(np.percentile(lat, 99)) * 1000, 2),
        }
        print(json.dumps(result))


if __name__ == "__main__":
    main()
