"""Malformed traffic on the Milvus door: a truncated or garbage protobuf
message and a request over the message limit (64 MiB by default) are gRPC
errors for that call only; the server keeps serving."""

from __future__ import annotations

import os
from urllib.parse import urlparse

import grpc
import numpy as np
import pytest
from pymilvus import MilvusClient
from pymilvus.grpc_gen import milvus_pb2

from milvus_helpers import create_full, make_rows

ROWS = make_rows(20, seed=9)


def _channel(quiver_uri: str) -> grpc.Channel:
    url = urlparse(quiver_uri)
    return grpc.insecure_channel(
        f"{url.hostname}:{url.port}",
        options=[
            ("grpc.max_send_message_length", 256 * 1024 * 1024),
            ("grpc.max_receive_message_length", 256 * 1024 * 1024),
        ],
    )


def _raw(channel: grpc.Channel, method: str):
    return channel.unary_unary(
        f"/milvus.proto.milvus.MilvusService/{method}",
        request_serializer=lambda b: b,
        response_deserializer=lambda b: b,
    )


@pytest.fixture
def channel(quiver):
    uri = os.environ["QUIVER_MILVUS_URI"]
    with _channel(uri) as ch:
        yield ch


def _still_serving(client: MilvusClient, name: str):
    assert client.get_collection_stats(name)["row_count"] == len(ROWS)
    hits = client.search(name, [ROWS[0]["vec"]], limit=1, anns_field="vec")[0]
    assert hits[0]["id"] == ROWS[0]["id"]


@pytest.mark.parametrize(
    "payload",
    [
        b"\xff\xff\xff\xff\xff",  # a varint that never ends
        b"\x0a\x80\x80\x80\x80\x08",  # field 1, length 2^31: truncated
        b"\x1a\x05ab",  # collection_name with 5 bytes announced, 2 sent
        bytes(range(256)) * 4,  # noise
    ],
    ids=["endless-varint", "huge-length", "truncated-string", "noise"],
)
@pytest.mark.parametrize("method", ["Search", "Insert", "Query", "CreateCollection"])
def test_garbage_protobuf_is_an_error(quiver, channel, cname, method, payload):
    create_full(quiver, cname, rows=ROWS)
    with pytest.raises(grpc.RpcError) as info:
        _raw(channel, method)(payload, timeout=10)
    assert info.value.code() in (grpc.StatusCode.INTERNAL, grpc.StatusCode.INVALID_ARGUMENT)
    _still_serving(quiver, cname)


def test_request_over_the_message_limit_is_refused(quiver, channel, cname):
    create_full(quiver, cname, rows=ROWS)
    # nq x dim floats over 64 MiB in one search request.
    dim = len(ROWS[0]["vec"])
    nq = (65 * 1024 * 1024) // (4 * dim) + 1
    group = milvus_pb2.SearchRequest(collection_name=cname, nq=nq)
    group.placeholder_group = b"\x00" * (nq * dim * 4 + 16)
    with pytest.raises(grpc.RpcError) as info:
        _raw(channel, "Search")(group.SerializeToString(), timeout=60)
    # tonic answers OUT_OF_RANGE naming the size and the limit.
    assert info.value.code() in (grpc.StatusCode.OUT_OF_RANGE, grpc.StatusCode.RESOURCE_EXHAUSTED)
    assert "too large" in info.value.details()
    _still_serving(quiver, cname)


def test_many_query_vectors_within_the_limit(quiver, cname):
    create_full(quiver, cname, rows=ROWS)
    rng = np.random.default_rng(3)
    dim = len(ROWS[0]["vec"])
    res = quiver.search(
        cname, rng.random((300, dim)).tolist(), limit=2, anns_field="vec"
    )
    assert len(res) == 300 and all(len(hits) == 2 for hits in res)


def test_large_batch_of_wide_vectors(quiver, cname):
    # 500 x 784 floats in one insert (more floats than one vector may have).
    from pymilvus import DataType

    schema = quiver.create_schema()
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=784)
    index = quiver.prepare_index_params()
    index.add_index("vec", index_type="FLAT", metric_type="L2")
    quiver.create_collection(cname, schema=schema, index_params=index)
    rng = np.random.default_rng(11)
    vectors = rng.random((500, 784), dtype=np.float32)
    res = quiver.insert(cname, [{"id": i, "vec": v.tolist()} for i, v in enumerate(vectors)])
    assert res["insert_count"] == 500
    hits = quiver.search(cname, [vectors[42].tolist()], limit=1, anns_field="vec")[0]
    assert hits[0]["id"] == 42
    bad = [{"id": 1000, "vec": [float("nan")] + [0.0] * 783}]
    with pytest.raises(Exception) as info:
        quiver.insert(cname, bad)
    assert getattr(info.value, "code", None) == 1100
