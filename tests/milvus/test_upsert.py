"""upsert (not implemented in Quiver yet), compared with milvus-lite and
with the exact answer."""

from milvus_helpers import (
    assert_matches_oracle,
    assert_rows_equal,
    assert_search_equal,
    create_full,
    exact_topk,
    make_rows,
    queries,
)

ROWS = make_rows(60, seed=121)
NEW = make_rows(20, seed=122, start=50)  # ids 50..69: 10 replace, 10 new


def merged():
    by_id = {r["id"]: r for r in ROWS}
    by_id.update({r["id"]: r for r in NEW})
    return [by_id[k] for k in sorted(by_id)]


def test_upsert_replaces_and_inserts(pair, cname):
    def scenario(c):
        create_full(c, cname, rows=ROWS)
        res = c.upsert(cname, NEW)
        rows = c.query(cname, filter="id >= 0", output_fields=["*", "vec"], limit=1000)
        return res["upsert_count"], rows

    q, l = pair.both_ok(scenario)
    assert q[0] == l[0] == 20
    assert_rows_equal(q[1], l[1])
    assert sorted(r["id"] for r in q[1]) == [r["id"] for r in merged()]
    by_id = {r["id"]: r for r in q[1]}
    assert by_id[55]["i64"] == NEW[5]["i64"]


def test_upsert_count_star(pair, cname):
    def scenario(c):
        create_full(c, cname, rows=ROWS)
        c.upsert(cname, NEW)
        c.upsert(cname, NEW[:3])
        return c.query(cname, filter="", output_fields=["count(*)"])[0]["count(*)"]

    q, l = pair.both_ok(scenario)
    assert q == l == 70


def test_search_sees_upserted_vectors(pair, cname):
    qs = queries(3, seed=123)

    def scenario(c):
        create_full(c, cname, rows=ROWS, metric="IP")
        c.upsert(cname, NEW)
        return c.search(cname, qs, limit=8, output_fields=["i64"])

    q, l = pair.both_ok(scenario)
    assert_search_equal(q, l)
    assert_matches_oracle(q, exact_topk(merged(), qs, "IP", 8))


def test_upsert_single_row_dict(pair, cname):
    def scenario(c):
        create_full(c, cname, rows=ROWS[:5])
        c.upsert(cname, dict(ROWS[2], name="replaced"))
        return c.get(cname, ids=[2], output_fields=["name", "i64"])

    q, l = pair.both_ok(scenario)
    assert_rows_equal(q, l)
    assert q[0]["name"] == "replaced"
