//! Per-segment k-nearest-neighbour search and the merge of the segments'
//! results.
//!
//! For each segment of a snapshot:
//! 1. segments whose min/max statistics rule the filter out are skipped;
//! 2. the rows a query may return become a per-segment mask: visible at the
//!    read timestamp (MVCC and deletes), passing the filter;
//! 3. if the segment has an index on the searched column with the query's
//!    metric, the allowed rows become a [`RowBitmap`] and the search picks,
//!    by the allowed count, between an exact scan of the allowed rows and an
//!    index search that honours the bitmap (the index returns `k` rows
//!    whenever `k` rows are allowed);
//! 4. candidates found through an index get their exact distance, so every
//!    segment ranks by the same numbers (and a quantized index is re-ranked).
//!
//! [`plan_search`] estimates the work first: a small search (at most one
//! index search, little exact work) runs on the calling thread; a larger one
//! searches its segments in parallel on the [`crate::pool`]. The segments'
//! top-k lists merge into one, ties broken by primary key.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, FixedSizeListArray, RecordBatch, RecordBatchOptions,
};
use arrow::compute::{and, interleave};
use arrow::datatypes::{Float32Type, SchemaRef};
use datafusion::common::{DataFusionError, Result};
use datafusion::physical_expr::PhysicalExpr;
use quiver_index::topk::{Scored, TopK};
use quiver_index::{Metric, RowBitmap, RowFilter, SearchParams};
use rayon::prelude::*;

use crate::deletes::DeleteMap;
use crate::pk::{pk_ref, PkRef, PkValue};
use crate::pool::{search_pool, Placement};
use crate::source::{adapt_batch, visible_mask, Segment, SegmentIndex, TableSnapshot};
use crate::stats::segments_to_search;

/// What to search for.
#[derive(Debug, Clone)]
pub struct VectorQuery {
    /// Index of the vector column in the table's user schema.
    pub column: usize,
    /// The query vector.
    pub vector: Vec<f32>,
    pub metric: Metric,
    /// Number of results (LIMIT + OFFSET).
    pub k: usize,
    /// Index knobs (`hnsw.ef_search`, `ivfflat.probes`).
    pub params: SearchParams,
    /// Quantized indexes return `k * rerank` candidates, re-ranked exactly.
    pub rerank: usize,
}

/// Default HNSW candidate list when the session sets none.
const DEFAULT_EF: usize = 40;
/// Estimated distance computations of an index search per unit of `ef`,
/// divided by the allowed fraction. A filtered segment is scanned exactly
/// when that scan costs less.
const INDEX_COST_PER_EF: f64 = 30.0;
/// Upper bound of the widened candidate list of a filtered index search.
const MAX_FILTERED_EF: usize = 4096;

/// Exact work (vector elements compared, plus mask passes) small enough to
/// run on the calling thread: about a millisecond.
const INLINE_MAX_WORK: usize = 1 << 22;
/// Work per row of a mask pass (visibility at the read timestamp, filter).
const MASK_WORK_PER_ROW: usize = 16;

/// How a search runs: the segments it searches (the others are pruned by
/// their statistics) and where (see [`crate::pool`]).
#[derive(Debug, Clone)]
pub struct SearchPlan {
    storage_schema: SchemaRef,
    keep: Vec<bool>,
    pub placement: Placement,
}

