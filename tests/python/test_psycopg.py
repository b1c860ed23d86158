"""End-to-end tests of the Postgres door with psycopg 3 and pgvector-python.

Run by scripts/test.sh against a started `quiver standalone`; QUIVER_URL
names it. Data is generated here, deterministically.
"""

import os
import time

import numpy as np
import psycopg
import pytest
from pgvector.psycopg import register_vector

URL = os.environ.get("QUIVER_URL", "postgresql://quiver@127.0.0.1:5433/quiver")
DIM = 16
ROWS = 10_000


@pytest.fixture(scope="module")
def conn():
    with psycopg.connect(URL, autocommit=True) as c:
        c.execute("CREATE EXTENSION IF NOT EXISTS vector")
        register_vector(c)
        yield c


@pytest.fixture(scope="module")
def data(conn):
    rng = np.random.default_rng(42)
    vectors = rng.standard_normal((ROWS, DIM)).astype(np.float32)
    labels = rng.integers(0, 10, ROWS)
    conn.execute("DROP TABLE IF EXISTS py_items")
    conn.execute(f"CREATE TABLE py_items (id BIGINT PRIMARY KEY, embedding vector({DIM}), label INTEGER)")
    with conn.cursor() as cur:
        with cur.copy("COPY py_items (id, embedding, label) FROM STDIN WITH (FORMAT BINARY)") as copy:
            copy.set_types(["int8", "vector", "int4"])
            for i in range(ROWS):
                copy.write_row((i, vectors[i], int(labels[i])))
    return vectors, labels


def test_binary_copy_loaded_every_row(conn, data):
    assert conn.execute("SELECT count(*) FROM py_items").fetchone()[0] == ROWS
    assert conn.execute("SELECT count(DISTINCT id) FROM py_items").fetchone()[0] == ROWS


def test_register_vector_text_and_binary_round_trip(conn, data):
    vectors, _ = data
    text_value = conn.execute("SELECT embedding FROM py_items WHERE id = 7").fetchone()[0]
    assert isinstance(text_value, np.ndarray)
    np.testing.assert_allclose(text_value, vectors[7], rtol=1e-6)
    with conn.cursor(binary=True) as cur:
        cur.execute("SELECT embedding FROM py_items WHERE id = %s", (9,))
        binary_value = cur.fetchone()[0]
    np.testing.assert_array_equal(binary_value, vectors[9])


def brute_force(vectors, q, k, mask=None):
    d = np.linalg.norm(vectors.astype(np.float64) - q.astype(np.float64), axis=1)
    ids = np.arange(len(vectors))
    if mask is not None:
        d, ids = d[mask], ids[mask]
    order = np.lexsort((ids, d))[:k]
    return [int(i) for i in ids[order]]


@pytest.mark.parametrize("binary", [False, True])
def test_search_matches_numpy_brute_force(conn, data, binary):
    vectors, _ = data
    rng = np.random.default_rng(7)
    with conn.cursor(binary=binary) as cur:
        for _ in range(10):
            q = rng.standard_normal(DIM).astype(np.float32)
            cur.execute("SELECT id FROM py_items ORDER BY embedding <-> %s LIMIT 10", (q,))
            got = [r[0] for r in cur.fetchall()]
            assert got == brute_force(vectors, q, 10)


def test_filtered_search_matches_brute_force(conn, data):
    vectors, labels = data
    q = np.ones(DIM, dtype=np.float32)
    rows = conn.execute(
        "SELECT id, embedding <-> %s AS d FROM py_items WHERE label = %s ORDER BY d LIMIT 10", (q, 3)
    ).fetchall()
    assert [r[0] for r in rows] == brute_force(vectors, q, 10, labels == 3)
    expected = np.linalg.norm(vectors[rows[0][0]] - q)
    assert abs(rows[0][1] - expected) < 1e-4


