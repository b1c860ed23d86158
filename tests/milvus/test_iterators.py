"""query_iterator and search_iterator (pymilvus builds them on Query and
Search requests): the pages together must be exactly the full answer, with no
row twice."""

import numpy as np
import pytest

from milvus_helpers import create_full, exact_topk, make_rows, queries

ROWS = make_rows(130, seed=161)


def drain(it, max_pages=100):
    pages = []
    try:
        for _ in range(max_pages):
            page = it.next()
            if not page:
                break
            pages.append([dict(r) for r in page])
        else:
            raise AssertionError(f"iterator still going after {max_pages} pages")
    finally:
        it.close()
    return pages


@pytest.mark.parametrize("batch", [7, 50, 1000])
def test_query_iterator_all_rows(both, cname, batch):
    who, c = both
    create_full(c, cname, rows=ROWS)
    pages = drain(c.query_iterator(cname, batch_size=batch, filter="id >= 0", output_fields=["i64"]))
    assert all(len(p) <= batch for p in pages)
    got = [r["id"] for p in pages for r in p]
    assert len(got) == len(set(got)), "a row came twice"
    assert sorted(got) == [r["id"] for r in ROWS]
    by_id = {r["id"]: r for r in ROWS}
    assert all(r["i64"] == by_id[r["id"]]["i64"] for p in pages for r in p)


def test_query_iterator_filter_and_limit(both, cname):
    who, c = both
    create_full(c, cname, rows=ROWS)
    pages = drain(c.query_iterator(cname, batch_size=6, limit=20, filter="i64 > 0",
                                   output_fields=["i64"]))
    got = [r["id"] for p in pages for r in p]
    assert len(got) == 20 and len(set(got)) == 20
    assert all(r["i64"] > 0 for p in pages for r in p)


@pytest.mark.parametrize("metric", ["L2", "IP"])
def test_search_iterator_pages_are_the_exact_ranking(both, cname, metric):
    who, c = both
    create_full(c, cname, rows=ROWS, metric=metric)
    qv = queries(1, seed=162)
    it = c.search_iterator(cname, qv, batch_size=10, limit=45, output_fields=["i64"],
                           search_params={"metric_type": metric})
    pages = drain(it)
    assert all(len(p) <= 10 for p in pages)
    got = [(h["id"], h["distance"]) for p in pages for h in p]
    ids = [i for i, _ in got]
    assert len(ids) == len(set(ids)), "a hit came twice"
    truth = exact_topk(ROWS, qv, metric, 45)[0]
    assert ids == [i for i, _ in truth]
    assert np.allclose([d for _, d in got], [s for _, s in truth], rtol=1e-4, atol=1e-4)


def test_search_iterator_with_filter(both, cname):
    who, c = both
    create_full(c, cname, rows=ROWS, metric="COSINE")
    qv = queries(1, seed=163)
    pages = drain(c.search_iterator(cname, qv, batch_size=8, limit=30, filter="flag == false",
                                    search_params={"metric_type": "COSINE"}))
    ids = [h["id"] for p in pages for h in p]
    truth = exact_topk(ROWS, qv, "COSINE", 30, where=lambda r: not r["flag"])[0]
    assert ids == [i for i, _ in truth]
