//! The data-node role: flushes sealed segments to Parquet in object storage,
//! persists delete logs, records both in the meta store, compacts small
//! segments (dropping deleted rows) in bounded steps, and runs index-build
//! tasks ([`DataNodeTasks`]): a flushed segment read from object storage,
//! its index written next to it, the record returned for the coordinator
//! to commit.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::compute::{concat_batches, filter_record_batch};
use object_store::ObjectStoreExt;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use quiver_exec::pk::PkValue;
use quiver_exec::source::{adapt_batch, visible_mask};
use quiver_storage::{put_bytes, MetaBatch, MetaStore, ObjectStoreRef, MAX_TXN_OPS};

use crate::coordinator::{encode, keys, SegmentMeta};
use async_trait::async_trait;
use quiver_common::schema::TableSchema;
use quiver_exec::stats::segment_statistics;

use crate::api::data::{BuiltIndex, DataNodeTasks, IndexBuildTask};
use crate::error::{EngineError, Result};
use crate::indexes::{build_threads, index_path, IndexMeta, LoadedIndex, SegmentIndexMeta};
use crate::roles::DataRole;
use crate::table::{SealedSegment, TableRuntime};

/// Most segments one compaction step merges: its swap — put the merged
/// segment's record and the table record, delete every merged segment's
/// record — must fit one meta-store transaction (at most
/// [`MAX_TXN_OPS`] writes, etcd's limit), because it has to be atomic: a
/// crash must leave either the old segments or the merged one, never both
/// (their rows would be loaded twice). A larger group is merged in several
/// steps, each committed.
pub const MAX_MERGE_SEGMENTS: usize = MAX_TXN_OPS - 2;

/// Object path of a segment's Parquet file.
pub fn segment_path(table: u64, segment: u64) -> String {
    format!("tables/{table}/segments/{segment:020}.parquet")
}

/// Object path of a delete log.
pub fn deltalog_path(table: u64, n: u64) -> String {
    format!("tables/{table}/deltalogs/{n:020}.parquet")
}

/// Encodes batches as one Parquet file.
pub fn encode_parquet(batch: &RecordBatch) -> Result<Vec<u8>> {
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1)?))
        .build();
    let mut buf = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut buf, batch.schema(), Some(props))?;
    writer.write(batch)?;
    writer.close()?;
    Ok(buf)
}

#[async_trait]
impl DataNodeTasks for DataNode {
    async fn build_index(&self, task: IndexBuildTask) -> Result<BuiltIndex> {
        let batches = match task.rows {
            Some(rows) => rows,
            None => {
                Arc::new(crate::query_node::read_parquet(&self.objects, &task.segment_path).await?)
            }
        };
        let (record, _) = self
            .build_and_store(&task.output_path, &task.schema, &task.index, batches)
            .await?;
        Ok(BuiltIndex {
            task_id: task.task_id,
            record,
        })
    }
}

/// Flushes and compacts tables.
#[derive(Debug, Clone)]
pub struct DataNode {
    pub meta: Arc<dyn MetaStore>,
    pub objects: ObjectStoreRef,
}

