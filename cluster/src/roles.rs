//! The role interfaces still drawn inside the process (the data node's are
//! its task API, [`crate::api::data`]). Standalone wires in-process
//! implementations ([`StreamingNode`](crate::streaming::StreamingNode),
//! [`LocalQueryNode`]); cluster mode adds implementations that call the
//! roles over gRPC, without changing the [`Engine`](crate::Engine).

use std::sync::Arc;

use arrow::array::RecordBatch;
use async_trait::async_trait;
use quiver_exec::pk::PkValue;
use quiver_storage::{ObjectStoreRef, Wal};

use crate::error::{EngineError, Result};
use crate::table::TableRuntime;
use quiver_index::VectorIndex;

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

/// The acknowledged result of a write.
#[derive(Debug, Clone)]
pub struct WriteOutcome {
    /// Rows inserted or replaced, as written (auto ids filled), user schema.
    pub rows: RecordBatch,
    pub ts: u64,
    pub lsn: u64,
    pub sealed: bool,
}

/// The streaming role: owns the WAL of its shards and their growing
/// segments, seals and flushes them.
#[async_trait]
pub trait StreamingRole: Send + Sync {
    /// Flushes the table's sealed segments and pending deletes to object
    /// storage (each recorded in the meta store); returns segments flushed.
    async fn flush_table(&self, table: &TableRuntime) -> Result<usize>;
    /// Inserts or upserts rows; returns once they are durable and visible.
    fn write(
        &self,
        table: &TableRuntime,
        batch: RecordBatch,
        mode: WriteMode,
    ) -> Result<WriteOutcome>;
    /// Deletes rows by key; returns how many visible rows were deleted.
    fn delete(&self, table: &TableRuntime, keys: Vec<PkValue>) -> Result<usize>;
    /// The write-ahead log (replay, truncation, close).
    fn wal(&self) -> &Arc<dyn Wal>;
    /// The safe timestamp: every write stamped at or before it is applied
    /// (a read at it sees all of them).
    fn safe_timestamp(&self) -> u64;
}

/// The query role: loads flushed segments and delete logs.
#[async_trait]
pub trait QueryRole: Send + Sync {
    /// Rows of a flushed segment.
    async fn load_segment(&self, path: &str) -> Result<Vec<RecordBatch>>;
    /// (key, timestamp) entries of a delete log.
    async fn load_deltalog(&self, path: &str) -> Result<Vec<(PkValue, u64)>>;
    /// A segment's index file.
    async fn load_index(&self, path: &str) -> Result<Arc<dyn VectorIndex>>;
}

/// The query role in process: reads Parquet objects from object storage.
#[derive(Debug, Clone)]
pub struct LocalQueryNode {
    pub objects: ObjectStoreRef,
}

#[async_trait]
impl QueryRole for LocalQueryNode {
    async fn load_segment(&self, path: &str) -> Result<Vec<RecordBatch>> {
        crate::query_node::read_parquet(&self.objects, path).await
    }

    async fn load_deltalog(&self, path: &str) -> Result<Vec<(PkValue, u64)>> {
        crate::query_node::read_deltalog(&self.objects, path).await
    }

    async fn load_index(&self, path: &str) -> Result<Arc<dyn VectorIndex>> {
        let bytes = quiver_storage::get_bytes(self.objects.as_ref(), path).await?;
        let index = quiver_index::load_index(&bytes)
            .map_err(|e| EngineError::Index(format!("{path}: {e}")))?;
        Ok(Arc::from(index))
    }
}