/// Prunes the segments of `snapshot` the filter cannot match and estimates
/// the rest's work: at most one index search and at most
/// [`INLINE_MAX_WORK`] of exact scans and mask passes run inline, anything
/// more on the pool, one worker per searched segment.
pub fn plan_search(
    snapshot: &TableSnapshot,
    query: &VectorQuery,
    filter: Option<&Arc<dyn PhysicalExpr>>,
) -> SearchPlan {
    let storage_schema = snapshot.schema.storage_schema();
    let keep = segments_to_search(&snapshot.segments, filter, &storage_schema);
    let no_deletes = snapshot.deletes.read().is_empty();
    let (mut searched, mut indexed, mut work) = (0usize, 0usize, 0usize);
    for (segment, _) in snapshot.segments.iter().zip(&keep).filter(|(_, k)| **k) {
        searched += 1;
        if usable_index(segment, query).is_some() {
            indexed += 1;
        } else {
            work = work.saturating_add(segment.rows.saturating_mul(query.vector.len()));
        }
        let all_visible = no_deletes
            && segment
                .max_timestamp()
                .is_some_and(|ts| ts <= snapshot.read_ts);
        if filter.is_some() || !all_visible {
            work = work.saturating_add(segment.rows.saturating_mul(MASK_WORK_PER_ROW));
        }
    }
    let placement = if indexed <= 1 && work <= INLINE_MAX_WORK {
        Placement::Inline
    } else {
        Placement::Pool { workers: searched }
    };
    SearchPlan {
        storage_schema,
        keep,
        placement,
    }
}

/// Bytes a candidate of a top-k list takes (its key, position and distance,
/// and a short string key's text).
const CANDIDATE_BYTES: usize = std::mem::size_of::<Scored<CandidateKey>>() + 32;

/// What a search holds at its peak, estimated before it runs: per searched
/// segment its row masks and bitmap, its index candidates and top-k list;
/// then the merged top-k and the result rows (`k` rows of the projected
/// columns, variable-width columns at their stored average).
pub fn search_memory(
    snapshot: &TableSnapshot,
    plan: &SearchPlan,
    query: &VectorQuery,
    projection: &[usize],
    distance_column: bool,
) -> usize {
    let mut rows = 0usize;
    let mut bytes = 0usize;
    let per_segment_candidates = query
        .k
        .saturating_mul(query.rerank.max(1))
        .saturating_mul(CANDIDATE_BYTES);
    for (segment, _) in snapshot
        .segments
        .iter()
        .zip(&plan.keep)
        .filter(|(_, k)| **k)
    {
        rows = rows.saturating_add(segment.rows);
        // Visibility mask, filter result and the index's row bitmap.
        bytes = bytes
            .saturating_add(segment.rows.div_ceil(8).saturating_mul(3))
            .saturating_add(per_segment_candidates);
    }
    let k = query.k.min(rows);
    let row_bytes = result_row_bytes(snapshot, &plan.storage_schema, projection, distance_column);
    bytes
        .saturating_add(k.saturating_mul(CANDIDATE_BYTES))
        .saturating_add(k.saturating_mul(row_bytes))
}

/// Bytes of one result row: fixed-width columns by their width, the others
/// by their average over the snapshot's stored batches.
fn result_row_bytes(
    snapshot: &TableSnapshot,
    storage_schema: &SchemaRef,
    projection: &[usize],
    distance_column: bool,
) -> usize {
    let mut bytes = if distance_column { 8 } else { 0 };
    for &col in projection {
        let Some(field) = storage_schema.fields().get(col) else {
            continue;
        };
        let fixed = match field.data_type() {
            arrow::datatypes::DataType::FixedSizeList(item, n) => item
                .data_type()
                .primitive_width()
                .map(|w| w.saturating_mul((*n).max(0) as usize)),
            other => other.primitive_width(),
        };
        bytes += match fixed {
            Some(width) => width,
            None => {
                // Sampled from each segment's first batch: the estimate is
                // taken on every search, so it must not walk the table.
                let (mut total, mut rows) = (0usize, 0usize);
                for segment in &snapshot.segments {
                    for batch in segment.batches.iter().take(1) {
                        if let Some(array) = batch.column_by_name(field.name()) {
                            total = total.saturating_add(array.get_buffer_memory_size());
                            rows += batch.num_rows();
                        }
                    }
                }
                total.checked_div(rows).unwrap_or(0) + 1
            }
        };
    }
    bytes
}

/// The segment's index that can answer `query`: on its column, with its
/// metric and dimension, covering every row.
fn usable_index<'s>(segment: &'s Segment, query: &VectorQuery) -> Option<&'s SegmentIndex> {
    segment.indexes.iter().find(|ix| {
        ix.column == query.column
            && ix.metric == query.metric
            && ix.index.len() == segment.rows
            && ix.index.dim() == query.vector.len()
    })
}

