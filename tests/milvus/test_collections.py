"""Collections through MilvusClient: connect, create/describe/has/list/drop,
load state, insert, statistics and flush — each compared with milvus-lite."""

from pymilvus import DataType, MilvusClient

from milvus_helpers import (
    create_indexed,
    DIM,
    VARCHAR_LEN,
    assert_rows_equal,
    assert_same_outcome,
    create_full,
    full_schema,
    hits_of,
    index_params,
    make_rows,
)


def fields_of(desc: dict) -> list[tuple]:
    """The comparable part of describe_collection's fields."""
    out = []
    for f in desc["fields"]:
        params = {k: int(v) if str(v).isdigit() else v for k, v in (f.get("params") or {}).items()}
        out.append(
            (
                f["name"],
                f["type"],
                bool(f.get("is_primary", False)),
                bool(f.get("auto_id", False)),
                params,
            )
        )
    return out


def test_connect_and_server_version(quiver):
    version = quiver.get_server_version()
    assert isinstance(version, str) and version
    assert isinstance(quiver.list_collections(), list)


def test_create_and_describe_custom_schema(pair, cname):
    def scenario(c: MilvusClient):
        c.create_collection(cname, schema=full_schema())
        return c.describe_collection(cname)

    q, l = pair.both_ok(scenario)
    assert fields_of(q) == fields_of(l)
    assert fields_of(q) == [
        ("id", DataType.INT64, True, False, {}),
        ("i64", DataType.INT64, False, False, {}),
        ("name", DataType.VARCHAR, False, False, {"max_length": VARCHAR_LEN}),
        ("f32", DataType.FLOAT, False, False, {}),
        ("f64", DataType.DOUBLE, False, False, {}),
        ("flag", DataType.BOOL, False, False, {}),
        ("meta", DataType.JSON, False, False, {}),
        ("vec", DataType.FLOAT_VECTOR, False, False, {"dim": DIM}),
    ]
    for key in ("collection_name", "auto_id", "enable_dynamic_field"):
        assert q[key] == l[key], f"{key}: quiver={q[key]!r} lite={l[key]!r}"


def test_has_list_drop(pair, cname):
    def scenario(c: MilvusClient):
        before = c.has_collection(cname)
        c.create_collection(cname, schema=full_schema())
        during = (c.has_collection(cname), cname in c.list_collections())
        c.drop_collection(cname)
        after = (c.has_collection(cname), cname in c.list_collections())
        return before, during, after

    q, l = pair.both_ok(scenario)
    assert q == l == (False, (True, True), (False, False))


def test_drop_missing_collection_is_not_an_error(pair, cname):
    q, l = pair.run(lambda c: c.drop_collection(cname))
    assert_same_outcome(q, l)


def test_create_same_collection_twice(pair, cname):
    def scenario(c: MilvusClient):
        c.create_collection(cname, schema=full_schema())
        c.create_collection(cname, schema=full_schema())
        return c.has_collection(cname)

    q, l = pair.run(scenario)
    assert_same_outcome(q, l)


def test_list_collections_sees_several(pair, new_name):
    names = [new_name("multi") for _ in range(3)]

    def scenario(c: MilvusClient):
        for n in names:
            c.create_collection(n, schema=full_schema())
        listed = c.list_collections()
        return sorted(n for n in names if n in listed)

    q, l = pair.both_ok(scenario)
    assert q == l == sorted(names)


def test_load_release_and_load_state(pair, cname):
    def scenario(c: MilvusClient):
        create_indexed(c, cname, full_schema(), index_params(c))
        c.load_collection(cname)
        loaded = str(c.get_load_state(cname)["state"])
        c.release_collection(cname)
        c.load_collection(cname)
        reloaded = str(c.get_load_state(cname)["state"])
        return loaded, reloaded

    q, l = pair.both_ok(scenario)
    assert q == l
    assert "Loaded" in q[0]


def test_insert_returns_count_and_ids(pair, cname):
    rows = make_rows(37, seed=3)

    def scenario(c: MilvusClient):
        create_indexed(c, cname, full_schema(), index_params(c))
        res = c.insert(cname, rows)
        return res["insert_count"], list(res["ids"])

    q, l = pair.both_ok(scenario)
    assert q == l == (37, [r["id"] for r in rows])


def test_insert_in_batches_then_query_all(pair, cname):
    rows = make_rows(120, seed=4)

    def scenario(c: MilvusClient):
        create_indexed(c, cname, full_schema(), index_params(c))
        c.load_collection(cname)
        for i in range(0, len(rows), 50):
            c.insert(cname, rows[i : i + 50])
        return c.query(cname, filter="id >= 0", output_fields=["*"], limit=1000)

    q, l = pair.both_ok(scenario)
    assert_rows_equal(q, l)
    assert len(q) == 120


