//! Vector searches as distributed plans: [`VectorSearchExec`] scatters its
//! query to the *fragments* of a table — for each shard, the growing
//! segment its streaming node holds and the sealed segments its query node
//! serves — and merges their answers. Each fragment answers its partial
//! top-k as one Arrow batch (the requested columns, the primary key and the
//! distance, ordered by distance then primary key), computed by the
//! per-segment kernel of [`crate::search`]; the merge keeps the `k` best
//! of all partial lists, ties broken by primary key, exactly as one search
//! over every segment would.
//!
//! A [`SearchFragment`] is the seam a transport goes behind: its request
//! ([`FragmentSearch`]) and reply ([`FragmentReply`]) are plain data apart
//! from the filter expression. In one process the fragments are
//! [`SnapshotFragment`]s over parts of one snapshot.
//!
//! [`VectorSearchExec`]: crate::vector_search::VectorSearchExec

use std::sync::Arc;

use arrow::array::{RecordBatch, RecordBatchOptions};
use arrow::compute::SortOptions;
use arrow::compute::{concat_batches, lexsort_to_indices, take_record_batch, SortColumn};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::Result;
use datafusion::execution::memory_pool::MemoryPool;
use datafusion::physical_expr::PhysicalExpr;
use futures::future::BoxFuture;

use crate::memory::reserve;
use crate::pool::run_search;
use crate::search::{plan_search, search_memory, search_snapshot, SearchStats, VectorQuery};
use crate::source::{SegmentKind, TableSnapshot};

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
}

/// A fragment's answer: at most `k` rows, closest first (ties by primary
/// key), with the columns of [`fragment_projection`] and a last `Float64`
/// distance column (NULL for a row without a vector); and what it did.
#[derive(Debug, Clone)]
pub struct FragmentReply {
    pub batch: RecordBatch,
    pub stats: SearchStats,
}

/// One part of a table a node searches.
pub trait SearchFragment: Send + Sync + std::fmt::Debug {
    /// Where it runs and what it holds, e.g. `shard 1 growing`.
    fn label(&self) -> String;
    /// Searches the fragment; reservations are taken from `memory`.
    fn search(
        &self,
        request: FragmentSearch,
        memory: Arc<dyn MemoryPool>,
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

impl SearchFragment for SnapshotFragment {
    fn label(&self) -> String {
        self.label.clone()
    }

    fn search(
        &self,
        request: FragmentSearch,
        memory: Arc<dyn MemoryPool>,
    ) -> BoxFuture<'static, Result<FragmentReply>> {
        let snapshot = TableSnapshot {
            read_ts: request.read_ts,
            ..self.snapshot.clone()
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
    let Some(first) = replies.first() else {
        return Ok(RecordBatch::new_empty(out_schema.clone()));
    };
    let all = concat_batches(first.schema_ref(), replies)?;
    let distance_at = all.num_columns() - 1;
    let ascending = SortOptions {
        descending: false,
        nulls_first: false,
    };
    let keys = [
        SortColumn {
            values: all.column(distance_at).clone(),
            options: Some(ascending),
        },
        SortColumn {
            values: all.column(pk_at).clone(),
            options: Some(ascending),
        },
    ];
    let order = lexsort_to_indices(&keys, Some(k.min(all.num_rows())))?;
    let best = take_record_batch(&all, &order)?;
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
