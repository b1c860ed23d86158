//! [`LateralSearchExec`]: a lateral k-nearest-neighbour join — for each
//! row of its probe input, the rows its search plan gives with that row's
//! vector as the query, each joined to the probe row. The search plan is
//! planned once (its `VectorSearchExec` with no vector yet); each probe
//! runs it with its own vector (`VectorSearchExec::rebound`, the other
//! operators' state reset), several probes at once. A probe whose vector
//! is NULL gets no rows.

use std::fmt;
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch, RecordBatchOptions, UInt32Array};
use arrow::compute::take;
use arrow::datatypes::{DataType, Float32Type, SchemaRef};
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    collect, DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
};
use futures::{StreamExt, TryStreamExt};

use crate::vector_search::VectorSearchExec;

/// How many probes search at once.
const PROBES_IN_FLIGHT: usize = 8;

/// See the module documentation.
#[derive(Debug)]
pub struct LateralSearchExec {
    probes: Arc<dyn ExecutionPlan>,
    search: Arc<dyn ExecutionPlan>,
    /// The probe vector's column in `probes`.
    probe: usize,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl LateralSearchExec {
    /// Joins each row of `probes` to what `search` (holding one
    /// `VectorSearchExec`) gives for the vector in its column `probe`; the
    /// output is `probes`' columns, then `search`'s (`schema`).
    pub fn try_new(
        probes: Arc<dyn ExecutionPlan>,
        search: Arc<dyn ExecutionPlan>,
        probe: usize,
        schema: SchemaRef,
    ) -> Result<Self> {
        let searches = count_searches(&search);
        if searches != 1 {
            return Err(DataFusionError::Internal(format!(
                "a lateral search plans {searches} searches, not one"
            )));
        }
        let width = probes.schema().fields().len() + search.schema().fields().len();
        if width != schema.fields().len() || probe >= probes.schema().fields().len() {
            return Err(DataFusionError::Internal(
                "a lateral search's schema does not fit its inputs".into(),
            ));
        }
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Ok(Self {
            probes,
            search,
            probe,
            schema,
            properties,
        })
    }
}

fn count_searches(plan: &Arc<dyn ExecutionPlan>) -> usize {
    let own = usize::from(plan.downcast_ref::<VectorSearchExec>().is_some());
    own + plan
        .children()
        .into_iter()
        .map(count_searches)
        .sum::<usize>()
}

/// `plan` with its search's vector replaced by `vector`, every other
/// operator's state reset.
fn bound(plan: &Arc<dyn ExecutionPlan>, vector: Vec<f32>) -> Result<Arc<dyn ExecutionPlan>> {
    let mut vector = Some(vector);
    let rebound = plan.clone().transform_up(|node| {
        let node: Arc<dyn ExecutionPlan> = match node.downcast_ref::<VectorSearchExec>() {
            Some(search) => Arc::new(search.with_vector(vector.take().unwrap_or_default())),
            None => node.reset_state()?,
        };
        Ok(Transformed::yes(node))
    })?;
    Ok(rebound.data)
}

/// The vector of row `row` of a vector column (`None` when NULL).
fn probe_vector(column: &dyn Array, row: usize) -> Result<Option<Vec<f32>>> {
    if column.is_null(row) {
        return Ok(None);
    }
    let values = match column.data_type() {
        DataType::FixedSizeList(_, _) => column.as_fixed_size_list().value(row),
        DataType::List(_) => column.as_list::<i32>().value(row),
        other => {
            return Err(DataFusionError::Execution(format!(
                "a lateral search's probe is {other}, not a vector"
            )))
        }
    };
    let values = arrow::compute::cast(&values, &DataType::Float32)?;
    Ok(Some(values.as_primitive::<Float32Type>().values().to_vec()))
}

impl DisplayAs for LateralSearchExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "LateralSearchExec: probe={}, probes in flight={PROBES_IN_FLIGHT}",
            self.probes.schema().field(self.probe).name()
        )
    }
}

impl ExecutionPlan for LateralSearchExec {
    fn name(&self) -> &str {
        "LateralSearchExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.probes, &self.search]
    }

    /// Probes are read as one stream and the search plan runs whole per
    /// probe: no repartitioning below either side.
    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false, false]
    }

    /// It holds no expression of its own (the probe is a column index).
    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let [probes, search]: [Arc<dyn ExecutionPlan>; 2] = children
            .try_into()
            .map_err(|_| DataFusionError::Internal("LateralSearchExec has two children".into()))?;
        Ok(Arc::new(Self::try_new(
            probes,
            search,
            self.probe,
            self.schema.clone(),
        )?))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return Err(DataFusionError::Internal(format!(
                "LateralSearchExec has one partition, not {partition}"
            )));
        }
        let probes =
            datafusion::physical_plan::execute_stream(self.probes.clone(), context.clone())?;
        let search = self.search.clone();
        let probe = self.probe;
        let schema = self.schema.clone();
        let out_schema = schema.clone();
        let stream = probes
            .map_ok(move |batch| {
                let search = search.clone();
                let context = context.clone();
                let schema = schema.clone();
                let rows: Vec<usize> = (0..batch.num_rows()).collect();
                futures::stream::iter(rows)
                    .map(move |row| {
                        let search = search.clone();
                        let context = context.clone();
                        let schema = schema.clone();
                        let batch = batch.clone();
                        async move {
                            let Some(vector) = probe_vector(batch.column(probe).as_ref(), row)?
                            else {
                                return Ok(None);
                            };
                            let found = collect(bound(&search, vector)?, context).await?;
                            joined(&schema, &batch, row, &found).map(Some)
                        }
                    })
                    .buffered(PROBES_IN_FLIGHT)
                    .try_filter_map(|joined| async move { Ok(joined) })
            })
            .try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(out_schema, stream)))
    }
}

/// Row `row` of `probes` next to each row of `found`.
fn joined(
    schema: &SchemaRef,
    probes: &RecordBatch,
    row: usize,
    found: &[RecordBatch],
) -> Result<RecordBatch> {
    let found = arrow::compute::concat_batches(
        &found
            .first()
            .map(|b| b.schema())
            .unwrap_or_else(|| Arc::new(arrow::datatypes::Schema::empty())),
        found,
    )?;
    let n = found.num_rows();
    let indices = UInt32Array::from(vec![row as u32; n]);
    let mut columns = Vec::with_capacity(schema.fields().len());
    for column in probes.columns() {
        columns.push(take(column.as_ref(), &indices, None)?);
    }
    columns.extend(found.columns().iter().cloned());
    if n == 0 {
        return Ok(RecordBatch::new_empty(schema.clone()));
    }
    Ok(RecordBatch::try_new_with_options(
        schema.clone(),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(n)),
    )?)
}
