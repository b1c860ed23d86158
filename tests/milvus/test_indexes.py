"""Vector indexes through MilvusClient: create_index (FLAT, HNSW, IVF_FLAT,
AUTOINDEX), describe_index, list_indexes, drop_index.

milvus-lite 2.x ("local mode") builds only FLAT, IVF_FLAT and AUTOINDEX;
for HNSW the reference is then skipped and Quiver is checked alone."""

import pytest
from pymilvus import MilvusClient

from milvus_helpers import (
    REFERENCE_IS_QUIVER,
    LITE_VERSION,
    assert_same_outcome,
    full_schema,
    index_params,
    make_rows,
)

INDEX_CASES = [
    ("FLAT", "L2", {}),
    ("FLAT", "COSINE", {}),
    ("IVF_FLAT", "IP", {"nlist": 8}),
    ("IVF_FLAT", "L2", {"nlist": 16}),
    ("HNSW", "COSINE", {"M": 8, "efConstruction": 64}),
    ("HNSW", "L2", {"M": 16, "efConstruction": 100}),
    ("AUTOINDEX", "IP", {}),
]

COMMON_KEYS = ("index_type", "metric_type", "field_name", "index_name")


def lite_has_index_type(index_type: str) -> bool:
    return not (LITE_VERSION.startswith("2.") and index_type == "HNSW")


def build(c: MilvusClient, name: str, index_type: str, metric: str, params: dict, index_name="",
          sync=False):
    c.create_collection(name, schema=full_schema())
    c.insert(name, make_rows(100, seed=11))
    c.create_index(name, index_params(c, index_type, metric, params, index_name=index_name),
                   sync=sync)
    c.load_collection(name)


@pytest.mark.parametrize("index_type,metric,params", INDEX_CASES, ids=lambda v: str(v))
def test_create_and_describe_index(both, cname, index_type, metric, params):
    who, c = both
    if who == "lite" and not lite_has_index_type(index_type):
        pytest.skip(f"milvus-lite {LITE_VERSION} has no {index_type}")
    build(c, cname, index_type, metric, params)
    desc = c.describe_index(cname, "vec")
    assert desc is not None
    got = {k: desc.get(k) for k in COMMON_KEYS}
    expected_type = index_type
    if index_type == "AUTOINDEX" and (who == "quiver" or REFERENCE_IS_QUIVER):
        # Quiver builds AUTOINDEX as HNSW (M 16, efConstruction 200) and
        # describes the index it built (README compatibility table).
        expected_type = "HNSW"
    assert got == {
        "index_type": expected_type,
        "metric_type": metric,
        "field_name": "vec",
        "index_name": "vec",
    }
    # Milvus reports the build parameters as top-level keys (strings).
    for key, value in params.items():
        assert str(desc.get(key)) == str(value), f"{key}: describe_index gave {desc!r}"
    assert c.list_indexes(cname) == ["vec"]


def test_describe_index_same_as_lite(pair, cname):
    def scenario(c: MilvusClient):
        build(c, cname, "IVF_FLAT", "L2", {"nlist": 8}, index_name="my_ivf")
        d = c.describe_index(cname, "my_ivf")
        return {k: d.get(k) for k in (*COMMON_KEYS, "nlist")}, c.list_indexes(cname)

    q, l = pair.both_ok(scenario)
    assert q == l


def test_list_indexes_by_field(pair, cname):
    def scenario(c: MilvusClient):
        build(c, cname, "FLAT", "IP", {}, index_name="flat_ip")
        return c.list_indexes(cname), c.list_indexes(cname, field_name="vec")

    q, l = pair.both_ok(scenario)
    assert q == l == (["flat_ip"], ["flat_ip"])


def test_drop_index_then_recreate(pair, cname):
    def scenario(c: MilvusClient):
        build(c, cname, "IVF_FLAT", "L2", {"nlist": 4})
        c.release_collection(cname)
        c.drop_index(cname, "vec")
        after_drop = c.list_indexes(cname)
        c.create_index(cname, index_params(c, "FLAT", "IP"), sync=False)
        d = c.describe_index(cname, "vec")
        return after_drop, d["index_type"], d["metric_type"]

    q, l = pair.both_ok(scenario)
    assert q == l == ([], "FLAT", "IP")


def test_describe_missing_index_returns_none(pair, cname):
    def scenario(c: MilvusClient):
        build(c, cname, "FLAT", "L2", {})
        return c.describe_index(cname, "no_such_index")

    q, l = pair.run(scenario)
    assert_same_outcome(q, l)


def test_create_index_twice_same_params(pair, cname):
    def scenario(c: MilvusClient):
        build(c, cname, "FLAT", "L2", {})
        c.release_collection(cname)
        c.create_index(cname, index_params(c, "FLAT", "L2"), sync=False)
        return c.list_indexes(cname)

    q, l = pair.run(scenario)
    assert_same_outcome(q, l)


def test_index_state_and_rows(pair, cname):
    def scenario(c: MilvusClient):
        build(c, cname, "FLAT", "L2", {}, sync=True)
        return c.describe_index(cname, "vec")["state"]

    q, l = pair.both_ok(scenario)
    assert q == l == "Finished"
