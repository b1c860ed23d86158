//! The streaming node as the coordinator drives it
//! ([`StreamingRole`]): the registry of the tables it carries (opened with
//! its own copy of their definitions and its own checkpoints, redefined,
//! closed), writes by table id, seals, the WAL's replay at recovery and
//! its truncation (the node owns the replay start,
//! `keys::WAL_REPLAY_FROM`), and what it holds of a table.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use arrow::array::RecordBatch;
use async_trait::async_trait;
use quiver_proto::WalRecord;
use quiver_storage::MetaBatch;

use super::{assign_auto_ids, check_not_null, coerce_batch, keys_of, StreamingNode};
use crate::api::reads::{snapshot_fragments, ReadTable, TablePart, TableReads};
use crate::api::streaming::{
    CommitOutcome, CommitTransaction, DeleteKeys, FlushedSegment, OpenTable, SegmentPart,
    ShardCheckpoints, StageRows, StreamingRole, StreamingTable, StreamingTableStats, WalReplay,
    WriteOutcome, WriteRows,
};
use crate::coordinator::{decode, encode, keys, IdAllocator};
use crate::error::{EngineError, Result};
use crate::table::TableRuntime;

impl StreamingNode {
    /// The node's persisted checkpoints of a table (`None` before its
    /// first flush).
    async fn stored_checkpoints(&self, table_id: u64) -> Result<Option<ShardCheckpoints>> {
        let key = keys::channel(table_id);
        match self.meta.get_value(&key).await? {
            Some(bytes) => Ok(Some(decode(&key, &bytes)?)),
            None => Ok(None),
        }
    }

    /// The node's checkpoints of a table now.
    pub fn checkpoints(&self, table_id: u64) -> Result<ShardCheckpoints> {
        Ok(self.table(table_id)?.checkpoints.read().clone())
    }

    /// Runs a blocking step (a write waiting for the WAL fsync) on the
    /// blocking pool.
    async fn blocking<T: Send + 'static>(
        &self,
        what: &str,
        step: impl FnOnce(&StreamingNode) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let node = self.clone();
        tokio::task::spawn_blocking(move || step(&node))
            .await
            .map_err(|e| EngineError::Internal(format!("{what} task failed: {e}")))?
    }
}

#[async_trait]
impl StreamingRole for StreamingNode {
    async fn open_table(&self, request: OpenTable) -> Result<()> {
        let OpenTable {
            table,
            recorded,
            deltalogs,
        } = request;
        let id = table.id;
        let checkpoints = match self.stored_checkpoints(id).await? {
            Some(own) => own.max(&recorded),
            None => recorded,
        };
        let autoid = IdAllocator::open(self.meta.clone(), keys::autoid(id)).await?;
        let runtime = TableRuntime::new(table, checkpoints, self.tso.clone(), autoid, self.seal)
            .with_delete_subscriber(self.delete_subscriber.clone());
        // The node's own copy of the persisted deletes (its growing rows
        // replayed from the WAL may be older than them).
        for path in &deltalogs {
            let entries = crate::query_node::read_deltalog(&self.objects, path).await?;
            let mut deletes = runtime.deletes.write();
            for (pk, ts) in entries {
                deletes.insert(&pk, ts);
            }
        }
        self.tables.write().insert(id, Arc::new(runtime));
        Ok(())
    }

    fn update_table(&self, table: StreamingTable) -> Result<()> {
        let runtime = self.table(table.id)?;
        // Between two writes.
        let _guard = runtime.write_lock.lock();
        let mut definition = runtime.definition.write();
        if definition.shards != table.shards {
            return Err(EngineError::Internal(format!(
                "table {} cannot change its shards ({} to {})",
                table.id, definition.shards, table.shards
            )));
        }
        *definition = table;
        Ok(())
    }

    async fn close_table(&self, table_id: u64) -> Result<()> {
        let runtime = self.tables.write().remove(&table_id);
        if let Some(runtime) = runtime {
            // Waits for a flush recording its step; later ones see it closed.
            *runtime.flushing.lock().await = true;
        }
        self.meta
            .apply(
                MetaBatch::new()
                    .delete(keys::channel(table_id))
                    .delete(keys::autoid(table_id)),
            )
            .await?;
        Ok(())
    }

    async fn replay_wal(&self) -> Result<WalReplay> {
        let from = match self.meta.get_value(keys::WAL_REPLAY_FROM).await? {
            Some(bytes) => decode::<u64>(keys::WAL_REPLAY_FROM, &bytes)?.max(1),
            None => 1,
        };
        self.replay_from.store(from, Ordering::Release);
        // Records before the persisted replay start are persisted
        // everywhere (see `truncate_wal`), so they are not even read.
        let records = self
            .wal
            .read_from(from)?
            .into_iter()
            .map(|(lsn, payload)| Ok((lsn, WalRecord::decode_entry(&payload)?)))
            .collect::<Result<Vec<_>>>()?;
        let committed_blocks = records
            .iter()
            .filter_map(|(_, entry)| entry.block)
            .collect();
        let mut replayed = 0;
        let mut max_ts = 0;
        let tables = self.tables.read().clone();
        for (lsn, record) in records
            .into_iter()
            .flat_map(|(lsn, entry)| entry.records.into_iter().map(move |r| (lsn, r)))
        {
            let Some(table) = tables.get(&record.table_id) else {
                continue;
            };
            let checkpoints = table.checkpoints.read().clone();
            // Deletes at or before the delete logs' checkpoint are in them.
            let deletes = record
                .deletes
                .as_ref()
                .filter(|_| lsn > checkpoints.deletes_persisted_lsn);
            table.apply(
                lsn,
                record.ts,
                deletes,
                record.inserts.as_ref(),
                true,
                &|shard| lsn > checkpoints.shard_persisted_lsn(shard),
            )?;
            max_ts = max_ts.max(record.ts);
            replayed += 1;
        }
        self.tso.observe(max_ts);
        Ok(WalReplay {
            from,
            records: replayed,
            committed_blocks,
        })
    }

