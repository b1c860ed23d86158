//! "For each row, its k nearest": a `LATERAL` subquery whose `ORDER BY` is
//! the distance to a column of the outer row,
//!
//! ```sql
//! SELECT p.id, nn.id FROM probes p
//! CROSS JOIN LATERAL (SELECT id FROM items ORDER BY items.emb <-> p.q LIMIT 5) nn
//! ```
//!
//! DataFusion cannot run a correlated `LATERAL` subquery. The analyzer rule
//! [`LateralSearchRule`] turns the join into a [`LateralSearchNode`] with
//! two inputs: the probe rows, and the subquery with the outer column
//! replaced by [`probe_vector`] (a marker for "this probe's vector"), so
//! the optimizer plans the subquery as any search — the vector-search
//! rule makes it a `VectorSearch` over the index. At run time the search
//! is planned once and run for each probe row with that row's vector (the
//! physical node is `quiver_exec::lateral_search::LateralSearchExec`),
//! each probe's rows joined to the probe row: an index search per probe,
//! never a nested loop of exact scans. `EXPLAIN` shows the node and the
//! search under it.
//!
//! Only the shape above is rewritten: an inner (or cross) join with no
//! other condition, a subquery whose one outer reference is the query
//! vector of its first sort key under a `LIMIT`. Anything else is left to
//! DataFusion.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use arrow::datatypes::{DataType, FieldRef};
use datafusion::catalog::Session;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, DFSchemaRef, DataFusionError, Result};
use datafusion::datasource::source_as_provider;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::UserDefinedLogicalNode;
use datafusion::logical_expr::{
    ColumnarValue, Expr, Extension, Join, JoinType, LogicalPlan, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Subquery, SubqueryAlias, TableScan, UserDefinedLogicalNodeCore,
    Volatility,
};
use datafusion::optimizer::AnalyzerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::{ExtensionPlanner, PhysicalPlanner};
use quiver_exec::lateral_search::LateralSearchExec;
use quiver_exec::table::QuiverTable;

use crate::functions::metric_of_function;

/// The name of the [`probe_vector`] marker function.
pub const PROBE_VECTOR: &str = "quiver_probe_vector";

/// The marker standing for "the current probe row's vector" in a lateral
/// search's subquery: typed as the probe column, stable (never folded),
/// never evaluated — the lateral search binds each probe's vector into the
/// search it plans from the subquery.
pub fn probe_vector(field: &FieldRef) -> Expr {
    Expr::ScalarFunction(ScalarFunction::new_udf(
        Arc::new(ScalarUDF::from(ProbeVector {
            data_type: field.data_type().clone(),
            signature: Signature::exact(vec![], Volatility::Stable),
        })),
        vec![],
    ))
}

/// True when `expr` is the [`probe_vector`] marker.
pub fn is_probe_vector(expr: &Expr) -> bool {
    matches!(expr, Expr::ScalarFunction(f) if f.func.name() == PROBE_VECTOR)
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct ProbeVector {
    data_type: DataType,
    signature: Signature,
}

impl ScalarUDFImpl for ProbeVector {
    fn name(&self) -> &str {
        PROBE_VECTOR
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(self.data_type.clone())
    }
    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Err(DataFusionError::Internal(
            "a lateral search's probe vector evaluated outside the search".into(),
        ))
    }
}

/// The probe rows (`probes`) joined, each, to the rows `search` gives for
/// its vector (the value of `probe` in that row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LateralSearchNode {
    pub probes: LogicalPlan,
    pub search: LogicalPlan,
    pub probe: Column,
    pub schema: DFSchemaRef,
}

impl Hash for LateralSearchNode {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.probe.hash(state);
        self.probes.hash(state);
        self.search.hash(state);
    }
}

impl PartialOrd for LateralSearchNode {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        self.probe.partial_cmp(&other.probe)
    }
}

impl UserDefinedLogicalNodeCore for LateralSearchNode {
    fn name(&self) -> &str {
        "LateralSearch"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.probes, &self.search]
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    fn expressions(&self) -> Vec<Expr> {
        vec![Expr::Column(self.probe.clone())]
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LateralSearch: probe={}", self.probe)
    }