/// What a search did, reported as `EXPLAIN ANALYZE` metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SearchStats {
    /// Rows whose distance was computed (exact scans and index candidates).
    pub rows_scanned: usize,
    pub segments_searched: usize,
    /// Segments skipped by min/max statistics.
    pub segments_pruned: usize,
    /// Segments answered by an index.
    pub index_searches: usize,
    /// Segments answered by an exact scan.
    pub exact_scans: usize,
}

impl SearchStats {
    fn add(&mut self, other: &SearchStats) {
        self.rows_scanned += other.rows_scanned;
        self.segments_searched += other.segments_searched;
        self.segments_pruned += other.segments_pruned;
        self.index_searches += other.index_searches;
        self.exact_scans += other.exact_scans;
    }
}

/// Candidate identity: primary key, then (segment, batch, row).
type CandidateKey = (PkValue, usize, usize, usize);

/// One segment's answer: its batches (storage schema) and local top-k.
struct SegmentResult {
    batches: Vec<RecordBatch>,
    top: Vec<Scored<CandidateKey>>,
    stats: SearchStats,
}

impl SegmentResult {
    fn pruned() -> Self {
        Self {
            batches: Vec::new(),
            top: Vec::new(),
            stats: SearchStats {
                segments_pruned: 1,
                ..Default::default()
            },
        }
    }
}

/// What every segment search shares.
struct SearchContext<'a> {
    storage_schema: SchemaRef,
    pk_index: usize,
    deletes: &'a DeleteMap,
    read_ts: u64,
    query: &'a VectorQuery,
    filter: Option<&'a Arc<dyn PhysicalExpr>>,
}

fn to_owned_pk(pk: Option<PkRef<'_>>) -> PkValue {
    match pk {
        Some(PkRef::Int(v)) => PkValue::Int(v),
        Some(PkRef::Str(s)) => PkValue::Str(s.to_string()),
        None => PkValue::Int(i64::MAX),
    }
}

/// Searches the segments `plan` keeps of `snapshot` (in parallel when the
/// plan put the search on the pool); returns the projected result rows,
/// closest first, and what it did.
pub fn search_snapshot(
    snapshot: &TableSnapshot,
    plan: &SearchPlan,
    query: &VectorQuery,
    filter: Option<&Arc<dyn PhysicalExpr>>,
    projection: &[usize],
    out_schema: &SchemaRef,
    distance_column: bool,
) -> Result<(RecordBatch, SearchStats)> {
    let deletes = snapshot.deletes.read();
    let ctx = SearchContext {
        storage_schema: plan.storage_schema.clone(),
        pk_index: snapshot.schema.primary_key,
        deletes: &deletes,
        read_ts: snapshot.read_ts,
        query,
        filter,
    };
    let search = |(i, segment): (usize, &Segment)| {
        if plan.keep.get(i).copied().unwrap_or(true) {
            search_segment(&ctx, i, segment)
        } else {
            Ok(SegmentResult::pruned())
        }
    };
    let results: Vec<Result<SegmentResult>> = match plan.placement {
        Placement::Pool { workers } if workers > 1 => search_pool().install(|| {
            snapshot
                .segments
                .par_iter()
                .enumerate()
                .map(search)
                .collect()
        }),
        _ => snapshot.segments.iter().enumerate().map(search).collect(),
    };
    drop(deletes);
    let mut stats = SearchStats::default();
    let mut top: TopK<CandidateKey> = TopK::new(query.k);
    let mut segment_batches: Vec<Vec<RecordBatch>> = Vec::with_capacity(results.len());
    for result in results {
        let result = result?;
        stats.add(&result.stats);
        for candidate in result.top {
            top.push(candidate.distance, candidate.key);
        }
        segment_batches.push(result.batches);
    }
    let picks = top.into_sorted();
    // Materialize from the batches the picks point at.
    let mut used: HashMap<(usize, usize), usize> = HashMap::new();
    let mut arrays_of: Vec<&RecordBatch> = Vec::new();
    let positions: Vec<(usize, usize)> = picks
        .iter()
        .map(|s| {
            let (_, seg, batch, row) = &s.key;
            let slot = *used.entry((*seg, *batch)).or_insert_with(|| {
                arrays_of.push(&segment_batches[*seg][*batch]);
                arrays_of.len() - 1
            });
            (slot, *row)
        })
        .collect();
    let mut columns = projection
        .iter()
        .enumerate()
        .map(|(out, &col)| {
            if positions.is_empty() {
                return Ok(arrow::array::new_empty_array(
                    out_schema.field(out).data_type(),
                ));
            }
            let arrays: Vec<&dyn Array> =
                arrays_of.iter().map(|b| b.column(col).as_ref()).collect();
            interleave(&arrays, &positions)
        })
        .collect::<Result<Vec<ArrayRef>, _>>()?;
    if distance_column {
        // A row without a vector ranks last (infinitely far) and has no
        // distance, as the distance functions answer NULL for it.
        columns.push(Arc::new(arrow::array::Float64Array::from_iter(
            picks.iter().zip(&positions).map(|(s, &(slot, row))| {
                let vector_is_null = arrays_of[slot].column(query.column).is_null(row);
                (!vector_is_null).then_some(s.distance)
            }),
        )));
    }
    let batch = RecordBatch::try_new_with_options(
        out_schema.clone(),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(positions.len())),
    )?;
    Ok((batch, stats))
}

