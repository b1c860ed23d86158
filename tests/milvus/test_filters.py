"""Milvus filter expressions, checked through query() against a Python
oracle of the same predicate, with milvus-lite's answer shown alongside.

The oracle is the reference here because milvus-lite itself diverges from
Milvus on some valid expressions (milvus-lite 2.5.1 rejects `not (...)` and
a bare bool field, and evaluates `30 > x >= 5` as `5 <= x <= 30`;
milvus-lite 3.x rejects chained comparisons and `%`)."""

from __future__ import annotations

import math
import re

import pytest

from milvus_helpers import (
    LITE_VERSION,
    WORDS,
    assert_same_error,
    attempt,
    create_full,
    describe_exc,
    make_rows,
)

ROWS = make_rows(160, seed=61)
ROWS[10]["name"] = "a_b"
ROWS[11]["name"] = "axb"
ROWS[12]["name"] = "100%"
ROWS[13]["name"] = "back\\slash"


def like(pattern: str):
    rx = "".join(".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern)
    return lambda s: re.fullmatch(rx, s, flags=re.DOTALL) is not None


def cmod(a: int, b: int) -> int:
    """C's (truncating) remainder, as Milvus computes `%`."""
    return int(math.fmod(a, b))


FILTERS = [
    ("i64 > 10", lambda r: r["i64"] > 10),
    ("i64 >= 10 and i64 < 20", lambda r: 10 <= r["i64"] < 20),
    ("10 < i64 <= 20", lambda r: 10 < r["i64"] <= 20),
    ("30 > i64 >= 5", lambda r: 5 <= r["i64"] < 30),
    ("-5 <= f32 < 2.5", lambda r: -5 <= r["f32"] < 2.5),
    ("i64 == 3 or i64 == 4", lambda r: r["i64"] in (3, 4)),
    ("i64 != 3 && flag == true", lambda r: r["i64"] != 3 and r["flag"]),
    ("i64 < 0 || f32 > 5.0", lambda r: r["i64"] < 0 or r["f32"] > 5.0),
    ("not (i64 > 0)", lambda r: not r["i64"] > 0),
    ("!(i64 > 0)", lambda r: not r["i64"] > 0),
    ("not (i64 > 0 and flag == true)", lambda r: not (r["i64"] > 0 and r["flag"])),
    ("i64 > 0 and not (flag == true)", lambda r: r["i64"] > 0 and not r["flag"]),
    ("not (i64 > 0) or not (f32 > 0)", lambda r: not r["i64"] > 0 or not r["f32"] > 0),
    ("i64 in [1, 2, 3, 30]", lambda r: r["i64"] in (1, 2, 3, 30)),
    ("i64 not in [1, 2, 3]", lambda r: r["i64"] not in (1, 2, 3)),
    ("name in [\"alpha0\", 'beta1']", lambda r: r["name"] in ("alpha0", "beta1")),
    ('name not in ["alpha0", "beta1"]', lambda r: r["name"] not in ("alpha0", "beta1")),
    ('name like "al%"', lambda r: like("al%")(r["name"])),
    ('name like "al_pha%"', lambda r: like("al_pha%")(r["name"])),
    ('name like "%ph%"', lambda r: like("%ph%")(r["name"])),
    ('name like "a_b%"', lambda r: like("a_b%")(r["name"])),
    ('name like "a_b"', lambda r: like("a_b")(r["name"])),
    ("name like 'Alpha%'", lambda r: like("Alpha%")(r["name"])),
    ('name like "%5"', lambda r: like("%5")(r["name"])),
    ('name like "_eta_"', lambda r: like("_eta_")(r["name"])),
    ('name like "%"', lambda r: True),
    ("name == \"o'neil2\"", lambda r: r["name"] == "o'neil2"),
    ("name == 'say \"hi\"0'", lambda r: r["name"] == 'say "hi"0'),
    ('name == "say \\"hi\\"0"', lambda r: r["name"] == 'say "hi"0'),
    ("name == 'o\\'neil2'", lambda r: r["name"] == "o'neil2"),
    ('name > "beta"', lambda r: r["name"].encode() > b"beta"),
    ('name <= "alpha3"', lambda r: r["name"].encode() <= b"alpha3"),
    ("i64 + 2 == 12", lambda r: r["i64"] + 2 == 12),
    ("i64 - 3 != 7", lambda r: r["i64"] - 3 != 7),
    ("i64 * 2 == 20", lambda r: r["i64"] * 2 == 20),
    ("i64 % 3 == 0", lambda r: cmod(r["i64"], 3) == 0),
    ("i64 % 5 == -2", lambda r: cmod(r["i64"], 5) == -2),
    ("i64 % 5 != 1", lambda r: cmod(r["i64"], 5) != 1),
    ("f32 * 2 == 5.0", lambda r: r["f32"] * 2 == 5.0),
    ("f64 > 0.5", lambda r: r["f64"] > 0.5),
    ("f64 > 1e-1", lambda r: r["f64"] > 0.1),
    ("f32 == 2.5", lambda r: r["f32"] == 2.5),
    ("f32 >= -1.25", lambda r: r["f32"] >= -1.25),
    ("i64 > 0x10", lambda r: r["i64"] > 16),
    ("i64 == -3", lambda r: r["i64"] == -3),
    ("i64 >= -20 && i64 <= -10", lambda r: -20 <= r["i64"] <= -10),
    ("flag", lambda r: r["flag"]),
    ("flag == false", lambda r: not r["flag"]),
    ("flag == True", lambda r: r["flag"]),
    ("not flag", lambda r: not r["flag"]),
    (
        'i64 > 5 and not (name like "al%") or f32 < -5',
        lambda r: (r["i64"] > 5 and not like("al%")(r["name"])) or r["f32"] < -5,
    ),
    (
        "(i64 > 5 or i64 < -5) and (flag == true or f32 > 0)",
        lambda r: (r["i64"] > 5 or r["i64"] < -5) and (r["flag"] or r["f32"] > 0),
    ),
    ("i64 > 5 and i64 < 3", lambda r: False),
    ("id in []", lambda r: False),
    ("id not in []", lambda r: True),
    ("id in [3, 5] or id == 7", lambda r: r["id"] in (3, 5, 7)),
    ("i64 in [1, 2, 3] and name like \"%a%\"", lambda r: r["i64"] in (1, 2, 3) and "a" in r["name"]),
    ("i64 > 5 AND i64 < 9", lambda r: 5 < r["i64"] < 9),
    ("i64 < -15 OR i64 > 35", lambda r: r["i64"] < -15 or r["i64"] > 35),
    ("i64 >= 0 and i64 <= 5 and f32 > 0 and flag == false", lambda r: 0 <= r["i64"] <= 5 and r["f32"] > 0 and not r["flag"]),
    # Beyond Milvus 2.5 (which accepts arithmetic only under == / !=):
    ("i64 - 1 > 10", lambda r: r["i64"] - 1 > 10),
    ("i64 * 2 < 10", lambda r: r["i64"] * 2 < 10),
    ("-i64 > 10", lambda r: -r["i64"] > 10),
]

TEMPLATES = [
    ("i64 > {a}", {"a": 10}, lambda r: r["i64"] > 10),
    ("name in {names}", {"names": ["alpha0", "beta1", "gamma2"]}, lambda r: r["name"] in ("alpha0", "beta1", "gamma2")),
    ("f64 < {x} and flag == {b}", {"x": 0.5, "b": True}, lambda r: r["f64"] < 0.5 and r["flag"]),
    ("id in {ids}", {"ids": [1, 2, 3, 150]}, lambda r: r["id"] in (1, 2, 3, 150)),
    ("i64 not in {vals} and i64 > {lo}", {"vals": [1, 2], "lo": 0}, lambda r: r["i64"] not in (1, 2) and r["i64"] > 0),
    ("{lo} < i64 <= {hi}", {"lo": 0, "hi": 10}, lambda r: 0 < r["i64"] <= 10),
    ("name == {n}", {"n": "o'neil2"}, lambda r: r["name"] == "o'neil2"),
    ("f32 >= {f}", {"f": -1.25}, lambda r: r["f32"] >= -1.25),
]

MALFORMED = [
    "i64 >",
    "i64 >>> 1",
    "(i64 > 1",
    "i64 > 1)",
    "i64 = 1",
    "unknown_field > 1",
    'i64 > "abc"',
    "name > 3",
    "vec > 1",
    "i64 in [1, 'a']",
    "and i64 > 1",
    "i64 like \"a%\"",
    "not i64 > 0",
]


@pytest.fixture(scope="module")
def filter_coll(quiver, lite):
    """One collection per server for the whole module (filters only read)."""
    name = f"filters_{abs(hash(LITE_VERSION)) % 1000}_{id(ROWS) % 100000}"
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


def run_filter(c, name, expr, params=None):
    kwargs = {"filter_params": params} if params else {}
    return sorted(r["id"] for r in c.query(name, filter=expr, output_fields=["id"], limit=1000, **kwargs))


def check(quiver, lite, filter_coll, expr, pred, params=None):
    name, made = filter_coll
    made["quiver"].unwrap("Quiver (creating the collection)")
    expected = sorted(r["id"] for r in ROWS if pred(r))
    q = attempt(lambda: run_filter(quiver, name, expr, params))
    l = attempt(lambda: run_filter(lite, name, expr, params)) if made["lite"].ok else made["lite"]
    lite_says = l.value if l.ok else describe_exc(l.exc)
    if q.exc is not None:
        raise AssertionError(
            f"Quiver rejected {expr!r}: {describe_exc(q.exc)}\n"
            f"  oracle: {len(expected)} rows; milvus-lite {LITE_VERSION}: {lite_says}"
        )
    assert q.value == expected, (
        f"{expr!r}: Quiver returned {len(q.value)} rows, oracle {len(expected)}\n"
        f"  only in Quiver: {sorted(set(q.value) - set(expected))}\n"
        f"  only in oracle: {sorted(set(expected) - set(q.value))}\n"
        f"  milvus-lite {LITE_VERSION}: {lite_says}"
    )


@pytest.mark.parametrize("expr,pred", FILTERS, ids=[f[0] for f in FILTERS])
def test_filter(quiver, lite, filter_coll, expr, pred):
    check(quiver, lite, filter_coll, expr, pred)


@pytest.mark.parametrize("expr,params,pred", TEMPLATES, ids=[t[0] for t in TEMPLATES])
def test_filter_template(quiver, lite, filter_coll, expr, params, pred):
    check(quiver, lite, filter_coll, expr, pred, params)


@pytest.mark.parametrize("expr", MALFORMED)
def test_malformed_filter(quiver, lite, filter_coll, expr):
    name, made = filter_coll
    made["quiver"].unwrap("Quiver (creating the collection)")
    q = attempt(lambda: run_filter(quiver, name, expr))
    l = attempt(lambda: run_filter(lite, name, expr))
    assert_same_error(q, l, milvus_code=1100)


def test_oracle_sanity():
    """The data exercises the patterns above."""
    names = {r["name"] for r in ROWS}
    assert {"a_b", "axb", "100%"} <= names
    assert any(w in n for n in names for w in WORDS)
