//! The query node's API: it **serves flushed segments** — loads them (rows,
//! indexes and statistics) into its own registry, keyed by table id and
//! segment id, when the coordinator hands them over, and releases them —
//! and answers which segments it serves. Requests name segments by their
//! meta-store records (object paths); rows travel only as an optional
//! Arrow shortcut when the caller already holds them in the same process.
//!
//! A query node holds every delete of the tables it serves in a delete map
//! of its own: the streaming node sends it each applied delete
//! ([`ApplyDeletes`], through a [`DeleteSubscriber`]) — the delete part of
//! the WAL record, the same keys a query node of a cluster reads when it
//! tails the shard's WAL channel — and recovery hands it the table's
//! delete logs ([`LoadSegments::deltalogs`]).
//!
//! A flushed segment moves from the streaming node to a query node in two
//! steps: the query node loads it, then the streaming node forgets it; a
//! read between the two sees it in both places and keeps the query node's
//! copy (segment ids are unique in a table), so no moment shows it twice
//! or not at all. A compaction swaps its group for the merged segment in
//! one [`LoadSegments`] (load and release together).

use std::sync::Arc;

use arrow::array::RecordBatch;
use async_trait::async_trait;
use quiver_common::schema::TableSchema;
use serde::{Deserialize, Serialize};

use crate::coordinator::SegmentMeta;
use crate::error::Result;
use crate::indexes::SegmentIndexMeta;

/// One segment to load: its meta-store record (Parquet object, shard,
/// LSN range, index objects).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SegmentToLoad {
    pub record: SegmentMeta,
    /// Its rows (storage schema), when the caller holds them in the same
    /// process (a streaming node's just-flushed segment, a compaction's
    /// merged rows); else the query node reads `record.path`.
    #[serde(skip)]
    pub rows: Option<Arc<Vec<RecordBatch>>>,
}

/// Loads `load` and releases `release` of table `table_id` in one step:
/// a search sees either the segments released or the ones loaded.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadSegments {
    pub table_id: u64,
    /// The table's schema now (statistics are kept over its storage
    /// schema; a segment written before a column was added reads it as
    /// NULL).
    pub schema: TableSchema,
    /// The ids of the indexes the table defines: a segment's index records
    /// naming any other (a dropped index) are not loaded.
    pub index_ids: Vec<u64>,
    pub load: Vec<SegmentToLoad>,
    pub release: Vec<u64>,
    /// Delete-log objects of the table to read into the node's delete map
    /// (recovery: the deletes persisted before the WAL's replay start).
    #[serde(default)]
    pub deltalogs: Vec<String>,
}

/// Deletes a streaming node applied to a table at `ts`: the keys (one
/// column, typed as the key), as its WAL record holds them.
#[derive(Debug, Clone)]
pub struct ApplyDeletes {
    pub table_id: u64,
    pub ts: u64,
    pub keys: RecordBatch,
}

/// Receives the deletes a streaming node applies. In one process the
/// streaming node calls it while it applies the write, before the write's
/// timestamp becomes safe, so a read at a safe timestamp finds every
/// delete at or before it on the query node too. A query node of a cluster
/// tails the shard's WAL channel instead and answers a read once it has
/// applied the channel up to the read's timestamp.
pub trait DeleteSubscriber: Send + Sync + std::fmt::Debug {
    fn apply_deletes(&self, deletes: ApplyDeletes) -> Result<()>;
}

/// What a [`LoadSegments`] loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LoadedSegments {
    pub segments: usize,
    pub indexes: usize,
}

/// Attaches a built index to a served segment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AttachIndex {
    pub table_id: u64,
    pub segment_id: u64,
    pub index: SegmentIndexMeta,
}

/// A served segment, as the coordinator plans index builds and
/// compactions over it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServedSegment {
    pub id: u64,
    pub shard: u32,
    pub rows: usize,
    pub first_lsn: u64,
    pub last_lsn: u64,
    /// The ids of the indexes loaded for it.
    pub index_ids: Vec<u64>,
    /// The objects of those indexes.
    pub index_paths: Vec<String>,
}

/// What a compaction of some served segments of a table reads off the
/// query node serving them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReadCompactionSource {
    pub table_id: u64,
    /// The table's schema (the delete entries are keyed by its key
    /// column).
    pub schema: TableSchema,
    pub segment_ids: Vec<u64>,
    /// The compaction's timestamp: deletes after it stay in force.
    pub ts: u64,
}

/// What a compaction reads off the query node.
#[derive(Debug, Clone, Default)]
pub struct CompactionSource {
    /// Per segment asked for, its rows when the caller is in the same
    /// process (else the data node reads the segment's object).
    pub rows: Vec<Option<Arc<Vec<RecordBatch>>>>,
    /// The delete entries at or before the timestamp of every key stored
    /// in those segments (each once), as a delete-log batch (the keys,
    /// then their timestamps); `None` when there are none.
    pub deletes: Option<RecordBatch>,
}

/// A query node.
#[async_trait]
pub trait Query: Send + Sync + 'static {
    /// Loads and releases segments of one table in one step.
    async fn load_segments(&self, request: LoadSegments) -> Result<LoadedSegments>;
    /// Loads a built index onto a served segment; `false` when the segment
    /// is not served (compacted away meanwhile) or has that index already.
    async fn attach_index(&self, request: AttachIndex) -> Result<bool>;
    /// Unloads an index (dropped) from every segment of the table.
    async fn detach_index(&self, table_id: u64, index_id: u64) -> Result<()>;
    /// Releases every segment of a table (dropped).
    async fn release_table(&self, table_id: u64) -> Result<()>;
    /// The segments served of a table, in the order they were loaded
    /// (a merged segment takes its group's place).
    async fn served_segments(&self, table_id: u64) -> Result<Vec<ServedSegment>>;
    /// The keys of the rows visible now in the segments served of a table
    /// (one column, typed as the key; `None` when it serves none): the
    /// streaming node's live-key set is rebuilt from them after recovery.
    async fn live_keys(&self, table_id: u64) -> Result<Option<RecordBatch>>;
    /// The rows of a served segment, when the caller is in the same
    /// process (an index build's shortcut; `None` across processes or when
    /// the segment is not served: the data node reads its object).
    async fn segment_rows(
        &self,
        table_id: u64,
        segment_id: u64,
    ) -> Result<Option<Arc<Vec<RecordBatch>>>>;
    /// What a compaction of served segments reads: their deletes (and,
    /// in process, their rows).
    async fn compaction_source(&self, request: ReadCompactionSource) -> Result<CompactionSource>;
}
