"""asyncpg with pgvector.asyncpg: type introspection (public.vector),
numpy parameters in executemany, search, current_setting."""

import asyncio
import os

import asyncpg
import numpy as np
from pgvector.asyncpg import register_vector

URL = os.environ.get("QUIVER_URL", "postgresql://quiver@127.0.0.1:5433/quiver")


async def scenario():
    conn = await asyncpg.connect(URL)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        await register_vector(conn)
        await conn.execute("DROP TABLE IF EXISTS apg_items")
        await conn.execute("CREATE TABLE apg_items (id BIGINT PRIMARY KEY, v vector(3))")
        await conn.executemany(
            "INSERT INTO apg_items VALUES ($1, $2)",
            [(i, np.array([i, i + 1, i + 2], dtype=np.float32)) for i in range(20)],
        )
        rows = await conn.fetch("SELECT id, v FROM apg_items ORDER BY v <-> $1 LIMIT 3", np.array([5, 6, 7]))
        assert [r["id"] for r in rows] == [5, 4, 6]
        np.testing.assert_array_equal(rows[0]["v"], np.array([5, 6, 7], dtype=np.float32))
        assert await conn.fetchval("SELECT current_setting('server_version')") == "16.0"
        await conn.execute("DROP TABLE apg_items")
    finally:
        await conn.close()


def test_asyncpg_register_vector_and_search():
    asyncio.run(scenario())
