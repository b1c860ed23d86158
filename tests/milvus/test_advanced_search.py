"""Range search, grouping search and hybrid search (not implemented in
Quiver yet), against the exact answer and milvus-lite.

Milvus' rules: a range search keeps range_filter <= d < radius for L2 and
radius < s <= range_filter for IP / COSINE; a grouping search returns the
best hit of each of the best `limit` groups; RRF fuses ranked lists with
1 / (k + rank), rank counted from 1."""

import math

import numpy as np
import pytest
from pymilvus import AnnSearchRequest, DataType, MilvusClient, RRFRanker, WeightedRanker

from milvus_helpers import (
    create_indexed,
    assert_matches_oracle,
    assert_search_equal,
    create_full,
    full_schema,
    hits_of,
    index_params,
    make_rows,
    queries,
    score,
)

ROWS = make_rows(200, seed=141)


def in_range(metric, s, radius, range_filter):
    if metric == "L2":
        return range_filter <= s < radius
    return radius < s <= range_filter


def range_truth(qs, metric, limit, radius, range_filter):
    base = np.array([r["vec"] for r in ROWS], dtype=np.float32)
    out = []
    for q in qs:
        s = score(metric, base, np.asarray(q, dtype=np.float32))
        order = np.argsort(s if metric == "L2" else -s, kind="stable")
        keep = [(ROWS[i]["id"], float(s[i])) for i in order if in_range(metric, s[i], radius, range_filter)]
        out.append(keep[:limit])
    return out


RANGE_CASES = [
    ("L2", 8.0, 2.0),
    ("IP", 1.0, 4.0),
    ("COSINE", 0.2, 0.8),
]


@pytest.mark.parametrize("metric,radius,range_filter", RANGE_CASES)
def test_range_search(pair, cname, metric, radius, range_filter):
    qs = queries(3, seed=142)
    params = {"metric_type": metric, "params": {"radius": radius, "range_filter": range_filter}}

    def scenario(c):
        create_full(c, cname, rows=ROWS, metric=metric)
        return c.search(cname, qs, limit=15, output_fields=["i64"], search_params=params)

    q, l = pair.run(scenario)
    got = q.unwrap("Quiver")
    assert_matches_oracle(got, range_truth(qs, metric, 15, radius, range_filter))
    if l.ok:
        assert_search_equal(got, l.value)


def group_truth(qs, metric, limit, field, group_size=1):
    base = np.array([r["vec"] for r in ROWS], dtype=np.float32)
    out = []
    for q in qs:
        s = score(metric, base, np.asarray(q, dtype=np.float32))
        order = np.argsort(s if metric == "L2" else -s, kind="stable")
        groups: dict = {}
        picked = []
        for i in order:
            g = ROWS[i][field]
            if g not in groups and len(groups) == limit:
                continue
            groups.setdefault(g, 0)
            if groups[g] < group_size:
                groups[g] += 1
                picked.append((ROWS[i]["id"], float(s[i])))
        out.append(picked)
    return out


@pytest.mark.parametrize("field", ["i64", "name", "flag"])
def test_group_by(pair, cname, field):
    qs = queries(2, seed=143)

    def scenario(c):
        create_full(c, cname, rows=ROWS, metric="L2")
        return c.search(cname, qs, limit=5, group_by_field=field, output_fields=[field],
                        search_params={"metric_type": "L2"})

    q, l = pair.run(scenario)
    got = q.unwrap("Quiver")
    for hits in got:
        values = [h["entity"][field] for h in hits]
        assert len(values) == len(set(values)), f"groups repeat: {values}"
    assert_matches_oracle(got, group_truth(qs, "L2", 5, field))
    if l.ok:
        assert_search_equal(got, l.value)


def test_group_by_group_size(pair, cname):
    qs = queries(1, seed=144)

    def scenario(c):
        create_full(c, cname, rows=ROWS, metric="IP")
        return c.search(cname, qs, limit=3, group_by_field="flag", group_size=2,
                        strict_group_size=True, output_fields=["flag"],
                        search_params={"metric_type": "IP"})

    # milvus-lite 2.5.1 ignores group_size (it answers 2 hits): oracle only.
    got = scenario(pair.quiver)
    truth = group_truth(qs, "IP", 3, "flag", group_size=2)
    assert sorted(h["id"] for h in hits_of(got)[0]) == sorted(i for i, _ in truth[0])


# ------------------------------------------------------------------- hybrid


