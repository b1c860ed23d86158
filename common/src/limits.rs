//! Hard limits enforced at the access layer and documented in `docs/errors.md`.

/// Largest vector dimension a column may declare (pgvector allows 16,000; Milvus 32,768).
pub const MAX_VECTOR_DIM: usize = 32_768;
/// Largest `LIMIT`/top-k a vector search may ask for (Milvus' limit).
pub const MAX_TOP_K: usize = 16_384;
/// Largest single protocol message / request accepted (bytes).
pub const MAX_REQUEST_BYTES: usize = 256 * 1024 * 1024;
/// Longest identifier (table, column, schema name), as in Postgres.
pub const MAX_IDENTIFIER_LEN: usize = 63;
