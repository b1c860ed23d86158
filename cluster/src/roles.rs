//! The role interfaces still drawn inside the process (the data node's are
//! its task API, [`crate::api::data`]; the query node's
//! [`crate::api::query`]). Standalone wires in-process
//! implementations ([`StreamingNode`](crate::streaming::StreamingNode));
//! cluster mode adds implementations that call the
//! roles over gRPC, without changing the [`Engine`](crate::Engine).

use std::sync::Arc;

use arrow::array::RecordBatch;
use async_trait::async_trait;
use quiver_exec::pk::PkValue;
use quiver_storage::Wal;

use crate::coordinator::SegmentMeta;
use crate::error::Result;
use crate::table::TableRuntime;

pub use crate::api::streaming::WriteMode;

/// The acknowledged result of a write.
#[derive(Debug, Clone)]
pub struct WriteOutcome {
    /// Rows inserted or replaced, as written (auto ids filled), user schema.
    pub rows: RecordBatch,
    pub ts: u64,
    pub lsn: u64,
    pub sealed: bool,
}

/// A segment flushed: its meta-store record, and its rows (storage
/// schema) for a query node in the same process.
#[derive(Debug, Clone)]
pub struct FlushedSegment {
    pub record: SegmentMeta,
    pub rows: Arc<Vec<RecordBatch>>,
}

/// The streaming role: owns the WAL of its shards and their growing
/// segments, seals and flushes them.
#[async_trait]
pub trait StreamingRole: Send + Sync {
    /// Flushes the table's sealed segments and pending deletes to object
    /// storage (each recorded in the meta store); returns the segments
    /// flushed, which it keeps serving until they are forgotten.
    async fn flush_table(&self, table: &TableRuntime) -> Result<Vec<FlushedSegment>>;
    /// Forgets flushed segments once a query node serves them.
    fn forget_segments(&self, table: &TableRuntime, segment_ids: &[u64]);
    /// Inserts or upserts rows; returns once they are durable and visible.
    fn write(
        &self,
        table: &TableRuntime,
        batch: RecordBatch,
        mode: WriteMode,
    ) -> Result<WriteOutcome>;
    /// Deletes rows by key; returns how many visible rows were deleted.
    fn delete(&self, table: &TableRuntime, keys: Vec<PkValue>) -> Result<usize>;
    /// Commits a transaction that read at `snapshot_ts` atomically (see
    /// the streaming node's `transaction` module).
    fn commit(&self, tables: Vec<TableCommit>, snapshot_ts: u64) -> Result<CommitOutcome>;
    /// The write-ahead log (replay, truncation, close).
    fn wal(&self) -> &Arc<dyn Wal>;
    /// The safe timestamp: every write stamped at or before it is applied
    /// (a read at it sees all of them).
    fn safe_timestamp(&self) -> u64;
}

/// One table's part of a commit.
pub struct TableCommit {
    pub table: Arc<TableRuntime>,
    /// Keys the transaction saw at its snapshot and deleted or replaced.
    pub seen: Vec<PkValue>,
    /// The rows it leaves (user schema); keys not in `seen` are new.
    pub rows: Option<RecordBatch>,
}

/// A committed transaction: the timestamp its writes are visible at (0
/// when it wrote nothing) and whether a growing segment sealed.
#[derive(Debug, Clone, Copy)]
pub struct CommitOutcome {
    pub ts: u64,
    pub sealed: bool,
}
