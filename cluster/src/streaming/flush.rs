//! The streaming node's flush: its shards' sealed segments written to
//! object storage as Parquet and recorded in the meta store (the node's
//! checkpoint record of the table, `channel/<table id>`, moving with them),
//! and the deletes not yet in a delete log persisted as one — each step's
//! records first, then the in-memory state, so a crash between them only
//! keeps more WAL. A flushed segment stays here until its query node has
//! loaded it (the coordinator hands it over and then has the node forget
//! it); flushed again meanwhile, it is rewritten alike.

use std::sync::Arc;

use arrow::compute::concat_batches;
use quiver_exec::pk::PkValue;
use quiver_exec::source::adapt_batch;
use quiver_storage::{put_bytes, MetaBatch};

use super::StreamingNode;
use crate::api::streaming::FlushedSegment;
use crate::coordinator::{encode, keys, SegmentMeta};
use crate::error::Result;
use crate::segment_files::{delete_log_batch, deltalog_path, encode_parquet, segment_path};
use crate::table::{SealedSegment, TableRuntime};

impl StreamingNode {
    /// Flushes every sealed segment of `table` in order (those sealed when
    /// it starts), then its pending deletes; returns the segments flushed.
    pub(super) async fn flush_sealed_and_deletes(
        &self,
        table: &TableRuntime,
    ) -> Result<Vec<FlushedSegment>> {
        let sealed: Vec<SealedSegment> = table.data.read().sealed.clone();
        let mut flushed = Vec::with_capacity(sealed.len());
        for segment in &sealed {
            match self.flush_segment(table, segment).await? {
                Some(done) => flushed.push(done),
                None => return Ok(flushed), // dropped meanwhile
            }
        }
        self.flush_deletes(table).await?;
        Ok(flushed)
    }

    /// Writes a sealed segment and records it; `None` when the table was
    /// dropped meanwhile (nothing recorded).
    async fn flush_segment(
        &self,
        table: &TableRuntime,
        segment: &SealedSegment,
    ) -> Result<Option<FlushedSegment>> {
        let (table_id, storage) = {
            let definition = table.definition.read();
            (definition.id, definition.schema.storage_schema())
        };
        let batches = segment
            .batches
            .iter()
            .map(|b| adapt_batch(b, &storage))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let merged = concat_batches(&storage, &batches)?;
        let path = segment_path(table_id, segment.id);
        put_bytes(self.objects.as_ref(), &path, encode_parquet(&merged)?).await?;
        let record = SegmentMeta {
            id: segment.id,
            shard: segment.shard,
            path,
            rows: segment.rows,
            first_lsn: segment.first_lsn,
            last_lsn: segment.last_lsn,
            indexes: Vec::new(),
        };
        // The records first (under the table's flush lock), then the
        // in-memory state: until then the segment counts as unflushed,
        // which only keeps more WAL.
        let closed = table.flushing.lock().await;
        if *closed {
            return Ok(None);
        }
        let mut checkpoints = table.checkpoints.read().clone();
        checkpoints.mark_shard_persisted(segment.shard, segment.last_lsn);
        let batch = MetaBatch::new()
            .put(keys::segment(table_id, segment.id), encode(&record))
            .put(keys::channel(table_id), encode(&checkpoints));
        self.meta.apply(batch).await?;
        table
            .checkpoints
            .write()
            .mark_shard_persisted(segment.shard, segment.last_lsn);
        drop(closed);
        Ok(Some(FlushedSegment {
            record,
            rows: Some(Arc::new(vec![merged])),
        }))
    }

    /// Persists the table's pending deletes as a delete log.
    async fn flush_deletes(&self, table: &TableRuntime) -> Result<()> {
        let pending: Vec<(u64, PkValue, u64)> = table.data.read().pending_deletes.clone();
        if pending.is_empty() {
            return Ok(());
        }
        let (table_id, schema) = {
            let definition = table.definition.read();
            (definition.id, definition.schema.clone())
        };
        let last_lsn = pending.iter().map(|p| p.0).max().unwrap_or(0);
        let entries: Vec<(PkValue, u64)> = pending.iter().map(|p| (p.1.clone(), p.2)).collect();
        let Some(batch) = delete_log_batch(&schema, &entries)? else {
            return Ok(());
        };
        let n = last_lsn;
        let path = deltalog_path(table_id, n);
        put_bytes(self.objects.as_ref(), &path, encode_parquet(&batch)?).await?;
        let closed = table.flushing.lock().await;
        if *closed {
            return Ok(());
        }
        let mut checkpoints = table.checkpoints.read().clone();
        checkpoints.deletes_persisted_lsn = checkpoints.deletes_persisted_lsn.max(last_lsn);
        let batch = MetaBatch::new()
            .put(keys::deltalog(table_id, n), encode(&path))
            .put(keys::channel(table_id), encode(&checkpoints));
        self.meta.apply(batch).await?;
        let mut data = table.data.write();
        {
            let mut own = table.checkpoints.write();
            own.deletes_persisted_lsn = own.deletes_persisted_lsn.max(last_lsn);
        }
        data.pending_deletes.retain(|p| p.0 > last_lsn);
        drop(data);
        drop(closed);
        Ok(())
    }
}
