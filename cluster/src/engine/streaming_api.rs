//! The streaming node's API ([`Streaming`]) served in process by the
//! [`Engine`], and the engine's write path by table: auto ids assigned,
//! then the streaming role's write (which blocks until the WAL fsync) on
//! the blocking pool.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use arrow::array::RecordBatch;
use async_trait::async_trait;
use quiver_exec::pk::PkValue;

use super::Engine;
use crate::api::streaming::{
    CommitTransaction, DeleteAck, DeleteKeys, StageRows, Streaming, WriteAck, WriteRows,
};
use crate::error::{EngineError, Result};
use crate::roles::{TableCommit, WriteMode, WriteOutcome};
use crate::streaming::{assign_auto_ids, check_not_null, coerce_batch, keys_of};
use crate::table::TableRuntime;

impl Engine {
    /// The table with this id.
    pub fn table_by_id(&self, table_id: u64) -> Result<Arc<TableRuntime>> {
        self.catalog
            .read()
            .tables
            .get(&table_id)
            .cloned()
            .ok_or(EngineError::TableIdNotFound(table_id))
    }

    /// Inserts or upserts rows; returns once they are durable and applied.
    /// Auto ids are assigned first (async: the allocator may persist a new
    /// block), then the streaming role's write, which blocks until the WAL
    /// fsync, runs on the blocking pool.
    pub async fn write_table(
        &self,
        table: Arc<TableRuntime>,
        batch: RecordBatch,
        mode: WriteMode,
    ) -> Result<WriteOutcome> {
        if self.stopping.load(Ordering::Relaxed) {
            return Err(EngineError::ShuttingDown);
        }
        let batch = assign_auto_ids(&table, batch).await?;
        let streaming = self.streaming.clone();
        let outcome = tokio::task::spawn_blocking(move || streaming.write(&table, batch, mode))
            .await
            .map_err(|e| EngineError::Internal(format!("write task failed: {e}")))??;
        if outcome.sealed {
            self.wake.notify_one();
        }
        Ok(outcome)
    }

    /// Deletes rows by primary key (blocking until durable); returns rows deleted.
    pub fn delete_table(&self, table: &TableRuntime, keys: Vec<PkValue>) -> Result<usize> {
        if self.stopping.load(Ordering::Relaxed) {
            return Err(EngineError::ShuttingDown);
        }
        self.streaming.delete(table, keys)
    }
}

#[async_trait]
impl Streaming for Engine {
    async fn write(&self, request: WriteRows) -> Result<WriteAck> {
        let table = self.table_by_id(request.table_id)?;
        let outcome = self.write_table(table, request.rows, request.mode).await?;
        Ok(WriteAck {
            rows: outcome.rows,
            ts: outcome.ts,
        })
    }

    async fn delete(&self, request: DeleteKeys) -> Result<DeleteAck> {
        let table = self.table_by_id(request.table_id)?;
        let keys = keys_of(&request.keys);
        let streaming = self.streaming.clone();
        if self.stopping.load(Ordering::Relaxed) {
            return Err(EngineError::ShuttingDown);
        }
        let deleted = tokio::task::spawn_blocking(move || streaming.delete(&table, keys))
            .await
            .map_err(|e| EngineError::Internal(format!("delete task failed: {e}")))??;
        Ok(DeleteAck {
            deleted: deleted as u64,
        })
    }

    async fn flush(&self, table_id: u64) -> Result<()> {
        let table = self.table_by_id(table_id)?;
        self.flush_runtime(&table).await
    }

    async fn safe_timestamp(&self) -> Result<u64> {
        Ok(self.streaming.safe_timestamp())
    }

    async fn stage(&self, request: StageRows) -> Result<RecordBatch> {
        let table = self.table_by_id(request.table_id)?;
        let batch = assign_auto_ids(&table, request.rows).await?;
        let (schema, name) = {
            let meta = table.meta.read();
            (meta.schema.clone(), meta.name.clone())
        };
        let batch = coerce_batch(&batch, &schema, &schema.arrow_schema())?;
        check_not_null(&batch, &schema, &name)?;
        Ok(batch)
    }

    async fn commit(&self, request: CommitTransaction) -> Result<u64> {
        if self.stopping.load(Ordering::Relaxed) {
            return Err(EngineError::ShuttingDown);
        }
        let tables = request
            .tables
            .into_iter()
            .map(|t| {
                Ok(TableCommit {
                    table: self.table_by_id(t.table_id)?,
                    seen: t.seen_keys.as_ref().map(keys_of).unwrap_or_default(),
                    rows: t.rows,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let streaming = self.streaming.clone();
        let snapshot_ts = request.snapshot_ts;
        let outcome = tokio::task::spawn_blocking(move || streaming.commit(tables, snapshot_ts))
            .await
            .map_err(|e| EngineError::Internal(format!("commit task failed: {e}")))??;
        if outcome.sealed {
            self.wake.notify_one();
        }
        Ok(outcome.ts)
    }
}
