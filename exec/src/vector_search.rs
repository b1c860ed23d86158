//! [`VectorSearchExec`]: k-nearest-neighbour search over every segment of a
//! table at one read timestamp, scattered to the table's fragments (see
//! [`crate::fragments`]; each searches its segments through their indexes
//! or exactly, see [`crate::search`]) and merged, with an optional row
//! filter, MVCC visibility and deletes applied before ranking. Results are
//! ordered by distance, then primary key.

use std::fmt;
use std::sync::Arc;

use arrow::compute::SortOptions;
use arrow::datatypes::SchemaRef;
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result, Statistics};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr, PhysicalSortExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricBuilder, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties, StatisticsArgs,
};
use futures::stream;

use quiver_index::IndexKind;

use crate::fragments::{fragment_projection, merge_replies, FragmentSearch};
use crate::memory::reserve;
pub use crate::search::{
    plan_search, search_memory, search_snapshot, SearchPlan, SearchStats, VectorQuery,
};
use crate::table_source::TableSource;
use crate::transaction_view::{overlay, PendingTable};

/// Exact top-k vector search over a table snapshot.
#[derive(Debug)]
pub struct VectorSearchExec {
    table: String,
    source: Arc<dyn TableSource>,
    read_ts: Option<u64>,
    /// The writes of the reading transaction, overlaid on the table.
    pending: Option<Arc<PendingTable>>,
    query: VectorQuery,
    /// Filter over the storage schema (user columns, then the timestamp column).
    filter: Option<Arc<dyn PhysicalExpr>>,
    projection: Vec<usize>,
    /// Output each row's distance as a last `Float64` column.
    distance_column: bool,
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
        let properties = plan_properties(&schema);
        Ok(Self {
            table,
            source,
            read_ts,
            pending: None,
            query,
            filter,
            projection,
            distance_column: false,
            schema,
            properties,
            metrics: ExecutionPlanMetricsSet::new(),
        })
    }

    /// Reads the table as a transaction with these pending writes sees it.
    pub fn with_pending(mut self, pending: Option<Arc<PendingTable>>) -> Self {
        self.pending = pending;
        self
    }

    /// With `on`, the output gains a last column holding each row's
    /// distance (named [`DISTANCE_FIELD`]).
    pub fn with_distance_column(mut self, on: bool) -> Result<Self> {
        if !on {
            return Ok(self);
        }
        let mut fields: Vec<_> = self.schema.fields().iter().cloned().collect();
        fields.push(Arc::new(arrow::datatypes::Field::new(
            DISTANCE_FIELD,
            arrow::datatypes::DataType::Float64,
            true,
        )));
        self.schema = Arc::new(arrow::datatypes::Schema::new_with_metadata(
            fields,
            self.schema.metadata().clone(),
        ));
        // Rows come out by distance, then primary key (NULL vectors last):
        // declared, so a sort above on the same keys is dropped by the
        // physical optimizer (a LIMIT remains).
        let distance: Arc<dyn PhysicalExpr> =
            Arc::new(Column::new(DISTANCE_FIELD, self.schema.fields().len() - 1));
        let ascending = SortOptions {
            descending: false,
            nulls_first: false,
        };
        let mut ordering = vec![PhysicalSortExpr::new(distance, ascending)];
        let pk = self.source.table_schema().primary_key;
        if let Some(at) = self.projection.iter().position(|&c| c == pk) {
            let name = self.schema.field(at).name();
            ordering.push(PhysicalSortExpr::new(
                Arc::new(Column::new(name, at)),
                ascending,
            ));
        }
        let mut equivalences = EquivalenceProperties::new(self.schema.clone());
        equivalences.add_orderings([ordering]);
        self.properties = Arc::new(PlanProperties::new(
            equivalences,
            Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        ));
        self.distance_column = true;
        Ok(self)
    }
}

impl VectorSearchExec {
    /// The same search with another query vector (same read timestamp),
    /// with fresh metrics: a lateral search's plan run for one probe.
    pub fn with_vector(&self, vector: Vec<f32>) -> Self {
        self.rebound(vector, self.read_ts)
    }