def test_prepared_statement_reused(conn, data):
    vectors, _ = data
    with conn.cursor() as cur:
        for i in range(5):
            cur.execute("SELECT id FROM py_items ORDER BY embedding <-> %s LIMIT 1", (vectors[i],), prepare=True)
            assert cur.fetchone()[0] == i


def test_insert_with_parameters_and_returning(conn, data):
    v = np.arange(DIM, dtype=np.float32)
    row = conn.execute(
        "INSERT INTO py_items (id, embedding, label) VALUES (%s, %s, %s) RETURNING id, label", (ROWS + 1, v, 5)
    ).fetchone()
    assert row == (ROWS + 1, 5)
    cur = conn.execute("DELETE FROM py_items WHERE id = %s", (ROWS + 1,))
    assert cur.rowcount == 1
    assert cur.statusmessage == "DELETE 1"


def test_errors_carry_sqlstate_and_connection_survives(conn, data):
    with pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute("INSERT INTO py_items (id, embedding, label) VALUES (1, %s, 1)", (np.zeros(DIM, dtype=np.float32),))
    with pytest.raises(psycopg.errors.DataException, match="expected 16 dimensions, not 3"):
        conn.execute("INSERT INTO py_items (id, embedding) VALUES (%s, %s)", (ROWS + 2, np.zeros(3, dtype=np.float32)))
    with pytest.raises(psycopg.errors.UndefinedTable):
        conn.execute("SELECT * FROM no_such_table")
    with pytest.raises(psycopg.errors.UndefinedColumn):
        conn.execute("SELECT no_such_column FROM py_items")
    assert conn.execute("SELECT 1").fetchone()[0] == 1


def test_nested_transaction_savepoints(conn, data):
    with conn.transaction():
        with conn.transaction():
            conn.execute("SELECT 1")
    assert conn.execute("SELECT 2").fetchone()[0] == 2


def test_settings_do_not_leak_between_connections(conn):
    with psycopg.connect(URL, autocommit=True) as other:
        other.execute("SET hnsw.ef_search = 200")
        assert other.execute("SHOW hnsw.ef_search").fetchone()[0] == "200"
        assert conn.execute("SHOW hnsw.ef_search").fetchone()[0] == "40"


def recall_at(found, truth):
    return len(set(found) & set(truth)) / len(truth)


def test_create_index_progress_notices_and_indexed_search(conn, data):
    vectors, labels = data
    notices = []
    conn.add_notice_handler(lambda diag: notices.append(diag.message_primary))
    conn.execute("DROP INDEX IF EXISTS py_items_hnsw")
    conn.execute(
        "CREATE INDEX py_items_hnsw ON py_items USING hnsw (embedding vector_l2_ops) "
        "WITH (m = 16, ef_construction = 64)"
    )
    assert notices and notices[-1].startswith('index "py_items_hnsw": ')
    assert notices[-1].endswith("segments indexed")
    row = conn.execute(
        "SELECT index_type, metric, state, rows_indexed, rows_total FROM quiver_catalog.indexes "
        "WHERE index_name = 'py_items_hnsw'"
    ).fetchone()
    assert row[:3] == ("hnsw", "l2", "ready")
    assert row[3] == row[4] >= ROWS
    plan = "\n".join(r[1] for r in conn.execute(
        "EXPLAIN SELECT id FROM py_items ORDER BY embedding <-> %s LIMIT 10", (vectors[0],)
    ).fetchall())
    assert "index=py_items_hnsw (hnsw)" in plan
    conn.execute("SET hnsw.ef_search = 100")
    rng = np.random.default_rng(5)
    total = 0.0
    for q in rng.standard_normal((20, DIM)).astype(np.float32):
        got = [r[0] for r in conn.execute(
            "SELECT id FROM py_items ORDER BY embedding <-> %s LIMIT 10", (q,)
        ).fetchall()]
        total += recall_at(got, brute_force(vectors, q, 10))
        filtered = [r[0] for r in conn.execute(
            "SELECT id FROM py_items WHERE label = 3 ORDER BY embedding <-> %s LIMIT 10", (q,)
        ).fetchall()]
        assert len(filtered) == 10
        assert recall_at(filtered, brute_force(vectors, q, 10, labels == 3)) >= 0.9
    assert total / 20 >= 0.95
    conn.execute("RESET hnsw.ef_search")
    conn.execute("DROP INDEX py_items_hnsw")
    with pytest.raises(psycopg.errors.UndefinedTable):
        conn.execute("DROP INDEX py_items_hnsw")