def test_insert_single_dict(pair, cname):
    row = make_rows(1, seed=5)[0]

    def scenario(c: MilvusClient):
        create_full(c, cname, rows=[])
        c.insert(cname, row)
        return c.get(cname, ids=[row["id"]], output_fields=["i64", "name", "f32", "f64", "flag", "meta", "vec"])

    q, l = pair.both_ok(scenario)
    assert_rows_equal(q, l)


def test_collection_stats_row_count(pair, cname):
    def scenario(c: MilvusClient):
        create_full(c, cname, rows=make_rows(64, seed=6))
        return c.get_collection_stats(cname)

    q, l = pair.both_ok(scenario)
    assert q == l == {"row_count": 64}


def test_flush(pair, cname):
    def scenario(c: MilvusClient):
        create_full(c, cname, rows=make_rows(10, seed=7))
        c.flush(cname)
        return c.get_collection_stats(cname)["row_count"]

    q, l = pair.both_ok(scenario)
    assert q == l == 10


def test_values_round_trip_exactly(pair, cname):
    """Every scalar type and the vector come back as inserted."""
    rows = make_rows(25, seed=8)
    rows[0]["name"] = "ünïcødé ✓"
    rows[1]["name"] = ""
    rows[2]["meta"] = {"list": [1, 2.5, "x", None, True], "empty": {}}
    rows[3]["i64"] = 2**62
    rows[4]["i64"] = -(2**62)
    rows[5]["f64"] = 1e300

    def scenario(c: MilvusClient):
        create_full(c, cname, rows=rows)
        return c.query(cname, filter="id >= 0", output_fields=["*", "vec"], limit=100)

    q, l = pair.both_ok(scenario)
    assert_rows_equal(q, l)
    by_id = {r["id"]: r for r in q}
    assert by_id[0]["name"] == "ünïcødé ✓"
    assert by_id[3]["i64"] == 2**62
    assert by_id[2]["meta"] == rows[2]["meta"]


def test_varchar_primary_key(pair, cname):
    rows = [{"pk": f"key-{i:03d}", "n": i, "v": r["vec"]} for i, r in enumerate(make_rows(30, seed=9))]

    def scenario(c: MilvusClient):
        s = MilvusClient.create_schema(auto_id=False)
        s.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=32)
        s.add_field("n", DataType.INT64)
        s.add_field("v", DataType.FLOAT_VECTOR, dim=DIM)
        create_indexed(c, cname, s, index_params(c, field="v"))
        ins = c.insert(cname, rows)
        got = c.get(cname, ids=["key-003", "key-017", "nope"], output_fields=["n"])
        hits = c.search(cname, [rows[5]["v"]], limit=3, output_fields=["n"])
        c.delete(cname, ids=["key-000", "key-001"])
        left = c.query(cname, filter='pk like "key-00%"', output_fields=["n"])
        return list(ins["ids"]), got, hits, left

    q, l = pair.both_ok(scenario)
    assert q[0] == l[0] == [r["pk"] for r in rows]
    assert_rows_equal(q[1], l[1], pk="pk")
    assert [h["id"] for h in hits_of(q[2])[0]] == [h["id"] for h in hits_of(l[2])[0]]
    assert hits_of(q[2])[0][0]["id"] == "key-005"
    assert_rows_equal(q[3], l[3], pk="pk")


def test_nullable_field(both, cname):
    """Nullable scalar fields (milvus-lite 2.x refuses them: "MilvusLite
    doesn't support nullable"; its run is then skipped)."""
    import pytest

    from milvus_helpers import LITE_VERSION, attempt

    who, c = both
    rows = make_rows(20, seed=10)
    for r in rows[::3]:
        r["i64"] = None
    s = MilvusClient.create_schema(auto_id=False)
    s.add_field("id", DataType.INT64, is_primary=True)
    s.add_field("i64", DataType.INT64, nullable=True)
    s.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
    made = attempt(lambda: create_indexed(c, cname, s, index_params(c)))
    if who == "lite" and made.exc is not None and "support nullable" in str(made.exc):
        pytest.skip(f"milvus-lite {LITE_VERSION} has no nullable fields")
    made.unwrap(who)
    c.insert(cname, [{"id": r["id"], "i64": r["i64"], "vec": r["vec"]} for r in rows])
    nulls = c.query(cname, filter="i64 is null", output_fields=["i64"])
    assert sorted(r["id"] for r in nulls) == [r["id"] for r in rows if r["i64"] is None]
    assert all(r["i64"] is None for r in nulls)
    values = c.query(cname, filter="i64 is not null", output_fields=["i64"])
    assert sorted((r["id"], r["i64"]) for r in values) == [
        (r["id"], r["i64"]) for r in rows if r["i64"] is not None
    ]
