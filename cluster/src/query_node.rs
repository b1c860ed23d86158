//! The query node ([`QueryNode`]): the flushed segments it serves, in its
//! own registry keyed by table id and segment id — rows, loaded indexes and
//! column statistics — with each table's deletes in a delete map of its
//! own (fed by the streaming node, [`DeleteSubscriber`], and by delete logs
//! on recovery), loaded from object storage (or from rows the caller hands
//! over in process) and released through its API
//! ([`Query`](crate::api::query::Query)); the snapshots of its own state
//! that searches and scans read ([`QueryNode::snapshot`]); and the readers
//! of segment and delete-log objects.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch};
use arrow::compute::{concat, filter};
use arrow::datatypes::{Field, Schema};
use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::RwLock;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use quiver_common::schema::TableSchema;
use quiver_exec::deletes::DeleteMap;
use quiver_exec::pk::{pk_ref, pk_values, PkValue};
use quiver_exec::source::{adapt_batch, visible_mask, IndexDescription, TableSnapshot};
use quiver_exec::stats::segment_statistics;
use quiver_index::VectorIndex;
use quiver_storage::{get_bytes, ObjectStoreRef};

use crate::api::query::{
    ApplyDeletes, AttachIndex, CompactionSource, DeleteSubscriber, LoadSegments, LoadedSegments,
    Query, ReadCompactionSource, ServedSegment,
};
use crate::api::reads::{snapshot_fragments, ReadTable, TablePart, TableReads};
use crate::error::{EngineError, Result};
use crate::indexes::LoadedIndex;
use crate::segment_files::delete_log_batch;
use crate::table::SealedSegment;

/// A query node in process.
#[derive(Debug)]
pub struct QueryNode {
    objects: ObjectStoreRef,
    /// Per table, what the node holds of it.
    tables: RwLock<HashMap<u64, ServedTable>>,
}

/// What a query node holds of one table.
#[derive(Debug, Default)]
struct ServedTable {
    /// The segments served, in load order.
    segments: Vec<SealedSegment>,
    /// Every delete of the table the node was sent (a delete may hit a
    /// row of a segment loaded later, so it is kept from the start).
    deletes: Arc<RwLock<DeleteMap>>,
    /// The table's schema as of the last load (its key column's type).
    schema: Option<TableSchema>,
    /// The ids of the segments released by a load that merged them into
    /// another ([`TablePart::covered`]: a reader drops a streaming node's
    /// copy of them). Kept while the table is served: a few bytes per
    /// compacted segment.
    merged_away: HashSet<u64>,
}

impl QueryNode {
    /// A query node serving nothing yet, reading from `objects`.
    pub fn new(objects: ObjectStoreRef) -> Self {
        Self {
            objects,
            tables: RwLock::new(HashMap::new()),
        }
    }

    /// What the node serves of a table now (segment summaries, no rows).
    pub fn served(&self, table_id: u64) -> Vec<ServedSegment> {
        self.tables
            .read()
            .get(&table_id)
            .map(|table| table.segments.iter().map(summary).collect())
            .unwrap_or_default()
    }

    /// The rows of a served segment, for in-process tasks that need them
    /// (the data node's, which else read the segment's object).
    pub fn rows(&self, table_id: u64, segment_id: u64) -> Option<Arc<Vec<RecordBatch>>> {
        self.tables
            .read()
            .get(&table_id)?
            .segments
            .iter()
            .find(|s| s.id == segment_id)
            .map(|s| s.batches.clone())
    }

    /// The node's delete map of a table, for in-process tasks that need
    /// the deletes hitting a segment (a compaction's, which else would
    /// read them from the delete logs and the WAL channel).
    pub fn deletes(&self, table_id: u64) -> Option<Arc<RwLock<DeleteMap>>> {
        Some(self.tables.read().get(&table_id)?.deletes.clone())
    }

