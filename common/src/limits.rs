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

/// Deepest expression tree a statement may build, as estimated on its
/// tokens before it is parsed: every binary operator of a chain is one level
/// (`1+1+1` is three deep: SQL operators associate to the left), and so is
/// every prefix or postfix operator, cast, subscript, parenthesis, bracket,
/// function call, `CASE` and subquery; set operations and joins add one
/// each to the query they belong to. Planning and optimization recurse on
/// these trees and several of DataFusion's passes are quadratic in their
/// depth, so the limit is set where the deepest accepted chain plans in well
/// under a second in a debug build and within an 8 MiB thread stack.
/// Refused with `54001` (statement too complex) / Milvus 1100.
pub const MAX_EXPRESSION_DEPTH: usize = 128;

/// Most operators one statement may hold (binary, prefix and postfix
/// operators, casts, subscripts, function calls, set operations and joins;
/// list elements such as `IN (...)` items or `VALUES` rows are not
/// operators). Bounds planning work on statements made of many shallow
/// expressions. Refused with `54001` / Milvus 1100.
pub const MAX_EXPRESSION_OPERATORS: usize = 512;

/// Most function calls nested in one another's arguments
/// (`abs(abs(abs(x)))` is three). The SQL parser tries each argument twice
/// (as a named argument, then as a plain one), so parsing time doubles with
/// every level. Refused with `54001` / Milvus 1100.
pub const MAX_FUNCTION_NESTING: usize = 10;

/// Most list items one statement may hold: the elements of all its
/// comma-separated lists (`IN (...)` items, `VALUES` rows and the values in
/// them, select lists, call arguments; commas inside literals such as
/// `'[1,2,3]'` do not count). Each item costs a few kilobytes and tens of
/// microseconds to plan (in a debug build a 10^5-item `IN` list plans in
/// about 5 s and 200 MB), so without a bound a 50 MB list would need
/// gigabytes. PostgreSQL has no such limit; batch bigger inserts (or use
/// `COPY`, or an array parameter: `id = ANY($1)`). Refused with `54001` /
/// Milvus 1100.
pub const MAX_LIST_ITEMS: usize = 100_000;

/// Stack of every thread that parses, plans or executes queries (the async
/// runtime's workers and blocking threads, the search pool). The expression
/// limits above are chosen so that the largest accepted statement plans and
/// runs within it, with margin, even in a debug build.
pub const THREAD_STACK_BYTES: usize = 8 * 1024 * 1024;

/// Most shards a table may have (Milvus' `proxy.maxShardNum` default).
pub const MAX_SHARDS: u32 = 16;
