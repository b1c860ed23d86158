"""Every Milvus parameter validated as Milvus validates it: result windows
(topk, offset, their sum, query limit), nq, search parameters (params JSON,
HNSW ef, IVF nprobe, range bounds) and names (collections, aliases,
partitions, fields, indexes, databases), with Milvus' codes and wording.

Where milvus-lite behaves like Milvus (collection names, windows) the
test is differential; where milvus-lite lacks the feature (HNSW, nq limit,
partitions, aliases, databases) Quiver is held to the code and wording of
Milvus' source (proxy util.go / search_util.go, knowhere's config checks).
Hand-made requests go through raw gRPC, as pymilvus checks some values
before sending them."""

from __future__ import annotations

import json
import os
from urllib.parse import urlparse

import grpc
import pytest
from pymilvus import MilvusClient
from pymilvus.grpc_gen import common_pb2, milvus_pb2, schema_pb2

from milvus_helpers import (
    DIM,
    MAX_TOPK,
    assert_same_error,
    create_full,
    full_schema,
    index_params,
    make_rows,
    queries,
)

ROWS = make_rows(30, seed=313)


def _code(call) -> tuple[int, str]:
    with pytest.raises(Exception) as info:
        call()
    return getattr(info.value, "code", None), str(getattr(info.value, "message", info.value))


# ------------------------------------------------------------- raw requests


@pytest.fixture
def stub(quiver):
    url = urlparse(os.environ["QUIVER_MILVUS_URI"])
    with grpc.insecure_channel(f"{url.hostname}:{url.port}") as channel:
        yield channel


def _call(channel, method: str, request, reply_type):
    raw = channel.unary_unary(
        f"/milvus.proto.milvus.MilvusService/{method}",
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=reply_type.FromString,
    )
    return raw(request, timeout=60)


def _placeholders(vectors) -> bytes:
    import struct

    group = common_pb2.PlaceholderGroup(
        placeholders=[
            common_pb2.PlaceholderValue(
                tag="$0",
                type=common_pb2.PlaceholderType.FloatVector,
                values=[struct.pack(f"<{len(v)}f", *v) for v in vectors],
            )
        ]
    )
    return group.SerializeToString()


def _kv(**pairs) -> list:
    return [common_pb2.KeyValuePair(key=k, value=str(v)) for k, v in pairs.items()]


def _search(channel, collection: str, nq: int = 1, **params):
    params.setdefault("anns_field", "vec")
    params.setdefault("metric_type", "L2")
    request = milvus_pb2.SearchRequest(
        collection_name=collection,
        placeholder_group=_placeholders(queries(nq)),
        dsl_type=common_pb2.DslType.BoolExprV1,
        search_params=_kv(**params),
        nq=nq,
    )
    return _call(channel, "Search", request, milvus_pb2.SearchResults).status


def _hybrid(channel, collection: str, limit: str, offset: str):
    sub = milvus_pb2.SearchRequest(
        collection_name=collection,
        placeholder_group=_placeholders(queries(1)),
        dsl_type=common_pb2.DslType.BoolExprV1,
        search_params=_kv(anns_field="vec", metric_type="L2", topk=5, params="{}"),
        nq=1,
    )
    request = milvus_pb2.HybridSearchRequest(
        collection_name=collection,
        requests=[sub],
        rank_params=_kv(strategy="rrf", params=json.dumps({"k": 60}), limit=limit, offset=offset),
    )
    return _call(channel, "HybridSearch", request, milvus_pb2.SearchResults).status


# ------------------------------------------------------------------ windows


def test_topk_overflowing_with_offset_is_refused(quiver, stub, cname):
    """The u64 overflow of topk + offset: 2^64-1 with offset 1."""
    create_full(quiver, cname, rows=ROWS)
    status = _search(stub, cname, topk="18446744073709551615", offset="1", params="{}")
    assert status.code == 1100, status
    assert status.reason == "topk [18446744073709551615] is invalid"
    status = _search(stub, cname, topk=str(2**63 - 1), offset=str(2**63 - 1), params="{}")
    assert status.code == 1100
    assert status.reason.startswith(f"topk [{2**63 - 1}] is invalid, it should be in range [1, 16384]")
    status = _search(stub, cname, topk="16000", offset="1000", params="{}")
    assert status.code == 1100
    assert status.reason == "offset+topk [17000] is invalid, it should be in range [1, 16384], but got 17000"
    status = _search(stub, cname, topk="5", offset="abc", params="{}")
    assert status.reason == "offset [abc] is invalid"
    # Within the window: fine.
    assert _search(stub, cname, topk="5", offset="2", params="{}").code == 0