impl DataNode {
    /// Writes a sealed segment and records it; `false` when the table was
    /// dropped meanwhile (nothing recorded).
    async fn flush_segment(&self, table: &TableRuntime, segment: &SealedSegment) -> Result<bool> {
        let (table_id, storage) = {
            let meta = table.meta.read();
            (meta.id, meta.schema.storage_schema())
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
        // The records first (under the table's records lock), then the
        // in-memory state, together under the data lock: until then the
        // segment counts as unflushed, which only keeps more WAL.
        let records = table.records.lock().await;
        if records.dropped {
            return Ok(false);
        }
        let mut table_record = table.meta.read().clone();
        table_record.mark_shard_persisted(segment.shard, segment.last_lsn);
        let batch = MetaBatch::new()
            .put(keys::segment(table_id, segment.id), encode(&record))
            .put(keys::table(table_id), encode(&table_record));
        self.meta.apply(batch).await?;
        let mut data = table.data.write();
        {
            let mut meta = table.meta.write();
            meta.mark_shard_persisted(segment.shard, segment.last_lsn);
        }
        if let Some(s) = data.sealed.iter_mut().find(|s| s.id == segment.id) {
            s.flushed = true;
            s.stats = Some(Arc::new(segment_statistics(
                std::slice::from_ref(&merged),
                &storage,
            )));
            s.batches = Arc::new(vec![merged]);
        }
        Ok(true)
    }

    /// Builds `def` over `batches` and writes it to `path`.
    async fn build_and_store(
        &self,
        path: &str,
        schema: &TableSchema,
        def: &IndexMeta,
        batches: Arc<Vec<RecordBatch>>,
    ) -> Result<(SegmentIndexMeta, LoadedIndex)> {
        let (def_owned, schema_owned) = (def.clone(), schema.clone());
        let index = tokio::task::spawn_blocking(move || {
            def_owned.build(&schema_owned, &batches, build_threads())
        })
        .await
        .map_err(|e| EngineError::Index(format!("index build task failed: {e}")))??;
        put_bytes(self.objects.as_ref(), path, index.to_bytes()).await?;
        Ok((
            SegmentIndexMeta {
                index_id: def.id,
                path: path.to_string(),
                rows: index.len(),
            },
            LoadedIndex {
                index_id: def.id,
                path: path.to_string(),
                index,
            },
        ))
    }

    /// Persists the table's pending deletes as a delete log.
    pub async fn flush_deletes(&self, table: &TableRuntime) -> Result<()> {
        let pending: Vec<(u64, PkValue, u64)> = table.data.read().pending_deletes.clone();
        if pending.is_empty() {
            return Ok(());
        }
        let (table_id, schema) = {
            let meta = table.meta.read();
            (meta.id, meta.schema.clone())
        };
        let last_lsn = pending.iter().map(|p| p.0).max().unwrap_or(0);
        let keys_only: Vec<PkValue> = pending.iter().map(|p| p.1.clone()).collect();
        let Some(keys_batch) = crate::streaming::keys_batch(&schema, &keys_only)? else {
            return Ok(());
        };
        let ts = arrow::array::UInt64Array::from(pending.iter().map(|p| p.2).collect::<Vec<_>>());
        let mut fields: Vec<arrow::datatypes::Field> = keys_batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.push(arrow::datatypes::Field::new(
            "ts",
            arrow::datatypes::DataType::UInt64,
            false,
        ));
        let batch = RecordBatch::try_new(
            Arc::new(arrow::datatypes::Schema::new(fields)),
            vec![keys_batch.column(0).clone(), Arc::new(ts)],
        )?;
        let n = last_lsn;
        let path = deltalog_path(table_id, n);
        put_bytes(self.objects.as_ref(), &path, encode_parquet(&batch)?).await?;
        let records = table.records.lock().await;
        if records.dropped {
            return Ok(());
        }
        let mut table_record = table.meta.read().clone();
        table_record.deletes_persisted_lsn = table_record.deletes_persisted_lsn.max(last_lsn);
        let batch = MetaBatch::new()
            .put(keys::deltalog(table_id, n), encode(&path))
            .put(keys::table(table_id), encode(&table_record));
        self.meta.apply(batch).await?;
        let mut data = table.data.write();
        {
            let mut meta = table.meta.write();
            meta.deletes_persisted_lsn = meta.deletes_persisted_lsn.max(last_lsn);
        }
        data.pending_deletes.retain(|p| p.0 > last_lsn);
        Ok(())
    }
}

/// The segments one compaction step merges, given `(id, rows, flushed)` of
/// a table's sealed segments: nothing unless at least `min_segments` (and
/// 2) flushed segments have fewer than `small_rows` rows; else those small
/// segments, smallest first (ties in table order), until the group holds
/// `small_rows` rows. A merged segment thus has fewer than `2 * small_rows`
/// rows, so one step (its index builds included) is bounded however many
/// small segments piled up, and each step's output is committed progress.
/// The data node merges at most [`MAX_MERGE_SEGMENTS`] of the group in one
/// step (the rest in the next steps).
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

#[async_trait]
impl DataRole for DataNode {
    /// Flushes every sealed, unflushed segment of `table` in order, then its pending deletes.
    async fn flush_table(&self, table: &TableRuntime) -> Result<usize> {
        let mut flushed = 0;
        loop {
            let next = {
                let data = table.data.read();
                data.sealed.iter().find(|s| !s.flushed).cloned()
            };
            let Some(segment) = next else { break };
            if !self.flush_segment(table, &segment).await? {
                return Ok(flushed); // dropped meanwhile
            }
            flushed += 1;
        }
        self.flush_deletes(table).await?;
        Ok(flushed)
    }

