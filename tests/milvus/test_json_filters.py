"""Filters on JSON fields (`meta["k"]`, nested paths, json_contains) — not
supported by Quiver's filter translator yet. Checked against a Python
oracle, with milvus-lite's answer shown alongside."""

import pytest

from milvus_helpers import LITE_VERSION, attempt, create_full, describe_exc, make_rows

ROWS = make_rows(80, seed=181)
for r in ROWS:
    r["meta"]["tags"] = [r["meta"]["tag"], f"t{r['id'] % 5}"]

CASES = [
    ('meta["k"] == 1', lambda r: r["meta"]["k"] == 1),
    ('meta["k"] >= 2', lambda r: r["meta"]["k"] >= 2),
    ('meta["tag"] == "alpha"', lambda r: r["meta"]["tag"] == "alpha"),
    ('meta["tag"] in ["beta", "gamma"]', lambda r: r["meta"]["tag"] in ("beta", "gamma")),
    ('meta["nested"]["x"] > 60', lambda r: r["meta"]["nested"]["x"] > 60),
    ('meta["tag"] like "al%"', lambda r: r["meta"]["tag"].startswith("al")),
    ('json_contains(meta["tags"], "t3")', lambda r: "t3" in r["meta"]["tags"]),
    ('json_contains_any(meta["tags"], ["t1", "t2"])', lambda r: bool({"t1", "t2"} & set(r["meta"]["tags"]))),
]


@pytest.fixture(scope="module")
def json_coll(quiver, lite):
    name = f"jsonf_{id(ROWS) % 100000}"
    made = {}
    for who, c in (("quiver", quiver), ("lite", lite)):
        c.drop_collection(name)
        made[who] = attempt(lambda c=c: create_full(c, name, rows=ROWS))
    yield name, made
    for c in (quiver, lite):
        try:
            c.drop_collection(name)
        except Exception:  # noqa: BLE001
            pass


@pytest.mark.parametrize("expr,pred", CASES, ids=[c[0] for c in CASES])
def test_json_filter(quiver, lite, json_coll, expr, pred):
    name, made = json_coll
    made["quiver"].unwrap("Quiver (creating the collection)")
    expected = sorted(r["id"] for r in ROWS if pred(r))

    def run(c):
        return sorted(r["id"] for r in c.query(name, filter=expr, output_fields=["id"], limit=1000))

    l = attempt(lambda: run(lite)) if made["lite"].ok else made["lite"]
    lite_says = l.value if l.ok else describe_exc(l.exc)
    q = attempt(lambda: run(quiver))
    assert q.ok, f"Quiver rejected {expr!r}: {describe_exc(q.exc)}; milvus-lite {LITE_VERSION}: {lite_says}"
    assert q.value == expected, f"{expr!r}: Quiver {q.value} != oracle {expected}; lite: {lite_says}"
