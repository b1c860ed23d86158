//! The coordinator's side of index builds: which (segment, index) pairs
//! are missing, leasing one as a task to the data node
//! ([`DataNodeTasks`](crate::api::data::DataNodeTasks)), and committing the
//! result — recorded on the segment's meta record, then attached to the
//! segment its query node serves, which loads it from object storage —
//! only while the task's lease holds and the index and segment still want
//! it.

use super::Engine;
use crate::api::data::{BuiltIndex, IndexBuildTask};
use crate::api::query::{AttachIndex, ServedSegment};
use crate::catalog_table::CatalogTable;
use crate::coordinator::{decode, encode, keys, SegmentMeta};
use crate::error::{EngineError, Result};
use crate::indexes::{task_index_path, IndexMeta};
use crate::segment_files::segment_path;
use crate::task_leases::{TaskKey, INDEX_BUILD_LEASE};
use quiver_storage::MetaBatch;

impl Engine {
    /// Builds the first missing (segment, index) pair of `table` that no
    /// other task holds, as a leased data-node task; returns how many pairs
    /// it processed (0: none left to lease).
    pub(super) async fn build_next_index(&self, table: &CatalogTable) -> Result<usize> {
        let table_id = table.id();
        let served = self.query.served_segments(table_id).await?;
        let Some((mut task, key)) =
            missing_indexes(table, &served)
                .into_iter()
                .find_map(|(segment, index)| {
                    let key = TaskKey::IndexBuild {
                        table: table_id,
                        segment: segment.id,
                        index: index.id,
                    };
                    let task_id = self.task_leases.lease(key, INDEX_BUILD_LEASE)?;
                    let attempt = format!("{:x}-{task_id}", self.task_nonce);
                    let task = IndexBuildTask {
                        task_id,
                        table_id,
                        segment_id: segment.id,
                        segment_path: segment_path(table_id, segment.id),
                        rows: None,
                        schema: table.schema(),
                        output_path: task_index_path(table_id, segment.id, index.id, &attempt),
                        index,
                    };
                    Some((task, key))
                })
        else {
            return Ok(0);
        };
        let task_id = task.task_id;
        // In process the query node hands the rows over (else, or when it
        // cannot, the data node reads the segment's object).
        task.rows = self
            .query
            .segment_rows(table_id, task.segment_id)
            .await
            .ok()
            .flatten();
        let committed = match self.data_tasks.build_index(task).await {
            Ok(built) => self.commit_index(table, key, built).await,
            Err(e) => Err(e),
        };
        self.task_leases.release(key, task_id);
        committed.map(|_| 1)
    }

    /// How many (segment, index) pairs of `table` miss their index.
    pub(super) async fn missing_index_count(&self, table: &CatalogTable) -> Result<usize> {
        let served = self.query.served_segments(table.id()).await?;
        Ok(missing_indexes(table, &served).len())
    }

    /// Records a built index on its segment and attaches it in memory, if
    /// the task's lease still holds, the table, index and segment are
    /// still there and the segment lacks it; else deletes its object.
    async fn commit_index(
        &self,
        table: &CatalogTable,
        key: TaskKey,
        built: BuiltIndex,
    ) -> Result<()> {
        let TaskKey::IndexBuild {
            table: table_id,
            segment: segment_id,
            index: index_id,
        } = key
        else {
            return Err(EngineError::Internal(format!(
                "{key:?} is not an index build"
            )));
        };
        let record = built.record;
        let records = table.records.lock().await;
        let wanted = self.task_leases.holds(key, built.task_id)
            && !records.dropped
            && table.meta.read().indexes.iter().any(|d| d.id == index_id)
            && self
                .query
                .served_segments(table_id)
                .await?
                .iter()
                .any(|s| s.id == segment_id && !s.index_ids.contains(&index_id));
        if !wanted {
            drop(records);
            // The segment was compacted away, the index dropped, or the
            // lease went to another node meanwhile.
            self.delete_objects(vec![record.path]).await;
            return Ok(());
        };
        let segment_key = keys::segment(table_id, segment_id);
        let Some(current) = self.meta.get(&segment_key).await? else {
            return Err(EngineError::CorruptMeta(format!("{segment_key} missing")));
        };
        let mut segment: SegmentMeta = decode(&segment_key, &current.value)?;
        segment.indexes.retain(|r| r.index_id != index_id);
        segment.indexes.push(record.clone());
        // Conditional on the version read: nothing else may have rewritten
        // the record meanwhile.
        self.meta
            .apply(
                MetaBatch::new()
                    .if_version(segment_key.clone(), current.version)
                    .put(segment_key, encode(&segment)),
            )
            .await?;
        // Records and query node change under the records lock: a
        // compaction's swap waits for the attach.
        self.query
            .attach_index(AttachIndex {
                table_id,
                segment_id,
                index: record,
            })
            .await?;
        drop(records);
        tracing::debug!(
            table_id,
            segment = segment_id,
            index = index_id,
            "segment indexed"
        );
        Ok(())
    }
}

/// The (segment, index) pairs still to build: every index definition of
/// the table missing on a served (flushed), non-empty segment, in segment
/// order.
fn missing_indexes(
    table: &CatalogTable,
    served: &[ServedSegment],
) -> Vec<(ServedSegment, IndexMeta)> {
    let meta = table.meta.read();
    served
        .iter()
        .filter(|s| s.rows > 0)
        .flat_map(|s| {
            meta.indexes
                .iter()
                .filter(|d| !s.index_ids.contains(&d.id))
                .map(move |d| (s.clone(), d.clone()))
        })
        .collect()
}
