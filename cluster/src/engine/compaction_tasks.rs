//! The coordinator's side of compaction: picking a group of one shard's
//! small flushed segments, leasing the step as a task to the data node
//! ([`DataNodeTasks::compact`](crate::api::data::DataNodeTasks::compact))
//! with the deletes that may hide its rows, and committing the result —
//! the merged segment's record in, the group's records out, in one
//! meta-store transaction, then the same swap in memory — only while the
//! task's lease holds and every segment of the group is still there; else
//! the task's objects are deleted.

use std::sync::Arc;

use object_store::ObjectStoreExt;
use quiver_exec::deletes::DeleteMap;
use quiver_exec::pk::pk_ref;
use quiver_exec::stats::segment_statistics;
use quiver_storage::MetaBatch;

use super::Engine;
use crate::api::data::{CompactedSegment, CompactionInput, CompactionTask};
use crate::coordinator::{encode, keys, SegmentMeta};
use crate::data_node::{delete_log_batch, pick_merge, segment_path, MAX_MERGE_SEGMENTS};
use crate::error::Result;
use crate::indexes::LoadedIndex;
use crate::table::{alloc_segment_id, SealedSegment, TableRuntime};
use crate::task_leases::{TaskKey, COMPACTION_LEASE};

impl Engine {
    /// One compaction step of `table` as a leased data-node task: merges
    /// one group of small flushed segments of one shard (fewer than
    /// `small_rows` rows each; the group stops once it holds `small_rows`
    /// rows), when at least `min_segments` are small, dropping the rows
    /// deleted at `compaction_ts`; the merged segment comes with its
    /// indexes. Returns the segments merged (0: nothing to do, or the
    /// shard's step is leased elsewhere).
    pub(super) async fn compact_step(
        &self,
        table: &TableRuntime,
        compaction_ts: u64,
        min_segments: usize,
        small_rows: usize,
    ) -> Result<usize> {
        let table_id = table.id();
        let Some((shard, group)) = pick_group(table, min_segments, small_rows) else {
            return Ok(0);
        };
        let key = TaskKey::Compaction {
            table: table_id,
            shard,
        };
        let Some(task_id) = self.task_leases.lease(key, COMPACTION_LEASE) else {
            return Ok(0);
        };
        let (schema, indexes) = {
            let meta = table.meta.read();
            (meta.schema.clone(), meta.indexes.clone())
        };
        let deletes = {
            let map = table.deletes.read();
            deletes_hitting(&group, schema.primary_key, &map, compaction_ts)
        };
        let output_segment_id = alloc_segment_id(&mut table.meta.write());
        let task = CompactionTask {
            task_id,
            table_id,
            shard,
            inputs: group
                .iter()
                .map(|segment| CompactionInput {
                    segment_id: segment.id,
                    path: segment_path(table_id, segment.id),
                    rows: Some(segment.batches.clone()),
                    first_lsn: segment.first_lsn,
                    last_lsn: segment.last_lsn,
                })
                .collect(),
            compaction_ts,
            deletes: delete_log_batch(&schema, &deletes)?,
            schema,
            indexes,
            output_segment_id,
            output_path: segment_path(table_id, output_segment_id),
        };
        let committed = match self.data_tasks.compact(task).await {
            Ok(done) => {
                self.commit_compaction(table, key, shard, &group, done)
                    .await
            }
            Err(e) => Err(e),
        };
        self.task_leases.release(key, task_id);
        committed
    }

