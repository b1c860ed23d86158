//! The data-node role: runs the coordinator's leased tasks
//! ([`DataNodeTasks`]) — index builds (a flushed segment's rows from the
//! task or its object, the index written to the task's path) and
//! compaction steps (a group of one shard's segments merged without the
//! rows the task's deletes hide, the merged segment and its indexes
//! written) — and answers with the records for the coordinator to commit.
//! It holds nothing between tasks and writes no meta-store record.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::compute::{concat_batches, filter_record_batch};
use async_trait::async_trait;
use quiver_common::schema::TableSchema;
use quiver_exec::deletes::DeleteMap;
use quiver_exec::source::{adapt_batch, visible_mask};
use quiver_storage::{put_bytes, ObjectStoreRef, MAX_TXN_OPS};

use crate::api::data::{
    BuiltIndex, CompactedSegment, CompactionTask, DataNodeTasks, IndexBuildTask,
};
use crate::error::{EngineError, Result};
use crate::indexes::{build_threads, index_path, IndexMeta, SegmentIndexMeta};
use crate::segment_files::encode_parquet;

/// Most segments one compaction step merges: its swap — put the merged
/// segment's record and the table record, delete every merged segment's
/// record — must fit one meta-store transaction (at most
/// [`MAX_TXN_OPS`] writes, etcd's limit), because it has to be atomic: a
/// crash must leave either the old segments or the merged one, never both
/// (their rows would be loaded twice). A larger group is merged in several
/// steps, each committed.
pub const MAX_MERGE_SEGMENTS: usize = MAX_TXN_OPS - 2;

#[async_trait]
impl DataNodeTasks for DataNode {
    async fn build_index(&self, task: IndexBuildTask) -> Result<BuiltIndex> {
        let batches = match task.rows {
            Some(rows) => rows,
            None => {
                Arc::new(crate::query_node::read_parquet(&self.objects, &task.segment_path).await?)
            }
        };
        let record = self
            .build_and_store(&task.output_path, &task.schema, &task.index, batches)
            .await?;
        Ok(BuiltIndex {
            task_id: task.task_id,
            record,
        })
    }

    async fn compact(&self, task: CompactionTask) -> Result<CompactedSegment> {
        let storage = task.schema.storage_schema();
        let mut deletes = DeleteMap::default();
        if let Some(batch) = &task.deletes {
            for (key, ts) in crate::query_node::delete_entries(batch) {
                deletes.insert(&key, ts);
            }
        }
        let mut kept = Vec::new();
        for input in &task.inputs {
            let rows = match &input.rows {
                Some(rows) => rows.clone(),
                None => {
                    Arc::new(crate::query_node::read_parquet(&self.objects, &input.path).await?)
                }
            };
            for batch in rows.iter() {
                let batch = adapt_batch(batch, &storage)?;
                let primary_key = task.schema.primary_key;
                kept.push(
                    match visible_mask(&batch, primary_key, &deletes, task.compaction_ts) {
                        Some(mask) => filter_record_batch(&batch, &mask)?,
                        None => batch,
                    },
                );
            }
        }
        let merged = concat_batches(&storage, &kept)?;
        put_bytes(
            self.objects.as_ref(),
            &task.output_path,
            encode_parquet(&merged)?,
        )
        .await?;
        // The merged segment comes with its indexes built.
        let rows = merged.num_rows();
        let merged = Arc::new(vec![merged]);
        let mut indexes = Vec::new();
        if rows > 0 {
            for def in &task.indexes {
                let path = index_path(task.table_id, task.output_segment_id, def.id);
                let record = self
                    .build_and_store(&path, &task.schema, def, merged.clone())
                    .await?;
                indexes.push(record);
            }
        }
        Ok(CompactedSegment {
            task_id: task.task_id,
            segment_id: task.output_segment_id,
            path: task.output_path,
            rows,
            indexes,
            merged: Some(merged),
        })
    }
}

/// A data node: object storage is all it needs.
#[derive(Debug, Clone)]
pub struct DataNode {
    pub objects: ObjectStoreRef,
}

