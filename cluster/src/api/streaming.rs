//! The streaming node's API: writes to a table (each row goes to the shard
//! its primary key hashes to, see [`crate::shards`]), acknowledged once
//! durable in the WAL and applied, with the timestamp they are visible at;
//! flushing a table's shards; and the **safe timestamp**, up to which
//! every write is applied; and transactions: rows validated and keyed for
//! a transaction's buffer ([`StageRows`]), and the atomic commit of its
//! writes to several tables at one timestamp ([`CommitTransaction`]).
//! Keyed by table id; rows and keys travel as Arrow record batches.

use arrow::array::RecordBatch;
use async_trait::async_trait;

use crate::error::Result;

/// How inserted rows treat existing keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum WriteMode {
    /// Fail on an existing key (`23505`).
    Insert,
    /// Replace rows with existing keys.
    Upsert,
    /// Skip rows whose key exists (`ON CONFLICT DO NOTHING`).
    InsertIgnore,
}

/// Inserts or upserts rows (the table's user columns, by name; auto ids
/// missing are assigned).
#[derive(Debug, Clone)]
pub struct WriteRows {
    pub table_id: u64,
    pub rows: RecordBatch,
    pub mode: WriteMode,
}

/// A durable, applied write.
#[derive(Debug, Clone)]
pub struct WriteAck {
    /// The rows as written (auto ids filled; rows an insert-ignore skipped
    /// left out), in the table's user schema.
    pub rows: RecordBatch,
    /// The timestamp the rows are visible at (0 when nothing was written).
    pub ts: u64,
}

/// Deletes the rows with these primary keys (one column, typed as the key).
#[derive(Debug, Clone)]
pub struct DeleteKeys {
    pub table_id: u64,
    pub keys: RecordBatch,
}

/// A durable, applied delete: how many visible rows it deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeleteAck {
    pub deleted: u64,
}

/// Rows a transaction buffers, to be checked and keyed as a write would be
/// (vectors and lengths validated, NOT NULL checked, auto ids assigned)
/// without being written.
#[derive(Debug, Clone)]
pub struct StageRows {
    pub table_id: u64,
    pub rows: RecordBatch,
}

/// One table's part of a transaction's commit.
#[derive(Debug, Clone)]
pub struct TableChanges {
    pub table_id: u64,
    /// Keys the transaction saw at its snapshot and deleted or replaced
    /// (one column, typed as the key): the commit fails with a
    /// serialization failure when another write changed one of them after
    /// the snapshot.
    pub seen_keys: Option<RecordBatch>,
    /// The rows the transaction leaves, in the table's user schema (keyed:
    /// staged). A row whose key is not among `seen_keys` is new: the commit
    /// fails with a duplicate key when the key exists by then.
    pub rows: Option<RecordBatch>,
}

/// At most this many bytes of rows (in memory, keys included) one
/// transaction buffers: its commit is one WAL entry, which holds at most
/// `quiver_storage::wal::MAX_RECORD_BYTES` once encoded; half of it leaves
/// room for the encoding.
pub const MAX_TRANSACTION_BYTES: usize = quiver_storage::wal::MAX_RECORD_BYTES / 2;

/// A transaction's writes, committed atomically: durable in one WAL entry
/// and visible at one timestamp, or not at all.
#[derive(Debug, Clone)]
pub struct CommitTransaction {
    /// The timestamp the transaction read at.
    pub snapshot_ts: u64,
    pub tables: Vec<TableChanges>,
}

/// The streaming node.
#[async_trait]
pub trait Streaming: Send + Sync + 'static {
    async fn write(&self, request: WriteRows) -> Result<WriteAck>;
    async fn delete(&self, request: DeleteKeys) -> Result<DeleteAck>;
    /// Seals the table's growing segments and flushes them (Milvus `Flush`).
    async fn flush(&self, table_id: u64) -> Result<()>;
    /// Every write stamped at or before it is applied.
    async fn safe_timestamp(&self) -> Result<u64>;
    /// Checks and keys rows for a transaction's buffer (see [`StageRows`]).
    async fn stage(&self, request: StageRows) -> Result<RecordBatch>;
    /// Commits a transaction; returns the timestamp its writes are visible
    /// at (0 when it wrote nothing).
    async fn commit(&self, request: CommitTransaction) -> Result<u64>;
}