def test_dict_rows_pagination_and_databases_as_orms_use_them(conn, data):
    """What ORMs and dict-row drivers lean on: PostgreSQL's column names as
    dict keys, LIMIT/OFFSET as bound parameters (psycopg sends ints as
    int2/int8, server-side binding), a database connected to by name."""
    from psycopg.rows import dict_row

    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute("SELECT count(*), max(id), 1, 5::float8 FROM py_items WHERE label = %s", (3,))
        row = cur.fetchone()
        assert set(row) == {"count", "max", "?column?", "float8"}
        assert row["float8"] == 5.0
        cur.execute("SELECT id FROM py_items ORDER BY id LIMIT %s OFFSET %s", (3, 5))
        assert [r["id"] for r in cur.fetchall()] == [5, 6, 7]
    conn.execute("DROP DATABASE IF EXISTS py_shop")
    conn.execute("CREATE DATABASE py_shop")
    shop_url = URL.rsplit("/", 1)[0] + "/py_shop"
    with psycopg.connect(shop_url, autocommit=True) as shop:
        assert shop.execute("SELECT current_database()").fetchone()[0] == "py_shop"
        # public's tables are found after the database's own.
        assert shop.execute("SELECT count(*) FROM py_items").fetchone()[0] == ROWS
        # Another session is connected to it: PostgreSQL refuses the drop.
        with pytest.raises(psycopg.errors.ObjectInUse, match='database "py_shop" is being accessed by other users'):
            conn.execute("DROP DATABASE py_shop")
    # The default search_path "$user", public: a user whose name is a
    # schema's finds that schema first, as PostgreSQL searches it.
    conn.execute("CREATE TABLE py_shop.py_orders (id bigint PRIMARY KEY)")
    user_url = URL.replace("//quiver@", "//py_shop@", 1)
    assert user_url != URL
    with psycopg.connect(user_url, autocommit=True) as owner:
        assert owner.execute("SELECT current_schema(), current_schemas(true)").fetchone() == (
            "py_shop",
            ["pg_catalog", "py_shop", "public"],
        )
        assert owner.execute("SELECT count(*) FROM py_orders").fetchone()[0] == 0
        owner.execute("SET search_path = public")
        assert owner.execute("SELECT current_schema()").fetchone()[0] == "public"
    with pytest.raises(psycopg.OperationalError, match='database "py_nowhere" does not exist'):
        psycopg.connect(URL.rsplit("/", 1)[0] + "/py_nowhere")
    conn.execute("DROP DATABASE py_shop")


