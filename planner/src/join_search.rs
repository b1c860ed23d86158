//! The nearest rows to vectors another relation gives, written as a join:
//!
//! ```sql
//! WITH q AS (SELECT emb FROM items WHERE id = 7)
//! SELECT items.id FROM items, q ORDER BY items.emb <-> q.emb LIMIT 10
//! ```
//!
//! DataFusion plans it as a `Sort` (with the limit as its fetch) over a
//! cross join: every table row paired with every query row, every
//! distance computed — an exact scan. [`JoinSearchRule`] (an optimizer
//! rule, run before the vector-search rule) makes the cross join a
//! [`LateralSearchNode`]: the other side's rows are the probes, and each
//! probe's `k` nearest table rows are found by a search (which the
//! vector-search rule then plans over the index). The sort and limit stay
//! above it: the `k` nearest pairs overall are among the `k` nearest of
//! each probe, so the answer is the one the cross join gives, whatever the
//! number of probe rows (one for a CTE of one row or a scalar-like
//! subquery).
//!
//! Only this shape is rewritten: `Sort` with a fetch of `k` whose first
//! key, ascending, is a distance between a column of a side that scans one
//! Quiver table (scans, filters, projections and aliases only) and a
//! column of the other side, over an inner join with no condition
//! (directly, or through a projection of columns).

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, ExprSchema, Result};
use datafusion::logical_expr::expr::{ScalarFunction, Sort as SortExpr};
use datafusion::logical_expr::{Expr, Extension, Limit, LogicalPlan, Projection, Sort};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};

use crate::functions::metric_of_function;
use crate::lateral_search::{is_cross_join, probe_vector, scans_quiver_table, LateralSearchNode};
use crate::vector_search::{VectorSearchNode, VectorSearchRule};

/// Optimizer rule turning a cross join sorted by distance into a lateral
/// search (see the module documentation).
#[derive(Debug, Default)]
pub struct JoinSearchRule;

impl OptimizerRule for JoinSearchRule {
    fn name(&self) -> &str {
        "quiver_join_search"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::TopDown)
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        match join_search(&plan, config)? {
            Some(rewritten) => Ok(Transformed::yes(rewritten)),
            None => Ok(Transformed::no(plan)),
        }
    }
}

/// Which side of the join is the searched table.
#[derive(Clone, Copy, PartialEq, Eq)]
enum TableSide {
    Left,
    Right,
}

/// The `Sort` over a lateral search replacing `plan`, when `plan` has the
/// shape of the module documentation.
fn join_search(plan: &LogicalPlan, config: &dyn OptimizerConfig) -> Result<Option<LogicalPlan>> {
    let LogicalPlan::Sort(sort) = plan else {
        return Ok(None);
    };
    let Some(k) = sort.fetch else {
        return Ok(None);
    };
    // The join, directly under the sort or under a projection of its
    // columns (which the optimizer puts there).
    let (join, columns_above) = match sort.input.as_ref() {
        LogicalPlan::Join(join) => (join, None),
        LogicalPlan::Projection(projection)
            if projection.expr.iter().all(|e| matches!(e, Expr::Column(_))) =>
        {
            match projection.input.as_ref() {
                LogicalPlan::Join(join) => (join, Some(projection.expr.clone())),
                _ => return Ok(None),
            }
        }
        _ => return Ok(None),
    };
    if !is_cross_join(join) {
        return Ok(None);
    }
    let Some(first) = sort.expr.first() else {
        return Ok(None);
    };
    if !first.asc {
        return Ok(None);
    }
    // The first way round whose search the vector-search rule plans.
    let mut planned = None;
    for (function, table_column, probe, side) in
        distances_across(&first.expr, &join.left, &join.right)
    {
        let (table_plan, probes) = match side {
            TableSide::Left => (join.left.as_ref(), join.right.as_ref()),
            TableSide::Right => (join.right.as_ref(), join.left.as_ref()),
        };
        if !scans_one_quiver_table(table_plan) {
            continue;
        }
        // Each probe's k nearest table rows, by the same distance.
        let probe_field = probes.schema().field_from_column(&probe)?.clone();
        let marker = probe_vector(&probe_field);
        let args = match function.args.as_slice() {
            [Expr::Column(a), _] if a == &table_column => {
                vec![Expr::Column(table_column.clone()), marker]
            }
            _ => vec![marker, Expr::Column(table_column.clone())],
        };
        let distance = Expr::ScalarFunction(ScalarFunction::new_udf(function.func.clone(), args));
        let search = LogicalPlan::Limit(Limit {
            skip: None,
            fetch: Some(Box::new(Expr::Literal((k as i64).into(), None))),
            input: Arc::new(LogicalPlan::Sort(Sort {
                expr: vec![SortExpr::new(distance, true, first.nulls_first)],
                input: Arc::new(table_plan.clone()),
                fetch: Some(k),
            })),
        });
        let search = VectorSearchRule.rewrite(search, config)?.data;
        if contains_vector_search(&search) {
            planned = Some((search, table_plan, probes, probe));
            break;
        }
    }
    let Some((search, table_plan, probes, probe)) = planned else {
        return Ok(None);
    };
    let mut fields = probes.schema().as_ref().clone();
    fields.merge(table_plan.schema());
    let lateral = LogicalPlan::Extension(Extension {
        node: Arc::new(LateralSearchNode {
            probes: probes.clone(),
            search,
            probe,
            schema: Arc::new(fields),
        }),
    });
    // The join's columns in the join's order.
    let columns = join
        .schema
        .columns()
        .into_iter()
        .map(Expr::Column)
        .collect::<Vec<_>>();
    let mut reordered = LogicalPlan::Projection(Projection::try_new(columns, Arc::new(lateral))?);
    if let Some(columns) = columns_above {
        reordered = LogicalPlan::Projection(Projection::try_new(columns, Arc::new(reordered))?);
    }
    Ok(Some(LogicalPlan::Sort(Sort {
        expr: sort.expr.clone(),
        input: Arc::new(reordered),
        fetch: sort.fetch,
    })))
}

