//! Searches and scans as distributed plans: [`VectorSearchExec`] and
//! [`SegmentScanExec`] scatter their work to the *fragments* of a table —
//! for each shard, the growing segment its streaming node holds and the
//! sealed segments its query node serves — and merge their answers.
//!
//! A scan fragment reads its segments at the read timestamp (MVCC and
//! deletes), skips segments whose statistics rule the pushed-down filter
//! out, applies the filter and the projection, and streams the rows; the
//! scan's partitions take the fragments' parts. A search fragment answers its partial
//! top-k as one Arrow batch (the requested columns, the primary key and the
//! distance, ordered by distance then primary key), computed by the
//! per-segment kernel of [`crate::search`]; the merge keeps the `k` best
//! of all partial lists, ties broken by primary key, exactly as one search
//! over every segment would.
//!
//! A [`TableFragment`] is the seam a transport goes behind: its requests
//! ([`FragmentSearch`], [`FragmentScan`]) and replies ([`FragmentReply`],
//! a stream of Arrow batches) are plain data apart from the filter
//! expression. In one process the fragments are [`SnapshotFragment`]s over
//! parts of one snapshot.
//!
//! [`VectorSearchExec`]: crate::vector_search::VectorSearchExec
//! [`SegmentScanExec`]: crate::table::SegmentScanExec

use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch, RecordBatchOptions};
use arrow::compute::filter_record_batch;
use arrow::compute::SortOptions;
use arrow::compute::{concat_batches, lexsort_to_indices, take_record_batch, SortColumn};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::memory_pool::MemoryPool;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::future::BoxFuture;
use futures::stream;

use crate::memory::reserve;
use crate::pk::pk_values;
use crate::pool::run_search;
use crate::search::{plan_search, search_memory, search_snapshot, SearchStats, VectorQuery};
use crate::source::{adapt_batch, visible_mask, SegmentKind, TableSnapshot};
use crate::stats::segments_to_search;

/// Name of the distance column of a fragment's reply.
pub const FRAGMENT_DISTANCE: &str = "__quiver_fragment_distance";

/// What one fragment is asked: the query at a read timestamp, with the
/// row filter (over the storage schema) and the columns to return (user
/// schema positions; the primary key and the distance are added).
#[derive(Debug, Clone)]
pub struct FragmentSearch {
    pub read_ts: u64,
    pub query: VectorQuery,
    pub filter: Option<Arc<dyn PhysicalExpr>>,
    pub projection: Vec<usize>,
    /// Keys whose stored rows the reader does not see (one column, typed
    /// as the key): a transaction's own writes replace them.
    pub hidden_keys: Option<RecordBatch>,
}

/// A fragment's answer: at most `k` rows, closest first (ties by primary
/// key), with the columns of [`fragment_projection`] and a last `Float64`
/// distance column (NULL for a row without a vector); and what it did.
#[derive(Debug, Clone)]
pub struct FragmentReply {
    pub batch: RecordBatch,
    pub stats: SearchStats,
}

/// What one part of a scan fragment is asked: its visible rows at the
/// read timestamp passing `filter` (over the storage schema; rows may
/// pass that a filter above removes, never the reverse), with the
/// `projection` columns (user schema positions), at most `limit` rows
/// when set. `part` of `parts`: the fragment's segments `i` with
/// `i % parts == part`.
#[derive(Debug, Clone)]
pub struct FragmentScan {
    pub read_ts: u64,
    pub projection: Vec<usize>,
    pub filter: Option<Arc<dyn PhysicalExpr>>,
    pub limit: Option<usize>,
    pub part: usize,
    pub parts: usize,
    /// Keys whose stored rows the reader does not see, as in [`FragmentSearch`].
    pub hidden_keys: Option<RecordBatch>,
}

/// One part of a table a node serves.
pub trait TableFragment: Send + Sync + std::fmt::Debug {
    /// Where it runs and what it holds, e.g. `shard 1 growing`.
    fn label(&self) -> String;
    /// Its segments (a scan splits a fragment into at most this many parts).
    fn segments(&self) -> usize;
    /// Its stored rows (before visibility).
    fn stored_rows(&self) -> usize;
    /// Scans part of the fragment; reservations are taken from the
    /// context's memory pool.
    fn scan(
        &self,
        request: FragmentScan,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream>;
    /// Searches the fragment; reservations are taken from the context's
    /// memory pool.
    fn search(
        &self,
        request: FragmentSearch,
        context: Arc<TaskContext>,
    ) -> BoxFuture<'static, Result<FragmentReply>>;
}

/// The columns a fragment returns for `projection`: the projection, then
/// the primary key if the projection lacks it (the merge breaks ties by it).
pub fn fragment_projection(projection: &[usize], primary_key: usize) -> Vec<usize> {
    let mut columns = projection.to_vec();
    if !columns.contains(&primary_key) {
        columns.push(primary_key);
    }
    columns
}

/// The schema of a fragment's reply: `user_schema` projected, then the distance.
pub fn fragment_schema(user_schema: &Schema, columns: &[usize]) -> Result<SchemaRef> {
    let projected = user_schema.project(columns)?;
    let mut fields: Vec<_> = projected.fields().iter().cloned().collect();
    fields.push(Arc::new(Field::new(
        FRAGMENT_DISTANCE,
        DataType::Float64,
        true,
    )));
    Ok(Arc::new(Schema::new_with_metadata(
        fields,
        projected.metadata().clone(),
    )))
}

/// A fragment in process: some segments of one snapshot.
#[derive(Debug, Clone)]
pub struct SnapshotFragment {
    label: String,
    snapshot: TableSnapshot,
}

impl SnapshotFragment {
    /// A fragment over `snapshot`'s segments, shown as `label`.
    pub fn new(label: String, snapshot: TableSnapshot) -> Self {
        Self { label, snapshot }
    }