def two_vector_rows():
    rng = np.random.default_rng(145)
    rows = make_rows(120, seed=146)
    for r in rows:
        r["vec2"] = rng.standard_normal(4).astype(np.float32).tolist()
    return rows


HROWS = two_vector_rows()


def create_two_vectors(c: MilvusClient, name: str):
    schema = full_schema()
    schema.add_field("vec2", DataType.FLOAT_VECTOR, dim=4)
    ip = index_params(c, "FLAT", "L2")
    ip.add_index(field_name="vec2", index_type="FLAT", metric_type="IP")
    create_indexed(c, name, schema, ip)
    c.insert(name, HROWS)
    c.load_collection(name)


def ranked(field, metric, q, limit):
    base = np.array([r[field] for r in HROWS], dtype=np.float32)
    s = score(metric, base, np.asarray(q, dtype=np.float32))
    order = np.argsort(s if metric == "L2" else -s, kind="stable")[:limit]
    return [(HROWS[i]["id"], float(s[i])) for i in order]


def test_hybrid_search_rrf(pair, cname):
    q1 = queries(1, seed=147)[0]
    q2 = queries(1, dim=4, seed=148)[0]

    def scenario(c):
        create_two_vectors(c, cname)
        reqs = [
            AnnSearchRequest([q1], "vec", {"metric_type": "L2"}, limit=10),
            AnnSearchRequest([q2], "vec2", {"metric_type": "IP"}, limit=10),
        ]
        return c.hybrid_search(cname, reqs, RRFRanker(60), limit=6, output_fields=["i64"])

    q, l = pair.run(scenario)
    got = q.unwrap("Quiver")
    fused: dict = {}
    for lst in (ranked("vec", "L2", q1, 10), ranked("vec2", "IP", q2, 10)):
        for rank, (pk, _) in enumerate(lst, start=1):
            fused[pk] = fused.get(pk, 0.0) + 1.0 / (60 + rank)
    best = sorted(fused.items(), key=lambda kv: -kv[1])[:6]
    got_hits = hits_of(got)[0]
    assert [round(h["distance"], 6) for h in got_hits] == [round(s, 6) for _, s in best]
    assert {h["id"] for h in got_hits if h["distance"] > best[-1][1] + 1e-9} == {
        pk for pk, s in best if s > best[-1][1] + 1e-9
    }
    if l.ok:
        assert [round(h["distance"], 6) for h in got_hits] == [
            round(h["distance"], 6) for h in hits_of(l.value)[0]
        ]


def test_hybrid_search_weighted(pair, cname):
    q1 = queries(1, seed=149)[0]
    q2 = queries(1, dim=4, seed=150)[0]

    def scenario(c):
        create_two_vectors(c, cname)
        reqs = [
            AnnSearchRequest([q1], "vec", {"metric_type": "L2"}, limit=20),
            AnnSearchRequest([q2], "vec2", {"metric_type": "IP"}, limit=20),
        ]
        return c.hybrid_search(cname, reqs, WeightedRanker(0.7, 0.3), limit=5)

    q, l = pair.run(scenario)
    got = q.unwrap("Quiver")
    norm = {"L2": lambda d: 1 - 2 * math.atan(d) / math.pi, "IP": lambda d: 0.5 + math.atan(d) / math.pi}
    fused: dict = {}
    for w, field, metric, qv in ((0.7, "vec", "L2", q1), (0.3, "vec2", "IP", q2)):
        for pk, s in ranked(field, metric, qv, 20):
            fused[pk] = fused.get(pk, 0.0) + w * norm[metric](s)
    best = sorted(fused.items(), key=lambda kv: -kv[1])[:5]
    assert [h["id"] for h in hits_of(got)[0]] == [pk for pk, _ in best]
    if l.ok:
        assert_search_equal(got, l.value, entity=False)


def test_search_two_vector_fields_by_anns_field(pair, cname):
    """Plain search on either vector field of a two-vector collection."""
    q1 = queries(2, seed=151)
    q2 = queries(2, dim=4, seed=152)

    def scenario(c):
        create_two_vectors(c, cname)
        a = c.search(cname, q1, anns_field="vec", limit=4, search_params={"metric_type": "L2"})
        b = c.search(cname, q2, anns_field="vec2", limit=4, search_params={"metric_type": "IP"},
                     output_fields=["i64"])
        return a, b

    q, l = pair.both_ok(scenario)
    assert_search_equal(q[0], l[0])
    assert_search_equal(q[1], l[1])
    assert_matches_oracle(q[1], [ranked("vec2", "IP", v, 4) for v in q2])
