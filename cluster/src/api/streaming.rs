//! The streaming node's API: writes to a table (each row goes to the shard
//! its primary key hashes to, see [`crate::shards`]), acknowledged once
//! durable in the WAL and applied, with the timestamp they are visible at;
//! flushing a table's shards; and the **safe timestamp**, up to which
//! every write is applied; and transactions: rows validated and keyed for
//! a transaction's buffer ([`StageRows`]), and the atomic commit of its
//! writes to several tables at one timestamp ([`CommitTransaction`]).
//! Keyed by table id; rows and keys travel as Arrow record batches.
//!
//! [`StreamingRole`] is the same node as the coordinator drives it: the
//! tables it carries (opened, redefined and closed by id, each with its
//! own copy of the definition and its own channel checkpoints, persisted
//! under keys it owns), seals and flushes with their hand-over, the WAL's
//! replay and truncation. It keeps its tables in a registry of its own; no
//! other role holds a reference into it.

use std::sync::Arc;

use arrow::array::RecordBatch;
use async_trait::async_trait;
use quiver_common::schema::TableSchema;
use serde::{Deserialize, Serialize};

use crate::coordinator::SegmentMeta;
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
    /// The transaction block, when it changed the catalog: the commit then
    /// writes a WAL entry marked with it even without row changes (the
    /// block's commit point, see
    /// [`PendingChange`](crate::api::coordinator::PendingChange)).
    pub catalog_block: Option<u64>,
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

/// What a streaming node keeps of a table's definition: sent when the
/// table is created or recovered ([`OpenTable`]) and when it changes
/// (rename, a column added).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamingTable {
    pub id: u64,
    pub database: String,
    pub name: String,
    pub schema: TableSchema,
    pub shards: u32,
}

/// A streaming node's checkpoints of one table (Milvus' channel
/// checkpoints): how far each shard's rows and the table's deletes are
/// persisted, and the next segment id. The node persists them under a key
/// of its own (`channel/<table id>`) with every flush.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardCheckpoints {
    /// Per shard: its rows of insert records with an LSN up to this one
    /// are in flushed segments.
    pub inserts_persisted_lsn: Vec<u64>,
    /// Delete records with an LSN up to this one are in delete logs.
    pub deletes_persisted_lsn: u64,
    /// The next segment id to hand out (growing, sealed and compacted
    /// segments of the table all draw from it).
    pub next_segment_id: u64,
}

impl ShardCheckpoints {
    /// The shard's rows of insert records up to this LSN are persisted.
    pub fn shard_persisted_lsn(&self, shard: u32) -> u64 {
        self.inserts_persisted_lsn
            .get(shard as usize)
            .copied()
            .unwrap_or(0)
    }

    /// Records that `shard`'s rows up to `lsn` are in flushed segments.
    pub fn mark_shard_persisted(&mut self, shard: u32, lsn: u64) {
        let shard = shard as usize;
        if self.inserts_persisted_lsn.len() <= shard {
            self.inserts_persisted_lsn.resize(shard + 1, 0);
        }
        let at = &mut self.inserts_persisted_lsn[shard];
        *at = (*at).max(lsn);
    }

    /// Hands out a segment id never used before in this table.
    pub fn allocate_segment_id(&mut self) -> u64 {
        let id = self.next_segment_id.max(1);
        self.next_segment_id = id + 1;
        id
    }

    /// The later of two checkpoints, field by field.
    pub fn max(mut self, other: &ShardCheckpoints) -> ShardCheckpoints {
        for (shard, lsn) in other.inserts_persisted_lsn.iter().enumerate() {
            self.mark_shard_persisted(shard as u32, *lsn);
        }
        self.deletes_persisted_lsn = self.deletes_persisted_lsn.max(other.deletes_persisted_lsn);
        self.next_segment_id = self.next_segment_id.max(other.next_segment_id);
        self
    }
}

/// Opens a table on its streaming node (a new table, or one recovered).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OpenTable {
    pub table: StreamingTable,
    /// Checkpoints known from elsewhere: for a recovered table, what its
    /// catalog record held before streaming nodes kept their own, and the
    /// segment ids its segment records use. The node keeps the later of
    /// these and its own.
    pub recorded: ShardCheckpoints,
    /// The table's delete-log objects (the deletes persisted before the
    /// WAL's replay start): replayed rows may be older than them.
    pub deltalogs: Vec<String>,
}