    /// The node's part of a table at `read_ts`, as its searches and scans
    /// read it: the segments it serves (rows, statistics, and the indexes
    /// `definitions` still define, by index id) with its own delete map;
    /// `schema` is the table's definition now. Rows and indexes are shared,
    /// not copied.
    pub fn snapshot(
        &self,
        table_id: u64,
        schema: &TableSchema,
        definitions: &[(u64, IndexDescription)],
        read_ts: u64,
    ) -> TableSnapshot {
        let tables = self.tables.read();
        let (segments, deletes) = match tables.get(&table_id) {
            Some(table) => (
                table
                    .segments
                    .iter()
                    .map(|s| s.as_segment(definitions))
                    .collect(),
                table.deletes.clone(),
            ),
            None => (Vec::new(), Arc::default()),
        };
        TableSnapshot {
            table_id,
            schema: schema.clone(),
            segments,
            deletes,
            read_ts,
        }
    }

    /// The ids a reader finds here ([`TablePart::covered`]).
    fn covered(&self, table_id: u64) -> Vec<u64> {
        let tables = self.tables.read();
        tables.get(&table_id).map_or_else(Vec::new, |table| {
            table
                .segments
                .iter()
                .map(|s| s.id)
                .chain(table.merged_away.iter().copied())
                .collect()
        })
    }

    async fn load_index(&self, path: &str) -> Result<Arc<dyn VectorIndex>> {
        let bytes = get_bytes(self.objects.as_ref(), path).await?;
        let index = quiver_index::load_index(&bytes)
            .map_err(|e| EngineError::Index(format!("{path}: {e}")))?;
        Ok(Arc::from(index))
    }
}

#[async_trait]
impl Query for QueryNode {
    async fn load_segments(&self, request: LoadSegments) -> Result<LoadedSegments> {
        let storage = request.schema.storage_schema();
        let mut loaded = Vec::with_capacity(request.load.len());
        let mut counts = LoadedSegments::default();
        // Read everything first, then swap under the lock at once.
        for segment in request.load {
            let record = segment.record;
            let batches = match segment.rows {
                Some(rows) => rows,
                None => Arc::new(read_parquet(&self.objects, &record.path).await?),
            };
            let mut indexes = Vec::new();
            for ix in &record.indexes {
                if !request.index_ids.contains(&ix.index_id) {
                    continue;
                }
                indexes.push(LoadedIndex {
                    index_id: ix.index_id,
                    path: ix.path.clone(),
                    index: self.load_index(&ix.path).await?,
                });
            }
            counts.segments += 1;
            counts.indexes += indexes.len();
            let stats = segment_statistics(batches.as_slice(), &storage);
            loaded.push(SealedSegment {
                id: record.id,
                shard: record.shard,
                rows: batches.iter().map(|b| b.num_rows()).sum(),
                batches,
                first_lsn: record.first_lsn,
                last_lsn: record.last_lsn,
                indexes,
                stats: Some(Arc::new(stats)),
            });
        }
        let mut deleted = Vec::new();
        for path in &request.deltalogs {
            deleted.extend(read_deltalog(&self.objects, path).await?);
        }
        // A segment loaded again (flushed again after a hand-off that did
        // not finish) replaces its copy.
        let replaced =
            |id: &u64| request.release.contains(id) || loaded.iter().any(|l| l.id == *id);
        let mut tables = self.tables.write();
        let table = tables.entry(request.table_id).or_default();
        table.schema = Some(request.schema);
        if !deleted.is_empty() {
            let mut deletes = table.deletes.write();
            for (key, ts) in deleted {
                deletes.insert(&key, ts);
            }
        }
        table.merged_away.extend(
            request
                .release
                .iter()
                .filter(|id| !loaded.iter().any(|l| l.id == **id)),
        );
        let served = &mut table.segments;
        let position = served
            .iter()
            .position(|s| replaced(&s.id))
            .unwrap_or(served.len());
        served.retain(|s| !replaced(&s.id));
        let position = position.min(served.len());
        served.splice(position..position, loaded);
        Ok(counts)
    }

