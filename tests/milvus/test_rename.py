"""rename_collection (milvus-lite 2.x lacks it; its runs are then skipped,
Quiver's never are)."""

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


def ids(rows):
    return sorted(r["id"] for r in rows)


def test_rename_collection(both, new_name):
    who, c = both
    old, new = new_name("old"), new_name("new")
    create_full(c, old, rows=ROWS_A)
    first = attempt(lambda: c.rename_collection(old, new))
    if who == "lite" and lite_lacks(first):
        pytest.skip(f"milvus-lite {LITE_VERSION} has no rename_collection")
    first.unwrap(who)
    assert not c.has_collection(old)
    assert c.has_collection(new)
    c.load_collection(new)
    assert ids(c.query(new, filter="id >= 0", limit=1000)) == ids(ROWS_A)
    qs = queries(1, seed=114)
    res = c.search(new, qs, limit=3, search_params={"metric_type": "L2"})
    assert_matches_oracle(res, exact_topk(ROWS_A, qs, "L2", 3))


def test_rename_to_existing_name_fails(both, new_name):
    who, c = both
    a, b = new_name("a"), new_name("b")
    create_full(c, a, rows=[])
    create_full(c, b, rows=[])
    out = attempt(lambda: c.rename_collection(a, b))
    if who == "lite" and lite_lacks(out):
        pytest.skip(f"milvus-lite {LITE_VERSION} has no rename_collection")
    assert out.exc is not None, "renaming onto an existing collection succeeded"
    assert hasattr(out.exc, "code")
    if who == "quiver":
        assert out.exc.message == (
            f"duplicated new collection name default:{b} with other collection name or alias"
        ), out.exc.message
