//! The runtime state of one table on its streaming node, in the node's own
//! registry: its copy of the table's definition, its channel checkpoints,
//! the growing segment of each shard, the sealed segments not yet flushed
//! (a flushed one moves to the query node, [`crate::query_node`]), deletes
//! and live primary keys; and its snapshot of these (the query node's
//! segments are read from the query node, see [`crate::table_view`]).
//! Every delete it applies goes to the query node too
//! ([`DeleteSubscriber`]), which keeps a delete map of its own.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, UInt64Array};
use arrow::compute::concat_batches;
use arrow::datatypes::SchemaRef;
use datafusion::common::Statistics;
use parking_lot::{Mutex, RwLock};
use quiver_common::schema::{TableSchema, TS_COLUMN};
use quiver_exec::deletes::DeleteMap;
use quiver_exec::pk::{pk_values, PkValue};
use quiver_exec::source::{
    adapt_batch, visible_mask, IndexDescription, Segment, SegmentIndex, SegmentKind, TableSnapshot,
};

use crate::api::query::{ApplyDeletes, DeleteSubscriber};
use crate::api::streaming::{ShardCheckpoints, StreamingTable};
use crate::coordinator::{IdAllocator, TimestampSource};
use crate::error::Result;
use crate::indexes::LoadedIndex;
use crate::shards::split_by_shard;

/// A sealed segment held in memory.
#[derive(Debug, Clone)]
pub struct SealedSegment {
    pub id: u64,
    /// The shard whose rows it holds.
    pub shard: u32,
    pub batches: Arc<Vec<RecordBatch>>,
    pub rows: usize,
    pub first_lsn: u64,
    pub last_lsn: u64,
    /// Vector indexes built over this segment.
    pub indexes: Vec<LoadedIndex>,
    /// Column statistics (known once flushed).
    pub stats: Option<Arc<Statistics>>,
}

impl SealedSegment {
    /// The segment as execution reads it: its indexes that `definitions`
    /// (by index id) still define.
    pub fn as_segment(&self, definitions: &[(u64, IndexDescription)]) -> Segment {
        Segment {
            id: self.id,
            shard: self.shard,
            kind: SegmentKind::Sealed,
            rows: self.rows,
            indexes: self
                .indexes
                .iter()
                .filter_map(|loaded| {
                    let (_, d) = definitions.iter().find(|(id, _)| *id == loaded.index_id)?;
                    Some(SegmentIndex {
                        name: d.name.clone(),
                        column: d.column,
                        metric: d.metric,
                        index: loaded.index.clone(),
                    })
                })
                .collect(),
            batches: self.batches.clone(),
            stats: self.stats.clone(),
        }
    }
}

/// A shard's growing segment.
#[derive(Debug, Default)]
pub struct GrowingSegment {
    pub id: u64,
    pub shard: u32,
    pub batches: Vec<RecordBatch>,
    /// Batches at the end that are small and will be merged.
    small_tail: usize,
    pub rows: usize,
    pub bytes: usize,
    pub first_lsn: Option<u64>,
    pub last_lsn: u64,
}

/// Mutable data of a table.
#[derive(Debug, Default)]
pub struct TableData {
    /// One growing segment per shard, by shard number.
    pub growing: Vec<GrowingSegment>,
    /// Sealed segments not yet handed to the query node, in seal order.
    pub sealed: Vec<SealedSegment>,
    /// Deletes not yet in a delete log: (lsn, key, ts).
    pub pending_deletes: Vec<(u64, PkValue, u64)>,
    /// Keys with a visible row now (for primary-key uniqueness).
    pub live: HashSet<PkValue>,
}

/// Limits that decide when a growing segment seals.
#[derive(Debug, Clone, Copy)]
pub struct SealPolicy {
    pub rows: usize,
    pub bytes: usize,
}

/// One table at run time on its streaming node.
#[derive(Debug)]
pub struct TableRuntime {
    /// The node's copy of the table's definition (the coordinator sends
    /// changes, applied between two writes).
    pub definition: RwLock<StreamingTable>,
    /// The node's checkpoints of the table (persisted with each flush).
    pub checkpoints: RwLock<ShardCheckpoints>,
    pub data: RwLock<TableData>,
    pub deletes: Arc<RwLock<DeleteMap>>,
    /// Serializes writers of this table (validation, timestamp, WAL, apply).
    pub write_lock: Mutex<()>,
    /// Serializes this table's flushes (their records written, then the
    /// in-memory state) with its close: true once closed (dropped), after
    /// which a flush finishing late records nothing.
    pub flushing: tokio::sync::Mutex<bool>,
    /// The table's auto-id allocator (the node's own key).
    pub autoid: IdAllocator,
    tso: Arc<dyn TimestampSource>,
    seal: SealPolicy,
    /// Where every applied delete goes as well (the query node).
    delete_subscriber: Option<Arc<dyn DeleteSubscriber>>,
}

