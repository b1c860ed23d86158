//! The data node's API: work the coordinator hands out as **leased tasks**,
//! each a plain request naming its inputs by object path and its output's
//! place, answered with what was written — never a reference into the
//! coordinator's or a query node's memory. The coordinator keeps the lease
//! (see [`crate::task_leases`]) and commits a result only while the lease
//! it was issued under still holds; a result that comes too late is
//! dropped and its object deleted.
//!
//! * **Index builds** (Milvus' index tasks): the data node takes the
//!   flushed segment's rows from the task or else reads them from object
//!   storage, builds the index, writes it next to the segment and answers
//!   with its record; the coordinator records it on the segment and the
//!   query side loads it from object storage, as a query node of a cluster
//!   would.
//! * **Compaction** (Milvus' mix compaction): the data node merges a group
//!   of one shard's flushed segments into one, dropping the rows the
//!   task's deletes hide at its timestamp, builds the merged segment's
//!   indexes and writes segment and indexes to the task's paths; the
//!   coordinator swaps the group for it in one meta-store transaction.

use std::sync::Arc;

use arrow::array::RecordBatch;
use async_trait::async_trait;
use quiver_common::schema::TableSchema;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::indexes::{IndexMeta, SegmentIndexMeta};

/// One segment a compaction merges.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompactionInput {
    pub segment_id: u64,
    /// Its Parquet object, read when `rows` is `None`.
    pub path: String,
    /// Its rows (storage schema) when the coordinator holds them; they
    /// travel as Arrow IPC.
    #[serde(skip)]
    pub rows: Option<Arc<Vec<RecordBatch>>>,
    pub first_lsn: u64,
    pub last_lsn: u64,
}

/// Merge `inputs` (segments of one shard, in table order) into the new
/// segment `output_segment_id`, without the rows `deletes` hide at
/// `compaction_ts`, with an index of every definition in `indexes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompactionTask {
    /// The lease it runs under (see [`crate::task_leases::TaskLeases`]).
    pub task_id: u64,
    pub table_id: u64,
    pub shard: u32,
    pub inputs: Vec<CompactionInput>,
    /// Rows deleted at or before this timestamp are dropped.
    pub compaction_ts: u64,
    /// The deletes that may hide rows of the inputs: a delete-log batch
    /// (the key column, then `ts`); `None` when there are none. It travels
    /// as Arrow IPC.
    #[serde(skip)]
    pub deletes: Option<RecordBatch>,
    /// The table's schema when the task was issued.
    pub schema: TableSchema,
    pub indexes: Vec<IndexMeta>,
    pub output_segment_id: u64,
    /// Where to write the merged segment; its indexes go to
    /// [`crate::indexes::index_path`] of the output segment.
    pub output_path: String,
}

/// A finished compaction: the merged segment and its indexes written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompactedSegment {
    pub task_id: u64,
    pub segment_id: u64,
    pub path: String,
    pub rows: usize,
    pub indexes: Vec<SegmentIndexMeta>,
    /// The merged rows (storage schema), so an in-process coordinator need
    /// not read the object back; they travel as Arrow IPC.
    #[serde(skip)]
    pub merged: Option<Arc<Vec<RecordBatch>>>,
}

/// Build `index` over the flushed segment `segment_id` of table `table_id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexBuildTask {
    /// The lease it runs under (see [`crate::task_leases::TaskLeases`]).
    pub task_id: u64,
    pub table_id: u64,
    pub segment_id: u64,
    /// The segment's Parquet object, read when `rows` is `None`.
    pub segment_path: String,
    /// The segment's rows (storage schema), when the coordinator holds them
    /// (standalone: they are in its memory, and decoding the object again
    /// cost a 60,000 x 784 segment ~1 s); they travel as Arrow IPC.
    #[serde(skip)]
    pub rows: Option<Arc<Vec<RecordBatch>>>,
    /// The table's schema when the task was issued (the segment's rows are
    /// read through it: columns added since read as NULL).
    pub schema: TableSchema,
    pub index: IndexMeta,
    /// Where to write the index (unique to this task).
    pub output_path: String,
}

/// A finished index build: the index object written and its record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuiltIndex {
    pub task_id: u64,
    pub record: SegmentIndexMeta,
}

/// A data node.
#[async_trait]
pub trait DataNodeTasks: Send + Sync + 'static {
    /// Runs an index build to its end; the index object exists when it
    /// answers.
    async fn build_index(&self, task: IndexBuildTask) -> Result<BuiltIndex>;
    /// Runs a compaction to its end; the merged segment's object and its
    /// indexes exist when it answers.
    async fn compact(&self, task: CompactionTask) -> Result<CompactedSegment>;
}