    async fn attach_index(&self, request: AttachIndex) -> Result<bool> {
        let wanted = |tables: &HashMap<u64, ServedTable>| {
            tables.get(&request.table_id).is_some_and(|served| {
                served.segments.iter().any(|s| {
                    s.id == request.segment_id
                        && !s
                            .indexes
                            .iter()
                            .any(|l| l.index_id == request.index.index_id)
                })
            })
        };
        if !wanted(&self.tables.read()) {
            return Ok(false);
        }
        let index = self.load_index(&request.index.path).await?;
        let mut tables = self.tables.write();
        if !wanted(&tables) {
            return Ok(false);
        }
        let segment = tables
            .get_mut(&request.table_id)
            .and_then(|served| {
                served
                    .segments
                    .iter_mut()
                    .find(|s| s.id == request.segment_id)
            })
            .ok_or_else(|| EngineError::Internal("segment vanished under the lock".into()))?;
        segment.indexes.push(LoadedIndex {
            index_id: request.index.index_id,
            path: request.index.path,
            index,
        });
        Ok(true)
    }

    async fn detach_index(&self, table_id: u64, index_id: u64) -> Result<()> {
        if let Some(served) = self.tables.write().get_mut(&table_id) {
            for segment in &mut served.segments {
                segment.indexes.retain(|ix| ix.index_id != index_id);
            }
        }
        Ok(())
    }

    async fn release_table(&self, table_id: u64) -> Result<()> {
        self.tables.write().remove(&table_id);
        Ok(())
    }

    async fn served_segments(&self, table_id: u64) -> Result<Vec<ServedSegment>> {
        Ok(self.served(table_id))
    }

    async fn segment_rows(
        &self,
        table_id: u64,
        segment_id: u64,
    ) -> Result<Option<Arc<Vec<RecordBatch>>>> {
        Ok(self.rows(table_id, segment_id))
    }

    async fn compaction_source(&self, request: ReadCompactionSource) -> Result<CompactionSource> {
        let (rows, deletes) = {
            let tables = self.tables.read();
            let Some(table) = tables.get(&request.table_id) else {
                return Ok(CompactionSource {
                    rows: vec![None; request.segment_ids.len()],
                    deletes: None,
                });
            };
            let rows: Vec<_> = request
                .segment_ids
                .iter()
                .map(|id| {
                    table
                        .segments
                        .iter()
                        .find(|s| s.id == *id)
                        .map(|s| s.batches.clone())
                })
                .collect();
            (rows, table.deletes.clone())
        };
        let hitting = deletes_hitting(
            &rows,
            request.schema.primary_key,
            &deletes.read(),
            request.ts,
        );
        Ok(CompactionSource {
            deletes: delete_log_batch(&request.schema, &hitting)?,
            rows,
        })
    }

    async fn live_keys(&self, table_id: u64) -> Result<Option<RecordBatch>> {
        let tables = self.tables.read();
        let Some(table) = tables.get(&table_id) else {
            return Ok(None);
        };
        let Some(schema) = &table.schema else {
            return Ok(None);
        };
        let storage = schema.storage_schema();
        let pk_index = schema.primary_key;
        let deletes = table.deletes.read();
        let mut parts: Vec<ArrayRef> = Vec::new();
        for segment in &table.segments {
            for batch in segment.batches.iter() {
                let batch = adapt_batch(batch, &storage)?;
                let keys = batch.column(pk_index);
                match visible_mask(&batch, pk_index, &deletes, u64::MAX) {
                    Some(mask) => parts.push(filter(keys, &mask)?),
                    None => parts.push(keys.clone()),
                }
            }
        }
        if parts.is_empty() {
            return Ok(None);
        }
        let keys = concat(
            &parts
                .iter()
                .map(|a| a.as_ref())
                .collect::<Vec<&dyn Array>>(),
        )?;
        let field = Field::new("key", keys.data_type().clone(), true);
        Ok(Some(RecordBatch::try_new(
            Arc::new(Schema::new(vec![field])),
            vec![keys],
        )?))
    }
}

