"""Partitions, the partition key and load state.

Each test runs on Quiver and on milvus-lite against the same exact answer;
milvus-lite 2.x has no partition RPCs (UNIMPLEMENTED) and does not enforce
load state, its runs are then skipped (or the test checks Quiver alone,
saying so) — Quiver's never are."""

import struct

import mmh3
import pytest
from pymilvus import DataType, MilvusClient

from milvus_helpers import (
    LITE_VERSION,
    assert_matches_oracle,
    assert_rows_equal,
    assert_same_error,
    attempt,
    create_full,
    exact_topk,
    full_schema,
    index_params,
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


def _code(call) -> int:
    with pytest.raises(Exception) as info:
        call()
    return getattr(info.value, "code", None)


def test_partition_names_and_idempotence(quiver, cname):
    """Quiver alone: milvus-lite 2.x has no CreatePartition."""
    create_full(quiver, cname, rows=[])
    quiver.create_partition(cname, "p1")
    quiver.create_partition(cname, "p1")  # existing: succeeds, as in Milvus
    assert quiver.list_partitions(cname) == ["_default", "p1"]
    for bad in ["-p", "a b", "", "x" * 256]:
        assert _code(lambda: quiver.create_partition(cname, bad)) == 1100, bad
    assert _code(lambda: quiver.drop_partition(cname, "_default")) == 1100
    quiver.drop_partition(cname, "never_created")  # succeeds, as in Milvus
    assert _code(lambda: quiver.insert(cname, ROWS[:1], partition_name="nope")) == 200
    assert _code(lambda: quiver.get_partition_stats(cname, "nope")) == 200
    assert _code(lambda: quiver.create_partition("no_such_collection", "p")) == 100
    stats = quiver.describe_collection(cname)
    assert stats["num_partitions"] == 2
    # The hidden partition column is no field.
    assert "$partition" not in [f["name"] for f in stats["fields"]]
    assert _code(lambda: quiver.query(cname, filter="id >= 0", output_fields=["$partition"])) == 1100


def test_upsert_moves_rows_between_partitions(quiver, cname):
    """Quiver alone: an upsert replaces the row with its key in whichever
    partition it was, like Milvus' delete-then-insert."""
    setup("quiver", quiver, cname)
    moved = dict(P1[0], i64=1000)
    quiver.upsert(cname, [moved], partition_name="p2")
    got = quiver.query(cname, filter=f"id == {moved['id']}", output_fields=["i64"], partition_names=["p2"])
    assert [(r["id"], r["i64"]) for r in got] == [(moved["id"], 1000)]
    assert quiver.query(cname, filter=f"id == {moved['id']}", partition_names=["p1"]) == []
    quiver.upsert(cname, [moved])  # no partition: back to _default
    assert ids(quiver.query(cname, filter=f"id == {moved['id']}", partition_names=["_default"])) == [moved["id"]]
    # A partial update leaves the row where it is unless told otherwise.
    quiver.upsert(cname, [{"id": P2[1]["id"], "i64": 7}], partial_update=True)
    got = quiver.query(cname, filter=f"id == {P2[1]['id']}", output_fields=["i64"], partition_names=["p2"])
    assert [r["i64"] for r in got] == [7]


def test_drop_partition_removes_its_rows(quiver, cname):
    """Quiver alone: milvus-lite 2.x has no DropPartition."""
    setup("quiver", quiver, cname)
    quiver.release_partitions(cname, ["p1"])
    quiver.drop_partition(cname, "p1")
    assert quiver.list_partitions(cname) == ["_default", "p2"]
    left = quiver.query(cname, filter="id >= 0", limit=1000)
    assert ids(left) == ids(P2 + DEFAULT)
    # A partition of the same name is new and empty.
    quiver.create_partition(cname, "p1")
    assert quiver.get_partition_stats(cname, "p1")["row_count"] == 0


def test_released_collection_refuses_reads(quiver, cname):
    """Quiver alone: milvus-lite 2.x serves reads of a released collection;
    Milvus answers 101 (collection not loaded) until it is loaded again."""
    create_full(quiver, cname, rows=ROWS)
    quiver.release_collection(cname)
    assert "NotLoad" in str(quiver.get_load_state(cname)["state"])
    assert _code(lambda: quiver.query(cname, filter="id >= 0")) == 101
    assert _code(lambda: quiver.search(cname, queries(1), limit=3)) == 101
    quiver.insert(cname, make_rows(1, seed=9, start=1000))  # writes need no load
    quiver.load_collection(cname)
    assert len(quiver.query(cname, filter="id >= 0", limit=1000)) == len(ROWS) + 1


def test_partly_loaded_collection_reads_loaded_partitions(quiver, cname):
    """Quiver alone: with p2 released, reads without partition names see
    the loaded partitions; naming p2 is 201 (partition not loaded); a
    partition created meanwhile is not loaded."""
    setup("quiver", quiver, cname)
    quiver.release_partitions(cname, ["p2"])
    assert "Loaded" in str(quiver.get_load_state(cname)["state"])
    assert ids(quiver.query(cname, filter="id >= 0", limit=1000)) == ids(P1 + DEFAULT)
    qs = queries(2, seed=103)
    res = quiver.search(cname, qs, limit=4, search_params={"metric_type": "L2"})
    assert_matches_oracle(res, exact_topk(P1 + DEFAULT, qs, "L2", 4))
    assert _code(lambda: quiver.query(cname, filter="id >= 0", partition_names=["p2"])) == 201
    quiver.create_partition(cname, "p3")
    assert "NotLoad" in str(quiver.get_load_state(cname, partition_name="p3")["state"])
    quiver.load_collection(cname)
    assert "Loaded" in str(quiver.get_load_state(cname, partition_name="p3")["state"])
    assert ids(quiver.query(cname, filter="id >= 0", limit=1000)) == ids(ROWS)


def _key_schema(key_type):
    schema = full_schema()
    if key_type == DataType.INT64:
        schema.add_field("tenant", DataType.INT64, is_partition_key=True)
    else:
        schema.add_field("tenant", DataType.VARCHAR, max_length=32, is_partition_key=True)
    return schema


def _key_rows(key_type):
    rows = make_rows(80, seed=104)
    for r in rows:
        r["tenant"] = r["id"] * 7 - 100 if key_type == DataType.INT64 else f"tenant-{r['id'] % 13}"
    return rows


def _milvus_partition(key, n):
    """Milvus' hash of a partition key: murmur3 of an Int64's little-endian
    bytes (top bit cleared), CRC-32 of a VarChar's first 100 bytes."""
    import zlib

    if isinstance(key, int):
        return (mmh3.hash(struct.pack("<q", key), 0, signed=False) & 0x7FFFFFFF) % n
    return zlib.crc32(key.encode()[:100]) % n


@pytest.mark.parametrize("key_type", [DataType.INT64, DataType.VARCHAR])
def test_partition_key(both, cname, key_type):
    who, c = both
    rows = _key_rows(key_type)
    c.create_collection(cname, schema=_key_schema(key_type), num_partitions=4)
    c.create_index(cname, index_params(c), sync=False)
    c.load_collection(cname)
    c.insert(cname, rows)
    fields = {f["name"]: f for f in c.describe_collection(cname)["fields"]}
    assert fields["tenant"].get("is_partition_key") is True
    if who == "lite":
        pytest.skip("milvus-lite 2.5.1 cannot filter on a partition key field "
                    "(its expression parser finds no primary key) and has no partition RPCs")
    # Filters on the key are ordinary filters.
    pick = rows[5]["tenant"]
    lit = pick if key_type == DataType.INT64 else f'"{pick}"'
    got = c.query(cname, filter=f"tenant == {lit}", output_fields=["tenant"])
    assert ids(got) == ids(r for r in rows if r["tenant"] == pick)
    qs = queries(2, seed=105)
    res = c.search(cname, qs, limit=3, filter=f"tenant == {lit}", search_params={"metric_type": "L2"})
    assert_matches_oracle(res, exact_topk([r for r in rows if r["tenant"] == pick], qs, "L2", 3))
    names = [f"_default_{i}" for i in range(4)]
    assert c.list_partitions(cname) == names
    assert c.describe_collection(cname)["num_partitions"] == 4
    counts = [c.get_partition_stats(cname, n)["row_count"] for n in names]
    expected = [sum(1 for r in rows if _milvus_partition(r["tenant"], 4) == i) for i in range(4)]
    assert counts == expected
    assert _code(lambda: c.create_partition(cname, "p1")) == 1100
    assert _code(lambda: c.drop_partition(cname, "_default_0")) == 1100
    assert _code(lambda: c.insert(cname, rows[:1], partition_name="_default_0")) == 1100
    assert _code(lambda: c.query(cname, filter="id >= 0", partition_names=["_default_1"])) == 1100


def test_partition_key_schema_errors(quiver, cname):
    """Quiver alone (milvus-lite 2.x accepts some of these)."""
    def schema_with(add):
        s = MilvusClient.create_schema()
        s.add_field("id", DataType.INT64, is_primary=True)
        s.add_field("vec", DataType.FLOAT_VECTOR, dim=4)
        add(s)
        return s

    bad = [
        schema_with(lambda s: s.add_field("k", DataType.DOUBLE, is_partition_key=True)),
        schema_with(lambda s: s.add_field("k", DataType.VARCHAR, max_length=8,
                                          is_partition_key=True, nullable=True)),
    ]
    for schema in bad:
        with pytest.raises(Exception) as info:
            quiver.create_collection(cname, schema=schema)
        assert getattr(info.value, "code", None) in (1, 1100), repr(info.value)
        assert not quiver.has_collection(cname)
    plain = schema_with(lambda s: None)
    assert _code(lambda: quiver.create_collection(cname, schema=plain, num_partitions=8)) == 1100
    too_many = schema_with(lambda s: s.add_field("k", DataType.INT64, is_partition_key=True))
    assert _code(lambda: quiver.create_collection(cname, schema=too_many, num_partitions=5000)) == 1100
    assert not quiver.has_collection(cname)


def test_loaded_partition_cannot_be_dropped(quiver, cname):
    """Quiver alone (milvus-lite 2.x has no partitions): as in Milvus, a
    loaded partition must be released before it is dropped."""
    setup("quiver", quiver, cname)
    assert _code(lambda: quiver.drop_partition(cname, "p1")) == 1100
    assert quiver.has_partition(cname, "p1")
    quiver.release_partitions(cname, ["p1"])
    quiver.drop_partition(cname, "p1")
    assert not quiver.has_partition(cname, "p1")


def test_hidden_column_is_no_group_by_field_and_ids_respect_partitions(quiver, cname):
    """Quiver alone: `$partition` cannot be grouped by, and a search by
    primary keys finds only keys in the partitions searched."""
    setup("quiver", quiver, cname)
    qs = queries(1, seed=106)
    assert _code(lambda: quiver.search(cname, qs, limit=3, group_by_field="$partition")) == 1100
    res = quiver.search(cname, ids=[P1[0]["id"]], limit=3, partition_names=["p1"],
                        search_params={"metric_type": "L2"})
    assert res[0][0]["id"] == P1[0]["id"]
    assert _code(lambda: quiver.search(cname, ids=[P2[0]["id"]], limit=3,
                                       partition_names=["p1"])) == 1100