    /// Splits `snapshot` the way the nodes hold it: per shard, its sealed
    /// segments (query node) and its growing segment (streaming node), in
    /// shard order; parts without segments are left out.
    pub fn split(snapshot: &TableSnapshot) -> Vec<SnapshotFragment> {
        let mut keys: Vec<(u32, bool)> = snapshot
            .segments
            .iter()
            .map(|s| (s.shard, s.kind == SegmentKind::Growing))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        keys.into_iter()
            .map(|(shard, growing)| {
                let segments = snapshot
                    .segments
                    .iter()
                    .filter(|s| s.shard == shard && (s.kind == SegmentKind::Growing) == growing)
                    .cloned()
                    .collect();
                SnapshotFragment {
                    label: format!(
                        "shard {shard} {}",
                        if growing { "growing" } else { "sealed" }
                    ),
                    snapshot: TableSnapshot {
                        segments,
                        ..snapshot.clone()
                    },
                }
            })
            .collect()
    }
}

impl SnapshotFragment {
    /// The fragment under another label (shown by `EXPLAIN ANALYZE`).
    pub fn labelled(self, label: &str) -> Self {
        Self {
            label: label.to_string(),
            ..self
        }
    }
}

impl TableFragment for SnapshotFragment {
    fn label(&self) -> String {
        self.label.clone()
    }

    fn segments(&self) -> usize {
        self.snapshot.segments.len()
    }

    fn stored_rows(&self) -> usize {
        self.snapshot.stored_rows()
    }

    fn scan(
        &self,
        request: FragmentScan,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let snapshot = hiding(
            &self.snapshot,
            request.hidden_keys.as_ref(),
            request.read_ts,
        )?;
        scan_snapshot(&snapshot, request, context.memory_pool().clone())
    }

    fn search(
        &self,
        request: FragmentSearch,
        context: Arc<TaskContext>,
    ) -> BoxFuture<'static, Result<FragmentReply>> {
        let memory = context.memory_pool().clone();
        let snapshot = match hiding(
            &self.snapshot,
            request.hidden_keys.as_ref(),
            request.read_ts,
        ) {
            Ok(snapshot) => TableSnapshot {
                read_ts: request.read_ts,
                ..snapshot
            },
            Err(e) => return Box::pin(async move { Err(e) }),
        };
        Box::pin(async move {
            let FragmentSearch {
                query,
                filter,
                projection,
                ..
            } = request;
            let columns = fragment_projection(&projection, snapshot.schema.primary_key);
            let schema = fragment_schema(&snapshot.schema.arrow_schema(), &columns)?;
            let plan = plan_search(&snapshot, &query, filter.as_ref());
            // What the search holds (masks, candidates, the result rows) is
            // reserved in one piece before it runs, and checked against the
            // result's real size once it is built.
            let reservation = reserve(&memory, "VectorSearchExec");
            let estimate = search_memory(&snapshot, &plan, &query, &columns, true);
            run_search(plan.placement, move || {
                reservation.try_grow(estimate)?;
                let (batch, stats) = search_snapshot(
                    &snapshot,
                    &plan,
                    &query,
                    filter.as_ref(),
                    &columns,
                    &schema,
                    true,
                )?;
                reservation.try_resize(batch.get_array_memory_size())?;
                Ok(FragmentReply { batch, stats })
            })
            .await
        })
    }
}

/// `snapshot` with the stored rows of `hidden_keys` deleted for its
/// readers: a delete of each key at the read timestamp (a transaction's
/// snapshot timestamp, which no stored row carries) hides every older row.
fn hiding(
    snapshot: &TableSnapshot,
    hidden_keys: Option<&RecordBatch>,
    read_ts: u64,
) -> Result<TableSnapshot> {
    let Some(keys) = hidden_keys else {
        return Ok(snapshot.clone());
    };
    let mut deletes = snapshot.deletes.read().clone();
    for key in pk_values(keys.column(0)).into_iter().flatten() {
        deletes.insert(&key, read_ts);
    }
    Ok(TableSnapshot {
        deletes: Arc::new(parking_lot::RwLock::new(deletes)),
        ..snapshot.clone()
    })
}

