//! Vector index definitions ([`IndexMeta`], kept in the table's meta record)
//! and the per-segment index files built from them.
//!
//! An index is defined once per table (name, column, type, metric, build
//! parameters) and built once per sealed segment by the data role; each
//! segment's index is an object next to the segment
//! (`tables/<table>/indexes/<segment>-<index>.qvix`) recorded in the
//! segment's meta record, so a restart loads it instead of rebuilding.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::Float32Type;
use quiver_common::schema::{vector_dim, TableSchema};
use quiver_exec::source::{adapt_batch, IndexDescription};
use quiver_index::{build_index, BuildOptions, IndexKind, Metric, VectorIndex};
use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result};

/// A vector index defined on a table.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct IndexMeta {
    pub id: u64,
    pub name: String,
    /// The indexed vector column.
    pub column: String,
    /// Index type name (`hnsw`, `ivfflat`, `ivf_sq8`, `flat`).
    pub kind: String,
    /// Metric name: `l2`, `ip`, `cosine` or `l1`.
    pub metric: String,
    /// Build parameters (`m`, `ef_construction`, `lists`), as given.
    pub params: BTreeMap<String, u64>,
}

/// A segment's built index, as recorded in its [`SegmentMeta`](crate::coordinator::SegmentMeta).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SegmentIndexMeta {
    pub index_id: u64,
    pub path: String,
    pub rows: usize,
}

/// A segment's index in memory.
#[derive(Clone)]
pub struct LoadedIndex {
    pub index_id: u64,
    pub path: String,
    pub index: Arc<dyn VectorIndex>,
}

impl std::fmt::Debug for LoadedIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedIndex")
            .field("index_id", &self.index_id)
            .field("path", &self.path)
            .field("rows", &self.index.len())
            .finish()
    }
}

/// Object path of a segment's index file.
pub fn index_path(table: u64, segment: u64, index: u64) -> String {
    format!("tables/{table}/indexes/{segment:020}-{index:010}.qvix")
}

/// Object path of the index file one build task writes: unique to the
/// task (`attempt`: the coordinator's process and task), so a stale task's
/// output is never the path a newer task of the same pair writes to.
pub fn task_index_path(table: u64, segment: u64, index: u64, attempt: &str) -> String {
    format!("tables/{table}/indexes/{segment:020}-{index:010}-{attempt}.qvix")
}

/// The metric of a stored metric name.
pub fn parse_metric(name: &str) -> Option<Metric> {
    Some(match name {
        "l2" => Metric::L2,
        "ip" => Metric::NegativeInnerProduct,
        "cosine" => Metric::Cosine,
        "l1" => Metric::L1,
        _ => return None,
    })
}

/// Threads an index build uses: all cores.
pub fn build_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

impl IndexMeta {
    /// The index as execution describes it over `schema`; `None` when its
    /// column, metric or type is not (any longer) valid there.
    pub fn describe(&self, schema: &TableSchema) -> Option<IndexDescription> {
        Some(IndexDescription {
            name: self.name.clone(),
            column: schema.column_index(&self.column)?,
            metric: self.index_metric().ok()?,
            kind: self.index_kind().ok()?,
        })
    }

    /// The index type.
    pub fn index_kind(&self) -> Result<IndexKind> {
        IndexKind::parse(&self.kind).ok_or_else(|| {
            EngineError::InvalidDefinition(format!("unknown index type \"{}\"", self.kind))
        })
    }

    /// The metric.
    pub fn index_metric(&self) -> Result<Metric> {
        parse_metric(&self.metric).ok_or_else(|| {
            EngineError::InvalidDefinition(format!("unknown metric \"{}\"", self.metric))
        })
    }

    /// Build options from the parameters (defaults where absent).
    pub fn build_options(&self) -> BuildOptions {
        let mut options = BuildOptions::default();
        let get = |names: &[&str]| {
            names
                .iter()
                .find_map(|n| self.params.get(*n))
                .map(|v| *v as usize)
        };
        if let Some(m) = get(&["m"]) {
            options.m = m;
        }
        if let Some(ef) = get(&["ef_construction", "efconstruction"]) {
            options.ef_construction = ef;
        }
        if let Some(lists) = get(&["lists", "nlist"]) {
            options.nlist = lists;
        }
        options
    }

    /// Checks the definition against the table: a vector column, a known
    /// type and metric, parameters in range.
    pub fn validate(&self, schema: &TableSchema) -> Result<()> {
        let column = schema
            .columns
            .iter()
            .find(|c| c.name == self.column)
            .ok_or_else(|| EngineError::ColumnNotFound {
                table: String::new(),
                column: self.column.clone(),
            })?;
        if vector_dim(&column.column_type.arrow_type()).is_none() {
            return Err(EngineError::InvalidDefinition(format!(
                "column \"{}\" has type {}; vector indexes need a vector column",
                self.column,
                column.column_type.sql_name()
            )));
        }
        let kind = self.index_kind()?;
        self.index_metric()?;
        self.build_options()
            .validate(kind)
            .map_err(|e| EngineError::InvalidDefinition(e.to_string()))
    }

    /// Builds this index over the rows of `batches` (storage schema);
    /// NULL vectors are indexed as zeros and never returned (search masks them).
    pub fn build(
        &self,
        schema: &TableSchema,
        batches: &[RecordBatch],
        threads: usize,
    ) -> Result<Arc<dyn VectorIndex>> {
        let column =
            schema
                .column_index(&self.column)
                .ok_or_else(|| EngineError::ColumnNotFound {
                    table: String::new(),
                    column: self.column.clone(),
                })?;
        let dim =
            vector_dim(&schema.columns[column].column_type.arrow_type()).ok_or_else(|| {
                EngineError::InvalidDefinition(format!(
                    "column \"{}\" is not a vector",
                    self.column
                ))
            })?;
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        let storage = schema.storage_schema();
        let mut vectors = Vec::with_capacity(rows * dim);
        for batch in batches {
            let batch = adapt_batch(batch, &storage)?;
            let list = batch.column(column).as_fixed_size_list();
            let values = list.values().as_primitive::<Float32Type>().values();
            for row in 0..list.len() {
                if list.is_null(row) {
                    vectors.extend(std::iter::repeat_n(0f32, dim));
                } else {
                    let start = list.value_offset(row) as usize;
                    vectors.extend_from_slice(&values[start..start + dim]);
                }
            }
        }
        let mut options = self.build_options();
        options.threads = threads.max(1);
        let index = build_index(
            self.index_kind()?,
            self.index_metric()?,
            dim,
            &vectors,
            &options,
        )
        .map_err(|e| EngineError::Index(e.to_string()))?;
        Ok(Arc::from(index))
    }
}
