//! The streaming node's API ([`Streaming`]) as the access layer reaches it
//! in standalone: the [`Engine`] forwards each request by table id to its
//! streaming node's [`StreamingRole`] — refusing writes once shutting down,
//! waking maintenance when a growing segment sealed — and a flush goes
//! through the coordinator, which hands the flushed segments over to the
//! query node.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use arrow::array::RecordBatch;
use async_trait::async_trait;
use quiver_exec::pk::PkValue;

use super::Engine;
use crate::api::streaming::{
    CommitTransaction, DeleteAck, DeleteKeys, StageRows, Streaming, WriteAck, WriteMode,
    WriteOutcome, WriteRows,
};
use crate::catalog_table::CatalogTable;
use crate::error::{EngineError, Result};
use crate::segment_files::keys_batch;

impl Engine {
    /// The table with this id, in the catalog.
    pub fn table_by_id(&self, table_id: u64) -> Result<Arc<CatalogTable>> {
        self.catalog
            .read()
            .tables
            .get(&table_id)
            .cloned()
            .ok_or(EngineError::TableIdNotFound(table_id))
    }

    fn refuse_when_stopping(&self) -> Result<()> {
        if self.stopping.load(Ordering::Relaxed) {
            return Err(EngineError::ShuttingDown);
        }
        Ok(())
    }

    /// Inserts or upserts rows; returns once they are durable and applied.
    pub async fn write_table(
        &self,
        table_id: u64,
        rows: RecordBatch,
        mode: WriteMode,
    ) -> Result<WriteOutcome> {
        self.refuse_when_stopping()?;
        let outcome = self
            .streaming
            .write(WriteRows {
                table_id,
                rows,
                mode,
            })
            .await?;
        if outcome.sealed {
            self.wake.notify_one();
        }
        Ok(outcome)
    }

    /// Deletes rows by primary key (once durable); returns rows deleted.
    pub async fn delete_table(&self, table: &CatalogTable, keys: Vec<PkValue>) -> Result<usize> {
        self.refuse_when_stopping()?;
        let keys = keys_batch(&table.schema(), &keys)?;
        let Some(keys) = keys else {
            return Ok(0);
        };
        self.streaming
            .delete(DeleteKeys {
                table_id: table.id(),
                keys,
            })
            .await
    }
}

#[async_trait]
impl Streaming for Engine {
    async fn write(&self, request: WriteRows) -> Result<WriteAck> {
        let outcome = self
            .write_table(request.table_id, request.rows, request.mode)
            .await?;
        Ok(WriteAck {
            rows: outcome.rows,
            ts: outcome.ts,
        })
    }

    async fn delete(&self, request: DeleteKeys) -> Result<DeleteAck> {
        self.refuse_when_stopping()?;
        let deleted = self.streaming.delete(request).await?;
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
        self.streaming.stage(request).await
    }

    async fn commit(&self, request: CommitTransaction) -> Result<u64> {
        self.refuse_when_stopping()?;
        let outcome = self.streaming.commit(request).await?;
        if outcome.sealed {
            self.wake.notify_one();
        }
        Ok(outcome.ts)
    }
}