/// The rows of `snapshot`'s segments `request` asks for, as a stream.
fn scan_snapshot(
    snapshot: &TableSnapshot,
    request: FragmentScan,
    memory: Arc<dyn MemoryPool>,
) -> Result<SendableRecordBatchStream> {
    let FragmentScan {
        read_ts,
        projection,
        filter,
        limit,
        part,
        parts,
        ..
    } = request;
    let storage_schema = snapshot.schema.storage_schema();
    let out_schema = Arc::new(snapshot.schema.arrow_schema().project(&projection)?);
    let pk_index = snapshot.schema.primary_key;
    let keep = segments_to_search(&snapshot.segments, filter.as_ref(), &storage_schema);
    let batches: Vec<RecordBatch> = snapshot
        .segments
        .iter()
        .enumerate()
        .filter(|(i, _)| i % parts.max(1) == part && keep[*i])
        .flat_map(|(_, segment)| segment.batches.iter().cloned())
        .collect();
    let deletes = snapshot.deletes.clone();
    let mut remaining = limit.unwrap_or(usize::MAX);
    let reservation = reserve(&memory, "SegmentScanExec");
    let schema = out_schema.clone();
    let iter = batches.into_iter().filter_map(move |batch| {
        if remaining == 0 {
            return None;
        }
        let result = (|| -> Result<RecordBatch> {
            // A stored batch is handed on as it is (its memory is the
            // segment's); one reshaped to the current schema or cut to
            // the visible rows is a copy, reserved (at most the stored
            // batch's size) while it is built.
            if batch.schema_ref() != &storage_schema {
                reservation.try_resize(batch.get_array_memory_size())?;
            }
            let mut batch = adapt_batch(&batch, &storage_schema)?;
            let mask = {
                let deletes = deletes.read();
                visible_mask(&batch, pk_index, &deletes, read_ts)
            };
            if let Some(mask) = mask {
                reservation.try_grow(batch.get_array_memory_size())?;
                batch = filter_record_batch(&batch, &mask)?;
            }
            if let Some(filter) = &filter {
                let passes = filter.evaluate(&batch)?.into_array(batch.num_rows())?;
                let passes = passes.as_boolean_opt().ok_or_else(|| {
                    DataFusionError::Internal("a scan filter is not a predicate".into())
                })?;
                let kept = passes.true_count();
                if kept < batch.num_rows() {
                    // The copy holds the kept rows' share of the batch.
                    let share = batch.get_array_memory_size() / batch.num_rows().max(1);
                    reservation.try_grow(share.saturating_mul(kept))?;
                    // NULL counts as false.
                    batch = filter_record_batch(&batch, passes)?;
                }
            }
            reservation.free();
            let rows = batch.num_rows();
            let batch = batch.project(&projection)?;
            Ok(RecordBatch::try_new_with_options(
                schema.clone(),
                batch.columns().to_vec(),
                &RecordBatchOptions::new().with_row_count(Some(rows)),
            )?)
        })();
        match result {
            Ok(batch) => {
                remaining = remaining.saturating_sub(batch.num_rows());
                Some(Ok(batch))
            }
            Err(e) => Some(Err(e)),
        }
    });
    Ok(Box::pin(RecordBatchStreamAdapter::new(
        out_schema,
        stream::iter(iter),
    )))
}

/// Merges the fragments' replies into the `k` closest rows (ties by
/// primary key, rows without a vector last), with the columns of
/// `out_schema`: the projection, then the distance when `distance_column`.
/// `pk_at` is the primary key's position in a reply.
pub fn merge_replies(
    replies: &[RecordBatch],
    k: usize,
    pk_at: usize,
    projected: usize,
    out_schema: &SchemaRef,
    distance_column: bool,
) -> Result<RecordBatch> {
    let best = match replies {
        [] => return Ok(RecordBatch::new_empty(out_schema.clone())),
        // One reply is already the answer: at most k rows, in order.
        [only] if only.num_rows() <= k => only.clone(),
        [first, ..] => {
            let all = concat_batches(first.schema_ref(), replies)?;
            let ascending = SortOptions {
                descending: false,
                nulls_first: false,
            };
            let keys = [
                SortColumn {
                    values: all.column(all.num_columns() - 1).clone(),
                    options: Some(ascending),
                },
                SortColumn {
                    values: all.column(pk_at).clone(),
                    options: Some(ascending),
                },
            ];
            let order = lexsort_to_indices(&keys, Some(k.min(all.num_rows())))?;
            take_record_batch(&all, &order)?
        }
    };
    let distance_at = best.num_columns() - 1;
    let mut columns: Vec<_> = best.columns()[..projected].to_vec();
    if distance_column {
        columns.push(best.column(distance_at).clone());
    }
    Ok(RecordBatch::try_new_with_options(
        out_schema.clone(),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(best.num_rows())),
    )?)
}
