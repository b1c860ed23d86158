"""Error cases: Quiver must fail like milvus-lite — the same pymilvus
exception class and the same ``code``. (With milvus-lite 3.x, whose codes
are its own, Quiver is held to the code Milvus answers, ``milvus_code``.)"""

import pytest
from pymilvus import MilvusClient

from milvus_helpers import (
    MAX_TOPK,
    describe_exc,
    assert_same_error,
    assert_same_outcome,
    create_full,
    full_schema,
    index_params,
    make_rows,
    queries,
)

ROWS = make_rows(30, seed=71)


def missing(cname):
    return cname + "_missing"


NOT_FOUND_CALLS = {
    "describe_collection": lambda c, n: c.describe_collection(n),
    "insert": lambda c, n: c.insert(n, ROWS[:2]),
    "search": lambda c, n: c.search(n, queries(1), limit=3),
    "query": lambda c, n: c.query(n, filter="id > 0"),
    "get": lambda c, n: c.get(n, ids=[1]),
    "delete": lambda c, n: c.delete(n, ids=[1]),
    "load_collection": lambda c, n: c.load_collection(n),
    "get_load_state": lambda c, n: c.get_load_state(n),
    "get_collection_stats": lambda c, n: c.get_collection_stats(n),
    "create_index": lambda c, n: c.create_index(n, index_params(c)),
    "describe_index": lambda c, n: c.describe_index(n, "vec"),
    "list_indexes": lambda c, n: c.list_indexes(n),
    "drop_index": lambda c, n: c.drop_index(n, "vec"),
}

# milvus-lite 2.5 answers these for a missing collection with success
# (flush) or 1100 (release); Milvus' proxy and Quiver answer 100.
QUIVER_ONLY_NOT_FOUND = {
    "release_collection": lambda c, n: c.release_collection(n),
    "flush": lambda c, n: c.flush(n),
}


@pytest.mark.parametrize("call", list(QUIVER_ONLY_NOT_FOUND))
def test_collection_not_found_quiver_only(quiver, cname, call):
    with pytest.raises(Exception) as info:
        QUIVER_ONLY_NOT_FOUND[call](quiver, missing(cname))
    assert getattr(info.value, "code", None) == 100, repr(info.value)


@pytest.mark.parametrize("call", list(NOT_FOUND_CALLS))
def test_collection_not_found(pair, cname, call):
    fn = NOT_FOUND_CALLS[call]
    q, l = pair.run(lambda c: fn(c, missing(cname)))
    assert_same_outcome(q, l, milvus_code=100)


def test_collection_not_found_code_is_100(quiver, cname):
    with pytest.raises(Exception) as info:
        quiver.describe_collection(missing(cname))
    assert getattr(info.value, "code", None) == 100


# Milvus' wording (its merr package; milvus-lite 2.5 says only "collection
# not found"), whichever RPC finds the collection missing.
WORDED_NOT_FOUND_CALLS = {
    "describe_collection": lambda c, n: c.describe_collection(n),
    "query": lambda c, n: c.query(n, filter="id > 0"),
    "flush": lambda c, n: c.flush(n),
    "compact": lambda c, n: c.compact(n),
}


@pytest.mark.parametrize("call", list(WORDED_NOT_FOUND_CALLS))
def test_collection_not_found_in_milvus_words(quiver, cname, call):
    with pytest.raises(Exception) as info:
        WORDED_NOT_FOUND_CALLS[call](quiver, missing(cname))
    assert getattr(info.value, "code", None) == 100, describe_exc(info.value)
    assert info.value.message == (
        f"collection not found[database=default][collection={missing(cname)}]"
    ), describe_exc(info.value)


def test_upsert_duplicate_keys_in_one_batch(quiver, cname):
    """Milvus 2.6 refuses a primary key repeated within one upsert batch
    (milvus-lite 2.5 accepts it, so Quiver alone)."""
    create_full(quiver, cname, rows=[])
    with pytest.raises(Exception) as info:
        quiver.upsert(cname, [ROWS[0], dict(ROWS[1], id=ROWS[0]["id"])])
    assert getattr(info.value, "code", None) == 1100, describe_exc(info.value)
    assert info.value.message == (
        "duplicate primary keys are not allowed in the same batch: invalid parameter"
    ), describe_exc(info.value)


def test_insert_wrong_dimension(pair, cname):
    def scenario(c: MilvusClient):
        create_full(c, cname, rows=[])
        bad = dict(ROWS[0], vec=[0.5] * 5)
        return c.insert(cname, [bad])

    q, l = pair.run(scenario)
    assert_same_error(q, l, milvus_code=1100)


def test_search_wrong_dimension(pair, cname):
    def scenario(c: MilvusClient):
        create_full(c, cname, rows=ROWS)
        return c.search(cname, [[0.1] * 5], limit=3)

    q, l = pair.run(scenario)
    assert_same_error(q, l, milvus_code=1100)


def test_query_unknown_output_field(pair, cname):
    def scenario(c: MilvusClient):
        create_full(c, cname, rows=ROWS)
        return c.query(cname, filter="id > 1", output_fields=["no_such_field"])

    q, l = pair.run(scenario)
    assert_same_error(q, l, milvus_code=1100)


def test_search_unknown_output_field(pair, cname):
    def scenario(c: MilvusClient):
        create_full(c, cname, rows=ROWS)
        return c.search(cname, queries(1), limit=3, output_fields=["no_such_field"])

    q, l = pair.run(scenario)
    assert_same_error(q, l, milvus_code=1100)