impl DeleteSubscriber for QueryNode {
    fn apply_deletes(&self, deletes: ApplyDeletes) -> Result<()> {
        let keys = pk_values(deletes.keys.column(0));
        let mut tables = self.tables.write();
        let table = tables.entry(deletes.table_id).or_default();
        let mut map = table.deletes.write();
        for key in keys.into_iter().flatten() {
            map.insert(&key, deletes.ts);
        }
        Ok(())
    }
}

/// A served segment's summary.
fn summary(s: &SealedSegment) -> ServedSegment {
    ServedSegment {
        id: s.id,
        shard: s.shard,
        rows: s.rows,
        first_lsn: s.first_lsn,
        last_lsn: s.last_lsn,
        index_ids: s.indexes.iter().map(|ix| ix.index_id).collect(),
        index_paths: s.indexes.iter().map(|ix| ix.path.clone()).collect(),
    }
}

/// Reads a Parquet object into batches.
pub async fn read_parquet(objects: &ObjectStoreRef, path: &str) -> Result<Vec<RecordBatch>> {
    let bytes: Bytes = get_bytes(objects.as_ref(), path).await?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)?
        .with_batch_size(65_536)
        .build()?;
    let mut batches = Vec::new();
    for batch in reader {
        batches.push(batch?);
    }
    Ok(batches)
}

/// Reads a delete log: (key, timestamp) pairs.
pub async fn read_deltalog(
    objects: &ObjectStoreRef,
    path: &str,
) -> Result<Vec<(quiver_exec::pk::PkValue, u64)>> {
    let mut out = Vec::new();
    for batch in read_parquet(objects, path).await? {
        out.extend(delete_entries(&batch));
    }
    Ok(out)
}

/// The `(key, timestamp)` entries of a delete-log batch (the key column,
/// then `ts`).
pub fn delete_entries(batch: &RecordBatch) -> Vec<(quiver_exec::pk::PkValue, u64)> {
    use arrow::array::AsArray;
    use arrow::datatypes::UInt64Type;
    let keys = pk_values(batch.column(0));
    let ts = batch.column(1).as_primitive::<UInt64Type>();
    keys.into_iter()
        .enumerate()
        .filter_map(|(i, key)| Some((key?, ts.value(i))))
        .collect()
}

#[async_trait]
impl TableReads for QueryNode {
    /// Per shard, the segments it serves (one fragment) under its own
    /// delete map, searched through the indexes the table still defines.
    async fn read_table(&self, request: ReadTable) -> Result<TablePart> {
        let read_ts = request.read_ts.ok_or_else(|| {
            EngineError::Internal("a query node reads at a given timestamp".into())
        })?;
        let definitions: Vec<_> = request
            .indexes
            .iter()
            .filter_map(|ix| Some((ix.id, ix.describe(&request.schema)?)))
            .collect();
        // Covered first: a segment merged between the two reads is then
        // covered and its merged segment read (never the reverse).
        let covered = self.covered(request.table_id);
        let snapshot = self.snapshot(request.table_id, &request.schema, &definitions, read_ts);
        Ok(TablePart {
            read_ts,
            fragments: snapshot_fragments(&snapshot, "", false),
            covered,
        })
    }
}

/// The delete entries at or before `compaction_ts` of every key stored in
/// `group` (each once): all the data node needs to drop the deleted rows.
fn deletes_hitting(
    group: &[Option<Arc<Vec<arrow::array::RecordBatch>>>],
    primary_key: usize,
    deletes: &DeleteMap,
    compaction_ts: u64,
) -> Vec<(PkValue, u64)> {
    let mut hitting = DeleteMap::default();
    if deletes.is_empty() {
        return Vec::new();
    }
    let Some(group) = group.iter().cloned().collect::<Option<Vec<_>>>() else {
        // Rows not at hand: every delete up to the timestamp.
        return deletes
            .entries()
            .into_iter()
            .filter(|(_, ts)| *ts <= compaction_ts)
            .collect();
    };
    for rows in group {
        for batch in rows.iter() {
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
