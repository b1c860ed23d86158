//! What execution reads: [`TableSnapshot`]s of a table's segments (handed
//! out by a [`TableSource`](crate::table_source::TableSource)), and which
//! stored rows a snapshot shows (MVCC).

use std::sync::Arc;

use arrow::array::{new_null_array, Array, AsArray, BooleanArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{SchemaRef, UInt64Type};
use arrow::error::ArrowError;
use datafusion::common::stats::Precision;
use datafusion::common::{ScalarValue, Statistics};
use parking_lot::RwLock;
use quiver_common::schema::{TableSchema, TS_COLUMN};
use quiver_index::{IndexKind, Metric, VectorIndex};

use crate::deletes::DeleteMap;
use crate::pk::pk_ref;

/// Whether a segment still accepts rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentKind {
    /// In memory on the streaming role, still growing.
    Growing,
    /// Immutable; flushed (or being flushed) to object storage.
    Sealed,
}

/// A vector index over one segment's rows. Index row ids are positions in
/// the segment's batches, in order (row `r` of batch `b` is
/// `sum(rows of batches before b) + r`).
#[derive(Clone)]
pub struct SegmentIndex {
    /// The index's name (as in `CREATE INDEX name`).
    pub name: String,
    /// The indexed column, in the table's user schema.
    pub column: usize,
    /// The distance the index orders by.
    pub metric: Metric,
    pub index: Arc<dyn VectorIndex>,
}

impl std::fmt::Debug for SegmentIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentIndex")
            .field("name", &self.name)
            .field("column", &self.column)
            .field("metric", &self.metric)
            .field("kind", &self.index.kind())
            .field("rows", &self.index.len())
            .finish()
    }
}

/// An immutable view of one segment's rows (storage schema of its time).
#[derive(Debug, Clone)]
pub struct Segment {
    pub id: u64,
    /// The table shard whose rows it holds.
    pub shard: u32,
    pub kind: SegmentKind,
    pub batches: Arc<Vec<RecordBatch>>,
    pub rows: usize,
    /// Vector indexes built over this segment (sealed segments only).
    pub indexes: Vec<SegmentIndex>,
    /// Min/max/null statistics of the storage columns, when known; used to
    /// skip segments a filter cannot match.
    pub stats: Option<Arc<Statistics>>,
}

impl Segment {
    /// The newest row timestamp, from the statistics (the timestamp column
    /// is the last storage column).
    pub fn max_timestamp(&self) -> Option<u64> {
        match &self.stats.as_ref()?.column_statistics.last()?.max_value {
            Precision::Exact(ScalarValue::UInt64(Some(ts))) => Some(*ts),
            _ => None,
        }
    }
}

/// A vector index defined on a table, as execution describes it (EXPLAIN).
#[derive(Debug, Clone, PartialEq)]
pub struct IndexDescription {
    pub name: String,
    pub column: usize,
    pub metric: Metric,
    pub kind: IndexKind,
}

/// A consistent view of a table at `read_ts`.
#[derive(Debug, Clone)]
pub struct TableSnapshot {
    pub table_id: u64,
    pub schema: TableSchema,
    pub segments: Vec<Segment>,
    pub deletes: Arc<RwLock<DeleteMap>>,
    pub read_ts: u64,
}

impl TableSnapshot {
    /// Total stored rows (before visibility).
    pub fn stored_rows(&self) -> usize {
        self.segments.iter().map(|s| s.rows).sum()
    }
}

/// Reshapes a stored batch to `target` (the current storage schema): columns
/// added after the batch was written read as NULL.
pub fn adapt_batch(batch: &RecordBatch, target: &SchemaRef) -> Result<RecordBatch, ArrowError> {
    if batch.schema_ref() == target {
        return Ok(batch.clone());
    }
    let columns = target
        .fields()
        .iter()
        .map(|field| match batch.column_by_name(field.name()) {
            Some(col) if col.data_type() == field.data_type() => Ok(col.clone()),
            Some(col) => cast(col, field.data_type()),
            None => Ok(new_null_array(field.data_type(), batch.num_rows())),
        })
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(target.clone(), columns)
}

/// The rows of `batch` visible at `read_ts`; `None` means all of them.
pub fn visible_mask(
    batch: &RecordBatch,
    pk_index: usize,
    deletes: &DeleteMap,
    read_ts: u64,
) -> Option<BooleanArray> {
    let ts_col = batch.column_by_name(TS_COLUMN)?;
    let ts = ts_col.as_primitive::<UInt64Type>();
    let pk = batch.column(pk_index);
    let all_old = ts.values().iter().all(|t| *t <= read_ts);
    if all_old && deletes.is_empty() {
        return None;
    }
    let mut any_hidden = false;
    let mask: BooleanArray = (0..batch.num_rows())
        .map(|row| {
            let row_ts = ts.value(row);
            let visible = row_ts <= read_ts
                && match pk_ref(pk.as_ref(), row) {
                    Some(key) => !deletes.hides(key, row_ts, read_ts),
                    None => true,
                };
            any_hidden |= !visible;
            Some(visible)
        })
        .collect();
    any_hidden.then_some(mask)
}
