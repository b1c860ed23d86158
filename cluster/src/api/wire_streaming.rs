//! The streaming node as the coordinator drives it
//! ([`StreamingRole`]) through encoded messages (`cluster.serialize_seams`):
//! every request and reply goes to bytes and back — definitions and
//! checkpoints in their serde form, rows and keys as Arrow IPC — and
//! errors come back encoded ([`error_over_the_wire`]). A flushed segment's
//! rows do not cross: the query node it is handed to reads its object, as
//! across processes.

use std::sync::Arc;

use arrow::array::RecordBatch;
use async_trait::async_trait;

use super::streaming::{
    CommitOutcome, CommitTransaction, DeleteKeys, FlushedSegment, OpenTable, StageRows,
    StreamingRole, StreamingTable, StreamingTableStats, WalReplay, WriteOutcome, WriteRows,
};
use super::wire::{
    batch_over_the_wire, commit_over_the_wire, delete_over_the_wire, optional_batch_over_the_wire,
    over_the_wire, stage_over_the_wire, write_over_the_wire,
};
use super::wire_error::error_over_the_wire;
use crate::error::Result;

/// A streaming node, as the coordinator drives it, reached through
/// encoded messages.
pub struct WireStreamingRole {
    inner: Arc<dyn StreamingRole>,
}

impl WireStreamingRole {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn StreamingRole>) -> Self {
        Self { inner }
    }
}

#[async_trait]
impl StreamingRole for WireStreamingRole {
    async fn open_table(&self, request: OpenTable) -> Result<()> {
        self.inner
            .open_table(over_the_wire(request)?)
            .await
            .map_err(error_over_the_wire)
    }

    fn update_table(&self, table: StreamingTable) -> Result<()> {
        self.inner
            .update_table(over_the_wire(table)?)
            .map_err(error_over_the_wire)
    }

    async fn close_table(&self, table_id: u64) -> Result<()> {
        self.inner
            .close_table(over_the_wire(table_id)?)
            .await
            .map_err(error_over_the_wire)
    }

    async fn replay_wal(&self) -> Result<WalReplay> {
        over_the_wire(self.inner.replay_wal().await.map_err(error_over_the_wire)?)
    }

    fn rebuild_live_keys(&self, table_id: u64, served_keys: Option<RecordBatch>) -> Result<()> {
        self.inner
            .rebuild_live_keys(
                over_the_wire(table_id)?,
                optional_batch_over_the_wire(served_keys)?,
            )
            .map_err(error_over_the_wire)
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

    async fn write(&self, request: WriteRows) -> Result<WriteOutcome> {
        let request = write_over_the_wire(request)?;
        let outcome = self
            .inner
            .write(request)
            .await
            .map_err(error_over_the_wire)?;
        Ok(WriteOutcome {
            rows: batch_over_the_wire(outcome.rows)?,
            ts: over_the_wire(outcome.ts)?,
            lsn: over_the_wire(outcome.lsn)?,
            sealed: over_the_wire(outcome.sealed)?,
        })
    }

    async fn delete(&self, request: DeleteKeys) -> Result<usize> {
        let request = delete_over_the_wire(request)?;
        over_the_wire(
            self.inner
                .delete(request)
                .await
                .map_err(error_over_the_wire)?,
        )
    }

    async fn commit(&self, request: CommitTransaction) -> Result<CommitOutcome> {
        let request = commit_over_the_wire(request)?;
        let outcome = self
            .inner
            .commit(request)
            .await
            .map_err(error_over_the_wire)?;
        Ok(CommitOutcome {
            ts: over_the_wire(outcome.ts)?,
            sealed: over_the_wire(outcome.sealed)?,
        })
    }

    fn seal(&self, table_id: u64) -> Result<bool> {
        over_the_wire(
            self.inner
                .seal(over_the_wire(table_id)?)
                .map_err(error_over_the_wire)?,
        )
    }

    async fn flush_table(&self, table_id: u64) -> Result<Vec<FlushedSegment>> {
        let flushed = self
            .inner
            .flush_table(over_the_wire(table_id)?)
            .await
            .map_err(error_over_the_wire)?;
        flushed
            .into_iter()
            .map(|segment| {
                Ok(FlushedSegment {
                    record: over_the_wire(segment.record)?,
                    rows: None,
                })
            })
            .collect()
    }

    fn forget_segments(&self, table_id: u64, segment_ids: &[u64]) -> Result<()> {
        let segment_ids: Vec<u64> = over_the_wire(segment_ids.to_vec())?;
        self.inner
            .forget_segments(over_the_wire(table_id)?, &segment_ids)
            .map_err(error_over_the_wire)
    }

    fn allocate_segment_id(&self, table_id: u64) -> Result<u64> {
        over_the_wire(
            self.inner
                .allocate_segment_id(over_the_wire(table_id)?)
                .map_err(error_over_the_wire)?,
        )
    }

    fn table_stats(&self, table_id: u64) -> Result<StreamingTableStats> {
        over_the_wire(
            self.inner
                .table_stats(over_the_wire(table_id)?)
                .map_err(error_over_the_wire)?,
        )
    }

    async fn truncate_wal(&self) -> Result<()> {
        self.inner.truncate_wal().await.map_err(error_over_the_wire)
    }

    fn close_wal(&self) -> Result<()> {
        self.inner.close_wal().map_err(error_over_the_wire)
    }

    fn safe_timestamp(&self) -> u64 {
        self.inner.safe_timestamp()
    }
}
