-- The README's psql walk-through, run with ON_ERROR_STOP.
CREATE EXTENSION IF NOT EXISTS vector;
DROP TABLE IF EXISTS psql_items;
CREATE TABLE psql_items (id BIGINT PRIMARY KEY, name TEXT, embedding vector(3));
INSERT INTO psql_items VALUES (1, 'apple', '[1,0,0]'), (2, 'banana', '[0,1,0]'), (3, 'cherry', '[0.9,0.1,0]');
SELECT id, name, embedding <-> '[1,0,0]' AS distance FROM psql_items ORDER BY distance LIMIT 2;
\copy psql_items (id, name, embedding) FROM 'tests/psql/items.csv' WITH (FORMAT csv)
SELECT count(*) FROM psql_items;
COPY psql_items TO STDOUT WITH (FORMAT csv);
COPY (SELECT id, embedding FROM psql_items WHERE id > 2 ORDER BY id) TO STDOUT;
\d psql_items
\dt
CREATE INDEX ON psql_items USING hnsw (embedding vector_l2_ops) WITH (m = 16, ef_construction = 64);
SELECT index_name, index_type, state, rows_indexed, rows_total FROM quiver_catalog.indexes;
\d psql_items
\di
DROP TABLE IF EXISTS psql_sharded;
CREATE TABLE psql_sharded (id BIGINT PRIMARY KEY, note TEXT) WITH (shards = 4);
\d+ psql_sharded
\dT
DROP TABLE psql_sharded;
SET hnsw.ef_search = 100;
EXPLAIN SELECT id FROM psql_items ORDER BY embedding <-> '[1,0,0]' LIMIT 2;
SELECT id, name FROM psql_items ORDER BY embedding <-> '[1,0,0]' LIMIT 2;
DELETE FROM psql_items WHERE id = 2;
SELECT id FROM psql_items ORDER BY id;
DROP TABLE psql_items;
