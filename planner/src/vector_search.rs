//! The vector-search rewrite.
//!
//! `SELECT ... FROM t [WHERE p] ORDER BY col <op> <constant> LIMIT k` plans
//! as `Sort(fetch=k) → [Projection] → [Filter p] → TableScan t`. The
//! [`VectorSearchRule`] replaces the `Filter → TableScan` part with a
//! [`VectorSearchNode`] that returns only the k nearest visible rows that pass
//! `p`; the sort above then orders those k rows (with the primary key added
//! as tie-breaker). [`VectorSearchPlanner`] turns the node into
//! [`VectorSearchExec`].

use std::any::Any;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, DFSchema, DFSchemaRef, DataFusionError, Result, TableReference};
use datafusion::datasource::source_as_provider;
use datafusion::execution::context::ExecutionProps;
use datafusion::execution::context::QueryPlanner;
use datafusion::logical_expr::expr::{ScalarFunction, Sort as SortExpr};
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{
    Expr, Extension, Filter, LogicalPlan, Projection, Sort, UserDefinedLogicalNode,
    UserDefinedLogicalNodeCore,
};
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};
use datafusion::physical_expr::{create_physical_expr, PhysicalExpr};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::{DefaultPhysicalPlanner, ExtensionPlanner, PhysicalPlanner};
use quiver_common::limits::MAX_TOP_K;
use quiver_exec::table::{session_read_ts, session_search_settings, QuiverTable};
use quiver_exec::table_source::TableSource;
use quiver_exec::transaction_view::session_pending;
use quiver_exec::vector_search::{VectorQuery, VectorSearchExec};
use quiver_index::{Metric, SearchParams};

use crate::functions::metric_of_function;
use crate::vector_value::scalar_vector;

/// Logical top-k vector search over one table.
#[derive(Debug, Clone)]
pub struct VectorSearchNode {
    pub table_name: TableReference,
    pub source: Arc<dyn TableSource>,
    pub column: usize,
    /// The query vector: a literal, or a `$n` placeholder of a prepared
    /// statement (bound before physical planning, so an optimized plan can
    /// be cached and reused with new parameters).
    pub query: Expr,
    pub metric: Metric,
    pub k: usize,
    /// Predicates over the table's columns, all of which a row must pass.
    pub filters: Vec<Expr>,
    /// User-schema column indices returned (the replaced scan's projection).
    pub projection: Vec<usize>,
    /// Also output each row's distance as a last column, [`DISTANCE_COLUMN`]
    /// (the sort above then orders by it instead of recomputing it, so the
    /// query vector appears nowhere else in the plan).
    pub emit_distance: bool,
    pub schema: DFSchemaRef,
}

/// The distance column a [`VectorSearchNode`] can emit.
pub const DISTANCE_COLUMN: &str = "__quiver_distance";

impl PartialEq for VectorSearchNode {
    fn eq(&self, other: &Self) -> bool {
        self.table_name == other.table_name
            && self.column == other.column
            && self.query == other.query
            && self.metric == other.metric
            && self.k == other.k
            && self.filters == other.filters
            && self.projection == other.projection
            && self.emit_distance == other.emit_distance
    }
}

impl Eq for VectorSearchNode {}

impl PartialOrd for VectorSearchNode {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        self.k.partial_cmp(&other.k)
    }
}

impl Hash for VectorSearchNode {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.table_name.hash(state);
        self.column.hash(state);
        self.k.hash(state);
        self.projection.hash(state);
    }
}

