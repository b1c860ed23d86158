//! The hidden columns the Milvus door adds to a collection's table (a leaf
//! module: the converters and the partition logic both name them).

/// The text column holding each row's partition name (NULL: `_default`),
/// present once a collection has partitions (see `partitions`).
pub(super) const PARTITION_COLUMN: &str = "$partition";
