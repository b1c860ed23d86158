"""ARRAY fields (element types Bool, Int8–Int64, Float, Double, VarChar):
describe, insert, query and search output, the array filters, and bad
input, compared with milvus-lite; and how such a field looks to SQL."""

from __future__ import annotations

import os

import numpy as np
import pytest
from pymilvus import DataType, MilvusClient

from milvus_helpers import (
    assert_rows_equal,
    assert_same_error,
    assert_search_equal,
    index_params,
    queries,
)

DIM = 4
TAGS = ["red", "green", "blue", "o'neil", 'say "hi"', "a%b"]


def schema():
    s = MilvusClient.create_schema(auto_id=False)
    s.add_field("id", DataType.INT64, is_primary=True)
    s.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
    s.add_field("tags", DataType.ARRAY, element_type=DataType.VARCHAR, max_capacity=4, max_length=16)
    s.add_field("nums", DataType.ARRAY, element_type=DataType.INT64, max_capacity=5)
    s.add_field("small", DataType.ARRAY, element_type=DataType.INT16, max_capacity=3)
    s.add_field("scores", DataType.ARRAY, element_type=DataType.FLOAT, max_capacity=3)
    s.add_field("ratios", DataType.ARRAY, element_type=DataType.DOUBLE, max_capacity=3)
    s.add_field("flags", DataType.ARRAY, element_type=DataType.BOOL, max_capacity=2)
    return s


def rows(n: int = 60, seed: int = 7) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        out.append(
            {
                "id": i,
                "vec": rng.standard_normal(DIM).astype(np.float32).tolist(),
                "tags": [TAGS[(i + j) % len(TAGS)] for j in range(i % 4)],
                "nums": [int(x) for x in rng.integers(-5, 10, size=i % 6)],
                "small": [int(x) for x in rng.integers(-300, 300, size=(i % 3) + 1)],
                "scores": [float(x) / 8.0 for x in rng.integers(-16, 16, size=i % 4)],
                "ratios": [float(x) for x in rng.normal(size=2)],
                "flags": [bool(i % 2), bool(i % 3)][: i % 3],
            }
        )
    return out


ROWS = rows()
FIELDS = ["tags", "nums", "small", "scores", "ratios", "flags"]


def make(c: MilvusClient, name: str) -> None:
    c.create_collection(name, schema=schema())
    c.create_index(name, index_params(c, "FLAT", "L2"), sync=False)
    c.load_collection(name)
    c.insert(name, ROWS)


def test_array_fields_describe_alike(pair, cname):
    def scenario(c):
        c.create_collection(cname, schema=schema())
        fields = c.describe_collection(cname)["fields"]
        return [
            (f["name"], f["type"], f.get("element_type"), f["params"].get("max_capacity"),
             f["params"].get("max_length"))
            for f in fields
            if f["name"] in FIELDS
        ]

    q, l = pair.both_ok(scenario)
    assert q == l
    assert len(q) == len(FIELDS)


def test_arrays_round_trip(pair, cname):
    def scenario(c):
        make(c, cname)
        return c.query(cname, filter="id >= 0", output_fields=FIELDS, limit=1000)

    q, l = pair.both_ok(scenario)
    assert_rows_equal(q, l)
    assert [r["tags"] for r in sorted(q, key=lambda r: r["id"])] == [r["tags"] for r in ROWS]


def _at(values, i):
    return values[i] if i < len(values) else None


