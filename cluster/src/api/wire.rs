//! The role APIs serialized (`cluster.serialize_seams`): a
//! [`WireCoordinator`] encodes every request to bytes and decodes it before
//! the coordinator sees it, and the reply likewise on its way back — the
//! messages' serde form, as a transport would carry them; a
//! [`WireStreaming`] does the same for the streaming node, its rows and
//! keys as Arrow IPC, a [`WireDataNode`] for the data node's tasks and a
//! [`WireQuery`] for the query node (segments to load named by their
//! records: the query node reads their objects, as across processes) and a
//! [`WireDeleteSubscriber`] for the deletes it is sent, a [`WireTableReads`]
//! for a node's read side (its fragments searched and scanned through
//! encoded messages); the streaming node
//! as the coordinator drives it is in `wire_streaming`. Errors come back encoded too
//! ([`error_over_the_wire`]): their structured fields, or their status code
//! and message.

use std::sync::Arc;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::Serialize;

use arrow::array::RecordBatch;
use quiver_exec::fragment_wire::WireFragment;
use quiver_proto::fragments::{decode_batch, encode_batch};

use super::coordinator::{
    AddColumn, CatalogSnapshot, Coordinator, CreateDatabase, CreateIndex, CreateTable,
    DropDatabase, DropIndex, DropTable, EndBlock, ExtensionOutcome, ExtensionRef, IndexBuildStep,
    IndexStatus, RenameTable, SetTableOptions, TableInfo, TableLayout, TableRef, TimestampBatch,
};
use super::data::{
    BuiltIndex, CompactedSegment, CompactionInput, CompactionTask, DataNodeTasks, IndexBuildTask,
};
use super::query::{
    ApplyDeletes, AttachIndex, CompactionSource, DeleteSubscriber, LoadSegments, LoadedSegments,
    Query, ReadCompactionSource, ServedSegment,
};
use super::reads::{PartFragment, ReadTable, TablePart, TableReads};
use super::streaming::{
    CommitTransaction, DeleteAck, DeleteKeys, StageRows, Streaming, TableChanges, WriteAck,
    WriteRows,
};
use super::wire_error::error_over_the_wire;
use crate::error::{EngineError, Result};

/// A coordinator reached through encoded messages.
pub struct WireCoordinator {
    inner: Arc<dyn Coordinator>,
}

impl WireCoordinator {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Coordinator>) -> Self {
        Self { inner }
    }
}

/// `value` encoded and decoded again.
pub(super) fn over_the_wire<T: Serialize + DeserializeOwned>(value: T) -> Result<T> {
    let bytes = serde_json::to_vec(&value)
        .map_err(|e| EngineError::Internal(format!("encoding a coordinator message: {e}")))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| EngineError::Internal(format!("decoding a coordinator message: {e}")))
}

#[async_trait]
impl Coordinator for WireCoordinator {
    async fn create_database(&self, request: CreateDatabase) -> Result<bool> {
        let request = over_the_wire(request)?;
        over_the_wire(
            self.inner
                .create_database(request)
                .await
                .map_err(error_over_the_wire)?,
        )
    }

    async fn create_extension(&self, extension: ExtensionRef) -> Result<ExtensionOutcome> {
        let extension = over_the_wire(extension)?;
        over_the_wire(
            self.inner
                .create_extension(extension)
                .await
                .map_err(error_over_the_wire)?,
        )
    }

    async fn drop_extension(&self, extension: ExtensionRef) -> Result<ExtensionOutcome> {
        let extension = over_the_wire(extension)?;
        over_the_wire(
            self.inner
                .drop_extension(extension)
                .await
                .map_err(error_over_the_wire)?,
        )
    }

    async fn drop_database(&self, request: DropDatabase) -> Result<bool> {
        let request = over_the_wire(request)?;
        over_the_wire(
            self.inner
                .drop_database(request)
                .await
                .map_err(error_over_the_wire)?,
        )
    }

