//! The data node's API: work the coordinator hands out as **leased tasks**,
//! each a plain request naming its inputs by object path and its output's
//! place, answered with what was written — never a reference into the
//! coordinator's or a query node's memory. The coordinator keeps the lease
//! (see [`crate::task_leases`]) and commits a result only while the lease
//! it was issued under still holds; a result that comes too late is
//! dropped and its object deleted.
//!
//! Today: per-segment index builds (Milvus' index tasks). The data node
//! takes the flushed segment's rows from the task or else reads them from
//! object storage, builds the index, writes it next to the segment and
//! answers with its record; the coordinator
//! records it on the segment and the query side loads it from object
//! storage, as a query node of a cluster would.

use std::sync::Arc;

use arrow::array::RecordBatch;
use async_trait::async_trait;
use quiver_common::schema::TableSchema;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::indexes::{IndexMeta, SegmentIndexMeta};

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
}