@pytest.mark.parametrize("expr", ["i64 >", "id >>> 1", "(id > 1", "nope == 3"])
def test_search_malformed_filter(pair, cname, expr):
    def scenario(c: MilvusClient):
        create_full(c, cname, rows=ROWS)
        return c.search(cname, queries(1), limit=3, filter=expr)

    q, l = pair.run(scenario)
    assert_same_error(q, l, milvus_code=1100)


def test_delete_malformed_filter(pair, cname):
    def scenario(c: MilvusClient):
        create_full(c, cname, rows=ROWS)
        return c.delete(cname, filter="i64 >")

    q, l = pair.run(scenario)
    assert_same_error(q, l, milvus_code=1100)


def test_topk_above_limit(pair, cname):
    def scenario(c: MilvusClient):
        create_full(c, cname, rows=ROWS)
        return c.search(cname, queries(1), limit=MAX_TOPK + 1)

    q, l = pair.run(scenario)
    assert_same_error(q, l, milvus_code=1100)


def test_topk_at_limit_is_fine(pair, cname):
    def scenario(c: MilvusClient):
        create_full(c, cname, rows=ROWS)
        return len(c.search(cname, queries(1), limit=MAX_TOPK)[0])

    q, l = pair.both_ok(scenario)
    assert q == l == len(ROWS)


def test_offset_plus_limit_above_topk(pair, cname):
    def scenario(c: MilvusClient):
        create_full(c, cname, rows=ROWS)
        return c.search(cname, queries(1), limit=MAX_TOPK, offset=1)

    q, l = pair.run(scenario)
    assert_same_error(q, l, milvus_code=1100)


def test_drop_missing_index(pair, cname):
    def scenario(c: MilvusClient):
        create_full(c, cname, rows=ROWS)
        c.release_collection(cname)
        return c.drop_index(cname, "no_such_index")

    q, l = pair.run(scenario)
    assert_same_outcome(q, l, milvus_code=700)


def test_index_not_found(orm, cname):
    """utility.index_building_progress on an index that does not exist:
    code 700 (IndexNotFound)."""
    from pymilvus import Collection, utility

    who, alias = orm
    Collection(cname, schema=full_schema(), using=alias)
    with pytest.raises(Exception) as info:
        utility.index_building_progress(cname, index_name="no_such_index", using=alias)
    assert getattr(info.value, "code", None) == 700, f"{who}: {describe_exc(info.value)}"


def test_orm_collection_index_missing(quiver, uris, cname):
    """Collection.index() without an index raises IndexNotExistException.
    (milvus-lite 2.5.1 answers AmbiguousIndexName here, so Quiver alone.)"""
    from pymilvus import Collection, connections
    from pymilvus.exceptions import IndexNotExistException

    connections.connect("errs_index", uri=uris["quiver"])
    try:
        coll = Collection(cname, schema=full_schema(), using="errs_index")
        with pytest.raises(IndexNotExistException):
            coll.index()
    finally:
        connections.disconnect("errs_index")


def test_metric_mismatch(pair, cname):
    def scenario(c: MilvusClient):
        create_full(c, cname, rows=ROWS, metric="L2")
        return c.search(cname, queries(1), limit=3, search_params={"metric_type": "IP"})

    q, l = pair.run(scenario)
    assert_same_error(q, l, milvus_code=1100)


def test_varchar_too_long(pair, cname):
    def scenario(c: MilvusClient):
        create_full(c, cname, rows=[])
        return c.insert(cname, [dict(ROWS[0], name="x" * 65)])

    q, l = pair.run(scenario)
    assert_same_error(q, l, milvus_code=1100)


def test_insert_missing_field(pair, cname):
    def scenario(c: MilvusClient):
        create_full(c, cname, rows=[])
        row = dict(ROWS[0])
        del row["f64"]
        return c.insert(cname, [row])

    q, l = pair.run(scenario)
    assert_same_error(q, l)


def test_insert_duplicate_primary_key_keeps_one_row(pair, cname):
    """Milvus does not check primary-key uniqueness on insert."""

    def scenario(c: MilvusClient):
        create_full(c, cname, rows=ROWS[:3])
        return c.insert(cname, [dict(ROWS[0], i64=999)])["insert_count"]

    q, l = pair.run(scenario)
    assert_same_outcome(q, l)


def test_create_collection_without_vector_field(pair, cname):
    from pymilvus import DataType

    def scenario(c: MilvusClient):
        s = MilvusClient.create_schema(auto_id=False)
        s.add_field("id", DataType.INT64, is_primary=True)
        s.add_field("x", DataType.INT64)
        return c.create_collection(cname, schema=s)

    q, l = pair.run(scenario)
    assert_same_error(q, l, milvus_code=1100)


def test_create_collection_varchar_without_max_length(pair, cname):
    def scenario(c: MilvusClient):
        schema = full_schema()
        for f in schema.fields:
            if f.name == "name":
                f.params.pop("max_length", None)
        return c.create_collection(cname, schema=schema)

    q, l = pair.run(scenario)
    assert_same_error(q, l, milvus_code=1100)


def test_create_collection_same_name_different_schema(pair, cname):
    def scenario(c: MilvusClient):
        c.create_collection(cname, schema=full_schema())
        return c.create_collection(cname, schema=full_schema(dim=16))

    q, l = pair.run(scenario)
    assert_same_outcome(q, l)


def test_search_unknown_anns_field(pair, cname):
    def scenario(c: MilvusClient):
        create_full(c, cname, rows=ROWS)
        return c.search(cname, queries(1), limit=3, anns_field="nope")

    q, l = pair.run(scenario)
    assert_same_error(q, l, milvus_code=1100)
