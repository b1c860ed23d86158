#!/usr/bin/env python3
"""pymilvus insert throughput: fashion-mnist's 60,000 training images
(784 float dimensions) inserted in batches of 1,000 through the Milvus door,
then a flush; prints rows/s of the inserts and of inserts + flush.

usage: milvus-batch-insert.py URI DATASET_DIR [BATCH]
(the DATASET_DIR holds train-images-idx3-ubyte.gz, as ../shared/datasets/
fashion-mnist-784-euclidean does; docs/benchmarks.md, storage backends)
"""

import gzip
import sys
import time

import numpy as np
from pymilvus import DataType, MilvusClient


def images(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    count, rows, cols = (int.from_bytes(data[i:i + 4], "big") for i in (4, 8, 12))
    return np.frombuffer(data, dtype=np.uint8, offset=16).reshape(count, rows * cols).astype(np.float32)


def main():
    uri, dataset = sys.argv[1], sys.argv[2]
    batch = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
    vectors = images(f"{dataset}/train-images-idx3-ubyte.gz")
    client = MilvusClient(uri=uri)
    name = "batch_insert_bench"
    if client.has_collection(name):
        client.drop_collection(name)
    schema = client.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=vectors.shape[1])
    client.create_collection(name, schema=schema)
    started = time.perf_counter()
    for first in range(0, len(vectors), batch):
        chunk = vectors[first:first + batch]
        rows = [{"id": first + i, "vector": v} for i, v in enumerate(chunk)]
        client.insert(name, rows)
    inserted = time.perf_counter() - started
    client.flush(name)
    flushed = time.perf_counter() - started
    count = client.query(name, filter="", output_fields=["count(*)"])[0]["count(*)"]
    assert count == len(vectors), count
    print(f"pymilvus insert, batches of {batch}: {len(vectors)} rows in {inserted:.2f} s = "
          f"{len(vectors) / inserted:,.0f} rows/s; with the flush {flushed:.2f} s = "
          f"{len(vectors) / flushed:,.0f} rows/s")
    client.drop_collection(name)


if __name__ == "__main__":
    main()