/// The vector column of a batch, checked against the query's dimension.
fn vector_column<'b>(
    batch: &'b RecordBatch,
    query: &VectorQuery,
) -> Result<&'b FixedSizeListArray> {
    let list = batch
        .column(query.column)
        .as_fixed_size_list_opt()
        .ok_or_else(|| DataFusionError::Plan("vector search column is not a vector".into()))?;
    if list.value_length() as usize != query.vector.len() {
        return Err(DataFusionError::Execution(format!(
            "different vector dimensions {} and {}",
            list.value_length(),
            query.vector.len()
        )));
    }
    Ok(list)
}

/// Exact distance of row `row` of `list` to the query (NULL sorts last).
fn row_distance(list: &FixedSizeListArray, row: usize, query: &VectorQuery) -> f64 {
    if list.is_null(row) {
        return f64::INFINITY;
    }
    let dim = query.vector.len();
    let values = list.values().as_primitive::<Float32Type>().values();
    let offset = list.value_offset(row) as usize;
    // + 0.0 turns -0.0 into 0.0, so distances that tie rank by primary
    // key, as a sort of the output's distance column would order them.
    query
        .metric
        .distance(&values[offset..offset + dim], &query.vector)
        + 0.0
}

fn search_segment(
    ctx: &SearchContext<'_>,
    segment_no: usize,
    segment: &Segment,
) -> Result<SegmentResult> {
    let batches = segment
        .batches
        .iter()
        .map(|b| adapt_batch(b, &ctx.storage_schema))
        .collect::<Result<Vec<_>, _>>()?;
    // Statistics prove every row visible when no delete exists and the
    // newest row is not newer than the read timestamp: skip the row pass.
    let all_visible =
        ctx.deletes.is_empty() && segment.max_timestamp().is_some_and(|ts| ts <= ctx.read_ts);
    let mut masks: Vec<Option<BooleanArray>> = Vec::with_capacity(batches.len());
    for batch in &batches {
        let mut mask = if all_visible {
            None
        } else {
            visible_mask(batch, ctx.pk_index, ctx.deletes, ctx.read_ts)
        };
        if let Some(filter) = ctx.filter {
            let value = filter.evaluate(batch)?.into_array(batch.num_rows())?;
            let passed = value.as_boolean_opt().cloned().ok_or_else(|| {
                DataFusionError::Plan("vector search filter is not boolean".into())
            })?;
            mask = Some(match mask {
                Some(m) => and(&m, &passed)?,
                None => passed,
            });
        }
        masks.push(mask);
    }
    let lists = batches
        .iter()
        .map(|b| vector_column(b, ctx.query))
        .collect::<Result<Vec<_>>>()?;
    let found = match usable_index(segment, ctx.query) {
        Some(ix) => index_search(ctx, segment_no, segment.rows, &masks, &lists, &batches, ix),
        None => None,
    };
    let (top, stats) = match found {
        Some(found) => found,
        None => exact_scan(ctx, segment_no, &masks, &lists, &batches),
    };
    Ok(SegmentResult {
        batches,
        top,
        stats,
    })
}

