"""Collection aliases and rename_collection (not implemented in Quiver
yet). milvus-lite 2.x lacks both (UNIMPLEMENTED); its runs are then
skipped — Quiver's never are."""

import uuid

import pytest

from milvus_helpers import (
    LITE_VERSION,
    assert_matches_oracle,
    attempt,
    create_full,
    exact_topk,
    lite_lacks,
    make_rows,
    queries,
)

ROWS_A = make_rows(40, seed=111)
ROWS_B = make_rows(25, seed=112, start=1000)


def alias_name():
    return f"al_{uuid.uuid4().hex[:10]}"


def create_alias_or_skip(who, c, coll, alias):
    first = attempt(lambda: c.create_alias(coll, alias))
    if who == "lite" and lite_lacks(first):
        pytest.skip(f"milvus-lite {LITE_VERSION} has no aliases")
    first.unwrap(who)


def ids(rows):
    return sorted(r["id"] for r in rows)


def test_create_describe_list_drop_alias(both, new_name):
    who, c = both
    coll = new_name("aliased")
    alias = alias_name()
    create_full(c, coll, rows=ROWS_A)
    create_alias_or_skip(who, c, coll, alias)
    try:
        desc = c.describe_alias(alias)
        assert desc["alias"] == alias and desc["collection_name"] == coll
        assert alias in c.list_aliases(coll)["aliases"]
        assert c.describe_collection(alias)["collection_name"] == coll
    finally:
        c.drop_alias(alias)
    assert alias not in c.list_aliases(coll)["aliases"]


def test_read_and_write_through_alias(both, new_name):
    who, c = both
    coll = new_name("aliased")
    alias = alias_name()
    create_full(c, coll, rows=ROWS_A)
    create_alias_or_skip(who, c, coll, alias)
    try:
        c.insert(alias, ROWS_B[:5])
        got = c.query(alias, filter="id >= 0", output_fields=["i64"], limit=1000)
        assert ids(got) == ids(ROWS_A + ROWS_B[:5])
        qs = queries(2, seed=113)
        res = c.search(alias, qs, limit=4, search_params={"metric_type": "L2"})
        assert_matches_oracle(res, exact_topk(ROWS_A + ROWS_B[:5], qs, "L2", 4))
        c.delete(alias, ids=[ROWS_A[0]["id"]])
        assert c.get(coll, ids=[ROWS_A[0]["id"]]) == []
    finally:
        c.drop_alias(alias)


def test_alter_alias_switches_collection(both, new_name):
    who, c = both
    a, b = new_name("first"), new_name("second")
    alias = alias_name()
    create_full(c, a, rows=ROWS_A)
    create_full(c, b, rows=ROWS_B)
    create_alias_or_skip(who, c, a, alias)
    try:
        assert ids(c.query(alias, filter="id >= 0", limit=1000)) == ids(ROWS_A)
        c.alter_alias(b, alias)
        assert ids(c.query(alias, filter="id >= 0", limit=1000)) == ids(ROWS_B)
        assert c.describe_alias(alias)["collection_name"] == b
    finally:
        c.drop_alias(alias)


def test_alias_of_missing_collection_fails(both, cname):
    who, c = both
    out = attempt(lambda: c.create_alias(cname + "_missing", alias_name()))
    if who == "lite" and lite_lacks(out):
        pytest.skip(f"milvus-lite {LITE_VERSION} has no aliases")
    assert out.exc is not None and getattr(out.exc, "code", None) == 100, repr(out.exc)