impl UserDefinedLogicalNodeCore for VectorSearchNode {
    fn name(&self) -> &str {
        "VectorSearch"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![]
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    fn expressions(&self) -> Vec<Expr> {
        let mut exprs = self.filters.clone();
        exprs.push(self.query.clone());
        exprs
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let column = self
            .source
            .table_schema()
            .columns
            .get(self.column)
            .map(|c| c.name.clone())
            .unwrap_or_default();
        write!(
            f,
            "VectorSearch: table={}, column={}, metric={}, k={}",
            self.table_name,
            column,
            self.metric.function_name(),
            self.k
        )?;
        if !self.filters.is_empty() {
            let filters: Vec<String> = self.filters.iter().map(|e| e.to_string()).collect();
            write!(f, ", filter=[{}]", filters.join(", "))?;
        }
        Ok(())
    }

    fn with_exprs_and_inputs(
        &self,
        mut exprs: Vec<Expr>,
        _inputs: Vec<LogicalPlan>,
    ) -> Result<Self> {
        let mut node = self.clone();
        node.query = exprs
            .pop()
            .ok_or_else(|| DataFusionError::Internal("VectorSearch lost its query".into()))?;
        node.filters = exprs;
        Ok(node)
    }
}

/// Optimizer rule introducing [`VectorSearchNode`].
#[derive(Debug, Default)]
pub struct VectorSearchRule;

/// A distance call `f(column, constant)` found as a sort key.
struct DistanceKey {
    metric: Metric,
    column: Column,
    /// A vector literal or a placeholder.
    query: Expr,
    /// The literal's dimension (`None` for a placeholder).
    dim: Option<usize>,
}

fn distance_key(expr: &Expr) -> Option<DistanceKey> {
    let expr = match expr {
        Expr::Alias(alias) => alias.expr.as_ref(),
        other => other,
    };
    let Expr::ScalarFunction(ScalarFunction { func, args }) = expr else {
        return None;
    };
    let metric = metric_of_function(func.name())?;
    let [a, b] = args.as_slice() else {
        return None;
    };
    let (column, constant) = match (a, b) {
        (Expr::Column(c), other) | (other, Expr::Column(c)) => (c.clone(), other),
        _ => return None,
    };
    match constant {
        Expr::Literal(value, _) => {
            let vector = scalar_vector(value).ok().flatten()?;
            Some(DistanceKey {
                metric,
                column,
                query: constant.clone(),
                dim: Some(vector.len()),
            })
        }
        // `$1`, `$1::vector`: constant once the statement's parameters are bound.
        // A subquery (`(SELECT v FROM t WHERE id = 1)`) is left to the exact
        // sort: its value exists only once the plan runs.
        other
            if other.column_refs().is_empty()
                && !other.is_volatile()
                && !contains_subquery(other) =>
        {
            Some(DistanceKey {
                metric,
                column,
                query: constant.clone(),
                dim: None,
            })
        }
        _ => None,
    }
}

fn contains_subquery(expr: &Expr) -> bool {
    expr.exists(|e| {
        Ok(matches!(
            e,
            Expr::ScalarSubquery(_) | Expr::Exists(_) | Expr::InSubquery(_)
        ))
    })
    .unwrap_or(true)
}

/// Resolves a sort expression through the projections below it (a column
/// of a projection is the expression that projection computes; the common
/// subexpression rule puts a distance under a name one projection lower).
fn resolve_sort_expr(expr: &Expr, plan: &LogicalPlan) -> Option<DistanceKey> {
    if let Some(key) = distance_key(expr) {
        return Some(key);
    }
    let Expr::Column(col) = unaliased(expr) else {
        return None;
    };
    let LogicalPlan::Projection(Projection {
        expr: exprs,
        schema,
        input,
        ..
    }) = plan
    else {
        return None;
    };
    let index = schema.index_of_column(col).ok()?;
    resolve_sort_expr(exprs.get(index)?, input)
}

fn unaliased(expr: &Expr) -> &Expr {
    match expr {
        Expr::Alias(alias) => unaliased(&alias.expr),
        other => other,
    }
}

/// Finds `[Projection]* → [Filter]* → TableScan(QuiverTable)` and returns the replacement.
fn replace_scan(plan: &LogicalPlan, key: &DistanceKey, k: usize) -> Result<Option<LogicalPlan>> {
    match plan {
        LogicalPlan::Projection(p) => {
            let Some(new_input) = replace_scan(&p.input, key, k)? else {
                return Ok(None);
            };
            Ok(Some(
                plan.with_new_exprs(plan.expressions(), vec![new_input])?,
            ))
        }
        LogicalPlan::Filter(_) | LogicalPlan::TableScan(_) => {
            let mut filters = Vec::new();
            let mut node = plan;
            while let LogicalPlan::Filter(Filter {
                predicate, input, ..
            }) = node
            {
                filters.push(predicate.clone());
                node = input.as_ref();
            }
            let LogicalPlan::TableScan(scan) = node else {
                return Ok(None);
            };
            if scan.fetch.is_some() {
                return Ok(None);
            }
            let provider = source_as_provider(&scan.source)?;
            let provider_any: &dyn Any = provider.as_ref();
            let Some(table) = provider_any.downcast_ref::<QuiverTable>() else {
                return Ok(None);
            };
            let table_schema = table.source().table_schema();
            let Some(column) = table_schema.column_index(&key.column.name) else {
                return Ok(None);
            };
            let Some(dim) = quiver_common::schema::vector_dim(
                &table_schema.columns[column].column_type.arrow_type(),
            ) else {
                return Ok(None);
            };
            if key.dim.is_some_and(|d| d != dim) {
                return Ok(None);
            }
            // A filter the scan took (inexactly) is also still above it.
            for filter in &scan.filters {
                if !filters.contains(filter) {
                    filters.push(filter.clone());
                }
            }
            let projection = table.table_positions(scan.projection.as_ref());
            let node = VectorSearchNode {
                table_name: scan.table_name.clone(),
                source: table.source().clone(),
                column,
                query: key.query.clone(),
                metric: key.metric,
                k,
                filters,
                projection,
                emit_distance: false,
                schema: scan.projected_schema.clone(),
            };
            Ok(Some(LogicalPlan::Extension(Extension {
                node: Arc::new(node),
            })))
        }
        _ => Ok(None),
    }
}

fn rewrite_sort(sort: &Sort) -> Result<Option<LogicalPlan>> {
    let Some(k) = sort.fetch else {
        return Ok(None);
    };
    if k == 0 || k > MAX_TOP_K {
        return Ok(None);
    }
    let Some(first) = sort.expr.first() else {
        return Ok(None);
    };
    if !first.asc {
        return Ok(None);
    }
    let Some(key) = resolve_sort_expr(&first.expr, &sort.input) else {
        return Ok(None);
    };
    let Some(new_input) = replace_scan(&sort.input, &key, k)? else {
        return Ok(None);
    };
    // `ORDER BY <distance call> LIMIT k` straight over the search: sort by
    // the distance the search computed, then drop that column again.
    if distance_key(&first.expr).is_some() {
        if let Some(plan) = sort_under_column_projections(sort, &new_input)? {
            return Ok(Some(plan));
        }
    }
    // `SELECT ..., col <op> q AS d ... ORDER BY d LIMIT k`: the projected
    // distance is the one the search computed.
    if let Some(plan) = project_emitted_distance(sort, &new_input, &key)? {
        return Ok(Some(plan));
    }
    Ok(Some(sort_breaking_ties(
        sort.expr.clone(),
        new_input,
        sort.fetch,
    )))
}

/// `Sort(exprs; fetch)` over `input`, a lone sort key followed by the
/// primary key (when `input` outputs it) so distance ties break as in the
/// exact answer.
fn sort_breaking_ties(
    mut exprs: Vec<SortExpr>,
    input: LogicalPlan,
    fetch: Option<usize>,
) -> LogicalPlan {
    if exprs.len() == 1 {
        if let Some(pk) = primary_key_column(&input) {
            exprs.push(SortExpr::new(Expr::Column(pk), true, false));
        }
    }
    LogicalPlan::Sort(Sort {
        expr: exprs,
        input: Arc::new(input),
        fetch,
    })
}

/// `Sort(d, pk; fetch) ← Projection(..., distance AS d, ...) ← VectorSearch(+distance)`:
/// every distance call of the projection (and of the sort) that is the
/// search's own becomes the distance the search emits, so the query vector
/// appears only in the search (a prepared search then reuses its physical
/// plan) and no distance is computed twice. `None` unless the projection
/// right above the search computes the search's distance.
fn project_emitted_distance(
    sort: &Sort,
    input: &LogicalPlan,
    key: &DistanceKey,
) -> Result<Option<LogicalPlan>> {
    let is_search_distance = |e: &Expr| {
        distance_key(e).is_some_and(|d| {
            d.metric == key.metric && d.column.name == key.column.name && d.query == key.query
        })
    };
    let Some((projected, distance_output)) = emit_into_projections(input, &is_search_distance)?
    else {
        return Ok(None);
    };
    // The sort reads the projected distance instead of computing it again.
    let mut sort_exprs = Vec::with_capacity(sort.expr.len() + 1);
    for sort_expr in &sort.expr {
        let expr = match &distance_output {
            Some(column) => {
                replace_calls(
                    &sort_expr.expr,
                    &is_search_distance,
                    &Expr::Column(column.clone()),
                )?
                .data
            }
            None => sort_expr.expr.clone(),
        };
        sort_exprs.push(SortExpr::new(expr, sort_expr.asc, sort_expr.nulls_first));
    }
    Ok(Some(sort_breaking_ties(sort_exprs, projected, sort.fetch)))
}

/// `[Projection]+ ← VectorSearch` with the search emitting its distance and
/// the lowest projection reading it wherever it computed that distance;
/// also the top projection's column that is the bare distance, if one is.
/// `None` when no projection right above the search computes it.
fn emit_into_projections(
    plan: &LogicalPlan,
    is_search_distance: &dyn Fn(&Expr) -> bool,
) -> Result<Option<(LogicalPlan, Option<Column>)>> {
    let LogicalPlan::Projection(projection) = plan else {
        return Ok(None);
    };
    if let LogicalPlan::Projection(_) = projection.input.as_ref() {
        let Some((input, below)) = emit_into_projections(&projection.input, is_search_distance)?
        else {
            return Ok(None);
        };
        let output = below.and_then(|below| {
            projection
                .expr
                .iter()
                .zip(projection.schema.iter())
                .find(|(e, _)| matches!(unaliased(e), Expr::Column(c) if c.name == below.name))
                .map(|(_, (_, field))| Column::new_unqualified(field.name()))
        });
        let rebuilt = plan.with_new_exprs(plan.expressions(), vec![input])?;
        return Ok(Some((rebuilt, output)));
    }
    let LogicalPlan::Extension(ext) = projection.input.as_ref() else {
        return Ok(None);
    };
    let Some(node) = ext.node.as_any().downcast_ref::<VectorSearchNode>() else {
        return Ok(None);
    };
    let emitted = Expr::Column(Column::new_unqualified(DISTANCE_COLUMN));
    let mut exprs = Vec::with_capacity(projection.expr.len());
    let mut output = None;
    let mut replaced = false;
    for (expr, (_, field)) in projection.expr.iter().zip(projection.schema.iter()) {
        let new = replace_calls(expr, is_search_distance, &emitted)?;
        if !new.transformed {
            exprs.push(expr.clone());
            continue;
        }
        replaced = true;
        if output.is_none() && is_search_distance(expr) {
            output = Some(Column::new_unqualified(field.name()));
        }
        exprs.push(new.data.unalias().alias(field.name()));
    }
    if !replaced {
        return Ok(None);
    }
    let searched = LogicalPlan::Extension(Extension {
        node: Arc::new(with_emitted_distance(node)?),
    });
    let projected = LogicalPlan::Projection(Projection::try_new(exprs, Arc::new(searched))?);
    Ok(Some((projected, output)))
}

/// `expr` with every subexpression `matches` accepts replaced by `by`.
fn replace_calls(
    expr: &Expr,
    matches: &dyn Fn(&Expr) -> bool,
    by: &Expr,
) -> Result<Transformed<Expr>> {
    expr.clone().transform_down(|sub| {
        Ok(if matches(&sub) {
            Transformed::new(by.clone(), true, TreeNodeRecursion::Jump)
        } else {
            Transformed::no(sub)
        })
    })
}

/// `node` emitting each row's distance as a last column, [`DISTANCE_COLUMN`].
fn with_emitted_distance(node: &VectorSearchNode) -> Result<VectorSearchNode> {
    let mut fields: Vec<(Option<TableReference>, Arc<arrow::datatypes::Field>)> = node
        .schema
        .iter()
        .map(|(q, f)| (q.cloned(), f.clone()))
        .collect();
    fields.push((
        None,
        Arc::new(arrow::datatypes::Field::new(
            DISTANCE_COLUMN,
            arrow::datatypes::DataType::Float64,
            true,
        )),
    ));
    let schema = Arc::new(DFSchema::new_with_metadata(
        fields,
        node.schema.metadata().clone(),
    )?);
    Ok(VectorSearchNode {
        emit_distance: true,
        schema,
        ..node.clone()
    })
}

/// `Projection(original columns) ← Sort(distance, pk; fetch) ← VectorSearch(+distance)`.
/// [`sort_by_emitted_distance`] under the projections of plain columns
/// between the sort and the search (a filter's column the output drops):
/// they pass the sort's other keys through, so the sort goes below them and
/// the distance is never computed again above the search (a lateral
/// search's probe vector exists only inside it). `None` for another shape.
fn sort_under_column_projections(sort: &Sort, input: &LogicalPlan) -> Result<Option<LogicalPlan>> {
    match input {
        LogicalPlan::Extension(ext) => match ext.node.as_any().downcast_ref::<VectorSearchNode>() {
            Some(node) => sort_by_emitted_distance(sort, node).map(Some),
            None => Ok(None),
        },
        LogicalPlan::Projection(projection)
            if projection.expr.iter().all(|e| matches!(e, Expr::Column(_))) =>
        {
            let Some(sorted) = sort_under_column_projections(sort, &projection.input)? else {
                return Ok(None);
            };
            Ok(Some(LogicalPlan::Projection(Projection::try_new(
                projection.expr.clone(),
                Arc::new(sorted),
            )?)))
        }
        _ => Ok(None),
    }
}

fn sort_by_emitted_distance(sort: &Sort, node: &VectorSearchNode) -> Result<LogicalPlan> {
    let original: Vec<Expr> = node
        .schema
        .columns()
        .into_iter()
        .map(Expr::Column)
        .collect();
    let searched = LogicalPlan::Extension(Extension {
        node: Arc::new(with_emitted_distance(node)?),
    });
    let first = &sort.expr[0];
    let mut exprs = vec![SortExpr::new(
        Expr::Column(Column::new_unqualified(DISTANCE_COLUMN)),
        true,
        first.nulls_first,
    )];
    exprs.extend(sort.expr.iter().skip(1).cloned());
    let sorted = sort_breaking_ties(exprs, searched, sort.fetch);
    Ok(LogicalPlan::Projection(Projection::try_new(
        original,
        Arc::new(sorted),
    )?))
}

/// The primary-key column of the vector search below, if the plan outputs it.
fn primary_key_column(plan: &LogicalPlan) -> Option<Column> {
    let mut found = None;
    plan.apply(|node| {
        if let LogicalPlan::Extension(ext) = node {
            if let Some(vs) = ext.node.as_any().downcast_ref::<VectorSearchNode>() {
                let schema = vs.source.table_schema();
                found = Some((vs.table_name.clone(), schema.pk().name.clone()));
            }
        }
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    })
    .ok()?;
    let (table, pk) = found?;
    let column = Column::new(Some(table), pk);
    plan.schema().has_column(&column).then_some(column)
}

impl OptimizerRule for VectorSearchRule {
    fn name(&self) -> &str {
        "quiver_vector_search"
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        plan.transform_down(|node| {
            if let LogicalPlan::Sort(sort) = &node {
                if let Some(new) = rewrite_sort(sort)? {
                    return Ok(Transformed::yes(new));
                }
            }
            Ok(Transformed::no(node))
        })
    }
}

/// Plans [`VectorSearchNode`] as [`VectorSearchExec`].
#[derive(Debug, Default)]
pub struct VectorSearchPlanner;

#[async_trait]
impl ExtensionPlanner for VectorSearchPlanner {
    async fn plan_extension(
        &self,
        planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        _logical_inputs: &[&LogicalPlan],
        _physical_inputs: &[Arc<dyn ExecutionPlan>],
        session: &dyn Session,
        planning_ctx: &PhysicalPlanningContext,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let Some(node) = node.as_any().downcast_ref::<VectorSearchNode>() else {
            return Ok(None);
        };
        let storage = node.source.table_schema().storage_schema();
        let df_schema = DFSchema::try_from_qualified_schema(node.table_name.clone(), &storage)?;
        let filter: Option<Arc<dyn PhysicalExpr>> =
            match node.filters.iter().cloned().reduce(|a, b| a.and(b)) {
                Some(expr) => {
                    Some(planner.create_physical_expr(&expr, &df_schema, session, planning_ctx)?)
                }
                None => None,
            };
        let knobs = session_search_settings(session);
        // A lateral search's vector comes with each probe row.
        let vector = if crate::lateral_search::is_probe_vector(&node.query) {
            Vec::new()
        } else {
            let vector = evaluate_query_vector(&node.query, session.execution_props())?;
            check_query_dimension(node, &vector)?;
            vector
        };
        let exec = VectorSearchExec::new(
            node.table_name.to_string(),
            node.source.clone(),
            session_read_ts(session),
            VectorQuery {
                column: node.column,
                vector,
                metric: node.metric,
                k: node.k,
                params: SearchParams {
                    ef: Some(knobs.ef_search),
                    nprobe: Some(knobs.probes),
                    ..SearchParams::default()
                },
                rerank: knobs.rerank,
            },
            filter,
            node.projection.clone(),
        )?
        .with_pending(session_pending(session, node.source.table_id()))
        .with_distance_column(node.emit_distance)?;
        Ok(Some(Arc::new(exec)))
    }
}

/// The query planner: DataFusion's, plus Quiver's extension nodes.
#[derive(Debug, Default)]
pub struct QuiverQueryPlanner;

#[async_trait]
impl QueryPlanner for QuiverQueryPlanner {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session: &dyn Session,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let planner = DefaultPhysicalPlanner::with_extension_planners(vec![
            Arc::new(VectorSearchPlanner),
            Arc::new(crate::lateral_search::LateralSearchPlanner),
        ]);
        planner.create_physical_plan(logical_plan, session).await
    }
}