#: Each filter with the rows it must select, computed here (the oracle):
#: milvus-lite 2.5.1 lacks some array expressions (element-to-element
#: comparisons, ``array_length``, ``not`` over ``array_contains``); where it
#: answers, its rows must be the same.
FILTERS = [
    ('array_contains(tags, "red")', lambda r: "red" in r["tags"]),
    ('ARRAY_CONTAINS(tags, "o\'neil")', lambda r: "o'neil" in r["tags"]),
    ("array_contains_all(nums, [1, 2])", lambda r: {1, 2} <= set(r["nums"])),
    ("array_contains_any(nums, [3, 9, -5])", lambda r: bool({3, 9, -5} & set(r["nums"]))),
    ("array_contains(small, -96) or array_contains(small, 293)",
     lambda r: -96 in r["small"] or 293 in r["small"]),
    ("nums[0] > 2", lambda r: (_at(r["nums"], 0) or -99) > 2),
    ("nums[1] == nums[0]", lambda r: len(r["nums"]) > 1 and r["nums"][1] == r["nums"][0]),
    ('tags[1] == "blue"', lambda r: _at(r["tags"], 1) == "blue"),
    ('tags[0] like "gr%"', lambda r: (_at(r["tags"], 0) or "").startswith("gr")),
    ("scores[0] < 0.5", lambda r: len(r["scores"]) > 0 and r["scores"][0] < 0.5),
    ("scores[0] in [0.125, -1.0]", lambda r: _at(r["scores"], 0) in (0.125, -1.0)),
    ("flags[0] == true", lambda r: _at(r["flags"], 0) is True),
    ("array_length(tags) == 2", lambda r: len(r["tags"]) == 2),
    ("array_length(nums) >= 4 and array_length(scores) == 0",
     lambda r: len(r["nums"]) >= 4 and len(r["scores"]) == 0),
    ("not array_contains(nums, 0)", lambda r: 0 not in r["nums"]),
]


@pytest.mark.parametrize("expr, want", FILTERS, ids=[f[0] for f in FILTERS])
def test_array_filters(pair, cname, expr, want):
    def scenario(c):
        if not c.has_collection(cname):
            make(c, cname)
        return c.query(cname, filter=expr, output_fields=["nums"], limit=1000)

    q, l = pair.run(scenario)
    got = sorted(r["id"] for r in q.unwrap("Quiver"))
    assert got == [r["id"] for r in ROWS if want(r)], expr
    assert got, f"{expr} selects no row: a weak test"
    if l.ok:
        assert_rows_equal(q.value, l.value)


def test_search_outputs_arrays(pair, cname):
    qs = queries(3, dim=DIM, seed=8)

    def scenario(c):
        make(c, cname)
        return c.search(cname, qs, limit=5, output_fields=FIELDS,
                        filter="array_contains_any(nums, [1, 2, 3])", search_params={"metric_type": "L2"})

    q, l = pair.both_ok(scenario)
    assert_search_equal(q, l)


@pytest.mark.parametrize(
    "bad",
    [
        {"nums": [1, 2, 3, 4, 5, 6]},  # over max_capacity
        {"tags": ["x" * 17]},  # element over max_length
        {"small": [40000]},  # element out of Int16's range
    ],
    ids=["capacity", "max_length", "element_range"],
)
def test_bad_array_values(pair, cname, bad):
    row = dict(ROWS[3], id=999, **bad)

    def scenario(c):
        if not c.has_collection(cname):
            make(c, cname)
        return c.insert(cname, [row])

    q, l = pair.run(scenario)
    assert_same_error(q, l, milvus_code=1100)
    assert pair.quiver.query(cname, filter="id == 999") == []


def test_array_schema_errors(pair, cname):
    def scenario(c):
        s = MilvusClient.create_schema(auto_id=False)
        s.add_field("id", DataType.INT64, is_primary=True)
        s.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
        s.add_field("arr", DataType.ARRAY, element_type=DataType.INT64, max_capacity=5000)
        return c.create_collection(cname, schema=s)

    q, l = pair.run(scenario)
    assert_same_error(q, l, milvus_code=1100)


PG_URL = os.environ.get("QUIVER_PG_URL", "").strip()


@pytest.mark.skipif(not PG_URL, reason="QUIVER_PG_URL is not set")
def test_array_field_in_sql(quiver, cname):
    """To SQL an Array field is a JSONB column holding a JSON array."""
    psycopg = pytest.importorskip("psycopg")
    make(quiver, cname)
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        got = conn.execute(
            f'SELECT id, tags::text, nums::text FROM "{cname}" WHERE id IN (5, 6) ORDER BY id'
        ).fetchall()
    import json

    assert [(i, json.loads(t), json.loads(n)) for i, t, n in got] == [
        (r["id"], r["tags"], r["nums"]) for r in ROWS[5:7]
    ]


def test_recreating_with_another_element_type_is_an_error(pair, cname):
    def scenario(c):
        c.create_collection(cname, schema=schema())
        other = schema()
        for f in other.fields:
            if f.name == "nums":
                f.element_type = DataType.INT32
        return c.create_collection(cname, schema=other)

    q, l = pair.run(scenario)
    assert_same_error(q, l, milvus_code=1100)
