"""Collection aliases: create, describe, list, alter, drop, and reads and
writes through an alias. milvus-lite 2.x has no aliases (UNIMPLEMENTED);
its runs are then skipped; Quiver's never are."""

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


def error_code(outcome):
    assert outcome.exc is not None, f"expected an error, got {outcome.value!r}"
    return getattr(outcome.exc, "code", None)


def test_alias_guards(both, new_name):
    """A collection with aliases cannot be dropped, nor dropped through an
    alias; an alias cannot take a collection's name nor point at two
    collections; a missing alias is an error to describe or alter, and
    dropping one succeeds."""
    who, c = both
    a, b = new_name("guarded"), new_name("other")
    alias = alias_name()
    create_full(c, a, rows=ROWS_A[:5])
    create_full(c, b, rows=ROWS_B[:5])
    create_alias_or_skip(who, c, a, alias)
    try:
        assert c.describe_collection(a).get("aliases") == [alias]
        assert c.has_collection(alias)
        assert error_code(attempt(lambda: c.drop_collection(alias))) is not None
        assert error_code(attempt(lambda: c.drop_collection(a))) is not None
        assert c.has_collection(a)
        assert error_code(attempt(lambda: c.create_alias(b, alias))) is not None
        assert error_code(attempt(lambda: c.create_alias(a, b))) is not None
        # Creating the same alias for the same collection again is accepted.
        c.create_alias(a, alias)
        assert c.list_aliases(a)["aliases"] == [alias]
    finally:
        c.drop_alias(alias)
    missing = alias_name()
    assert error_code(attempt(lambda: c.describe_alias(missing))) is not None
    assert error_code(attempt(lambda: c.alter_alias(a, missing))) is not None
    c.drop_alias(missing)
    c.drop_collection(a)
    assert not c.has_collection(a)


def test_alias_names_follow_milvus_rules(quiver, new_name):
    coll = new_name("named")
    create_full(quiver, coll, rows=ROWS_A[:3])
    for bad in ["1abc", "a-b", "", "a b"]:
        out = attempt(lambda bad=bad: quiver.create_alias(coll, bad))
        assert error_code(out) == 1100, (bad, repr(out.exc))


def test_alias_follows_rename_and_index_ops(quiver, new_name):
    coll, renamed = new_name("before"), new_name("after")
    alias = alias_name()
    create_full(quiver, coll, rows=ROWS_A)
    quiver.create_alias(coll, alias)
    try:
        quiver.rename_collection(coll, renamed)
        assert quiver.describe_alias(alias)["collection_name"] == renamed
        assert quiver.describe_collection(alias)["collection_name"] == renamed
        assert [i for i in quiver.list_indexes(alias)] == quiver.list_indexes(renamed)
        assert quiver.get_collection_stats(alias)["row_count"] == len(ROWS_A)
        assert quiver.get_load_state(alias)["state"].name == "Loaded"
        quiver.flush(alias)
        everything = quiver.list_aliases()["aliases"]
        assert alias in everything
    finally:
        quiver.drop_alias(alias)
    assert alias not in quiver.list_aliases()["aliases"]