/// The query vector of a search: a literal, or a bound parameter perhaps
/// under a cast (evaluated once).
pub fn evaluate_query_vector(query: &Expr, props: &ExecutionProps) -> Result<Vec<f32>> {
    let vector = match query {
        Expr::Literal(value, _) => scalar_vector(value)?,
        other => {
            let empty = Arc::new(arrow::datatypes::Schema::empty());
            let df_empty = DFSchema::try_from(empty.as_ref().clone())?;
            let expr =
                create_physical_expr(other, &df_empty, props, &PhysicalPlanningContext::default())?;
            let batch = arrow::array::RecordBatch::try_new_with_options(
                empty,
                vec![],
                &arrow::array::RecordBatchOptions::new().with_row_count(Some(1)),
            )?;
            let value = expr.evaluate(&batch)?.into_array(1)?;
            scalar_vector(&datafusion::common::ScalarValue::try_from_array(&value, 0)?)?
        }
    };
    vector.ok_or_else(|| DataFusionError::Execution("the query vector of a search is NULL".into()))
}

/// Fails unless `vector` has the dimension of the searched column.
fn check_query_dimension(node: &VectorSearchNode, vector: &[f32]) -> Result<()> {
    let dim = quiver_common::schema::vector_dim(
        &node.source.table_schema().columns[node.column]
            .column_type
            .arrow_type(),
    );
    match dim.filter(|d| *d != vector.len()) {
        Some(dim) => Err(DataFusionError::Execution(format!(
            "different vector dimensions {dim} and {}",
            vector.len()
        ))),
        None => Ok(()),
    }
}