    fn rebuild_live_keys(&self, table_id: u64, served_keys: Option<RecordBatch>) -> Result<()> {
        self.table(table_id)?
            .rebuild_live_keys(served_keys.as_ref())
    }

    async fn stage(&self, request: StageRows) -> Result<RecordBatch> {
        let table = self.table(request.table_id)?;
        let batch = assign_auto_ids(&table, request.rows).await?;
        let definition = table.definition.read().clone();
        let schema = &definition.schema;
        let batch = coerce_batch(&batch, schema, &schema.arrow_schema())?;
        check_not_null(&batch, schema, &definition.name)?;
        Ok(batch)
    }

    async fn write(&self, request: WriteRows) -> Result<WriteOutcome> {
        let table = self.table(request.table_id)?;
        let batch = assign_auto_ids(&table, request.rows).await?;
        let mode = request.mode;
        self.blocking("write", move |node| {
            node.write_blocking(&table, batch, mode)
        })
        .await
    }

    async fn delete(&self, request: DeleteKeys) -> Result<usize> {
        let table = self.table(request.table_id)?;
        let keys = keys_of(&request.keys);
        self.blocking("delete", move |node| node.delete_blocking(&table, keys))
            .await
    }

    async fn commit(&self, request: CommitTransaction) -> Result<CommitOutcome> {
        let snapshot_ts = request.snapshot_ts;
        let catalog_block = request.catalog_block;
        let tables = request
            .tables
            .into_iter()
            .map(|part| Ok((self.table(part.table_id)?, part)))
            .collect::<Result<Vec<_>>>()?;
        self.blocking("commit", move |node| {
            node.commit_transaction(tables, snapshot_ts, catalog_block)
        })
        .await
    }

    fn seal(&self, table_id: u64) -> Result<bool> {
        let table = self.table(table_id)?;
        let _guard = table.write_lock.lock();
        Ok(table.seal_now())
    }

    async fn flush_table(&self, table_id: u64) -> Result<Vec<FlushedSegment>> {
        let table = self.table(table_id)?;
        self.flush_sealed_and_deletes(&table).await
    }

    fn forget_segments(&self, table_id: u64, segment_ids: &[u64]) -> Result<()> {
        let table = self.table(table_id)?;
        table
            .data
            .write()
            .sealed
            .retain(|s| !segment_ids.contains(&s.id));
        Ok(())
    }

    fn allocate_segment_id(&self, table_id: u64) -> Result<u64> {
        Ok(self
            .table(table_id)?
            .checkpoints
            .write()
            .allocate_segment_id())
    }

    fn table_stats(&self, table_id: u64) -> Result<StreamingTableStats> {
        let table = self.table(table_id)?;
        let data = table.data.read();
        Ok(StreamingTableStats {
            live_rows: data.live.len() as u64,
            growing: data
                .growing
                .iter()
                .map(|g| SegmentPart {
                    segment: g.id,
                    shard: g.shard,
                    rows: g.rows as u64,
                })
                .collect(),
            sealed: data
                .sealed
                .iter()
                .map(|s| SegmentPart {
                    segment: s.id,
                    shard: s.shard,
                    rows: s.rows as u64,
                })
                .collect(),
        })
    }

    /// Deletes the WAL files no table needs any more, after persisting the
    /// new replay start (the smallest LSN a table still needs: a growing
    /// segment, an unflushed sealed segment or unpersisted deletes), so a
    /// restart reads the WAL only from there.
    async fn truncate_wal(&self) -> Result<()> {
        let last = self.wal.last_lsn();
        let mut min = last + 1;
        for table in self.all_tables() {
            // Holding the write lock: every record appended before `last`
            // was read is applied.
            let _guard = table.write_lock.lock();
            if let Some(lsn) = table.first_unpersisted_lsn() {
                min = min.min(lsn);
            }
        }
        // Records appended from now on have LSNs above `last`, so `min` only grows.
        if min > self.replay_from.load(Ordering::Acquire) {
            self.meta.put(keys::WAL_REPLAY_FROM, encode(&min)).await?;
            self.replay_from.store(min, Ordering::Release);
        }
        self.wal.truncate_before(min)?;
        Ok(())
    }

    fn close_wal(&self) -> Result<()> {
        Ok(self.wal.close()?)
    }

    fn safe_timestamp(&self) -> u64 {
        StreamingNode::safe_timestamp(self)
    }
}

impl StreamingNode {
    /// The replay start persisted last (recovery logs it).
    pub fn replay_from(&self) -> u64 {
        self.replay_from.load(Ordering::Acquire)
    }
}

#[async_trait]
impl TableReads for StreamingNode {
    /// Its sealed segments not flushed yet (each a fragment of its own: a
    /// reader drops those the query node covers already) and per shard its
    /// growing segment, with its delete map; the table's definition is
    /// the node's own.
    async fn read_table(&self, request: ReadTable) -> Result<TablePart> {
        let Ok(table) = self.table(request.table_id) else {
            return Ok(TablePart {
                read_ts: request.read_ts.unwrap_or_else(|| self.tso.read_timestamp()),
                ..TablePart::default()
            });
        };
        let snapshot = table.own_snapshot(request.read_ts);
        Ok(TablePart {
            read_ts: snapshot.read_ts,
            fragments: snapshot_fragments(&snapshot, ", not flushed", true),
            covered: Vec::new(),
        })
    }
}
