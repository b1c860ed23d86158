"""Filtered vector search through the Postgres door on fashion-mnist: recall@10
against the exact filtered answer (numpy brute force) and QPS at the
selectivities 50%, 10%, 1% and 0.1%, with an HNSW index.

Each base row gets `label` (its Fashion-MNIST class) and `bucket = id % 1000`;
the filters are `bucket < 500` (50%), `label = 3` (10%), `bucket < 10` (1%)
and `bucket < 1` (0.1%).

    python bench/scripts/pg_filtered.py --url postgresql://quiver@127.0.0.1:5433/quiver \
        --dataset ../shared/datasets/fashion-mnist-784-euclidean [--queries 200] [--ef 40]
"""

import argparse
import gzip
import os
import time

import numpy as np
import psycopg
from pgvector.psycopg import register_vector


def read_idx(path, header):
    raw = gzip.decompress(open(path, "rb").read())
    return np.frombuffer(raw[header:], dtype=np.uint8)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url", default="postgresql://quiver@127.0.0.1:5433/quiver")
    p.add_argument("--dataset", default="../shared/datasets/fashion-mnist-784-euclidean")
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--ef", type=int, default=40)
    args = p.parse_args()
    base = read_idx(os.path.join(args.dataset, "train-images-idx3-ubyte.gz"), 16).reshape(-1, 784).astype(np.float32)
    labels = read_idx(os.path.join(args.dataset, "train-labels-idx1-ubyte.gz"), 8).astype(np.int32)
    queries = read_idx(os.path.join(args.dataset, "t10k-images-idx3-ubyte.gz"), 16).reshape(-1, 784).astype(np.float32)
    queries = queries[: args.queries]
    ids = np.arange(len(base))
    bucket = (ids % 1000).astype(np.int32)

    conn = psycopg.connect(args.url, autocommit=True)
    register_vector(conn)
    conn.execute("DROP TABLE IF EXISTS fm_filtered")
    conn.execute("CREATE TABLE fm_filtered (id BIGINT PRIMARY KEY, label INTEGER, bucket INTEGER, embedding vector(784))")
    with conn.cursor() as cur:
        with cur.copy("COPY fm_filtered (id, label, bucket, embedding) FROM STDIN WITH (FORMAT BINARY)") as copy:
            copy.set_types(["int8", "int4", "int4", "vector"])
            for i in range(len(base)):
                copy.write_row((i, int(labels[i]), int(bucket[i]), base[i]))
    t = time.time()
    conn.execute("CREATE INDEX ON fm_filtered USING hnsw (embedding vector_l2_ops) WITH (m = 16, ef_construction = 200)")
    print(f"CREATE INDEX: {time.time() - t:.1f} s")
    conn.execute(f"SET hnsw.ef_search = {args.ef}")

    cases = [
        ("50%", "bucket < 500", bucket < 500),
        ("10%", "label = 3", labels == 3),
        ("1%", "bucket < 10", bucket < 10),
        ("0.1%", "bucket < 1", bucket < 1),
        ("none", "TRUE", np.ones(len(base), dtype=bool)),
    ]
    print(f"| selectivity | filter | rows returned (min) | recall@10 | QPS (1 client) |")
    print(f"|---|---|---|---|---|")
    for name, where, mask in cases:
        sql = f"SELECT id FROM fm_filtered WHERE {where} ORDER BY embedding <-> %s LIMIT 10"
        hits, wanted, min_rows = 0, 0, 10
        start = time.time()
        results = []
        for q in queries:
            results.append([r[0] for r in conn.execute(sql, (q,), prepare=True).fetchall()])
        elapsed = time.time() - start
        for q, got in zip(queries, results):
            d = ((base[mask] - q) ** 2).sum(axis=1)
            order = np.lexsort((ids[mask], d))[:10]
            truth = set(int(i) for i in ids[mask][order])
            hits += len(truth & set(got))
            wanted += len(truth)
            min_rows = min(min_rows, len(got))
        print(f"| {name} | `{where}` | {min_rows} | {hits / wanted:.4f} | {len(queries) / elapsed:.0f} |")
    conn.execute("DROP TABLE fm_filtered")


if __name__ == "__main__":
    main()