fn allowed(mask: &Option<BooleanArray>, row: usize) -> bool {
    mask.as_ref()
        .is_none_or(|m| m.is_valid(row) && m.value(row))
}

/// Exact scan of the allowed rows of a segment.
fn exact_scan(
    ctx: &SearchContext<'_>,
    segment_no: usize,
    masks: &[Option<BooleanArray>],
    lists: &[&FixedSizeListArray],
    batches: &[RecordBatch],
) -> (Vec<Scored<CandidateKey>>, SearchStats) {
    let mut top: TopK<CandidateKey> = TopK::new(ctx.query.k);
    let mut scanned = 0;
    for (b, batch) in batches.iter().enumerate() {
        let pk = batch.column(ctx.pk_index);
        for row in 0..batch.num_rows() {
            if !allowed(&masks[b], row) {
                continue;
            }
            scanned += 1;
            let distance = row_distance(lists[b], row, ctx.query);
            if top.threshold().is_some_and(|t| distance > t) {
                continue;
            }
            top.push(
                distance,
                (to_owned_pk(pk_ref(pk.as_ref(), row)), segment_no, b, row),
            );
        }
    }
    let stats = SearchStats {
        rows_scanned: scanned,
        segments_searched: 1,
        exact_scans: 1,
        ..Default::default()
    };
    (top.into_sorted(), stats)
}

/// Searches a segment through its index; `None` when an exact scan of the
/// allowed rows is cheaper (or the index could not find `k` allowed rows).
fn index_search(
    ctx: &SearchContext<'_>,
    segment_no: usize,
    rows: usize,
    masks: &[Option<BooleanArray>],
    lists: &[&FixedSizeListArray],
    batches: &[RecordBatch],
    ix: &SegmentIndex,
) -> Option<(Vec<Scored<CandidateKey>>, SearchStats)> {
    let query = ctx.query;
    // Rows the index may return: allowed, with a non-NULL vector.
    let restricted = masks.iter().any(Option::is_some) || lists.iter().any(|l| l.null_count() > 0);
    let mut offsets = Vec::with_capacity(batches.len());
    let mut bitmap = restricted.then(|| RowBitmap::new(rows));
    let mut offset = 0usize;
    for (b, batch) in batches.iter().enumerate() {
        offsets.push(offset);
        if let Some(bitmap) = &mut bitmap {
            for row in 0..batch.num_rows() {
                if allowed(&masks[b], row) && lists[b].is_valid(row) {
                    bitmap.insert((offset + row) as u32);
                }
            }
        }
        offset += batch.num_rows();
    }
    let allowed_rows = bitmap.as_ref().map_or(rows, RowBitmap::count);
    if allowed_rows < query.k || rows == 0 {
        return None; // at most k rows: the exact scan is the answer (with NULL vectors last)
    }
    let ef = query.params.ef.unwrap_or(DEFAULT_EF).max(query.k);
    if bitmap.is_some() {
        let fraction = allowed_rows as f64 / rows as f64;
        if allowed_rows as f64 <= INDEX_COST_PER_EF * ef as f64 / fraction {
            return None;
        }
    }
    let want = if ix.index.kind().is_quantized() {
        query.k * query.rerank.max(1)
    } else {
        query.k
    };
    // A filtered walk admits only the allowed fraction of what it visits:
    // widen the candidate list by the same factor to keep the recall.
    let mut params = query.params;
    if bitmap.is_some() {
        let fraction = allowed_rows as f64 / rows as f64;
        params.ef = Some(((ef as f64 / fraction).ceil() as usize).min(MAX_FILTERED_EF));
    }
    let filter = bitmap.as_ref().map(|b| b as &dyn RowFilter);
    let found = ix.index.search(&query.vector, want, &params, filter);
    if found.len() < query.k {
        return None;
    }
    let mut top: TopK<CandidateKey> = TopK::new(query.k);
    for neighbor in &found {
        let position = neighbor.row as usize;
        let b = offsets.partition_point(|&o| o <= position) - 1;
        let row = position - offsets[b];
        let distance = row_distance(lists[b], row, query);
        let pk = batches[b].column(ctx.pk_index);
        top.push(
            distance,
            (to_owned_pk(pk_ref(pk.as_ref(), row)), segment_no, b, row),
        );
    }
    let stats = SearchStats {
        rows_scanned: found.len(),
        segments_searched: 1,
        index_searches: 1,
        ..Default::default()
    };
    Some((top.into_sorted(), stats))
}

