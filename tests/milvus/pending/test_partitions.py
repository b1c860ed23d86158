"""Partitions beyond _default (not implemented in Quiver yet).

Each test runs on Quiver and on milvus-lite against the same exact answer;
milvus-lite 2.x has no partitions (UNIMPLEMENTED), its runs are then
skipped — Quiver's never are."""

import pytest
from pymilvus import MilvusClient

from milvus_helpers import (
    LITE_VERSION,
    assert_matches_oracle,
    assert_rows_equal,
    assert_same_error,
    attempt,
    create_full,
    exact_topk,
    lite_lacks,
    make_rows,
    queries,
)

ROWS = make_rows(90, seed=101)
P1 = [r for r in ROWS if r["id"] % 3 == 0]
P2 = [r for r in ROWS if r["id"] % 3 == 1]
DEFAULT = [r for r in ROWS if r["id"] % 3 == 2]


def setup(who: str, c: MilvusClient, name: str):
    create_full(c, name, rows=[])
    first = attempt(lambda: c.create_partition(name, "p1"))
    if who == "lite" and lite_lacks(first):
        pytest.skip(f"milvus-lite {LITE_VERSION} has no partitions")
    first.unwrap(who)
    c.create_partition(name, "p2")
    c.insert(name, P1, partition_name="p1")
    c.insert(name, P2, partition_name="p2")
    c.insert(name, DEFAULT)
    c.load_collection(name)


def ids(rows):
    return sorted(r["id"] for r in rows)


def test_create_has_list_drop_partition(both, cname):
    who, c = both
    create_full(c, cname, rows=[])
    first = attempt(lambda: c.create_partition(cname, "p1"))
    if who == "lite" and lite_lacks(first):
        pytest.skip(f"milvus-lite {LITE_VERSION} has no partitions")
    first.unwrap(who)
    assert c.has_partition(cname, "p1")
    assert not c.has_partition(cname, "nope")
    assert sorted(c.list_partitions(cname)) == ["_default", "p1"]
    c.release_partitions(cname, ["p1"])
    c.drop_partition(cname, "p1")
    assert c.list_partitions(cname) == ["_default"]


def test_insert_and_query_by_partition(both, cname):
    who, c = both
    setup(who, c, cname)
    got = c.query(cname, filter="id >= 0", output_fields=["i64"], partition_names=["p1"])
    assert ids(got) == ids(P1)
    got = c.query(cname, filter="i64 > 0", output_fields=["i64"], partition_names=["p1", "p2"])
    assert ids(got) == ids(r for r in P1 + P2 if r["i64"] > 0)
    got = c.query(cname, filter="id >= 0", output_fields=["i64"], partition_names=["_default"])
    assert ids(got) == ids(DEFAULT)
    total = c.query(cname, filter="", output_fields=["count(*)"])[0]["count(*)"]
    assert total == len(ROWS)


def test_search_by_partition(both, cname):
    who, c = both
    setup(who, c, cname)
    qs = queries(3, seed=102)
    res = c.search(cname, qs, limit=5, partition_names=["p2"], search_params={"metric_type": "L2"})
    assert_matches_oracle(res, exact_topk(P2, qs, "L2", 5))
    res = c.search(cname, qs, limit=5, search_params={"metric_type": "L2"})
    assert_matches_oracle(res, exact_topk(ROWS, qs, "L2", 5))


def test_get_and_delete_in_partition(both, cname):
    who, c = both
    setup(who, c, cname)
    c.delete(cname, filter="i64 > 10", partition_name="p1")
    left = c.query(cname, filter="id >= 0", output_fields=["i64"], limit=1000)
    assert ids(left) == ids(r for r in ROWS if not (r in P1 and r["i64"] > 10))
    got = c.get(cname, ids=[P2[0]["id"]], partition_names=["p2"], output_fields=["i64"])
    assert [r["id"] for r in got] == [P2[0]["id"]]


def test_partition_stats_and_load_state(both, cname):
    who, c = both
    setup(who, c, cname)
    assert c.get_partition_stats(cname, "p1")["row_count"] == len(P1)
    c.release_partitions(cname, ["p2"])
    assert "NotLoad" in str(c.get_load_state(cname, partition_name="p2")["state"])
    c.load_partitions(cname, ["p2"])
    assert "Loaded" in str(c.get_load_state(cname, partition_name="p2")["state"])


def test_partitions_same_as_lite(pair, cname):
    def scenario(c):
        setup("either", c, cname)
        return c.query(cname, filter="flag == true", output_fields=["i64", "name"],
                       partition_names=["p1", "_default"])

    q, l = pair.run(scenario)
    got = q.unwrap("Quiver")
    if lite_lacks(l):
        assert ids(got) == ids(r for r in P1 + DEFAULT if r["flag"])
        return
    assert_rows_equal(got, l.unwrap("milvus-lite"))


def test_missing_partition_errors(pair, cname):
    def scenario(c):
        create_full(c, cname, rows=ROWS[:5])
        return c.query(cname, filter="id >= 0", partition_names=["no_such_partition"])

    q, l = pair.run(scenario)
    assert_same_error(q, l, milvus_code=200)