const SMALL_BATCH_ROWS: usize = 1024;
const MAX_SMALL_TAIL: usize = 32;

impl TableRuntime {
    /// A table with no data yet.
    pub fn new(
        definition: StreamingTable,
        mut checkpoints: ShardCheckpoints,
        tso: Arc<dyn TimestampSource>,
        autoid: IdAllocator,
        seal: SealPolicy,
    ) -> Self {
        let growing: Vec<GrowingSegment> = (0..definition.shards.max(1))
            .map(|shard| GrowingSegment {
                id: checkpoints.allocate_segment_id(),
                shard,
                ..Default::default()
            })
            .collect();
        let runtime = Self {
            definition: RwLock::new(definition),
            checkpoints: RwLock::new(checkpoints),
            data: RwLock::new(TableData::default()),
            deletes: Arc::new(RwLock::new(DeleteMap::default())),
            write_lock: Mutex::new(()),
            flushing: tokio::sync::Mutex::new(false),
            autoid,
            tso,
            seal,
            delete_subscriber: None,
        };
        runtime.data.write().growing = growing;
        runtime
    }

    /// Sends every delete it applies to `subscriber` as well.
    pub fn with_delete_subscriber(mut self, subscriber: Arc<dyn DeleteSubscriber>) -> Self {
        self.delete_subscriber = Some(subscriber);
        self
    }

    /// The table id.
    pub fn id(&self) -> u64 {
        self.definition.read().id
    }

    /// The current schema.
    pub fn schema(&self) -> TableSchema {
        self.definition.read().schema.clone()
    }

    /// The table's name (for errors).
    pub fn name(&self) -> String {
        self.definition.read().name.clone()
    }

    /// Applies a logged write: deletes of the `deletes` keys (one column,
    /// the WAL record's batch, sent on to the query node as it is), then `inserts`, at
    /// `ts`, each inserted row to its shard's growing segment — for the
    /// shards `apply_inserts` accepts (a replay skips the shards whose rows
    /// of this record are already in flushed segments). Returns true when a
    /// growing segment sealed.
    pub fn apply(
        &self,
        lsn: u64,
        ts: u64,
        deletes: Option<&RecordBatch>,
        inserts: Option<&RecordBatch>,
        track_pending_deletes: bool,
        apply_inserts: &dyn Fn(u32) -> bool,
    ) -> Result<bool> {
        let (table_id, storage_schema, pk_index, shards) = {
            let definition = self.definition.read();
            (
                definition.id,
                definition.schema.storage_schema(),
                definition.schema.primary_key,
                definition.shards.max(1),
            )
        };
        let mut data = self.data.write();
        if let Some(keys) = deletes.filter(|k| k.num_rows() > 0) {
            let mut map = self.deletes.write();
            for pk in pk_values(keys.column(0)).into_iter().flatten() {
                map.insert(&pk, ts);
                data.live.remove(&pk);
                if track_pending_deletes {
                    data.pending_deletes.push((lsn, pk, ts));
                }
            }
            drop(map);
            // Under the data lock, so the query node has the delete before
            // a reader of this table's state could miss it.
            if let Some(subscriber) = &self.delete_subscriber {
                subscriber.apply_deletes(ApplyDeletes {
                    table_id,
                    ts,
                    keys: keys.clone(),
                })?;
            }
        }
        let Some(batch) = inserts else {
            return Ok(false);
        };
        if batch.num_rows() == 0 {
            return Ok(false);
        }
        let mut sealed = false;
        for (shard, part) in split_by_shard(batch, pk_index, shards)? {
            if !apply_inserts(shard) {
                continue;
            }
            for pk in pk_values(part.column(pk_index)).into_iter().flatten() {
                data.live.insert(pk);
            }
            let part = adapt_batch(&part, &storage_schema)?;
            let growing = &mut data.growing[shard as usize];
            growing.rows += part.num_rows();
            growing.bytes += part.get_array_memory_size();
            growing.first_lsn.get_or_insert(lsn);
            growing.last_lsn = lsn;
            let small = part.num_rows() < SMALL_BATCH_ROWS;
            growing.batches.push(part);
            if small {
                growing.small_tail += 1;
                if growing.small_tail > MAX_SMALL_TAIL {
                    merge_tail(growing, &storage_schema)?;
                }
            } else {
                growing.small_tail = 0;
            }
            if growing.rows >= self.seal.rows || growing.bytes >= self.seal.bytes {
                self.seal_growing(&mut data, shard);
                sealed = true;
            }
        }
        Ok(sealed)
    }

    /// Seals the growing segment of every shard that has rows; true if any.
    pub fn seal_now(&self) -> bool {
        let mut data = self.data.write();
        let mut sealed = false;
        for shard in 0..data.growing.len() {
            if data.growing[shard].rows > 0 {
                self.seal_growing(&mut data, shard as u32);
                sealed = true;
            }
        }
        sealed
    }