def test_hybrid_search_window_is_refused_before_any_search(quiver, stub, cname):
    create_full(quiver, cname, rows=ROWS)
    status = _hybrid(stub, cname, "18446744073709551615", "1")
    assert status.code == 1100, status
    assert status.reason == "limit [18446744073709551615] is invalid"
    status = _hybrid(stub, cname, str(MAX_TOPK), "1")
    assert status.code == 1100
    assert status.reason.startswith("offset+limit [16385] is invalid")
    assert _hybrid(stub, cname, "5", "0").code == 0


@pytest.mark.parametrize("limit,offset", [(MAX_TOPK + 1, 0), (16000, 1000)])
def test_query_window_like_milvus(pair, cname, limit, offset):
    def scenario(c: MilvusClient):
        create_full(c, cname, rows=ROWS)
        return c.query(cname, filter="id >= 0", limit=limit, offset=offset)

    q, l = pair.run(scenario)
    assert_same_error(q, l, milvus_code=1100)


def test_search_offset_plus_limit_like_milvus(pair, cname):
    def scenario(c: MilvusClient):
        create_full(c, cname, rows=ROWS)
        return c.search(cname, queries(1), limit=1000, offset=16000)

    q, l = pair.run(scenario)
    assert_same_error(q, l, milvus_code=1100)


def test_nq_above_the_limit(quiver, stub, cname):
    """milvus-lite does not limit nq; Milvus' proxy does (validateNQLimit)."""
    create_full(quiver, cname, rows=ROWS)
    status = _search(stub, cname, nq=16385, topk="1", params="{}")
    assert status.code == 1100, status
    assert status.reason == (
        "nq (number of search vector per search request) should be in range [1, 16384], but got 16385"
    )
    code, _ = _code(lambda: quiver.search(cname, queries(16385), limit=1))
    assert code == 1100


# ------------------------------------------------------------ search params


@pytest.mark.parametrize(
    "params,message",
    [
        ('{"ef": 64', "failed to parse search params as JSON"),
        ("not json", "failed to parse search params as JSON"),
        ("[1, 2]", "search params must be a JSON object"),
        ('{"ef": -1}', "Out of range in json: param 'ef' (-1) should be in range [1, 2147483647]"),
        ('{"ef": 1e8}', "Type conflict in json: param 'ef' (100000000.0) should be integer"),
        ('{"ef": 5}', "ef(5) should be larger than k(10)"),
        ('{"ef": 3000000000}', "Arithmetic overflow: param 'ef' (3000000000) should not bigger than 2147483647"),
        ('{"radius": "x"}', "invalid float value, key: 'radius', value: 'x'"),
    ],
)
def test_hnsw_search_params(quiver, stub, cname, params, message):
    create_full(quiver, cname, rows=ROWS, index_type="HNSW", params={"M": 8, "efConstruction": 64})
    status = _search(stub, cname, topk="10", params=params)
    assert status.code == 1100, status
    assert status.reason.startswith(message), status.reason
    # pymilvus sends the same through search_params.
    if params.startswith("{") and params.endswith("}"):
        code, text = _code(
            lambda: quiver.search(cname, queries(1), limit=10, search_params={"params": json.loads(params)})
        )
        assert code == 1100 and message in text, text


def test_hnsw_ef_at_least_k_and_strings_taken(quiver, cname):
    create_full(quiver, cname, rows=ROWS, index_type="HNSW", params={"M": 8, "efConstruction": 64})
    hits = quiver.search(cname, queries(1), limit=10, search_params={"params": {"ef": 10}})
    assert len(hits[0]) == 10
    hits = quiver.search(cname, queries(1), limit=10, search_params={"params": {"ef": "32"}})
    assert len(hits[0]) == 10
    # ef counts top-k plus offset (Milvus' k).
    code, text = _code(
        lambda: quiver.search(cname, queries(1), limit=8, offset=4, search_params={"params": {"ef": 10}})
    )
    assert code == 1100 and "ef(10) should be larger than k(12)" in text, text


def test_ivf_nprobe_range(quiver, cname):
    create_full(quiver, cname, rows=ROWS, index_type="IVF_FLAT", params={"nlist": 4})
    for bad, message in [
        (-1, "Out of range in json: param 'nprobe' (-1) should be in range [1, 65536]"),
        (65537, "Out of range in json: param 'nprobe' (65537) should be in range [1, 65536]"),
        (32.0, "Type conflict in json: param 'nprobe' (32.0) should be integer"),
    ]:
        code, text = _code(
            lambda: quiver.search(cname, queries(1), limit=3, search_params={"params": {"nprobe": bad}})
        )
        assert code == 1100 and message in text, text
    assert len(quiver.search(cname, queries(1), limit=3, search_params={"params": {"nprobe": 4}})[0]) == 3


