//! [`QuiverTable`], the DataFusion `TableProvider` of a Quiver table, and
//! [`SegmentScanExec`], the operator that reads visible rows from a snapshot.

use std::fmt;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::compute::filter_record_batch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::{TableProvider, TableType};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
};
use futures::stream;

use crate::memory::reserve;
use crate::source::{adapt_batch, visible_mask, TableSnapshot};
use crate::table_source::TableSource;

/// Session-scoped read timestamp; when set in the session config, every scan
/// of the statement reads at it (one consistent snapshot per statement).
#[derive(Debug, Clone, Copy)]
pub struct ReadTimestamp(pub u64);

/// Session-scoped vector search knobs (`SET hnsw.ef_search`,
/// `SET ivfflat.probes`, `SET quiver.rerank`), read when a search is planned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchSettings {
    pub ef_search: usize,
    pub probes: usize,
    pub rerank: usize,
}

impl Default for SearchSettings {
    fn default() -> Self {
        Self {
            ef_search: 40,
            probes: 1,
            rerank: 4,
        }
    }
}

/// The session's vector search knobs (defaults when none were set).
pub fn session_search_settings(state: &dyn Session) -> SearchSettings {
    state
        .config()
        .get_extension::<SearchSettings>()
        .map(|s| *s)
        .unwrap_or_default()
}

/// A Quiver table as DataFusion sees it.
#[derive(Debug)]
pub struct QuiverTable {
    name: String,
    source: Arc<dyn TableSource>,
    schema: SchemaRef,
}

impl QuiverTable {
    /// Wraps a table source.
    pub fn new(name: impl Into<String>, source: Arc<dyn TableSource>) -> Self {
        let schema = source.table_schema().arrow_schema();
        Self {
            name: name.into(),
            source,
            schema,
        }
    }

    /// The table's source (used by the vector-search planner).
    pub fn source(&self) -> &Arc<dyn TableSource> {
        &self.source
    }

    /// The table's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Reads the statement's read timestamp from the session, if one was set.
pub fn session_read_ts(state: &dyn Session) -> Option<u64> {
    state
        .config()
        .get_extension::<ReadTimestamp>()
        .map(|ts| ts.0)
}

#[async_trait]
impl TableProvider for QuiverTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let snapshot = self.source.snapshot(session_read_ts(state));
        let partitions = state.config().target_partitions().max(1);
        Ok(Arc::new(SegmentScanExec::new(
            self.name.clone(),
            snapshot,
            projection.cloned(),
            limit,
            partitions,
        )?))
    }
}

/// Scans the visible rows of a snapshot; segments are spread over partitions.
#[derive(Debug)]
pub struct SegmentScanExec {
    table: String,
    snapshot: Arc<TableSnapshot>,
    projection: Vec<usize>,
    limit: Option<usize>,
    assignment: Vec<Vec<usize>>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl SegmentScanExec {
    /// A scan of `snapshot` returning the `projection` columns of the user schema.
    pub fn new(
        table: String,
        snapshot: TableSnapshot,
        projection: Option<Vec<usize>>,
        limit: Option<usize>,
        max_partitions: usize,
    ) -> Result<Self> {
        let user_schema = snapshot.schema.arrow_schema();
        let projection = projection.unwrap_or_else(|| (0..user_schema.fields().len()).collect());
        let schema = Arc::new(user_schema.project(&projection)?);
        let n = snapshot.segments.len().clamp(1, max_partitions);
        let mut assignment = vec![Vec::new(); n];
        for i in 0..snapshot.segments.len() {
            assignment[i % n].push(i);
        }
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            Partitioning::UnknownPartitioning(n),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Ok(Self {
            table,
            snapshot: Arc::new(snapshot),
            projection,
            limit,
            assignment,
            schema,
            properties,
        })
    }
}

impl DisplayAs for SegmentScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SegmentScanExec: table={}, segments={}, rows={}",
            self.table,
            self.snapshot.segments.len(),
            self.snapshot.stored_rows()
        )?;
        if let Some(limit) = self.limit {
            write!(f, ", limit={limit}")?;
        }
        Ok(())
    }
}

impl ExecutionPlan for SegmentScanExec {
    fn name(&self) -> &str {
        "SegmentScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let segments = self.assignment.get(partition).cloned().ok_or_else(|| {
            DataFusionError::Internal(format!("SegmentScanExec has no partition {partition}"))
        })?;
        let snapshot = self.snapshot.clone();
        let projection = self.projection.clone();
        let storage_schema = snapshot.schema.storage_schema();
        let pk_index = snapshot.schema.primary_key;
        let batches: Vec<RecordBatch> = segments
            .iter()
            .flat_map(|i| snapshot.segments[*i].batches.iter().cloned())
            .collect();
        let mut remaining = self.limit.unwrap_or(usize::MAX);
        let reservation = reserve(context.memory_pool(), "SegmentScanExec");
        let out_schema = self.schema.clone();
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
                let batch = adapt_batch(&batch, &storage_schema)?;
                let mask = {
                    let deletes = snapshot.deletes.read();
                    visible_mask(&batch, pk_index, &deletes, snapshot.read_ts)
                };
                let batch = match mask {
                    Some(mask) => {
                        reservation.try_grow(batch.get_array_memory_size())?;
                        filter_record_batch(&batch, &mask)?
                    }
                    None => batch,
                };
                reservation.free();
                let rows = batch.num_rows();
                let batch = batch.project(&projection)?;
                Ok(RecordBatch::try_new_with_options(
                    out_schema.clone(),
                    batch.columns().to_vec(),
                    &arrow::array::RecordBatchOptions::new().with_row_count(Some(rows)),
                )?)
            })();
            match result {
                Ok(batch) if batch.num_rows() == 0 => Some(Ok(batch)),
                Ok(batch) => {
                    remaining = remaining.saturating_sub(batch.num_rows());
                    Some(Ok(batch))
                }
                Err(e) => Some(Err(e)),
            }
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            stream::iter(iter),
        )))
    }
}
