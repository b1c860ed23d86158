//! [`VectorSearchExec`]: exact k-nearest-neighbour search over every segment
//! of a snapshot, with an optional row filter, MVCC visibility and deletes
//! applied before ranking. Results are ordered by distance, then primary key.

use std::fmt;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch};
use arrow::compute::{and, interleave};
use arrow::datatypes::{Float32Type, SchemaRef};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricBuilder, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
};
use futures::stream;
use quiver_index::topk::TopK;
use quiver_index::Metric;

use crate::pk::{pk_ref, PkRef, PkValue};
use crate::source::{adapt_batch, visible_mask, TableSnapshot, TableSource};

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
}

/// Exact top-k vector search over a table snapshot.
#[derive(Debug)]
pub struct VectorSearchExec {
    table: String,
    source: Arc<dyn TableSource>,
    read_ts: Option<u64>,
    query: VectorQuery,
    /// Filter over the storage schema (user columns, then the timestamp column).
    filter: Option<Arc<dyn PhysicalExpr>>,
    projection: Vec<usize>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl VectorSearchExec {
    /// Creates the operator; `projection` indexes the user schema.
    pub fn new(
        table: String,
        source: Arc<dyn TableSource>,
        read_ts: Option<u64>,
        query: VectorQuery,
        filter: Option<Arc<dyn PhysicalExpr>>,
        projection: Vec<usize>,
    ) -> Result<Self> {
        let schema = Arc::new(source.table_schema().arrow_schema().project(&projection)?);
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        ));
        Ok(Self {
            table,
            source,
            read_ts,
            query,
            filter,
            projection,
            schema,
            properties,
            metrics: ExecutionPlanMetricsSet::new(),
        })
    }
}

impl DisplayAs for VectorSearchExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let column = self
            .source
            .table_schema()
            .columns
            .get(self.query.column)
            .map(|c| c.name.clone())
            .unwrap_or_default();
        write!(
            f,
            "VectorSearchExec: table={}, column={}, metric={}, k={}, mode=exact",
            self.table,
            column,
            self.query.metric.function_name(),
            self.query.k
        )?;
        if let Some(filter) = &self.filter {
            write!(f, ", filter={filter}")?;
        }
        Ok(())
    }
}

impl ExecutionPlan for VectorSearchExec {
    fn name(&self) -> &str {
        "VectorSearchExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        match &self.filter {
            Some(filter) => f(filter),
            None => Ok(TreeNodeRecursion::Continue),
        }
    }

    fn with_new_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn execute(
        &self,
        partition: usize,
        _context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return Err(DataFusionError::Internal(format!(
                "VectorSearchExec has one partition, asked for {partition}"
            )));
        }
        let snapshot = self.source.snapshot(self.read_ts);
        let query = self.query.clone();
        let filter = self.filter.clone();
        let projection = self.projection.clone();
        let schema = self.schema.clone();
        let scanned = MetricBuilder::new(&self.metrics).counter("rows_scanned", partition);
        let segments = MetricBuilder::new(&self.metrics).counter("segments_searched", partition);
        let elapsed = MetricBuilder::new(&self.metrics).elapsed_compute(partition);
        let output_rows = MetricBuilder::new(&self.metrics).output_rows(partition);
        let fut = async move {
            let handle = tokio::task::spawn_blocking(move || {
                let _timer = elapsed.timer();
                segments.add(snapshot.segments.len());
                let result =
                    search_snapshot(&snapshot, &query, filter.as_ref(), &projection, &schema);
                if let Ok((batch, rows)) = &result {
                    scanned.add(*rows);
                    output_rows.add(batch.num_rows());
                }
                result.map(|(batch, _)| batch)
            });
            handle
                .await
                .map_err(|e| DataFusionError::External(Box::new(e)))?
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            stream::once(fut),
        )))
    }
}

/// Candidate identity: primary key, then position (batch, row).
type CandidateKey = (PkValue, usize, usize);