    /// Swaps `group` for the merged segment, in the meta store (one
    /// transaction) and in memory, if the task's lease still holds, the
    /// table is there and so is every segment of the group; then deletes
    /// the group's objects. Else deletes the task's objects and answers 0.
    async fn commit_compaction(
        &self,
        table: &TableRuntime,
        key: TaskKey,
        shard: u32,
        group: &[SealedSegment],
        done: CompactedSegment,
    ) -> Result<usize> {
        let table_id = table.id();
        let storage = table.schema().storage_schema();
        // Loaded before taking the records lock (flushes of the table wait
        // on it), as a query node loads a new segment.
        let mut loaded = None;
        if self.task_leases.holds(key, done.task_id) {
            let rows = match &done.merged {
                Some(rows) => rows.clone(),
                None => Arc::new(self.query_node.load_segment(&done.path).await?),
            };
            let mut indexes = Vec::new();
            for record in &done.indexes {
                indexes.push(LoadedIndex {
                    index_id: record.index_id,
                    path: record.path.clone(),
                    index: self.query_node.load_index(&record.path).await?,
                });
            }
            loaded = Some((rows, indexes));
        }
        let old_ids: Vec<u64> = group.iter().map(|s| s.id).collect();
        let records = table.records.lock().await;
        let wanted = self.task_leases.holds(key, done.task_id) && !records.dropped && {
            let data = table.data.read();
            old_ids
                .iter()
                .all(|id| data.sealed.iter().any(|s| s.id == *id && s.flushed))
        };
        let Some((rows, indexes)) = loaded.filter(|_| wanted) else {
            drop(records);
            let task_objects = std::iter::once(done.path.clone())
                .chain(done.indexes.iter().map(|ix| ix.path.clone()))
                .collect();
            self.delete_objects(task_objects).await;
            return Ok(0);
        };
        // An index dropped while the step ran is not recorded (its object
        // goes with the group's below).
        let (table_record, kept_indexes, dropped_indexes): (_, Vec<_>, Vec<_>) = {
            let meta = table.meta.read();
            let (kept, dropped) = indexes
                .into_iter()
                .partition(|ix| meta.indexes.iter().any(|d| d.id == ix.index_id));
            (meta.clone(), kept, dropped)
        };
        let record = SegmentMeta {
            id: done.segment_id,
            shard,
            path: done.path.clone(),
            rows: done.rows,
            first_lsn: group.iter().map(|s| s.first_lsn).min().unwrap_or(0),
            last_lsn: group.iter().map(|s| s.last_lsn).max().unwrap_or(0),
            indexes: done
                .indexes
                .iter()
                .filter(|r| kept_indexes.iter().any(|ix| ix.index_id == r.index_id))
                .cloned()
                .collect(),
        };
        // One atomic swap: at most MAX_MERGE_SEGMENTS deletes + 2 puts.
        let mut batch = MetaBatch::new()
            .put(keys::segment(table_id, done.segment_id), encode(&record))
            .put(keys::table(table_id), encode(&table_record));
        for id in &old_ids {
            batch = batch.delete(keys::segment(table_id, *id));
        }
        self.meta.apply(batch).await?;
        {
            let stats = segment_statistics(rows.as_slice(), &storage);
            let mut data = table.data.write();
            let position = data
                .sealed
                .iter()
                .position(|s| old_ids.contains(&s.id))
                .unwrap_or(0);
            data.sealed.retain(|s| !old_ids.contains(&s.id));
            let position = position.min(data.sealed.len());
            data.sealed.insert(
                position,
                SealedSegment {
                    id: done.segment_id,
                    shard,
                    batches: rows,
                    rows: done.rows,
                    first_lsn: record.first_lsn,
                    last_lsn: record.last_lsn,
                    flushed: true,
                    indexes: kept_indexes,
                    stats: Some(Arc::new(stats)),
                },
            );
        }
        drop(records);
        let old_objects = group
            .iter()
            .flat_map(|segment| {
                std::iter::once(segment_path(table_id, segment.id))
                    .chain(segment.indexes.iter().map(|ix| ix.path.clone()))
            })
            .chain(dropped_indexes.into_iter().map(|ix| ix.path))
            .collect();
        self.delete_objects(old_objects).await;
        tracing::debug!(
            table_id,
            shard,
            merged = group.len(),
            segment = done.segment_id,
            "segments compacted"
        );
        Ok(group.len())
    }

    /// Deletes objects no record names any more (a failure only leaves
    /// garbage behind).
    pub(super) async fn delete_objects(&self, paths: Vec<String>) {
        for path in paths {
            let path = object_store::path::Path::from(path);
            if let Err(e) = self.objects.delete(&path).await {
                tracing::warn!("could not delete unused object {path}: {e}");
            }
        }
    }
}

/// The shard and the segments of the next compaction step of `table`: the
/// first shard with a group ([`pick_merge`]), at most
/// [`MAX_MERGE_SEGMENTS`] of it (the swap must stay one transaction), in
/// table order.
fn pick_group(
    table: &TableRuntime,
    min_segments: usize,
    small_rows: usize,
) -> Option<(u32, Vec<SealedSegment>)> {
    let data = table.data.read();
    for shard in 0..table.shards() {
        let sizes: Vec<(u64, usize, bool)> = data
            .sealed
            .iter()
            .filter(|s| s.shard == shard)
            .map(|s| (s.id, s.rows, s.flushed))
            .collect();
        let mut group = pick_merge(&sizes, min_segments, small_rows);
        group.truncate(MAX_MERGE_SEGMENTS);
        if group.len() >= 2 {
            let segments = data
                .sealed
                .iter()
                .filter(|s| group.contains(&s.id))
                .cloned()
                .collect();
            return Some((shard, segments));
        }
    }
    None
}

/// The delete entries at or before `compaction_ts` of every key stored in
/// `group` (each once): all the data node needs to drop the deleted rows.
fn deletes_hitting(
    group: &[SealedSegment],
    primary_key: usize,
    deletes: &DeleteMap,
    compaction_ts: u64,
) -> Vec<(quiver_exec::pk::PkValue, u64)> {
    let mut hitting = DeleteMap::default();
    if deletes.is_empty() {
        return Vec::new();
    }
    for segment in group {
        for batch in segment.batches.iter() {
            let column = batch.column(primary_key);
            for row in 0..batch.num_rows() {
                let Some(key) = pk_ref(column.as_ref(), row) else {
                    continue;
                };
                let stamps = deletes.timestamps(key);
                if stamps.is_empty() {
                    continue;
                }
                let owned = key.to_value();
                for ts in stamps.iter().filter(|ts| **ts <= compaction_ts) {
                    hitting.insert(&owned, *ts);
                }
            }
        }
    }
    hitting.entries()
}