/// A segment of a table on its streaming node, by shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentPart {
    pub segment: u64,
    pub shard: u32,
    pub rows: u64,
}

/// What a streaming node holds of a table now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamingTableStats {
    /// Keys with a visible row.
    pub live_rows: u64,
    /// Each shard's growing segment, by shard number.
    pub growing: Vec<SegmentPart>,
    /// Sealed segments not handed over to a query node yet, in seal order.
    pub sealed: Vec<SegmentPart>,
}

/// What a WAL replay did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalReplay {
    /// The LSN the WAL was read from (the replay start persisted by the
    /// last truncation; 1 when there was none).
    pub from: u64,
    /// Records read and applied.
    pub records: usize,
    /// The transaction blocks whose commit entries the replay read (see
    /// [`CommitTransaction::catalog_block`]).
    #[serde(default)]
    pub committed_blocks: Vec<u64>,
}

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
/// schema) when the caller is in the same process (a query node it hands
/// the segment to then need not read the object back).
#[derive(Debug, Clone)]
pub struct FlushedSegment {
    pub record: SegmentMeta,
    pub rows: Option<Arc<Vec<RecordBatch>>>,
}

/// A committed transaction: the timestamp its writes are visible at (0
/// when it wrote nothing) and whether a growing segment sealed.
#[derive(Debug, Clone, Copy)]
pub struct CommitOutcome {
    pub ts: u64,
    pub sealed: bool,
}

/// The streaming node as the coordinator drives it (see the module
/// documentation). Every table is named by its id.
#[async_trait]
pub trait StreamingRole: Send + Sync + 'static {
    /// Starts carrying a table (created, or recovered before the replay).
    async fn open_table(&self, request: OpenTable) -> Result<()>;
    /// Takes a changed definition (between two writes).
    fn update_table(&self, table: StreamingTable) -> Result<()>;
    /// Stops carrying a dropped table: once this returns no flush of it
    /// records anything any more; deletes the node's own keys of it.
    /// Also for a table it does not carry (a drop a crash cut short).
    async fn close_table(&self, table_id: u64) -> Result<()>;
    /// Replays the WAL from the persisted replay start into the open
    /// tables (recovery, once every table is open).
    async fn replay_wal(&self) -> Result<WalReplay>;
    /// Rebuilds a table's live-key set after the replay, from its own
    /// rows and the keys visible in the segments a query node serves
    /// (`served_keys`, one column).
    fn rebuild_live_keys(&self, table_id: u64, served_keys: Option<RecordBatch>) -> Result<()>;
    /// Checks and keys rows for a transaction's buffer (see [`StageRows`]).
    async fn stage(&self, request: StageRows) -> Result<RecordBatch>;
    /// Inserts or upserts rows (auto ids assigned); returns once they are
    /// durable and visible.
    async fn write(&self, request: WriteRows) -> Result<WriteOutcome>;
    /// Deletes rows by key; returns how many visible rows were deleted.
    async fn delete(&self, request: DeleteKeys) -> Result<usize>;
    /// Commits a transaction that read at `snapshot_ts` atomically (see
    /// the streaming node's `transaction` module).
    async fn commit(&self, request: CommitTransaction) -> Result<CommitOutcome>;
    /// Seals the table's growing segments that hold rows; true if any.
    fn seal(&self, table_id: u64) -> Result<bool>;
    /// Flushes the table's sealed segments and pending deletes to object
    /// storage (each recorded in the meta store, with the node's
    /// checkpoints); returns the segments flushed, which it keeps serving
    /// until they are forgotten.
    async fn flush_table(&self, table_id: u64) -> Result<Vec<FlushedSegment>>;
    /// Forgets flushed segments once a query node serves them.
    fn forget_segments(&self, table_id: u64, segment_ids: &[u64]) -> Result<()>;
    /// A segment id never used before in the table (a compaction's output).
    fn allocate_segment_id(&self, table_id: u64) -> Result<u64>;
    /// What the node holds of a table now.
    fn table_stats(&self, table_id: u64) -> Result<StreamingTableStats>;
    /// Persists the new replay start (the smallest LSN an open table still
    /// needs) and deletes the WAL before it.
    async fn truncate_wal(&self) -> Result<()>;
    /// Closes the WAL (shutdown).
    fn close_wal(&self) -> Result<()>;
    /// The safe timestamp: every write stamped at or before it is applied
    /// (a read at it sees all of them).
    fn safe_timestamp(&self) -> u64;
}
