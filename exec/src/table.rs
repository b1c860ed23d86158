//! [`QuiverTable`], the DataFusion `TableProvider` of a Quiver table, and
//! [`SegmentScanExec`], the operator that reads a table's visible rows
//! from its fragments, with the query's filters pushed down to them.

use std::fmt;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, DFSchema, DataFusionError, Result};
use datafusion::datasource::{TableProvider, TableType};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Expr;
use datafusion::logical_expr::{Operator, TableProviderFilterPushDown};
use datafusion::physical_expr::expressions::BinaryExpr;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
};
use futures::{stream, StreamExt};
use quiver_common::schema::TableSchema;

use crate::fragments::{FragmentScan, TableFragment};
use crate::table_source::TableSource;
use crate::transaction_view::{overlay, session_pending};

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
    /// The table column (position in the [`TableSchema`]) of each column
    /// of [`Self::schema`].
    positions: Vec<usize>,
}

impl QuiverTable {
    /// Wraps a table source, as SQL sees it: its declared columns (a
    /// hidden row id left out).
    pub fn new(name: impl Into<String>, source: Arc<dyn TableSource>) -> Self {
        let table_schema = source.table_schema();
        Self {
            name: name.into(),
            schema: table_schema.visible_arrow_schema(),
            positions: table_schema.visible_positions(),
            source,
        }
    }

    /// Wraps a table source with every column, its hidden row id included
    /// (the Milvus door's view, and the key lookups of `UPDATE`/`DELETE`).
    pub fn with_hidden_columns(name: impl Into<String>, source: Arc<dyn TableSource>) -> Self {
        let table_schema = source.table_schema();
        Self {
            name: name.into(),
            schema: table_schema.arrow_schema(),
            positions: (0..table_schema.columns.len()).collect(),
            source,
        }
    }

    /// The table columns of a projection over [`TableProvider::schema`]
    /// (all of its columns when `None`).
    pub fn table_positions(&self, projection: Option<&Vec<usize>>) -> Vec<usize> {
        match projection {
            Some(projection) => projection.iter().map(|&i| self.positions[i]).collect(),
            None => self.positions.clone(),
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

    /// Every filter goes down to the fragments, which drop the rows it
    /// rules out early (and skip segments by their statistics); the filter
    /// is kept above the scan too, so what the fragments cannot evaluate
    /// still applies.
    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let (read_ts, fragments) = self.source.fragments(session_read_ts(state)).await?;
        let partitions = state.config().target_partitions().max(1);
        let table_schema = self.source.table_schema();
        let table_id = self.source.table_id();
        let fragments = match session_pending(state, table_id) {
            Some(pending) => overlay(fragments, &pending, table_id, &table_schema, read_ts),
            None => fragments,
        };
        let filter = scan_filter(state, &table_schema.storage_schema(), filters);
        // With a filter, a limit counts rows after it: the filter above
        // the scan may drop rows the fragments let through.
        let limit = if filter.is_some() || !filters.is_empty() {
            None
        } else {
            limit
        };
        Ok(Arc::new(SegmentScanExec::new(
            self.name.clone(),
            &table_schema,
            read_ts,
            fragments,
            ScanParts {
                projection: Some(self.table_positions(projection)),
                filter,
                limit,
                max_partitions: partitions,
            },
        )?))
    }
}

/// The pushed-down filters as one physical predicate over the storage
/// schema; filters that cannot be planned there are left to the filter
/// above the scan (`None` when none can).
fn scan_filter(
    state: &dyn Session,
    storage: &SchemaRef,
    filters: &[Expr],
) -> Option<Arc<dyn PhysicalExpr>> {
    let df_schema = DFSchema::try_from(storage.as_ref().clone()).ok()?;
    filters
        .iter()
        .filter_map(|filter| {
            let unqualified = filter
                .clone()
                .transform(|e| {
                    Ok(match e {
                        Expr::Column(c) => {
                            Transformed::yes(Expr::Column(Column::new_unqualified(c.name)))
                        }
                        other => Transformed::no(other),
                    })
                })
                .ok()?
                .data;
            state.create_physical_expr(unqualified, &df_schema).ok()
        })
        .reduce(|a, b| Arc::new(BinaryExpr::new(a, Operator::And, b)) as Arc<dyn PhysicalExpr>)
}

/// How a scan reads: the columns (user schema positions, all when
/// `None`), the pushed-down filter, a row limit, and at most how many
/// partitions.
#[derive(Debug, Clone)]
pub struct ScanParts {
    pub projection: Option<Vec<usize>>,
    pub filter: Option<Arc<dyn PhysicalExpr>>,
    pub limit: Option<usize>,
    pub max_partitions: usize,
}

/// Scans the visible rows of a table at one read timestamp, scattered to
/// its fragments: each partition reads parts of fragments (a fragment
/// splits into at most one part per segment), in order.
#[derive(Debug)]
pub struct SegmentScanExec {
    table: String,
    read_ts: u64,
    fragments: Vec<Arc<dyn TableFragment>>,
    projection: Vec<usize>,
    filter: Option<Arc<dyn PhysicalExpr>>,
    limit: Option<usize>,
    /// Per partition: (fragment, part, parts).
    assignment: Vec<Vec<(usize, usize, usize)>>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl SegmentScanExec {
    /// A scan of `fragments` (of a table with `table_schema`) at `read_ts`.
    pub fn new(
        table: String,
        table_schema: &TableSchema,
        read_ts: u64,
        fragments: Vec<Arc<dyn TableFragment>>,
        parts: ScanParts,
    ) -> Result<Self> {
        let user_schema = table_schema.arrow_schema();
        let projection = parts
            .projection
            .unwrap_or_else(|| (0..user_schema.fields().len()).collect());
        let schema = Arc::new(user_schema.project(&projection)?);
        let max_partitions = parts.max_partitions.max(1);
        let units: Vec<(usize, usize, usize)> = fragments
            .iter()
            .enumerate()
            .flat_map(|(f, fragment)| {
                let n = fragment.segments().clamp(1, max_partitions);
                (0..n).map(move |part| (f, part, n))
            })
            .collect();
        let n = units.len().clamp(1, max_partitions);
        let mut assignment = vec![Vec::new(); n];
        for (i, unit) in units.into_iter().enumerate() {
            assignment[i % n].push(unit);
        }
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            Partitioning::UnknownPartitioning(n),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Ok(Self {
            table,
            read_ts,
            fragments,
            projection,
            filter: parts.filter,
            limit: parts.limit,
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
            "SegmentScanExec: table={}, fragments={}, segments={}, rows={}",
            self.table,
            self.fragments.len(),
            self.fragments.iter().map(|f| f.segments()).sum::<usize>(),
            self.fragments
                .iter()
                .map(|f| f.stored_rows())
                .sum::<usize>(),
        )?;
        if let Some(filter) = &self.filter {
            write!(f, ", filter={filter}")?;
        }
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

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let units = self.assignment.get(partition).ok_or_else(|| {
            DataFusionError::Internal(format!("SegmentScanExec has no partition {partition}"))
        })?;
        let streams = units
            .iter()
            .map(|&(fragment, part, parts)| {
                self.fragments[fragment].scan(
                    FragmentScan {
                        read_ts: self.read_ts,
                        projection: self.projection.clone(),
                        filter: self.filter.clone(),
                        limit: self.limit,
                        part,
                        parts,
                        hidden_keys: None,
                    },
                    context.clone(),
                )
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            stream::iter(streams).flatten(),
        )))
    }
}
