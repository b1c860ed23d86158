"""The ORM API (connections, FieldSchema, CollectionSchema, Collection,
utility) on Quiver and on milvus-lite, checked against the exact answer and
against each other."""

import pytest
from pymilvus import Collection, CollectionSchema, DataType, FieldSchema, utility

from milvus_helpers import (
    DIM,
    SCALAR_FIELDS,
    assert_matches_oracle,
    exact_topk,
    make_rows,
    queries,
)

ROWS = make_rows(120, seed=81)


def orm_schema(dim=DIM):
    fields = [
        FieldSchema("id", DataType.INT64, is_primary=True),
        FieldSchema("i64", DataType.INT64),
        FieldSchema("name", DataType.VARCHAR, max_length=64),
        FieldSchema("f32", DataType.FLOAT),
        FieldSchema("f64", DataType.DOUBLE),
        FieldSchema("flag", DataType.BOOL),
        FieldSchema("meta", DataType.JSON),
        FieldSchema("vec", DataType.FLOAT_VECTOR, dim=dim),
    ]
    return CollectionSchema(fields, description="orm test")


def columns(rows):
    names = ["id", *SCALAR_FIELDS, "vec"]
    return [[r[n] for r in rows] for n in names]


def make(alias, name, rows=ROWS, index=("FLAT", "L2", {})):
    coll = Collection(name, schema=orm_schema(), using=alias)
    if rows:
        coll.insert(rows)
    index_type, metric, params = index
    coll.create_index("vec", {"index_type": index_type, "metric_type": metric, "params": params},
                      sync=False)  # no fixed 0.5 s wait for the build
    coll.load()
    return coll


def test_utility_has_list_drop(orm, cname):
    who, alias = orm
    assert not utility.has_collection(cname, using=alias)
    Collection(cname, schema=orm_schema(), using=alias)
    assert utility.has_collection(cname, using=alias)
    assert cname in utility.list_collections(using=alias)
    utility.drop_collection(cname, using=alias)
    assert not utility.has_collection(cname, using=alias)
    assert cname not in utility.list_collections(using=alias)


def test_schema_round_trip(orm, cname):
    who, alias = orm
    Collection(cname, schema=orm_schema(), using=alias)
    got = Collection(cname, using=alias).schema
    assert [(f.name, f.dtype, f.is_primary) for f in got.fields] == [
        (f.name, f.dtype, f.is_primary) for f in orm_schema().fields
    ]
    by_name = {f.name: f for f in got.fields}
    assert by_name["vec"].params.get("dim") == DIM
    assert by_name["name"].params.get("max_length") == 64


def test_insert_rows_and_num_entities(orm, cname):
    who, alias = orm
    coll = make(alias, cname)
    coll.flush()
    assert coll.num_entities == len(ROWS)


def test_insert_columns(orm, cname):
    who, alias = orm
    coll = Collection(cname, schema=orm_schema(), using=alias)
    res = coll.insert(columns(ROWS[:40]))
    assert res.insert_count == 40
    assert list(res.primary_keys) == [r["id"] for r in ROWS[:40]]
    coll.create_index("vec", {"index_type": "FLAT", "metric_type": "IP", "params": {}})
    coll.load()
    got = coll.query(expr="id >= 0", output_fields=["i64", "name"], limit=100)
    assert sorted((r["id"], r["i64"], r["name"]) for r in got) == [
        (r["id"], r["i64"], r["name"]) for r in ROWS[:40]
    ]


@pytest.mark.parametrize("metric", ["L2", "IP", "COSINE"])
def test_search(orm, cname, metric):
    who, alias = orm
    coll = make(alias, cname, index=("FLAT", metric, {}))
    qs = queries(3, seed=82)
    res = coll.search(qs, "vec", {"metric_type": metric, "params": {}}, limit=5,
                      output_fields=["i64"])
    hits = [[{"id": h.id, "distance": h.distance, "entity": {}} for h in per] for per in res]
    assert_matches_oracle(hits, exact_topk(ROWS, qs, metric, 5))
    by_id = {r["id"]: r for r in ROWS}
    for per in res:
        for h in per:
            assert h.entity.get("i64") == by_id[h.id]["i64"]


def test_search_with_expr(orm, cname):
    who, alias = orm
    coll = make(alias, cname)
    qs = queries(2, seed=83)
    res = coll.search(qs, "vec", {"metric_type": "L2"}, limit=4, expr="flag == true")
    hits = [[{"id": h.id, "distance": h.distance, "entity": {}} for h in per] for per in res]
    assert_matches_oracle(hits, exact_topk(ROWS, qs, "L2", 4, where=lambda r: r["flag"]))


def test_query(orm, cname):
    who, alias = orm
    coll = make(alias, cname)
    got = coll.query(expr="i64 > 20 and name like \"a%\"", output_fields=["i64", "name", "meta"])
    expected = [r for r in ROWS if r["i64"] > 20 and r["name"].startswith("a")]
    assert sorted(r["id"] for r in got) == [r["id"] for r in expected]
    by_id = {r["id"]: r for r in expected}
    for r in got:
        assert r["meta"] == by_id[r["id"]]["meta"]


def test_query_count(orm, cname):
    who, alias = orm
    coll = make(alias, cname)
    assert coll.query(expr="", output_fields=["count(*)"])[0]["count(*)"] == len(ROWS)


def test_index_describe_and_drop(orm, cname):
    who, alias = orm
    coll = make(alias, cname, index=("IVF_FLAT", "IP", {"nlist": 8}))
    assert coll.has_index()
    idx = coll.index()
    assert idx.field_name == "vec"
    assert idx.params.get("index_type") == "IVF_FLAT"
    assert idx.params.get("metric_type") == "IP"
    coll.release()
    coll.drop_index()
    if who == "quiver":  # milvus-lite 2.5.1 drops the index asynchronously
        assert not coll.has_index()


def test_delete(orm, cname):
    who, alias = orm
    coll = make(alias, cname)
    coll.delete("id in [0, 1, 2]")
    assert coll.query(expr="id in [0, 1, 2, 3]", output_fields=["id"]) == [{"id": 3}]


def test_drop(orm, cname):
    who, alias = orm
    coll = make(alias, cname, rows=ROWS[:5])
    coll.release()
    coll.drop()
    assert not utility.has_collection(cname, using=alias)