/// `f(a, b)` with `f` a distance function and its arguments a column of
/// each side: for each way round (the left side as the table first, as in
/// `FROM items, q`), the call, the table side's column, the other side's
/// column and which side is the table.
fn distances_across(
    expr: &Expr,
    left: &LogicalPlan,
    right: &LogicalPlan,
) -> Vec<(ScalarFunction, Column, Column, TableSide)> {
    let expr = match expr {
        Expr::Alias(alias) => alias.expr.as_ref(),
        other => other,
    };
    let Expr::ScalarFunction(function) = expr else {
        return Vec::new();
    };
    if metric_of_function(function.func.name()).is_none() {
        return Vec::new();
    }
    let [Expr::Column(a), Expr::Column(b)] = function.args.as_slice() else {
        return Vec::new();
    };
    let in_left = |c: &Column| left.schema().has_column(c);
    let in_right = |c: &Column| right.schema().has_column(c);
    let mut ways = Vec::new();
    for (x, y) in [(a, b), (b, a)] {
        if in_left(x) && in_right(y) {
            ways.push((function.clone(), x.clone(), y.clone(), TableSide::Left));
        }
    }
    for (x, y) in [(a, b), (b, a)] {
        if in_right(x) && in_left(y) {
            ways.push((function.clone(), x.clone(), y.clone(), TableSide::Right));
        }
    }
    ways
}

/// True when `plan` holds a vector search node.
fn contains_vector_search(plan: &LogicalPlan) -> bool {
    plan.exists(|node| {
        Ok(matches!(node, LogicalPlan::Extension(e)
            if e.node.as_any().downcast_ref::<VectorSearchNode>().is_some()))
    })
    .unwrap_or(false)
}

/// True when `plan` reads one Quiver table through scans, filters,
/// projections and aliases only (what a search can replace).
fn scans_one_quiver_table(plan: &LogicalPlan) -> bool {
    let mut quiver_scans = 0;
    let mut other = false;
    let _ = plan.apply(|node| {
        match node {
            LogicalPlan::TableScan(scan) => {
                if scans_quiver_table(scan) {
                    quiver_scans += 1;
                } else {
                    other = true;
                }
            }
            LogicalPlan::Filter(_) | LogicalPlan::Projection(_) | LogicalPlan::SubqueryAlias(_) => {
            }
            _ => other = true,
        }
        Ok(TreeNodeRecursion::Continue)
    });
    quiver_scans == 1 && !other
}