fn to_owned_pk(pk: Option<PkRef<'_>>) -> PkValue {
    match pk {
        Some(PkRef::Int(v)) => PkValue::Int(v),
        Some(PkRef::Str(s)) => PkValue::Str(s.to_string()),
        None => PkValue::Int(i64::MAX),
    }
}

/// Searches every segment; returns the projected result rows and the number of rows scanned.
pub fn search_snapshot(
    snapshot: &TableSnapshot,
    query: &VectorQuery,
    filter: Option<&Arc<dyn PhysicalExpr>>,
    projection: &[usize],
    out_schema: &SchemaRef,
) -> Result<(RecordBatch, usize)> {
    let storage_schema = snapshot.schema.storage_schema();
    let pk_index = snapshot.schema.primary_key;
    let dim = query.vector.len();
    let mut top: TopK<CandidateKey> = TopK::new(query.k);
    let mut batches: Vec<RecordBatch> = Vec::new();
    let mut scanned = 0usize;
    let deletes = snapshot.deletes.read();
    for segment in &snapshot.segments {
        for stored in segment.batches.iter() {
            let batch = adapt_batch(stored, &storage_schema)?;
            let mut mask: Option<BooleanArray> =
                visible_mask(&batch, pk_index, &deletes, snapshot.read_ts);
            if let Some(filter) = filter {
                let value = filter.evaluate(&batch)?.into_array(batch.num_rows())?;
                let passed = value.as_boolean_opt().cloned().ok_or_else(|| {
                    DataFusionError::Plan("vector search filter is not boolean".into())
                })?;
                mask = Some(match mask {
                    Some(m) => and(&m, &passed)?,
                    None => passed,
                });
            }
            let column = batch.column(query.column);
            let list = column.as_fixed_size_list_opt().ok_or_else(|| {
                DataFusionError::Plan("vector search column is not a vector".into())
            })?;
            if list.value_length() as usize != dim {
                return Err(DataFusionError::Execution(format!(
                    "different vector dimensions {} and {}",
                    list.value_length(),
                    dim
                )));
            }
            let values = list.values().as_primitive::<Float32Type>().values();
            let batch_idx = batches.len();
            let pk = batch.column(pk_index).clone();
            let mut pushed_any = false;
            for row in 0..batch.num_rows() {
                if let Some(m) = &mask {
                    if !m.is_valid(row) || !m.value(row) {
                        continue;
                    }
                }
                scanned += 1;
                let distance = if list.is_null(row) {
                    f64::INFINITY
                } else {
                    let offset = list.value_offset(row) as usize;
                    query
                        .metric
                        .distance(&values[offset..offset + dim], &query.vector)
                };
                if let Some(threshold) = top.threshold() {
                    if distance > threshold {
                        continue;
                    }
                }
                top.push(
                    distance,
                    (to_owned_pk(pk_ref(pk.as_ref(), row)), batch_idx, row),
                );
                pushed_any = true;
            }
            if pushed_any {
                batches.push(batch);
            } else {
                batches.push(RecordBatch::new_empty(storage_schema.clone()));
            }
        }
    }
    drop(deletes);
    let picks: Vec<(usize, usize)> = top
        .into_sorted()
        .into_iter()
        .map(|s| (s.key.1, s.key.2))
        .collect();
    let columns = projection
        .iter()
        .map(|&col| {
            let arrays: Vec<&dyn Array> = batches.iter().map(|b| b.column(col).as_ref()).collect();
            if picks.is_empty() {
                Ok(arrow::array::new_empty_array(
                    out_schema
                        .field(projection.iter().position(|c| *c == col).unwrap_or(0))
                        .data_type(),
                ))
            } else {
                interleave(&arrays, &picks)
            }
        })
        .collect::<Result<Vec<ArrayRef>, _>>()?;
    let batch = RecordBatch::try_new_with_options(
        out_schema.clone(),
        columns,
        &arrow::array::RecordBatchOptions::new().with_row_count(Some(picks.len())),
    )?;
    Ok((batch, scanned))
}