    async fn create_table(&self, request: CreateTable) -> Result<bool> {
        let request = over_the_wire(request)?;
        over_the_wire(
            self.inner
                .create_table(request)
                .await
                .map_err(error_over_the_wire)?,
        )
    }

    async fn drop_table(&self, request: DropTable) -> Result<bool> {
        let request = over_the_wire(request)?;
        over_the_wire(
            self.inner
                .drop_table(request)
                .await
                .map_err(error_over_the_wire)?,
        )
    }

    async fn end_block(&self, request: EndBlock) -> Result<()> {
        let request = over_the_wire(request)?;
        over_the_wire(
            self.inner
                .end_block(request)
                .await
                .map_err(error_over_the_wire)?,
        )
    }

    async fn rename_table(&self, request: RenameTable) -> Result<()> {
        let request = over_the_wire(request)?;
        over_the_wire(
            self.inner
                .rename_table(request)
                .await
                .map_err(error_over_the_wire)?,
        )
    }

    async fn add_column(&self, request: AddColumn) -> Result<bool> {
        let request = over_the_wire(request)?;
        over_the_wire(
            self.inner
                .add_column(request)
                .await
                .map_err(error_over_the_wire)?,
        )
    }

    async fn set_table_options(&self, request: SetTableOptions) -> Result<()> {
        let request = over_the_wire(request)?;
        over_the_wire(
            self.inner
                .set_table_options(request)
                .await
                .map_err(error_over_the_wire)?,
        )
    }

    async fn create_index(&self, request: CreateIndex) -> Result<Option<String>> {
        let request = over_the_wire(request)?;
        over_the_wire(
            self.inner
                .create_index(request)
                .await
                .map_err(error_over_the_wire)?,
        )
    }

    async fn drop_index(&self, request: DropIndex) -> Result<bool> {
        let request = over_the_wire(request)?;
        over_the_wire(
            self.inner
                .drop_index(request)
                .await
                .map_err(error_over_the_wire)?,
        )
    }

    async fn index_statuses(&self) -> Result<Vec<IndexStatus>> {
        over_the_wire(
            self.inner
                .index_statuses()
                .await
                .map_err(error_over_the_wire)?,
        )
    }

    async fn table_index_statuses(&self, table: TableRef) -> Result<Vec<IndexStatus>> {
        let table = over_the_wire(table)?;
        over_the_wire(
            self.inner
                .table_index_statuses(table)
                .await
                .map_err(error_over_the_wire)?,
        )
    }

    async fn catalog(&self) -> Result<CatalogSnapshot> {
        over_the_wire(self.inner.catalog().await.map_err(error_over_the_wire)?)
    }

    async fn catalog_version(&self) -> Result<u64> {
        over_the_wire(
            self.inner
                .catalog_version()
                .await
                .map_err(error_over_the_wire)?,
        )
    }

    async fn describe_table(&self, table: TableRef) -> Result<TableInfo> {
        let table = over_the_wire(table)?;
        over_the_wire(
            self.inner
                .describe_table(table)
                .await
                .map_err(error_over_the_wire)?,
        )
    }

    async fn allocate_timestamps(&self, count: u32) -> Result<TimestampBatch> {
        let count = over_the_wire(count)?;
        over_the_wire(
            self.inner
                .allocate_timestamps(count)
                .await
                .map_err(error_over_the_wire)?,
        )
    }

    async fn compact(&self, table: TableRef) -> Result<usize> {
        let table = over_the_wire(table)?;
        over_the_wire(
            self.inner
                .compact(table)
                .await
                .map_err(error_over_the_wire)?,
        )
    }

    async fn build_index_step(&self, table: TableRef) -> Result<IndexBuildStep> {
        let table = over_the_wire(table)?;
        over_the_wire(
            self.inner
                .build_index_step(table)
                .await
                .map_err(error_over_the_wire)?,
        )
    }

