"""Databases through MilvusClient: create/list/use/drop and the isolation
of collections between databases. milvus-lite 2.x has no databases (its
RPCs are UNIMPLEMENTED); Quiver is then checked on its own."""

import uuid

import pytest
from pymilvus import MilvusClient

from milvus_helpers import (
    LITE_VERSION,
    assert_rows_equal,
    create_full,
    describe_exc,
    lite_lacks,
    attempt,
    make_rows,
)


@pytest.fixture
def db(both, uris):
    """(who, fresh client, database name); the database is dropped after."""
    who, _ = both
    client = MilvusClient(uris[who])
    name = f"db_{uuid.uuid4().hex[:10]}"
    probe = attempt(lambda: client.list_databases())
    if who == "lite" and lite_lacks(probe):
        client.close()
        pytest.skip(f"milvus-lite {LITE_VERSION} has no databases")
    yield who, client, name
    try:
        client.use_database(name)
        for coll in client.list_collections():
            client.drop_collection(coll)
    except Exception:  # noqa: BLE001
        pass
    try:
        client.use_database("default")
        client.drop_database(name)
    except Exception:  # noqa: BLE001
        pass
    client.close()


def test_create_list_drop(db):
    who, c, name = db
    assert "default" in c.list_databases()
    c.create_database(name)
    assert name in c.list_databases()
    c.drop_database(name)
    assert name not in c.list_databases()


def test_collections_are_per_database(db):
    who, c, name = db
    coll = f"shared_{uuid.uuid4().hex[:8]}"
    c.create_database(name)
    try:
        create_full(c, coll, rows=make_rows(10, seed=91))
        c.using_database(name)  # the older name of use_database
        assert coll not in c.list_collections()
        create_full(c, coll, rows=make_rows(4, seed=92, start=100))
        assert c.list_collections() == [coll]
        in_db = c.query(coll, filter="id >= 0", output_fields=["i64"])
        assert sorted(r["id"] for r in in_db) == [100, 101, 102, 103]
        hits = c.search(coll, [make_rows(1, seed=92, start=100)[0]["vec"]], limit=2)
        assert hits[0][0]["id"] == 100
        c.use_database("default")
        in_default = c.query(coll, filter="id >= 0", output_fields=["i64"])
        assert sorted(r["id"] for r in in_default) == list(range(10))
    finally:
        c.use_database("default")
        c.drop_collection(coll)


def test_client_opened_on_database(db, uris):
    who, c, name = db
    c.create_database(name)
    other = MilvusClient(uris[who], db_name=name)
    try:
        coll = f"indb_{uuid.uuid4().hex[:8]}"
        create_full(other, coll, rows=make_rows(5, seed=93))
        assert other.list_collections() == [coll]
        assert coll not in c.list_collections()
        c.use_database(name)
        assert c.list_collections() == [coll]
        assert other.get_collection_stats(coll)["row_count"] == 5
    finally:
        other.close()


def test_drop_database_with_collections_fails(db):
    who, c, name = db
    c.create_database(name)
    c.use_database(name)
    create_full(c, f"keep_{uuid.uuid4().hex[:8]}", rows=[])
    c.use_database("default")
    with pytest.raises(Exception) as info:
        c.drop_database(name)
    assert hasattr(info.value, "code"), describe_exc(info.value)
    assert info.value.message == (
        f"database:{name} not empty, must drop all collections before drop database"
    ), describe_exc(info.value)


def test_create_existing_database_fails(db):
    who, c, name = db
    c.create_database(name)
    with pytest.raises(Exception) as info:
        c.create_database(name)
    assert hasattr(info.value, "code"), describe_exc(info.value)
    assert info.value.message == f"database already exist: {name}", describe_exc(info.value)


def test_missing_database_is_800(quiver):
    """A collection of a database that does not exist: Milvus answers the
    database's error (800, in merr's words). Raw requests: pymilvus checks
    a database before it switches to it."""
    import os
    from urllib.parse import urlparse

    import grpc
    from pymilvus.grpc_gen import milvus_pb2

    url = urlparse(os.environ["QUIVER_MILVUS_URI"])
    name = f"nodb_{uuid.uuid4().hex[:8]}"
    with grpc.insecure_channel(f"{url.hostname}:{url.port}") as channel:

        def status(method, request, reply_type):
            call = channel.unary_unary(
                f"/milvus.proto.milvus.MilvusService/{method}",
                request_serializer=lambda m: m.SerializeToString(),
                response_deserializer=reply_type.FromString,
            )
            return call(request, timeout=60).status

        for got in (
            status(
                "DescribeCollection",
                milvus_pb2.DescribeCollectionRequest(db_name=name, collection_name="anything"),
                milvus_pb2.DescribeCollectionResponse,
            ),
            status(
                "Query",
                milvus_pb2.QueryRequest(db_name=name, collection_name="anything", expr="id > 0"),
                milvus_pb2.QueryResults,
            ),
            status(
                "DescribeDatabase",
                milvus_pb2.DescribeDatabaseRequest(db_name=name),
                milvus_pb2.DescribeDatabaseResponse,
            ),
        ):
            assert got.code == 800, got
            assert got.reason == f"database not found[database={name}]", got


def test_drop_default_database_fails(db):
    who, c, name = db
    with pytest.raises(Exception):
        c.drop_database("default")


def test_same_results_in_database(pair, uris):
    """The differential view: one scenario inside a database on both."""
    name = f"db_{uuid.uuid4().hex[:10]}"
    clients = {who: MilvusClient(uris[who]) for who in ("quiver", "lite")}
    rows = make_rows(50, seed=94)

    def scenario(c):
        c.create_database(name)
        c.use_database(name)
        create_full(c, "items", rows=rows)
        return c.query("items", filter="i64 > 0", output_fields=["i64", "name"])

    try:
        q = attempt(lambda: scenario(clients["quiver"]))
        l = attempt(lambda: scenario(clients["lite"]))
        got = q.unwrap("Quiver")
        assert sorted(r["id"] for r in got) == [r["id"] for r in rows if r["i64"] > 0]
        if not lite_lacks(l):  # milvus-lite 2.x has no databases
            assert_rows_equal(got, l.unwrap("milvus-lite"))
    finally:
        for c in clients.values():
            try:
                c.use_database(name)
                c.drop_collection("items")
                c.use_database("default")
                c.drop_database(name)
            except Exception:  # noqa: BLE001
                pass
            c.close()