impl DataNode {
    /// Builds `def` over `batches` and writes it to `path`.
    async fn build_and_store(
        &self,
        path: &str,
        schema: &TableSchema,
        def: &IndexMeta,
        batches: Arc<Vec<RecordBatch>>,
    ) -> Result<SegmentIndexMeta> {
        let (def_owned, schema_owned) = (def.clone(), schema.clone());
        let index = tokio::task::spawn_blocking(move || {
            def_owned.build(&schema_owned, &batches, build_threads())
        })
        .await
        .map_err(|e| EngineError::Index(format!("index build task failed: {e}")))??;
        put_bytes(self.objects.as_ref(), path, index.to_bytes()).await?;
        Ok(SegmentIndexMeta {
            index_id: def.id,
            path: path.to_string(),
            rows: index.len(),
        })
    }
}

/// The segments one compaction step merges, given `(id, rows, flushed)` of
/// a table's sealed segments: nothing unless at least `min_segments` (and
/// 2) flushed segments have fewer than `small_rows` rows; else those small
/// segments, smallest first (ties in table order), until the group holds
/// `small_rows` rows. A merged segment thus has fewer than `2 * small_rows`
/// rows, so one step (its index builds included) is bounded however many
/// small segments piled up, and each step's output is committed progress.
/// A step merges at most [`MAX_MERGE_SEGMENTS`] of the group (the rest in
/// the next steps).
pub fn pick_merge(
    segments: &[(u64, usize, bool)],
    min_segments: usize,
    small_rows: usize,
) -> Vec<u64> {
    let mut small: Vec<(usize, usize, u64)> = segments
        .iter()
        .enumerate()
        .filter(|(_, (_, rows, flushed))| *flushed && *rows < small_rows)
        .map(|(position, (id, rows, _))| (*rows, position, *id))
        .collect();
    if small.len() < min_segments.max(2) {
        return Vec::new();
    }
    small.sort_unstable();
    let mut group = Vec::new();
    let mut rows = 0usize;
    for (segment_rows, _, id) in small {
        group.push(id);
        rows = rows.saturating_add(segment_rows);
        if rows >= small_rows && group.len() >= 2 {
            break;
        }
    }
    group
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use arrow::array::{AsArray, FixedSizeListArray, Float32Array, Int64Array};
    use arrow::datatypes::Int64Type;
    use quiver_common::schema::{ColumnDef, ColumnType};

    use super::*;
    use crate::segment_files::{delete_log_batch, segment_path};
    use arrow::array::UInt64Array;
    use arrow::datatypes::{DataType, Field};
    use quiver_exec::pk::PkValue;

    fn node(dir: &tempfile::TempDir) -> DataNode {
        DataNode {
            objects: quiver_storage::local_object_store(dir.path()).unwrap(),
        }
    }

    fn schema() -> TableSchema {
        TableSchema {
            columns: vec![
                ColumnDef::new("id", ColumnType::Int64),
                ColumnDef::new("v", ColumnType::Vector { dim: 2 }),
            ],
            primary_key: 0,
        }
    }

    /// Rows `ids` (vector `[id, 0]`) written at timestamp `ts`, in the
    /// storage schema.
    fn rows(ids: std::ops::Range<i64>, ts: u64) -> RecordBatch {
        let vectors = FixedSizeListArray::try_new(
            Arc::new(Field::new("item", DataType::Float32, true)),
            2,
            Arc::new(Float32Array::from_iter_values(
                ids.clone().flat_map(|i| [i as f32, 0.0]),
            )),
            None,
        )
        .unwrap();
        let n = ids.end - ids.start;
        RecordBatch::try_new(
            schema().storage_schema(),
            vec![
                Arc::new(Int64Array::from_iter_values(ids)),
                Arc::new(vectors),
                Arc::new(UInt64Array::from(vec![ts; n as usize])),
            ],
        )
        .unwrap()
    }

    fn hnsw(id: u64) -> IndexMeta {
        IndexMeta {
            id,
            name: format!("t_v_idx{id}"),
            column: "v".into(),
            kind: "hnsw".into(),
            metric: "l2".into(),
            params: BTreeMap::new(),
        }
    }

    async fn put_segment(node: &DataNode, path: &str, batch: &RecordBatch) {
        put_bytes(node.objects.as_ref(), path, encode_parquet(batch).unwrap())
            .await
            .unwrap();
    }

    async fn index_rows(node: &DataNode, path: &str) -> usize {
        let bytes = quiver_storage::get_bytes(node.objects.as_ref(), path)
            .await
            .unwrap();
        quiver_index::load_index(&bytes).unwrap().len()
    }

    /// An index-build task reads its segment from object storage (nothing
    /// of the coordinator's memory), writes the index to the task's path
    /// and answers with its record; the index holds every row of the
    /// segment.
    #[tokio::test]
    async fn an_index_build_task_reads_the_segment_object_and_writes_its_output() {
        let dir = tempfile::tempdir().unwrap();
        let node = node(&dir);
        let segment = segment_path(7, 3);
        put_segment(&node, &segment, &rows(0..50, 1)).await;
        let output = crate::indexes::task_index_path(7, 3, 1, "a-1");
        let built = node
            .build_index(IndexBuildTask {
                task_id: 1,
                table_id: 7,
                segment_id: 3,
                segment_path: segment,
                rows: None,
                schema: schema(),
                index: hnsw(1),
                output_path: output.clone(),
            })
            .await
            .unwrap();
        assert_eq!(built.task_id, 1);
        assert_eq!(built.record.path, output);
        assert_eq!(built.record.rows, 50);
        assert_eq!(index_rows(&node, &output).await, 50);
    }

    /// A compaction task merges its inputs — one read from object storage,
    /// one carried in the task — without the rows its deletes hide at the
    /// compaction timestamp (a delete after it, and a delete older than a
    /// row's upsert, hide nothing), writes the merged segment and an index
    /// per definition to the task's paths, and answers with their records.
    #[tokio::test]
    async fn a_compaction_task_merges_its_inputs_without_deleted_rows() {
        let dir = tempfile::tempdir().unwrap();
        let node = node(&dir);
        let first = segment_path(7, 1);
        put_segment(&node, &first, &rows(0..40, 10)).await;
        let second = rows(40..60, 20);
        let deletes = vec![
            (PkValue::Int(3), 15),  // hides row 3 (written at 10)
            (PkValue::Int(45), 15), // older than row 45 (written at 20)
            (PkValue::Int(50), 25), // hides row 50
            (PkValue::Int(55), 99), // after the compaction timestamp
        ];
        let output = segment_path(7, 9);
        let done = node
            .compact(CompactionTask {
                task_id: 4,
                table_id: 7,
                shard: 0,
                inputs: vec![
                    crate::api::data::CompactionInput {
                        segment_id: 1,
                        path: first,
                        rows: None,
                        first_lsn: 1,
                        last_lsn: 2,
                    },
                    crate::api::data::CompactionInput {
                        segment_id: 2,
                        path: segment_path(7, 2),
                        rows: Some(Arc::new(vec![second])),
                        first_lsn: 3,
                        last_lsn: 4,
                    },
                ],
                compaction_ts: 30,
                deletes: delete_log_batch(&schema(), &deletes).unwrap(),
                schema: schema(),
                indexes: vec![hnsw(1), hnsw(2)],
                output_segment_id: 9,
                output_path: output.clone(),
            })
            .await
            .unwrap();
        assert_eq!((done.task_id, done.segment_id, done.rows), (4, 9, 58));
        assert_eq!(done.path, output);
        let stored = crate::query_node::read_parquet(&node.objects, &output)
            .await
            .unwrap();
        let ids: Vec<i64> = stored
            .iter()
            .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
            .collect();
        let expected: Vec<i64> = (0..60).filter(|id| *id != 3 && *id != 50).collect();
        assert_eq!(ids, expected);
        assert_eq!(done.merged.as_ref().unwrap()[0].num_rows(), 58);
        assert_eq!(done.indexes.len(), 2);
        for (record, id) in done.indexes.iter().zip([1, 2]) {
            assert_eq!(record.index_id, id);
            assert_eq!(record.path, index_path(7, 9, id));
            assert_eq!(index_rows(&node, &record.path).await, 58);
        }
    }
}