    /// The same search with another query vector, reading at another
    /// timestamp, with fresh metrics: how a cached prepared search runs
    /// again without being planned again.
    pub fn rebound(&self, vector: Vec<f32>, read_ts: Option<u64>) -> Self {
        Self {
            table: self.table.clone(),
            source: self.source.clone(),
            read_ts,
            pending: self.pending.clone(),
            query: VectorQuery {
                vector,
                ..self.query.clone()
            },
            filter: self.filter.clone(),
            projection: self.projection.clone(),
            distance_column: self.distance_column,
            schema: self.schema.clone(),
            properties: self.properties.clone(),
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }
}

/// One partition, emitted once all segments are searched.
fn plan_properties(schema: &SchemaRef) -> Arc<PlanProperties> {
    Arc::new(PlanProperties::new(
        EquivalenceProperties::new(schema.clone()),
        Partitioning::UnknownPartitioning(1),
        EmissionType::Final,
        Boundedness::Bounded,
    ))
}

/// Name of the distance column [`VectorSearchExec::with_distance_column`] adds.
pub const DISTANCE_FIELD: &str = "__quiver_distance";

impl DisplayAs for VectorSearchExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let column = self
            .source
            .table_schema()
            .columns
            .get(self.query.column)
            .map(|c| c.name.clone())
            .unwrap_or_default();
        write!(
            f,
            "VectorSearchExec: table={}, column={}, metric={}, k={}",
            self.table,
            column,
            self.query.metric.function_name(),
            self.query.k
        )?;
        let indexes: Vec<_> = self
            .source
            .vector_indexes()
            .into_iter()
            .filter(|ix| ix.column == self.query.column && ix.metric == self.query.metric)
            .collect();
        if indexes.is_empty() {
            return write!(f, ", mode=exact");
        }
        let names: Vec<String> = indexes
            .iter()
            .map(|ix| format!("{} ({})", ix.name, ix.kind.name()))
            .collect();
        write!(f, ", index={}", names.join(" "))?;
        let graph = indexes.iter().any(|ix| ix.kind == IndexKind::Hnsw);
        match (graph, self.query.params.ef, self.query.params.nprobe) {
            (true, Some(ef), _) => write!(f, ", ef_search={ef}")?,
            (false, _, Some(probes)) => write!(f, ", probes={probes}")?,
            _ => {}
        }
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

    /// At most k rows: with row estimates on, DataFusion then adds no
    /// round-robin repartition (and its tasks) above a search.
    fn statistics_from_inputs(
        &self,
        _input_stats: &[Arc<Statistics>],
        _args: &StatisticsArgs,
    ) -> Result<Arc<Statistics>> {
        let mut statistics = Statistics::new_unknown(&self.schema);
        statistics.num_rows = Precision::Inexact(self.query.k);
        Ok(Arc::new(statistics))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return Err(DataFusionError::Internal(format!(
                "VectorSearchExec has one partition, asked for {partition}"
            )));
        }
        let source = self.source.clone();
        let source_read_ts = self.read_ts;
        let pending = self.pending.clone();
        let query = self.query.clone();
        let filter = self.filter.clone();
        let projection = self.projection.clone();
        let k = self.query.k;
        let projected = self.projection.len();
        let pk = self.source.table_schema().primary_key;
        let pk_at = fragment_projection(&self.projection, pk)
            .iter()
            .position(|&c| c == pk)
            .unwrap_or(0);
        let schema = self.schema.clone();
        let distance_column = self.distance_column;
        let counter =
            |name: &'static str| MetricBuilder::new(&self.metrics).counter(name, partition);
        let scanned = counter("rows_scanned");
        let segments = counter("segments_searched");
        let pruned = counter("segments_pruned");
        let index_searches = counter("index_searches");
        let exact_scans = counter("exact_scans");
        let fragment_count = counter("fragments");
        let elapsed = MetricBuilder::new(&self.metrics).elapsed_compute(partition);
        let output_rows = MetricBuilder::new(&self.metrics).output_rows(partition);
        let memory = context.memory_pool().clone();
        let fut = async move {
            let _timer = elapsed.timer();
            // The nodes' parts of the table at the read timestamp.
            let (read_ts, fragments) = source.fragments(source_read_ts).await?;
            let fragments = match &pending {
                Some(pending) => {
                    let table_id = source.table_id();
                    let schema = source.table_schema();
                    overlay(fragments, pending, table_id, &schema, read_ts)
                }
                None => fragments,
            };
            fragment_count.add(fragments.len());
            let request = FragmentSearch {
                read_ts,
                query,
                filter,
                projection,
                hidden_keys: None,
            };
            // Scatter: every fragment searches at once; then the merge.
            let searches: Vec<_> = fragments
                .iter()
                .map(|fragment| fragment.search(request.clone(), context.clone()))
                .collect();
            let replies = futures::future::try_join_all(searches).await?;
            let mut batches = Vec::with_capacity(replies.len());
            for reply in replies {
                scanned.add(reply.stats.rows_scanned);
                segments.add(reply.stats.segments_searched);
                pruned.add(reply.stats.segments_pruned);
                index_searches.add(reply.stats.index_searches);
                exact_scans.add(reply.stats.exact_scans);
                batches.push(reply.batch);
            }
            let reservation = reserve(&memory, "VectorSearchExec merge");
            reservation.try_grow(batches.iter().map(|b| b.get_array_memory_size()).sum())?;
            let batch = merge_replies(&batches, k, pk_at, projected, &schema, distance_column)?;
            drop(batches);
            reservation.try_resize(batch.get_array_memory_size())?;
            output_rows.add(batch.num_rows());
            Ok(batch)
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            stream::once(fut),
        )))
    }
}
