"""One engine, two doors: a collection made with pymilvus is a table in
Postgres (psql's \\d, SQL joins and aggregates), and a SQL table with a
vector column and a primary key is a collection to pymilvus."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid

import numpy as np
import pytest
from pymilvus import DataType

psycopg = pytest.importorskip("psycopg")

PG_URL = os.environ.get("QUIVER_PG_URL", "").strip()
pytestmark = pytest.mark.skipif(not PG_URL, reason="QUIVER_PG_URL is not set")


def _name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def test_pymilvus_collection_is_a_sql_table(quiver):
    name = _name("door_m")
    schema = quiver.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("label", DataType.INT64)
    schema.add_field("title", DataType.VARCHAR, max_length=32)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=3)
    index = quiver.prepare_index_params()
    index.add_index("vec", index_type="FLAT", metric_type="L2")
    quiver.create_collection(name, schema=schema, index_params=index)
    try:
        rows = [
            {"id": i, "label": i % 3, "title": f"t{i}", "vec": [float(i), 0.0, 1.0]}
            for i in range(9)
        ]
        quiver.insert(name, rows)
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            got = conn.execute(
                f'SELECT label, count(*), min(id) FROM "{name}" GROUP BY label ORDER BY label'
            ).fetchall()
            assert got == [(0, 3, 0), (1, 3, 1), (2, 3, 2)]
            conn.execute(f"CREATE TABLE {name}_labels (label BIGINT PRIMARY KEY, word TEXT)")
            try:
                conn.execute(
                    f"INSERT INTO {name}_labels VALUES (0, 'zero'), (1, 'one'), (2, 'two')"
                )
                joined = conn.execute(
                    f'SELECT m.id, l.word FROM "{name}" m JOIN {name}_labels l '
                    f"ON m.label = l.label ORDER BY m.vec <-> '[4,0,1]', m.id LIMIT 3"
                ).fetchall()
                # pgvector's <-> is the plain Euclidean distance; ties by id.
                assert joined == [(4, "one"), (3, "zero"), (5, "two")]
            finally:
                conn.execute(f"DROP TABLE {name}_labels")
            # The Milvus door reports squared L2 for the same engine result.
            hits = quiver.search(name, data=[[3.9, 0.0, 1.0]], limit=2, anns_field="vec")[0]
            assert [h["id"] for h in hits] == [4, 3]
            assert hits[1]["distance"] == pytest.approx(0.81, rel=1e-4)
            d = conn.execute(
                f"SELECT vec <-> '[3.9,0,1]' FROM \"{name}\" WHERE id = 2"
            ).fetchone()[0]
            assert d == pytest.approx(1.9, rel=1e-4)
            hit2 = quiver.search(
                name, data=[[3.9, 0.0, 1.0]], limit=1, anns_field="vec", filter="id == 2"
            )[0][0]
            assert hit2["distance"] == pytest.approx(1.9**2, rel=1e-4)
        psql = shutil.which("psql")
        if psql:
            out = subprocess.run(
                [psql, PG_URL, "-X", "-c", f'\\d "{name}"'],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            assert "vector(3)" in out and "title" in out and "bigint" in out
    finally:
        quiver.drop_collection(name)


def test_sql_table_is_a_pymilvus_collection(quiver):
    name = _name("door_s")
    rng = np.random.default_rng(7)
    vectors = rng.random((20, 4), dtype=np.float32)
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(
            f"CREATE TABLE {name} (id BIGINT PRIMARY KEY, kind TEXT, emb vector(4))"
        )
        with conn.cursor() as cur:
            for i, v in enumerate(vectors):
                cur.execute(
                    f"INSERT INTO {name} VALUES (%s, %s, %s::vector)",
                    (i, "even" if i % 2 == 0 else "odd", "[" + ",".join(map(str, v)) + "]"),
                )
    try:
        desc = quiver.describe_collection(name)
        fields = {f["name"]: f for f in desc["fields"]}
        assert fields["id"]["is_primary"]
        assert fields["emb"]["type"] == DataType.FLOAT_VECTOR
        assert fields["emb"]["params"]["dim"] == 4
        assert fields["kind"]["type"] == DataType.VARCHAR
        quiver.insert(name, [{"id": 100, "kind": "new", "emb": [0.0, 0.0, 0.0, 0.0]}])
        assert quiver.query(name, filter="id == 100", output_fields=["kind"]) == [
            {"id": 100, "kind": "new"}
        ]
        q = vectors[3]
        exact = np.argsort(((vectors - q) ** 2).sum(axis=1), kind="stable")[:3]
        hits = quiver.search(
            name,
            data=[q.tolist()],
            limit=3,
            anns_field="emb",
            search_params={"metric_type": "L2"},
            filter='kind != "new"',
        )[0]
        assert [h["id"] for h in hits] == [int(i) for i in exact]
        count = quiver.query(name, filter='kind == "odd"', output_fields=["count(*)"])
        assert count[0]["count(*)"] == 10
    finally:
        quiver.drop_collection(name)


def test_sql_table_without_key_is_an_auto_id_collection(quiver):
    """A SQL table declared without a primary key is a collection whose
    primary key is the hidden, generated row id (auto_id): pymilvus inserts
    without it, and its ids delete the rows SQL sees."""
    name = _name("door_nokey")
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {name} (label BIGINT, vec vector(2))")
        try:
            conn.execute(f"INSERT INTO {name} VALUES (1, '[1,0]'), (2, '[2,0]')")
            described = quiver.describe_collection(name)
            key = [f for f in described["fields"] if f.get("is_primary")]
            assert [f["name"] for f in key] == ["__quiver_row_id"]
            assert described["auto_id"] is True
            quiver.insert(name, [{"label": 3, "vec": [3.0, 0.0]}])
            rows = quiver.query(name, filter="label >= 1", output_fields=["label"])
            ids = {r["label"]: r["__quiver_row_id"] for r in rows}
            assert sorted(ids) == [1, 2, 3] and len(set(ids.values())) == 3
            # SQL shows the declared columns only.
            cur = conn.execute(f"SELECT * FROM {name} ORDER BY label")
            assert [d.name for d in cur.description] == ["label", "vec"]
            assert [r[0] for r in cur.fetchall()] == [1, 2, 3]
            quiver.delete(name, ids=[ids[2]])
            got = conn.execute(f"SELECT label FROM {name} ORDER BY label").fetchall()
            assert got == [(1,), (3,)]
        finally:
            conn.execute(f"DROP TABLE {name}")