    fn seal_growing(&self, data: &mut TableData, shard: u32) {
        let next_id = self.checkpoints.write().allocate_segment_id();
        let growing = std::mem::replace(
            &mut data.growing[shard as usize],
            GrowingSegment {
                id: next_id,
                shard,
                ..Default::default()
            },
        );
        data.sealed.push(SealedSegment {
            id: growing.id,
            shard,
            batches: Arc::new(growing.batches),
            rows: growing.rows,
            first_lsn: growing.first_lsn.unwrap_or(growing.last_lsn),
            last_lsn: growing.last_lsn,
            indexes: Vec::new(),
            stats: None,
        });
    }

    /// Rows in the growing segments of every shard.
    pub fn growing_rows(&self) -> usize {
        self.data.read().growing.iter().map(|g| g.rows).sum()
    }

    /// Rebuilds the live key set from every stored row (after recovery):
    /// its own segments' and the keys visible in the query node's
    /// (`served_keys`, one column).
    pub fn rebuild_live_keys(&self, served_keys: Option<&RecordBatch>) -> Result<()> {
        let snapshot = self.own_snapshot(Some(u64::MAX));
        let storage = snapshot.schema.storage_schema();
        let pk_index = snapshot.schema.primary_key;
        let deletes = snapshot.deletes.read();
        let mut live: HashSet<PkValue> = served_keys
            .map(|keys| pk_values(keys.column(0)).into_iter().flatten().collect())
            .unwrap_or_default();
        for segment in &snapshot.segments {
            for batch in segment.batches.iter() {
                let batch = adapt_batch(batch, &storage)?;
                let mask = visible_mask(&batch, pk_index, &deletes, u64::MAX);
                for (i, pk) in pk_values(batch.column(pk_index)).into_iter().enumerate() {
                    let visible = mask.as_ref().is_none_or(|m| m.value(i));
                    if let (true, Some(pk)) = (visible, pk) {
                        live.insert(pk);
                    }
                }
            }
        }
        drop(deletes);
        self.data.write().live = live;
        Ok(())
    }

    /// The first LSN this table still needs from the WAL, if any.
    pub fn first_unpersisted_lsn(&self) -> Option<u64> {
        let data = self.data.read();
        let mut min = data.growing.iter().filter_map(|g| g.first_lsn).min();
        for s in &data.sealed {
            min = Some(min.map_or(s.first_lsn, |m: u64| m.min(s.first_lsn)));
        }
        if let Some((lsn, _, _)) = data.pending_deletes.first() {
            min = Some(min.map_or(*lsn, |m| m.min(*lsn)));
        }
        min
    }
}

fn merge_tail(growing: &mut GrowingSegment, schema: &SchemaRef) -> Result<()> {
    let start = growing.batches.len() - growing.small_tail;
    let tail: Vec<RecordBatch> = growing.batches.drain(start..).collect();
    let merged = concat_batches(schema, &tail)?;
    let small = merged.num_rows() < SMALL_BATCH_ROWS;
    growing.batches.push(merged);
    growing.small_tail = if small { 1 } else { 0 };
    Ok(())
}

/// Appends the timestamp column to a batch in the user schema.
pub fn with_timestamp(batch: &RecordBatch, storage: &SchemaRef, ts: u64) -> Result<RecordBatch> {
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    columns.push(Arc::new(UInt64Array::from(vec![ts; batch.num_rows()])));
    debug_assert_eq!(storage.field(storage.fields().len() - 1).name(), TS_COLUMN);
    Ok(RecordBatch::try_new(storage.clone(), columns)?)
}

impl TableRuntime {
    /// The streaming node's part of the table at `read_ts` (the TSO's read
    /// timestamp when `None`): its sealed segments not yet flushed, then the
    /// growing segments, with its delete map.
    pub fn own_snapshot(&self, read_ts: Option<u64>) -> TableSnapshot {
        let read_ts = match read_ts {
            Some(ts) => ts,
            None => self.tso.read_timestamp(),
        };
        // Lock order everywhere: data, then definition.
        let data = self.data.read();
        let definition = self.definition.read();
        // Segments on the streaming node have no indexes (the query node
        // loads them with a flushed segment).
        let mut segments: Vec<Segment> = data.sealed.iter().map(|s| s.as_segment(&[])).collect();
        for growing in data.growing.iter().filter(|g| g.rows > 0) {
            segments.push(Segment {
                id: growing.id,
                shard: growing.shard,
                kind: SegmentKind::Growing,
                batches: Arc::new(growing.batches.clone()),
                rows: growing.rows,
                indexes: Vec::new(),
                stats: None,
            });
        }
        TableSnapshot {
            table_id: definition.id,
            schema: definition.schema.clone(),
            segments,
            deletes: self.deletes.clone(),
            read_ts,
        }
    }
}