/// The query vector of `node` for one execution's parameters (a cached
/// prepared search re-run without planning), checked against the column's
/// dimension.
pub fn bound_query_vector(
    node: &VectorSearchNode,
    params: &datafusion::common::ParamValues,
) -> Result<Vec<f32>> {
    let vector = match bound_vector_directly(&node.query, params) {
        Some(vector) => vector,
        None => {
            let bound = bind_placeholders(node.query.clone(), params)?.data;
            evaluate_query_vector(&bound, &ExecutionProps::new())?
        }
    };
    check_query_dimension(node, &vector)?;
    Ok(vector)
}

/// The common case of [`bound_query_vector`] without expression planning:
/// the query is `$n` or `to_vector($n)` and `$n` is bound to a vector of
/// float4 without NULL elements, NaN or infinity (what the Postgres door
/// decodes a `vector` parameter to). `None` sends every other form through
/// the general evaluation, which also words its errors.
fn bound_vector_directly(
    query: &Expr,
    params: &datafusion::common::ParamValues,
) -> Option<Vec<f32>> {
    let placeholder = match query {
        Expr::Placeholder(p) => p,
        Expr::ScalarFunction(ScalarFunction { func, args })
            if func.name() == "to_vector" && args.len() == 1 =>
        {
            match &args[0] {
                Expr::Placeholder(p) => p,
                _ => return None,
            }
        }
        _ => return None,
    };
    let value = params.get_placeholders_with_values(&placeholder.id).ok()?;
    let datafusion::common::ScalarValue::FixedSizeList(list) = &value.value else {
        return None;
    };
    use arrow::array::Array;
    if list.len() != 1 || list.null_count() > 0 {
        return None;
    }
    let row = list.value(0);
    let values = row.as_any().downcast_ref::<arrow::array::Float32Array>()?;
    if values.null_count() > 0 {
        return None;
    }
    let vector = values.values().to_vec();
    quiver_common::vector::validate(&vector).ok()?;
    Some(vector)
}

