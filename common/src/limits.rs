//! Hard limits enforced at the access layer and documented in `docs/errors.md`.

/// Largest vector dimension a column may declare (pgvector allows 16,000; Milvus 32,768).
pub const MAX_VECTOR_DIM: usize = 32_768;
/// Largest `LIMIT`/top-k a vector search may ask for (Milvus' limit).
pub const MAX_TOP_K: usize = 16_384;
/// Largest single protocol message / request accepted (bytes).
pub const MAX_REQUEST_BYTES: usize = 256 * 1024 * 1024;
/// Most query vectors one search may carry (Milvus' `quotaAndLimits.limits.maxNQ`).
pub const MAX_NQ: usize = 16_384;
/// Longest Milvus name (collection, alias, partition, field, index, database),
/// in bytes (Milvus' `proxy.maxNameLength`).
pub const MAX_NAME_LEN: usize = 255;
/// Longest SQL identifier (table, column, schema, index name), in bytes.
///
/// PostgreSQL's limit is 63 (`NAMEDATALEN - 1`) and it truncates longer
/// identifiers with a NOTICE; Quiver allows Milvus' 255 so that every
/// collection stays reachable as a table, and refuses longer identifiers
/// (SQLSTATE 42622) instead of truncating them. `max_identifier_length`
/// reports this value.
pub const MAX_IDENTIFIER_LEN: usize = MAX_NAME_LEN;
/// How many bytes of a statement's memory limit each byte of its text is
/// counted as while it is parsed, planned and run: the text is held by the
/// protocol buffer, the query string, the tokens, the syntax tree, the
/// plan's literals and the result column named after the expression
/// (measured: `SELECT length('<50 MiB>')` raised the server's peak RSS by
/// 877 MB, 17 times its size). A statement longer than the query limit
/// divided by this factor is refused with `53200` before it is parsed.
pub const STATEMENT_TEXT_MEMORY_FACTOR: usize = 17;
