"""compact / get_compaction_state (not implemented in Quiver yet): a
compaction completes and leaves every answer unchanged. milvus-lite 2.x has
no compaction (UNIMPLEMENTED); its runs are then skipped."""

import time

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

ROWS = make_rows(120, seed=171)


def wait_completed(c, job, seconds=20.0):
    deadline = time.time() + seconds
    state = None
    while time.time() < deadline:
        state = c.get_compaction_state(job)
        if str(state) == "Completed":
            return state
        time.sleep(0.2)
    raise AssertionError(f"compaction {job} still {state!r} after {seconds}s")


def compact_or_skip(who, c, name, **kwargs):
    out = attempt(lambda: c.compact(name, **kwargs))
    if who == "lite" and lite_lacks(out):
        pytest.skip(f"milvus-lite {LITE_VERSION} has no compaction")
    return out.unwrap(who)


def test_compact_after_deletes_keeps_answers(both, cname):
    who, c = both
    create_full(c, cname, rows=ROWS[:60])
    c.insert(cname, ROWS[60:])
    c.delete(cname, filter="id % 4 == 0")
    job = compact_or_skip(who, c, cname)
    assert isinstance(job, int)
    wait_completed(c, job)
    live = [r for r in ROWS if r["id"] % 4 != 0]
    got = c.query(cname, filter="id >= 0", output_fields=["i64"], limit=1000)
    assert sorted(r["id"] for r in got) == [r["id"] for r in live]
    qs = queries(2, seed=172)
    res = c.search(cname, qs, limit=7, search_params={"metric_type": "L2"})
    assert_matches_oracle(res, exact_topk(live, qs, "L2", 7))
    assert c.query(cname, filter="", output_fields=["count(*)"])[0]["count(*)"] == len(live)


def test_compaction_state_of_empty_collection(both, cname):
    who, c = both
    create_full(c, cname, rows=[])
    job = compact_or_skip(who, c, cname)
    wait_completed(c, job)


def test_compact_missing_collection(both, cname):
    who, c = both
    out = attempt(lambda: c.compact(cname + "_missing"))
    if who == "lite" and lite_lacks(out):
        pytest.skip(f"milvus-lite {LITE_VERSION} has no compaction")
    assert out.exc is not None and getattr(out.exc, "code", None) == 100, repr(out.exc)