def test_parameters_of_other_indexes_are_ignored_like_milvus(pair, cname):
    """A FLAT index reads no ef: Milvus (and milvus-lite) ignore it."""

    def scenario(c: MilvusClient):
        create_full(c, cname, rows=ROWS)
        return len(c.search(cname, queries(1), limit=3, search_params={"params": {"ef": -1}})[0])

    q, l = pair.both_ok(scenario)
    assert q == l == 3


# ------------------------------------------------------------------- names


def test_collection_name_length_like_milvus(pair, new_name):
    base = new_name("n")
    exact = (base + "_" * 255)[:255]
    too_long = exact + "x"

    def create(name):
        def scenario(c: MilvusClient):
            return c.create_collection(name, dimension=DIM)

        return scenario

    q, l = pair.run(create(too_long))
    assert_same_error(q, l, milvus_code=1100)
    assert "the length of a collection name must be less than 255 characters" in str(q.exc)
    pair.both_ok(create(exact))
    try:
        assert exact in pair.quiver.list_collections()
    finally:
        for c in (pair.quiver, pair.lite):
            c.drop_collection(exact)


@pytest.mark.parametrize("name", ["1abc", "a-b", "ab c"])
def test_collection_name_characters_like_milvus(pair, name):
    q, l = pair.run(lambda c: c.create_collection(name, dimension=DIM))
    assert_same_error(q, l, milvus_code=1100)


def test_a_ten_thousand_character_name_is_refused_everywhere(quiver):
    name = "n" * 10_000
    for call in [
        lambda: quiver.create_collection(name, dimension=DIM),
        lambda: quiver.has_collection(name),
        lambda: quiver.describe_collection(name),
        lambda: quiver.search(name, queries(1), limit=3),
        lambda: quiver.query(name, filter="id > 0"),
        lambda: quiver.get(name, ids=[1]),
        lambda: quiver.insert(name, ROWS[:1]),
        lambda: quiver.drop_collection(name),
    ]:
        code, text = _code(call)
        assert code == 1100, text
        assert "the length of a collection name must be less than 255 characters" in text


def test_partition_names_follow_milvus(quiver, cname):
    create_full(quiver, cname, rows=[])
    # Milvus' strict partition rule allows a digit first and dashes.
    quiver.create_partition(cname, "2024-01")
    assert "2024-01" in quiver.list_partitions(cname)
    for bad in ["-p", "a b", "p.q", "x" * 256]:
        code, text = _code(lambda: quiver.create_partition(cname, bad))
        assert code == 1100, (bad, text)
        assert text.startswith(f"Invalid partition name: {bad}"), text


def test_field_names_answer_field_name_invalid(quiver, cname):
    from pymilvus import DataType

    schema = full_schema()
    schema.add_field("1st", DataType.INT64)
    code, text = _code(lambda: quiver.create_collection(cname, schema=schema))
    assert code == 1701, text
    assert "field name invalid[field=1st]" in text
    schema = full_schema()
    schema.add_field("f" * 256, DataType.INT64)
    code, _ = _code(lambda: quiver.create_collection(cname, schema=schema))
    assert code == 1701


def test_alias_and_index_names(quiver, cname):
    create_full(quiver, cname, rows=[])
    code, text = _code(lambda: quiver.create_alias(cname, "a" * 256))
    assert code == 1100 and "the length of a collection alias must be less than 255" in text, text
    code, text = _code(lambda: quiver.create_alias(cname, "9lives"))
    assert code == 1100 and "the first character of a collection alias" in text, text
    quiver.release_collection(cname)
    quiver.drop_index(cname, "vec")
    code, text = _code(lambda: quiver.create_index(cname, index_params(quiver, index_name="bad-name")))
    assert code == 1100 and text.startswith("Invalid index name: bad-name."), text


def test_database_names_answer_invalid_database_name(quiver):
    for bad in ["d-b", "1db", "d" * 256]:
        code, text = _code(lambda: quiver.create_database(bad))
        assert code == 802, (bad, text)
        assert f"invalid database name[database={bad}]" in text


def test_sql_door_refuses_identifiers_over_255_bytes(quiver):
    """The Postgres door holds table names to the same 255 bytes, so every
    collection stays reachable as a table (and no longer name is made)."""
    url = os.environ.get("QUIVER_PG_URL")
    if not url:
        pytest.skip("QUIVER_PG_URL is not set")
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute("SHOW max_identifier_length").fetchone()[0] == "255"
        with pytest.raises(psycopg.Error) as info:
            conn.execute(f'CREATE TABLE "{"t" * 256}" (id bigint primary key)')
        assert info.value.sqlstate == "42622"
        assert str(info.value).startswith("identifier too long")