    async fn request_maintenance(&self) -> Result<()> {
        self.inner
            .request_maintenance()
            .await
            .map_err(error_over_the_wire)
    }

    async fn read_timestamp(&self) -> Result<u64> {
        over_the_wire(
            self.inner
                .read_timestamp()
                .await
                .map_err(error_over_the_wire)?,
        )
    }

    async fn layout(&self, table: TableRef) -> Result<TableLayout> {
        let table = over_the_wire(table)?;
        over_the_wire(
            self.inner
                .layout(table)
                .await
                .map_err(error_over_the_wire)?,
        )
    }
}

/// A streaming node reached through encoded messages.
pub struct WireStreaming {
    inner: Arc<dyn Streaming>,
}

impl WireStreaming {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Streaming>) -> Self {
        Self { inner }
    }
}

/// `batch` as Arrow IPC and back.
pub(super) fn batch_over_the_wire(batch: RecordBatch) -> Result<RecordBatch> {
    Ok(decode_batch(&encode_batch(&batch)?)?)
}

/// An optional batch as Arrow IPC and back.
pub(super) fn optional_batch_over_the_wire(
    batch: Option<RecordBatch>,
) -> Result<Option<RecordBatch>> {
    batch.map(batch_over_the_wire).transpose()
}

/// A write request encoded and decoded (its rows as Arrow IPC).
pub(super) fn write_over_the_wire(request: WriteRows) -> Result<WriteRows> {
    Ok(WriteRows {
        table_id: over_the_wire(request.table_id)?,
        rows: batch_over_the_wire(request.rows)?,
        mode: over_the_wire(request.mode)?,
    })
}

/// A delete request encoded and decoded (its keys as Arrow IPC).
pub(super) fn delete_over_the_wire(request: DeleteKeys) -> Result<DeleteKeys> {
    Ok(DeleteKeys {
        table_id: over_the_wire(request.table_id)?,
        keys: batch_over_the_wire(request.keys)?,
    })
}

/// A staging request encoded and decoded (its rows as Arrow IPC).
pub(super) fn stage_over_the_wire(request: StageRows) -> Result<StageRows> {
    Ok(StageRows {
        table_id: over_the_wire(request.table_id)?,
        rows: batch_over_the_wire(request.rows)?,
    })
}

