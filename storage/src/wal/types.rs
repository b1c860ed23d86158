//! The log's vocabulary, shared by the handle, recovery, the segment format
//! and the writer thread: [`Lsn`] and [`SyncPolicy`]. A leaf: it imports no
//! other module of the WAL.

/// Log sequence number. The first record gets 1; 0 means "nothing yet".
pub type Lsn = u64;

/// When appended records are forced to stable storage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SyncPolicy {
    /// `fsync` (one per commit group) before acknowledging an append.
    #[default]
    Always,
    /// Never `fsync` on append; the OS decides. An OS crash may lose
    /// acknowledged records. Meant for benchmarks.
    Never,
}
