"""Features Quiver does not have yet answer a clear Milvus error naming
them (code 1100, "... is not supported yet by Quiver"), and the server
keeps serving."""

import pytest
from pymilvus import DataType, MilvusClient

from milvus_helpers import create_full, make_rows

ROWS = make_rows(10, seed=5)


def _unsupported(call):
    with pytest.raises(Exception) as info:
        call()
    assert getattr(info.value, "code", None) == 1100, repr(info.value)
    assert "not supported yet" in str(info.value), str(info.value)
    return str(info.value)


@pytest.mark.parametrize(
    "data_type, params",
    [
        (DataType.BINARY_VECTOR, {"dim": 16}),
        (DataType.FLOAT16_VECTOR, {"dim": 4}),
        (DataType.BFLOAT16_VECTOR, {"dim": 4}),
        (DataType.SPARSE_FLOAT_VECTOR, {}),
    ],
)
def test_other_vector_types_are_a_clear_error(quiver, cname, data_type, params):
    schema = MilvusClient.create_schema()
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("v", data_type, **params)
    message = _unsupported(lambda: quiver.create_collection(cname, schema=schema))
    assert data_type.name.replace("_", "").lower() in message.lower(), message
    assert not quiver.has_collection(cname)
    create_full(quiver, cname, rows=ROWS)  # the server keeps serving
    assert len(quiver.query(cname, filter="id >= 0", limit=100)) == len(ROWS)
