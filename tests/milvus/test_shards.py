"""Collections with several shards (``num_shards``): DescribeCollection
reports the count, and inserts, upserts, deletes, searches and queries
answer exactly as on milvus-lite with the same rows."""

import pytest
from pymilvus import MilvusClient, MilvusException

from milvus_helpers import (
    assert_rows_equal,
    assert_search_equal,
    full_schema,
    index_params,
    make_rows,
)


def test_a_sharded_collection_answers_as_milvus(pair, cname):
    rows = make_rows(300, seed=7)

    def scenario(c: MilvusClient):
        c.create_collection(cname, schema=full_schema(), num_shards=4)
        c.create_index(cname, index_params(c), sync=False)
        c.load_collection(cname)
        c.insert(cname, rows[:250])
        c.upsert(cname, [dict(r, name="upserted") for r in rows[200:300]])
        c.delete(cname, ids=list(range(0, 300, 7)))
        found = c.search(
            cname,
            data=[rows[3]["vec"], rows[120]["vec"]],
            limit=10,
            output_fields=["name", "i64"],
            filter="i64 >= 0",
        )
        queried = c.query(
            cname, filter="id in [1, 2, 7, 201, 299]", output_fields=["name"]
        )
        count = c.query(cname, filter="", output_fields=["count(*)"])
        return found, queried, count

    (q_found, q_rows, q_count), (l_found, l_rows, l_count) = pair.both_ok(scenario)
    assert_search_equal(q_found, l_found)
    assert_rows_equal(q_rows, l_rows)
    assert q_count == l_count
    assert pair.quiver.describe_collection(cname)["num_shards"] == 4


def test_shard_count_limits(quiver, cname):
    with pytest.raises(MilvusException) as err:
        quiver.create_collection(cname, schema=full_schema(), num_shards=17)
    assert "maximum shards's number should be limited to 16" in err.value.message
    assert err.value.code == 1
    # Zero means the default: one shard.
    quiver.create_collection(cname, schema=full_schema(), num_shards=0)
    assert quiver.describe_collection(cname)["num_shards"] == 1