    fn with_exprs_and_inputs(&self, exprs: Vec<Expr>, inputs: Vec<LogicalPlan>) -> Result<Self> {
        let [probes, search]: [LogicalPlan; 2] = inputs
            .try_into()
            .map_err(|_| DataFusionError::Internal("LateralSearch has two inputs".into()))?;
        let probe = match exprs.into_iter().next() {
            Some(Expr::Column(column)) => column,
            _ => self.probe.clone(),
        };
        Ok(Self {
            probes,
            search,
            probe,
            schema: self.schema.clone(),
        })
    }
}

/// Analyzer rule introducing [`LateralSearchNode`] (see the module
/// documentation).
#[derive(Debug, Default)]
pub struct LateralSearchRule;

impl AnalyzerRule for LateralSearchRule {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up(|node| match lateral_search(&node)? {
            Some(rewritten) => Ok(Transformed::yes(rewritten)),
            None => Ok(Transformed::no(node)),
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "quiver_lateral_search"
    }
}

/// The lateral search replacing `plan`, when it is a join of the shape the
/// module documentation describes.
fn lateral_search(plan: &LogicalPlan) -> Result<Option<LogicalPlan>> {
    let LogicalPlan::Join(join) = plan else {
        return Ok(None);
    };
    if !is_cross_join(join) {
        return Ok(None);
    }
    let LogicalPlan::SubqueryAlias(alias) = join.right.as_ref() else {
        return Ok(None);
    };
    let LogicalPlan::Subquery(Subquery {
        subquery,
        outer_ref_columns,
        ..
    }) = alias.input.as_ref()
    else {
        return Ok(None);
    };
    // One outer column (named once per mention).
    let Some(Expr::OuterReferenceColumn(field, probe)) = outer_ref_columns.first() else {
        return Ok(None);
    };
    if outer_ref_columns
        .iter()
        .any(|e| !matches!(e, Expr::OuterReferenceColumn(_, c) if c == probe))
    {
        return Ok(None);
    }
    if !join.left.schema().has_column(probe) || !searched_by(subquery, probe) {
        return Ok(None);
    }
    let marker = probe_vector(field);
    let search = subquery
        .as_ref()
        .clone()
        .transform_up(|node| {
            node.map_expressions(|expr| {
                expr.transform_up(|e| match &e {
                    Expr::OuterReferenceColumn(_, column) if column == probe => {
                        Ok(Transformed::yes(marker.clone()))
                    }
                    _ => Ok(Transformed::no(e)),
                })
            })
        })?
        .data;
    let search = LogicalPlan::SubqueryAlias(SubqueryAlias::try_new(
        Arc::new(search),
        alias.alias.clone(),
    )?);
    Ok(Some(LogicalPlan::Extension(Extension {
        node: Arc::new(LateralSearchNode {
            probes: join.left.as_ref().clone(),
            search,
            probe: probe.clone(),
            schema: join.schema.clone(),
        }),
    })))
}

/// True when `subquery` scans one Quiver table and refers to `probe` only
/// as the query vector of its first sort key (a distance function's
/// argument), and that sort has a `LIMIT` above it: the shape the
/// vector-search rule plans as a search.
fn searched_by(subquery: &LogicalPlan, probe: &Column) -> bool {
    let mut in_sort_key = false;
    let mut limited = false;
    let mut quiver_scans = 0;
    let mut other_scans = 0;
    let _ = subquery.apply(|node| {
        match node {
            LogicalPlan::TableScan(scan) => {
                if scans_quiver_table(scan) {
                    quiver_scans += 1;
                } else {
                    other_scans += 1;
                }
            }
            LogicalPlan::Limit(limit) => {
                limited |= limit.fetch.is_some();
            }
            LogicalPlan::Sort(sort) => {
                limited |= sort.fetch.is_some();
                if let Some(first) = sort.expr.first() {
                    in_sort_key |= is_distance_to(&first.expr, probe)
                        || computed_below(&first.expr, &sort.input)
                            .is_some_and(|e| is_distance_to(e, probe));
                }
            }
            _ => {}
        }
        Ok(TreeNodeRecursion::Continue)
    });
    // One table scanned, a Quiver table: the vector-search rule makes it
    // a search.
    in_sort_key
        && limited
        && quiver_scans == 1
        && other_scans == 0
        && only_in_distances(subquery, probe)
}

/// True when `join` pairs every row with every row: an inner join with no
/// condition (or a `true` one).
pub(crate) fn is_cross_join(join: &Join) -> bool {
    let no_condition = join.on.is_empty()
        && join
            .filter
            .as_ref()
            .is_none_or(|f| matches!(f, Expr::Literal(v, _) if v == &true.into()));
    join.join_type == JoinType::Inner && no_condition
}

/// True when `scan` reads a Quiver table (what the vector-search rule can
/// replace by a search).
pub(crate) fn scans_quiver_table(scan: &TableScan) -> bool {
    source_as_provider(&scan.source).is_ok_and(|p| {
        let provider: &dyn std::any::Any = p.as_ref();
        provider.downcast_ref::<QuiverTable>().is_some()
    })
}

/// The expression a projection right below computes for the column
/// `expr` names (`ORDER BY d` over `SELECT emb <-> p.q AS d`).
fn computed_below<'a>(expr: &Expr, input: &'a LogicalPlan) -> Option<&'a Expr> {
    let Expr::Column(column) = expr else {
        return None;
    };
    let LogicalPlan::Projection(projection) = input else {
        return None;
    };
    let index = projection.schema.index_of_column(column).ok()?;
    projection.expr.get(index)
}