/// The plan's only [`VectorSearchNode`], when it has exactly one.
pub fn single_search_node(plan: &LogicalPlan) -> Option<VectorSearchNode> {
    let mut found = Vec::new();
    let _ = plan.apply(|node| {
        if let LogicalPlan::Extension(ext) = node {
            if let Some(search) = ext.node.as_any().downcast_ref::<VectorSearchNode>() {
                found.push(search.clone());
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    match found.len() {
        1 => found.pop(),
        _ => None,
    }
}

/// Replaces the `$n` placeholders of `expr` with their bound values.
fn bind_placeholders(
    expr: Expr,
    params: &datafusion::common::ParamValues,
) -> Result<Transformed<Expr>> {
    expr.transform_up(|e| {
        if let Expr::Placeholder(placeholder) = e {
            let (value, metadata) = params
                .get_placeholders_with_values(&placeholder.id)?
                .into_inner();
            Ok(Transformed::yes(Expr::Literal(value, metadata)))
        } else {
            Ok(Transformed::no(e))
        }
    })
}

/// Binds the `$n` parameters inside the query vectors of the plan's
/// [`VectorSearchNode`]s. Done before [`LogicalPlan::with_param_values`]
/// binds the rest, which would otherwise render the whole bound vector as
/// text to preserve the expression's name.
pub fn bind_search_vectors(
    plan: LogicalPlan,
    params: &datafusion::common::ParamValues,
) -> Result<LogicalPlan> {
    plan.transform_up(|node| {
        let LogicalPlan::Extension(ext) = &node else {
            return Ok(Transformed::no(node));
        };
        let Some(search) = ext.node.as_any().downcast_ref::<VectorSearchNode>() else {
            return Ok(Transformed::no(node));
        };
        let bound = bind_placeholders(search.query.clone(), params)?;
        if !bound.transformed {
            return Ok(Transformed::no(node));
        }
        Ok(Transformed::yes(LogicalPlan::Extension(Extension {
            node: Arc::new(VectorSearchNode {
                query: bound.data,
                ..search.clone()
            }),
        })))
    })
    .map(|t| t.data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{FixedSizeListArray, Float32Array};
    use arrow::datatypes::{DataType, Field};
    use datafusion::common::{ParamValues, ScalarValue};
    use datafusion::logical_expr::expr::Placeholder;
    use datafusion::logical_expr::ScalarUDF;

    fn vector_param(values: Vec<Option<f32>>) -> ParamValues {
        let dim = values.len() as i32;
        let list = FixedSizeListArray::new(
            Arc::new(Field::new_list_field(DataType::Float32, true)),
            dim,
            Arc::new(Float32Array::from(values)),
            None,
        );
        ParamValues::List(vec![ScalarValue::FixedSizeList(Arc::new(list)).into()])
    }

    #[test]
    fn a_bound_vector_is_read_without_planning_only_when_clean() {
        let placeholder = Expr::Placeholder(Placeholder::new_with_field("$1".into(), None));
        let to_vector = Expr::ScalarFunction(ScalarFunction {
            func: Arc::new(ScalarUDF::from(crate::functions::ToVector::default())),
            args: vec![placeholder.clone()],
        });
        let clean = vector_param(vec![Some(1.0), Some(-2.5)]);
        for query in [&placeholder, &to_vector] {
            assert_eq!(bound_vector_directly(query, &clean), Some(vec![1.0, -2.5]));
        }
        // Everything else takes the general path, which words the errors.
        for bad in [
            vector_param(vec![Some(f32::NAN), Some(1.0)]),
            vector_param(vec![Some(f32::INFINITY), Some(1.0)]),
            vector_param(vec![None, Some(1.0)]),
            ParamValues::List(vec![ScalarValue::Utf8(Some("[1,2]".into())).into()]),
        ] {
            assert_eq!(bound_vector_directly(&to_vector, &bad), None);
        }
        let literal = Expr::Literal(ScalarValue::Int64(Some(1)), None);
        assert_eq!(bound_vector_directly(&literal, &clean), None);
    }
}