def test_transactions_commit_roll_back_and_abort():
    """psycopg's own transaction handling (autocommit off: every statement
    opens a block): rollback() discards, commit() keeps, an error leaves
    the connection INERROR until rollback, and conn.transaction() nests
    savepoints."""
    from psycopg.pq import TransactionStatus

    with psycopg.connect(URL, autocommit=True) as setup:
        setup.execute("DROP TABLE IF EXISTS py_txn")
        setup.execute("CREATE TABLE py_txn (id BIGINT PRIMARY KEY, note TEXT)")
        setup.execute("INSERT INTO py_txn VALUES (1, 'one'), (2, 'two')")
    with psycopg.connect(URL) as c:
        c.execute("DELETE FROM py_txn")
        assert c.info.transaction_status == TransactionStatus.INTRANS
        assert c.execute("SELECT count(*) FROM py_txn").fetchone()[0] == 0
        c.rollback()
        assert c.execute("SELECT count(*) FROM py_txn").fetchone()[0] == 2
        c.execute("INSERT INTO py_txn VALUES (3, 'three')")
        c.commit()
        with pytest.raises(psycopg.errors.UniqueViolation):
            c.execute("INSERT INTO py_txn VALUES (3, 'again')")
        assert c.info.transaction_status == TransactionStatus.INERROR
        with pytest.raises(psycopg.errors.InFailedSqlTransaction):
            c.execute("SELECT 1")
        c.rollback()
        assert c.info.transaction_status == TransactionStatus.IDLE
        with c.transaction():
            c.execute("INSERT INTO py_txn VALUES (4, 'outer')")
            with pytest.raises(psycopg.errors.UniqueViolation):
                with c.transaction():
                    c.execute("INSERT INTO py_txn VALUES (5, 'inner')")
                    c.execute("INSERT INTO py_txn VALUES (1, 'clash')")
        c.commit()
        ids = [r[0] for r in c.execute("SELECT id FROM py_txn ORDER BY id")]
        assert ids == [1, 2, 3, 4]
        c.rollback()


def test_keyless_table_and_integer_types_as_psycopg_sees_them(conn):
    """A table declared without a primary key, through psycopg's own
    cursor description and binary parameters; integer constants described
    as PostgreSQL describes them (int4 below 2^31, int8 above)."""
    cur = conn.execute("SELECT 1 AS small, 2147483648 AS big")
    assert [d.type_code for d in cur.description] == [23, 20]
    assert cur.fetchone() == (1, 2147483648)
    conn.execute("DROP TABLE IF EXISTS py_keyless")
    conn.execute("CREATE TABLE py_keyless (label TEXT, score INTEGER, embedding vector(2))")
    try:
        with conn.cursor() as c:
            c.executemany(
                "INSERT INTO py_keyless VALUES (%s, %s, %b)",
                [("a", 1, np.array([1, 0], dtype=np.float32))] * 2
                + [("b", 2, np.array([0, 1], dtype=np.float32))],
            )
        cur = conn.execute("SELECT * FROM py_keyless ORDER BY label")
        assert [d.name for d in cur.description] == ["label", "score", "embedding"]
        assert [r[:2] for r in cur.fetchall()] == [("a", 1), ("a", 1), ("b", 2)]
        assert conn.execute("DELETE FROM py_keyless WHERE label = %s", ("a",)).rowcount == 2
        with pytest.raises(psycopg.errors.UndefinedColumn) as err:
            conn.execute("SELECT nope FROM py_keyless")
        assert err.value.diag.statement_position == "8"
    finally:
        conn.execute("DROP TABLE py_keyless")


def test_a_session_ending_mid_block_discards_its_catalog_changes():
    # psycopg opens a block before the first statement (autocommit off).
    unfinished = psycopg.connect(URL)
    unfinished.execute("CREATE TABLE py_unfinished (id BIGINT PRIMARY KEY)")
    unfinished.execute("INSERT INTO py_unfinished VALUES (1)")
    with psycopg.connect(URL, autocommit=True) as other:
        # Not there for anyone else while the block is open.
        with pytest.raises(psycopg.errors.UndefinedTable):
            other.execute("SELECT * FROM py_unfinished")
        unfinished.close()
        # The server aborts the block's changes once the session is gone.
        deadline = time.monotonic() + 10
        while True:
            try:
                other.execute("CREATE TABLE py_unfinished (id BIGINT PRIMARY KEY)")
                break
            except psycopg.errors.DuplicateTable:
                assert time.monotonic() < deadline, "the ended session's table stayed"
                time.sleep(0.05)
        assert other.execute("SELECT count(*) FROM py_unfinished").fetchone() == (0,)
        other.execute("DROP TABLE py_unfinished")