/// `f(column, outer probe)` (or its mirror) with `f` a distance function.
fn is_distance_to(expr: &Expr, probe: &Column) -> bool {
    let expr = match expr {
        Expr::Alias(alias) => alias.expr.as_ref(),
        other => other,
    };
    let Expr::ScalarFunction(ScalarFunction { func, args }) = expr else {
        return false;
    };
    if metric_of_function(func.name()).is_none() {
        return false;
    }
    let is_probe = |e: &Expr| matches!(e, Expr::OuterReferenceColumn(_, c) if c == probe);
    matches!(args.as_slice(), [Expr::Column(_), b] if is_probe(b))
        || matches!(args.as_slice(), [a, Expr::Column(_)] if is_probe(a))
}

/// True when every mention of the outer `probe` in `subquery` is the
/// query vector of a distance function.
fn only_in_distances(subquery: &LogicalPlan, probe: &Column) -> bool {
    let mut ok = true;
    let _ = subquery.apply(|node| {
        node.apply_expressions(|expr| {
            expr.apply(|e| {
                match e {
                    Expr::ScalarFunction(_) if is_distance_to(e, probe) => {
                        return Ok(TreeNodeRecursion::Jump);
                    }
                    Expr::OuterReferenceColumn(_, c) if c == probe => ok = false,
                    _ => {}
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    });
    ok
}

/// Plans [`LateralSearchNode`] as `LateralSearchExec`.
#[derive(Debug, Default)]
pub struct LateralSearchPlanner;

#[async_trait::async_trait]
impl ExtensionPlanner for LateralSearchPlanner {
    async fn plan_extension(
        &self,
        _planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        _session: &dyn Session,
        _planning_ctx: &PhysicalPlanningContext,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let Some(node) = node.as_any().downcast_ref::<LateralSearchNode>() else {
            return Ok(None);
        };
        let ([probes, search], [probes_logical, _]) = (physical_inputs, logical_inputs) else {
            return Err(DataFusionError::Internal(
                "LateralSearch has two inputs".into(),
            ));
        };
        let probe = probes_logical.schema().index_of_column(&node.probe)?;
        let schema = Arc::new(node.schema.as_arrow().clone());
        Ok(Some(Arc::new(LateralSearchExec::try_new(
            probes.clone(),
            search.clone(),
            probe,
            schema,
        )?)))
    }
}