/// A commit request encoded and decoded (keys and rows as Arrow IPC).
pub(super) fn commit_over_the_wire(request: CommitTransaction) -> Result<CommitTransaction> {
    let tables = request
        .tables
        .into_iter()
        .map(|t| {
            Ok(TableChanges {
                table_id: over_the_wire(t.table_id)?,
                seen_keys: optional_batch_over_the_wire(t.seen_keys)?,
                rows: optional_batch_over_the_wire(t.rows)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(CommitTransaction {
        snapshot_ts: over_the_wire(request.snapshot_ts)?,
        tables,
        catalog_block: over_the_wire(request.catalog_block)?,
    })
}

#[async_trait]
impl Streaming for WireStreaming {
    async fn write(&self, request: WriteRows) -> Result<WriteAck> {
        let request = write_over_the_wire(request)?;
        let ack = self
            .inner
            .write(request)
            .await
            .map_err(error_over_the_wire)?;
        Ok(WriteAck {
            rows: batch_over_the_wire(ack.rows)?,
            ts: over_the_wire(ack.ts)?,
        })
    }

    async fn delete(&self, request: DeleteKeys) -> Result<DeleteAck> {
        let request = delete_over_the_wire(request)?;
        let ack = self
            .inner
            .delete(request)
            .await
            .map_err(error_over_the_wire)?;
        Ok(DeleteAck {
            deleted: over_the_wire(ack.deleted)?,
        })
    }

    async fn flush(&self, table_id: u64) -> Result<()> {
        self.inner
            .flush(over_the_wire(table_id)?)
            .await
            .map_err(error_over_the_wire)
    }

    async fn safe_timestamp(&self) -> Result<u64> {
        over_the_wire(
            self.inner
                .safe_timestamp()
                .await
                .map_err(error_over_the_wire)?,
        )
    }

    async fn stage(&self, request: StageRows) -> Result<RecordBatch> {
        let request = stage_over_the_wire(request)?;
        let rows = self
            .inner
            .stage(request)
            .await
            .map_err(error_over_the_wire)?;
        batch_over_the_wire(rows)
    }

    async fn commit(&self, request: CommitTransaction) -> Result<u64> {
        let request = commit_over_the_wire(request)?;
        over_the_wire(
            self.inner
                .commit(request)
                .await
                .map_err(error_over_the_wire)?,
        )
    }
}

/// A data node reached through encoded messages.
pub struct WireDataNode {
    inner: Arc<dyn DataNodeTasks>,
}

impl WireDataNode {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn DataNodeTasks>) -> Self {
        Self { inner }
    }
}

#[async_trait]
impl DataNodeTasks for WireDataNode {
    async fn build_index(&self, task: IndexBuildTask) -> Result<BuiltIndex> {
        let rows = rows_over_the_wire(task.rows.as_deref())?;
        let task = IndexBuildTask {
            rows,
            ..over_the_wire(task)?
        };
        over_the_wire(
            self.inner
                .build_index(task)
                .await
                .map_err(error_over_the_wire)?,
        )
    }

    async fn compact(&self, task: CompactionTask) -> Result<CompactedSegment> {
        let rows = task
            .inputs
            .iter()
            .map(|input| rows_over_the_wire(input.rows.as_deref()))
            .collect::<Result<Vec<_>>>()?;
        let deletes = task.deletes.clone().map(batch_over_the_wire).transpose()?;
        let decoded = over_the_wire(task)?;
        let task = CompactionTask {
            inputs: decoded
                .inputs
                .into_iter()
                .zip(rows)
                .map(|(input, rows)| CompactionInput { rows, ..input })
                .collect(),
            deletes,
            ..decoded
        };
        let reply = self
            .inner
            .compact(task)
            .await
            .map_err(error_over_the_wire)?;
        let merged = rows_over_the_wire(reply.merged.as_deref())?;
        Ok(CompactedSegment {
            merged,
            ..over_the_wire(reply)?
        })
    }
}

/// Batches encoded as Arrow IPC and decoded again.
fn rows_over_the_wire(rows: Option<&Vec<RecordBatch>>) -> Result<Option<Arc<Vec<RecordBatch>>>> {
    rows.map(|rows| {
        rows.iter()
            .cloned()
            .map(batch_over_the_wire)
            .collect::<Result<Vec<_>>>()
            .map(Arc::new)
    })
    .transpose()
}

/// A query node reached through encoded messages. The rows a caller in the
/// same process could hand over do not cross: the query node reads each
/// segment's object, as a query node of a cluster does.
pub struct WireQuery {
    inner: Arc<dyn Query>,
}

impl WireQuery {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Query>) -> Self {
        Self { inner }
    }
}

#[async_trait]
impl Query for WireQuery {
    async fn load_segments(&self, request: LoadSegments) -> Result<LoadedSegments> {
        let request = over_the_wire(request)?;
        over_the_wire(
            self.inner
                .load_segments(request)
                .await
                .map_err(error_over_the_wire)?,
        )
    }

    async fn attach_index(&self, request: AttachIndex) -> Result<bool> {
        let request = over_the_wire(request)?;
        over_the_wire(
            self.inner
                .attach_index(request)
                .await
                .map_err(error_over_the_wire)?,
        )
    }

    async fn detach_index(&self, table_id: u64, index_id: u64) -> Result<()> {
        let (table_id, index_id) = over_the_wire((table_id, index_id))?;
        self.inner
            .detach_index(table_id, index_id)
            .await
            .map_err(error_over_the_wire)
    }

    async fn release_table(&self, table_id: u64) -> Result<()> {
        let table_id = over_the_wire(table_id)?;
        self.inner
            .release_table(table_id)
            .await
            .map_err(error_over_the_wire)
    }

    async fn served_segments(&self, table_id: u64) -> Result<Vec<ServedSegment>> {
        let table_id = over_the_wire(table_id)?;
        over_the_wire(
            self.inner
                .served_segments(table_id)
                .await
                .map_err(error_over_the_wire)?,
        )
    }

    async fn live_keys(&self, table_id: u64) -> Result<Option<RecordBatch>> {
        let table_id = over_the_wire(table_id)?;
        self.inner
            .live_keys(table_id)
            .await
            .map_err(error_over_the_wire)?
            .map(batch_over_the_wire)
            .transpose()
    }

    /// Rows do not cross: the data node reads the segment's object.
    async fn segment_rows(
        &self,
        _table_id: u64,
        _segment_id: u64,
    ) -> Result<Option<Arc<Vec<RecordBatch>>>> {
        Ok(None)
    }

    /// The deletes cross as Arrow IPC; the rows do not (the data node
    /// reads the segments' objects, as across processes).
    async fn compaction_source(&self, request: ReadCompactionSource) -> Result<CompactionSource> {
        let request = over_the_wire(request)?;
        let segments = request.segment_ids.len();
        let source = self
            .inner
            .compaction_source(request)
            .await
            .map_err(error_over_the_wire)?;
        Ok(CompactionSource {
            rows: vec![None; segments],
            deletes: optional_batch_over_the_wire(source.deletes)?,
        })
    }
}

/// A query node's delete feed reached through encoded messages: the table
/// id and timestamp in serde form, the keys as Arrow IPC.
#[derive(Debug)]
pub struct WireDeleteSubscriber {
    inner: Arc<dyn DeleteSubscriber>,
}

impl WireDeleteSubscriber {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn DeleteSubscriber>) -> Self {
        Self { inner }
    }
}

impl DeleteSubscriber for WireDeleteSubscriber {
    fn apply_deletes(&self, deletes: ApplyDeletes) -> Result<()> {
        let (table_id, ts) = over_the_wire((deletes.table_id, deletes.ts))?;
        let keys = batch_over_the_wire(deletes.keys)?;
        self.inner
            .apply_deletes(ApplyDeletes { table_id, ts, keys })
            .map_err(error_over_the_wire)
    }
}

/// A node's read side reached through encoded messages: the request and
/// the part's plain data (timestamp, shards, segment ids, covered ids)
/// cross encoded, and every fragment is reached through
/// [`WireFragment`]'s encoded searches and scans, as a fragment on another
/// process would be.
#[derive(Debug)]
pub struct WireTableReads {
    inner: Arc<dyn TableReads>,
}

impl WireTableReads {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn TableReads>) -> Self {
        Self { inner }
    }
}

#[async_trait]
impl TableReads for WireTableReads {
    async fn read_table(&self, request: ReadTable) -> Result<TablePart> {
        let request = over_the_wire(request)?;
        let storage = request.schema.storage_schema();
        let part = self
            .inner
            .read_table(request)
            .await
            .map_err(error_over_the_wire)?;
        let placement: Vec<(u32, Vec<u64>)> = part
            .fragments
            .iter()
            .map(|f| (f.shard, f.segment_ids.clone()))
            .collect();
        let (read_ts, covered, placement) = over_the_wire((part.read_ts, part.covered, placement))?;
        let fragments = part
            .fragments
            .into_iter()
            .zip(placement)
            .map(|(f, (shard, segment_ids))| PartFragment {
                shard,
                segment_ids,
                fragment: Arc::new(WireFragment::new(f.fragment, storage.clone())),
            })
            .collect();
        Ok(TablePart {
            read_ts,
            fragments,
            covered,
        })
    }
}
