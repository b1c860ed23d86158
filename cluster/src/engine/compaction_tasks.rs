//! The coordinator's side of compaction: picking a group of one shard's
//! small flushed segments, leasing the step as a task to the data node
//! ([`DataNodeTasks::compact`](crate::api::data::DataNodeTasks::compact))
//! with the deletes that may hide its rows, and committing the result —
//! the merged segment's record in, the group's records out, in one
//! meta-store transaction, then the same swap on the query node serving
//! them (one load-and-release step) — only while the task's lease holds and
//! every segment of the group is still served; else the task's objects are
//! deleted.

use object_store::ObjectStoreExt;
use quiver_storage::MetaBatch;

use super::Engine;
use crate::api::data::{CompactedSegment, CompactionInput, CompactionTask};
use crate::api::query::{LoadSegments, Query, ReadCompactionSource, SegmentToLoad, ServedSegment};
use crate::catalog_table::CatalogTable;
use crate::coordinator::{encode, keys, SegmentMeta};
use crate::data_node::{pick_merge, MAX_MERGE_SEGMENTS};
use crate::error::Result;
use crate::segment_files::segment_path;
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
        table: &CatalogTable,
        compaction_ts: u64,
        min_segments: usize,
        small_rows: usize,
    ) -> Result<usize> {
        let table_id = table.id();
        let served = self.query.served_segments(table_id).await?;
        let Some((shard, group)) = pick_group(table.shards(), &served, min_segments, small_rows)
        else {
            return Ok(0);
        };
        let key = TaskKey::Compaction {
            table: table_id,
            shard,
        };
        let Some(task_id) = self.task_leases.lease(key, COMPACTION_LEASE) else {
            return Ok(0);
        };
        // Segment ids come from the streaming node's allocator of the
        // table (growing segments draw from it too).
        let output_segment_id = self.streaming.allocate_segment_id(table_id)?;
        let task = compaction_task(
            table,
            self.query.as_ref(),
            task_id,
            shard,
            &group,
            (compaction_ts, output_segment_id),
        )
        .await?;
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
    /// transaction) and on the query node, if the task's lease still holds,
    /// the table is there and every segment of the group is still served;
    /// then deletes the group's objects. Else deletes the task's objects
    /// and answers 0.
    async fn commit_compaction(
        &self,
        table: &CatalogTable,
        key: TaskKey,
        shard: u32,
        group: &[ServedSegment],
        done: CompactedSegment,
    ) -> Result<usize> {
        let table_id = table.id();
        let old_ids: Vec<u64> = group.iter().map(|s| s.id).collect();
        let records = table.records.lock().await;
        let wanted = self.task_leases.holds(key, done.task_id) && !records.dropped && {
            let served = self.query.served_segments(table_id).await?;
            old_ids.iter().all(|id| served.iter().any(|s| s.id == *id))
        };
        if !wanted {
            drop(records);
            let task_objects = std::iter::once(done.path.clone())
                .chain(done.indexes.iter().map(|ix| ix.path.clone()))
                .collect();
            self.delete_objects(task_objects).await;
            return Ok(0);
        };
        // An index dropped while the step ran is not recorded (its object
        // goes with the group's below).
        let (schema, index_ids, kept_indexes, dropped_indexes): (_, Vec<u64>, Vec<_>, Vec<_>) = {
            let meta = table.meta.read();
            let (kept, dropped) = done
                .indexes
                .iter()
                .cloned()
                .partition(|ix| meta.indexes.iter().any(|d| d.id == ix.index_id));
            let index_ids = meta.indexes.iter().map(|d| d.id).collect();
            (meta.schema.clone(), index_ids, kept, dropped)
        };
        let record = SegmentMeta {
            id: done.segment_id,
            shard,
            path: done.path.clone(),
            rows: done.rows,
            first_lsn: group.iter().map(|s| s.first_lsn).min().unwrap_or(0),
            last_lsn: group.iter().map(|s| s.last_lsn).max().unwrap_or(0),
            indexes: kept_indexes,
        };
        // One atomic swap: at most MAX_MERGE_SEGMENTS deletes + 1 put.
        let mut batch =
            MetaBatch::new().put(keys::segment(table_id, done.segment_id), encode(&record));
        for id in &old_ids {
            batch = batch.delete(keys::segment(table_id, *id));
        }
        self.meta.apply(batch).await?;
        self.query
            .load_segments(LoadSegments {
                table_id,
                schema,
                index_ids,
                load: vec![SegmentToLoad {
                    record,
                    rows: done.merged.clone(),
                }],
                release: old_ids,
                deltalogs: Vec::new(),
            })
            .await?;
        drop(records);
        let old_objects = group
            .iter()
            .flat_map(|segment| {
                std::iter::once(segment_path(table_id, segment.id))
                    .chain(segment.index_paths.iter().cloned())
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

/// The task merging `group` (segments of `shard`) without the rows
/// deleted at `compaction_ts`, into segment `output_segment_id` (fresh):
/// the deletes hitting the group (and in process its rows) come from the
/// query node serving it.
async fn compaction_task(
    table: &CatalogTable,
    query: &dyn Query,
    task_id: u64,
    shard: u32,
    group: &[ServedSegment],
    (compaction_ts, output_segment_id): (u64, u64),
) -> Result<CompactionTask> {
    let table_id = table.id();
    let (schema, indexes) = {
        let meta = table.meta.read();
        (meta.schema.clone(), meta.indexes.clone())
    };
    let source = query
        .compaction_source(ReadCompactionSource {
            table_id,
            schema: schema.clone(),
            segment_ids: group.iter().map(|s| s.id).collect(),
            ts: compaction_ts,
        })
        .await?;
    let rows = source
        .rows
        .into_iter()
        .chain(std::iter::repeat(None))
        .take(group.len());
    Ok(CompactionTask {
        task_id,
        table_id,
        shard,
        inputs: group
            .iter()
            .zip(rows)
            .map(|(segment, rows)| CompactionInput {
                segment_id: segment.id,
                path: segment_path(table_id, segment.id),
                rows,
                first_lsn: segment.first_lsn,
                last_lsn: segment.last_lsn,
            })
            .collect(),
        compaction_ts,
        deletes: source.deletes,
        schema,
        indexes,
        output_segment_id,
        output_path: segment_path(table_id, output_segment_id),
    })
}

/// The shard and the segments of the next compaction step of `table`: the
/// first shard with a group ([`pick_merge`]), at most
/// [`MAX_MERGE_SEGMENTS`] of it (the swap must stay one transaction), in
/// table order.
fn pick_group(
    shards: u32,
    served: &[ServedSegment],
    min_segments: usize,
    small_rows: usize,
) -> Option<(u32, Vec<ServedSegment>)> {
    for shard in 0..shards {
        let sizes: Vec<(u64, usize, bool)> = served
            .iter()
            .filter(|s| s.shard == shard)
            .map(|s| (s.id, s.rows, true))
            .collect();
        let mut group = pick_merge(&sizes, min_segments, small_rows);
        group.truncate(MAX_MERGE_SEGMENTS);
        if group.len() >= 2 {
            let segments = served
                .iter()
                .filter(|s| group.contains(&s.id))
                .cloned()
                .collect();
            return Some((shard, segments));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use arrow::array::{Int64Array, RecordBatch};
    use arrow::datatypes::{DataType, Field, Schema};
    use quiver_common::config::QuiverConfig;
    use quiver_common::schema::{ColumnDef, ColumnType, TableSchema};

    use super::*;
    use crate::api::streaming::WriteMode;

    /// Segments seal at 20 rows; no compaction but the test's.
    fn config(dir: &std::path::Path) -> QuiverConfig {
        let mut config = QuiverConfig {
            data_dir: dir.to_path_buf(),
            ..Default::default()
        };
        config.segment.seal_rows = 20;
        config.segment.compaction_min_segments = 1_000;
        config
    }

    /// An engine with table `public.t` in three flushed segments of 20
    /// rows.
    async fn three_segments(dir: &std::path::Path) -> (Arc<Engine>, Arc<CatalogTable>) {
        let engine = Engine::open(config(dir)).await.unwrap();
        let schema = TableSchema {
            columns: vec![
                ColumnDef::new("id", ColumnType::Int64),
                ColumnDef::new("n", ColumnType::Int64),
            ],
            primary_key: 0,
        };
        engine
            .create_table("public", "t", schema, false)
            .await
            .unwrap();
        let fields = Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("n", DataType::Int64, true),
        ]);
        for start in [0i64, 20, 40] {
            let ids = Int64Array::from_iter_values(start..start + 20);
            let batch = RecordBatch::try_new(
                Arc::new(fields.clone()),
                vec![Arc::new(ids.clone()), Arc::new(ids)],
            )
            .unwrap();
            engine
                .write("public", "t", batch, WriteMode::Insert)
                .await
                .unwrap();
        }
        engine.flush_all().await.unwrap();
        let table = engine.table("public", "t").unwrap();
        assert_eq!(sealed_ids(&engine, &table).await.len(), 3);
        (engine, table)
    }

    /// The ids of the segments the query node serves.
    async fn sealed_ids(engine: &Engine, table: &CatalogTable) -> Vec<u64> {
        served(engine, table).await.iter().map(|s| s.id).collect()
    }

    async fn served(engine: &Engine, table: &CatalogTable) -> Vec<ServedSegment> {
        engine.query.served_segments(table.id()).await.unwrap()
    }

    /// Runs the data node's task for `group` under `task_id`.
    async fn run_task(
        engine: &Engine,
        table: &CatalogTable,
        task_id: u64,
        group: &[ServedSegment],
    ) -> CompactedSegment {
        let ts = engine.read_timestamp();
        let output = engine.streaming.allocate_segment_id(table.id()).unwrap();
        let task = compaction_task(
            table,
            engine.query.as_ref(),
            task_id,
            0,
            group,
            (ts, output),
        )
        .await
        .unwrap();
        engine.data_tasks.compact(task).await.unwrap()
    }

    async fn object_exists(engine: &Engine, path: &str) -> bool {
        quiver_storage::get_bytes(engine.objects.as_ref(), path)
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn a_result_whose_lease_expired_is_refused_and_its_objects_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let (engine, table) = three_segments(dir.path()).await;
        let before = sealed_ids(&engine, &table).await;
        let group = served(&engine, &table).await;
        let key = TaskKey::Compaction {
            table: table.id(),
            shard: 0,
        };
        // The lease expires before the result arrives (the node was
        // presumed dead; another may hold the step now).
        let task_id = engine.task_leases.lease(key, Duration::ZERO).unwrap();
        let done = run_task(&engine, &table, task_id, &group).await;
        assert!(
            object_exists(&engine, &done.path).await,
            "the task wrote it"
        );
        let merged = engine
            .commit_compaction(&table, key, 0, &group, done.clone())
            .await
            .unwrap();
        assert_eq!(merged, 0, "refused");
        assert_eq!(sealed_ids(&engine, &table).await, before, "the group stays");
        assert!(!object_exists(&engine, &done.path).await, "output deleted");
        for segment in &group {
            let path = segment_path(table.id(), segment.id);
            assert!(object_exists(&engine, &path).await, "inputs kept");
        }
        engine.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn a_result_whose_group_changed_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (engine, table) = three_segments(dir.path()).await;
        let group = served(&engine, &table).await;
        let key = TaskKey::Compaction {
            table: table.id(),
            shard: 0,
        };
        let task_id = engine.task_leases.lease(key, COMPACTION_LEASE).unwrap();
        let whole = run_task(&engine, &table, task_id, &group).await;
        // Meanwhile two of the group's segments were merged and committed.
        let part = run_task(&engine, &table, task_id, &group[..2]).await;
        let merged = engine
            .commit_compaction(&table, key, 0, &group[..2], part.clone())
            .await
            .unwrap();
        assert_eq!(merged, 2);
        assert_eq!(
            sealed_ids(&engine, &table).await,
            [part.segment_id, group[2].id]
        );
        // The result over the old group names segments that are gone.
        let refused = engine
            .commit_compaction(&table, key, 0, &group, whole.clone())
            .await
            .unwrap();
        assert_eq!(refused, 0);
        assert_eq!(
            sealed_ids(&engine, &table).await,
            [part.segment_id, group[2].id]
        );
        assert!(!object_exists(&engine, &whole.path).await);
        assert!(object_exists(&engine, &part.path).await);
        engine.task_leases.release(key, task_id);
        // The state survives a restart: 60 rows in the two segments.
        engine.shutdown().await.unwrap();
        // The table holds the meta store too (through its timestamp oracle).
        drop((engine, table));
        let reopened = Engine::open(config(dir.path())).await.unwrap();
        let table = reopened.table("public", "t").unwrap();
        let rows: usize = served(&reopened, &table).await.iter().map(|s| s.rows).sum();
        let mut ids = sealed_ids(&reopened, &table).await;
        ids.sort_unstable();
        let mut expected = [part.segment_id, group[2].id];
        expected.sort_unstable();
        assert_eq!(ids, expected);
        assert_eq!(rows, 60);
        reopened.shutdown().await.unwrap();
    }
}