#[cfg(test)]
mod tests {
    use quiver_common::schema::{ColumnDef, ColumnType, TableSchema};
    use quiver_index::{build_index, BuildOptions, IndexKind};

    use super::*;
    use crate::source::SegmentKind;

    fn column(name: &str, column_type: ColumnType) -> ColumnDef {
        ColumnDef {
            name: name.into(),
            column_type,
            nullable: false,
            default_sql: None,
            auto_increment: false,
            hidden: false,
        }
    }

    /// A segment of `rows` rows (the plan reads counts and indexes only),
    /// with a FLAT index over column 1 when `indexed`.
    fn segment(rows: usize, indexed: bool) -> Segment {
        let indexes = if indexed {
            let vectors = vec![0.5f32; rows * 2];
            let index = build_index(
                IndexKind::Flat,
                Metric::L2,
                2,
                &vectors,
                &BuildOptions::default(),
            )
            .unwrap();
            vec![SegmentIndex {
                name: "ix".into(),
                column: 1,
                metric: Metric::L2,
                index: Arc::from(index),
            }]
        } else {
            Vec::new()
        };
        Segment {
            id: 0,
            shard: 0,
            kind: if indexed {
                SegmentKind::Sealed
            } else {
                SegmentKind::Growing
            },
            batches: Arc::new(Vec::new()),
            rows,
            indexes,
            stats: None,
        }
    }

    fn placement(segments: Vec<Segment>, metric: Metric) -> Placement {
        let snapshot = TableSnapshot {
            table_id: 1,
            schema: TableSchema {
                columns: vec![
                    column("id", ColumnType::Int64),
                    column("v", ColumnType::Vector { dim: 2 }),
                ],
                primary_key: 0,
            },
            segments,
            deletes: Default::default(),
            read_ts: 1,
        };
        let query = VectorQuery {
            column: 1,
            vector: vec![0.0, 0.0],
            metric,
            k: 10,
            params: SearchParams::default(),
            rerank: 1,
        };
        plan_search(&snapshot, &query, None).placement
    }

    /// One index search plus a little exact work stays on the caller; a
    /// second index search, or a large exact scan, goes to the pool with a
    /// worker per searched segment. An index of another metric is no index.
    #[test]
    fn small_searches_stay_inline_large_ones_fan_out() {
        let inline = placement(vec![segment(100, true), segment(1_000, false)], Metric::L2);
        assert_eq!(inline, Placement::Inline);
        let two_indexes = placement(
            vec![segment(100, true), segment(100, true), segment(10, false)],
            Metric::L2,
        );
        assert_eq!(two_indexes, Placement::Pool { workers: 3 });
        let big_scan = placement(vec![segment(INLINE_MAX_WORK, false)], Metric::L2);
        assert_eq!(big_scan, Placement::Pool { workers: 1 });
        let other_metric = placement(vec![segment(100, true), segment(100, true)], Metric::Cosine);
        assert_eq!(other_metric, Placement::Inline);
    }
}