    /// Merges small flushed segments of `table` into one, dropping rows deleted
    /// at `compaction_ts`. Returns the number of segments merged.
    async fn compact_table(
        &self,
        table: &TableRuntime,
        compaction_ts: u64,
        min_segments: usize,
        small_rows: usize,
    ) -> Result<usize> {
        let candidates: Vec<SealedSegment> = {
            let data = table.data.read();
            // A merge stays inside one shard: the first shard with a group.
            let mut group = Vec::new();
            for shard in 0..table.shards() {
                let sizes: Vec<(u64, usize, bool)> = data
                    .sealed
                    .iter()
                    .filter(|s| s.shard == shard)
                    .map(|s| (s.id, s.rows, s.flushed))
                    .collect();
                group = pick_merge(&sizes, min_segments, small_rows);
                if !group.is_empty() {
                    break;
                }
            }
            // The swap below must stay one transaction (see MAX_MERGE_SEGMENTS).
            group.truncate(MAX_MERGE_SEGMENTS);
            data.sealed
                .iter()
                .filter(|s| group.contains(&s.id))
                .cloned()
                .collect()
        };
        if candidates.len() < 2 {
            return Ok(0);
        }
        let (table_id, schema) = {
            let meta = table.meta.read();
            (meta.id, meta.schema.clone())
        };
        let storage = schema.storage_schema();
        let mut kept = Vec::new();
        {
            let deletes = table.deletes.read();
            for segment in &candidates {
                for batch in segment.batches.iter() {
                    let batch = adapt_batch(batch, &storage)?;
                    let batch =
                        match visible_mask(&batch, schema.primary_key, &deletes, compaction_ts) {
                            Some(mask) => filter_record_batch(&batch, &mask)?,
                            None => batch,
                        };
                    kept.push(batch);
                }
            }
        }
        let merged = concat_batches(&storage, &kept)?;
        let new_id = crate::table::alloc_segment_id(&mut table.meta.write());
        let path = segment_path(table_id, new_id);
        put_bytes(self.objects.as_ref(), &path, encode_parquet(&merged)?).await?;
        // The merged segment comes with its indexes built.
        let definitions = table.meta.read().indexes.clone();
        let mut index_records = Vec::new();
        let mut loaded = Vec::new();
        if merged.num_rows() > 0 {
            let batches = Arc::new(vec![merged.clone()]);
            for def in &definitions {
                let path = index_path(table_id, new_id, def.id);
                let (record, index) = self
                    .build_and_store(&path, &schema, def, batches.clone())
                    .await?;
                index_records.push(record);
                loaded.push(index);
            }
        }
        let shard = candidates[0].shard;
        let record = SegmentMeta {
            id: new_id,
            shard,
            path,
            rows: merged.num_rows(),
            first_lsn: candidates.iter().map(|s| s.first_lsn).min().unwrap_or(0),
            last_lsn: candidates.iter().map(|s| s.last_lsn).max().unwrap_or(0),
            indexes: index_records,
        };
        let old_ids: Vec<u64> = candidates.iter().map(|s| s.id).collect();
        {
            let records = table.records.lock().await;
            if records.dropped {
                return Ok(0);
            }
            let table_record = table.meta.read().clone();
            // One atomic swap: at most MAX_MERGE_SEGMENTS deletes + 2 puts.
            let mut batch = MetaBatch::new()
                .put(keys::segment(table_id, new_id), encode(&record))
                .put(keys::table(table_id), encode(&table_record));
            for id in &old_ids {
                batch = batch.delete(keys::segment(table_id, *id));
            }
            self.meta.apply(batch).await?;
            let mut data = table.data.write();
            let position = data
                .sealed
                .iter()
                .position(|s| old_ids.contains(&s.id))
                .unwrap_or(0);
            data.sealed.retain(|s| !old_ids.contains(&s.id));
            let rows = merged.num_rows();
            let position = position.min(data.sealed.len());
            let stats = segment_statistics(std::slice::from_ref(&merged), &storage);
            data.sealed.insert(
                position,
                SealedSegment {
                    id: new_id,
                    shard,
                    batches: Arc::new(vec![merged]),
                    rows,
                    first_lsn: record.first_lsn,
                    last_lsn: record.last_lsn,
                    flushed: true,
                    indexes: loaded,
                    stats: Some(Arc::new(stats)),
                },
            );
        }
        for segment in &candidates {
            let paths = std::iter::once(segment_path(table_id, segment.id))
                .chain(segment.indexes.iter().map(|ix| ix.path.clone()));
            for path in paths {
                let path = object_store::path::Path::from(path);
                if let Err(e) = self.objects.delete(&path).await {
                    tracing::warn!("could not delete compacted object {path}: {e}");
                }
            }
        }
        Ok(candidates.len())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use arrow::array::{ArrayRef, FixedSizeListArray, Float32Array, Int64Array, UInt64Array};
    use arrow::datatypes::{DataType, Field};
    use quiver_common::schema::{ColumnDef, ColumnType};

    use super::*;

    /// An index-build task reads its segment from object storage (nothing
    /// of the coordinator's memory), writes the index to the task's path
    /// and answers with its record; the index holds every row of the
    /// segment.
    #[tokio::test]
    async fn an_index_build_task_reads_the_segment_object_and_writes_its_output() {
        let dir = tempfile::tempdir().unwrap();
        let objects = quiver_storage::local_object_store(dir.path()).unwrap();
        let node = DataNode {
            meta: Arc::new(quiver_storage::MemoryMetaStore::new()),
            objects: objects.clone(),
        };
        let schema = TableSchema {
            columns: vec![
                ColumnDef::new("id", ColumnType::Int64),
                ColumnDef::new("v", ColumnType::Vector { dim: 2 }),
            ],
            primary_key: 0,
        };
        let rows = 50;
        let vectors = FixedSizeListArray::try_new(
            Arc::new(Field::new("item", DataType::Float32, true)),
            2,
            Arc::new(Float32Array::from_iter_values(
                (0..rows).flat_map(|i| [i as f32, 0.0]),
            )),
            None,
        )
        .unwrap();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from_iter_values(0..rows)),
            Arc::new(vectors),
            Arc::new(UInt64Array::from(vec![1u64; rows as usize])),
        ];
        let batch = RecordBatch::try_new(schema.storage_schema(), columns).unwrap();
        let segment = segment_path(7, 3);
        put_bytes(objects.as_ref(), &segment, encode_parquet(&batch).unwrap())
            .await
            .unwrap();
        let index = IndexMeta {
            id: 1,
            name: "t_v_idx".into(),
            column: "v".into(),
            kind: "hnsw".into(),
            metric: "l2".into(),
            params: BTreeMap::new(),
        };
        let output = crate::indexes::task_index_path(7, 3, 1, "a-1");
        let built = node
            .build_index(IndexBuildTask {
                task_id: 1,
                table_id: 7,
                segment_id: 3,
                segment_path: segment,
                rows: None,
                schema,
                index,
                output_path: output.clone(),
            })
            .await
            .unwrap();
        assert_eq!(built.task_id, 1);
        assert_eq!(built.record.path, output);
        assert_eq!(built.record.rows, rows as usize);
        let bytes = quiver_storage::get_bytes(objects.as_ref(), &output)
            .await
            .unwrap();
        let loaded = quiver_index::load_index(&bytes).unwrap();
        assert_eq!(loaded.len(), rows as usize);
    }
}
