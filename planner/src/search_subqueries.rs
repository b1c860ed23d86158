//! The query vector of a search given by a scalar subquery
//! (`ORDER BY emb <-> (SELECT emb FROM items WHERE id = 7) LIMIT 10`):
//! PostgreSQL evaluates an uncorrelated scalar subquery once, before the
//! rows it is compared with (an *InitPlan*); here too — each uncorrelated
//! scalar subquery that is an argument of a distance function (perhaps
//! under a cast) runs once, before the statement is optimized, and its
//! value takes its place as a literal, so the vector-search rule sees a
//! constant query and the search uses the index. Left to DataFusion, the
//! subquery would be decorrelated into a join and every row compared
//! exactly.
//!
//! A plan with such a subquery holds its value: it is made again for every
//! execution, never cached.

use std::collections::HashMap;

use arrow::array::Array;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{Expr, LogicalPlan, Subquery};
use datafusion::prelude::SessionContext;
use futures::StreamExt;

use crate::functions::metric_of_function;

/// A scalar subquery that returned more than one row: PostgreSQL's
/// cardinality violation (SQLSTATE 21000), worded as it words it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubqueryReturnedRows;

impl std::fmt::Display for SubqueryReturnedRows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("more than one row returned by a subquery used as an expression")
    }
}

impl std::error::Error for SubqueryReturnedRows {}

/// True when some distance function of `plan` takes an uncorrelated scalar
/// subquery as its argument.
pub fn has_search_subquery(plan: &LogicalPlan) -> bool {
    !search_subqueries(plan).is_empty()
}

/// Runs every uncorrelated scalar subquery that is an argument of a
/// distance function in `plan` once, in `ctx` (the statement's session: its
/// read timestamp and transaction), and puts its value in its place.
pub async fn evaluate_search_subqueries(
    plan: LogicalPlan,
    ctx: &SessionContext,
) -> Result<LogicalPlan> {
    let subqueries = search_subqueries(&plan);
    if subqueries.is_empty() {
        return Ok(plan);
    }
    let mut values: HashMap<Subquery, Expr> = HashMap::new();
    for subquery in subqueries {
        if values.contains_key(&subquery) {
            continue;
        }
        let value = evaluate(&subquery, ctx).await?;
        values.insert(subquery, value);
    }
    plan.transform_up(|node| {
        node.map_expressions(|expr| {
            expr.transform_up(|e| match &e {
                Expr::ScalarSubquery(subquery) => match values.get(subquery) {
                    Some(value) => Ok(Transformed::yes(value.clone())),
                    None => Ok(Transformed::no(e)),
                },
                _ => Ok(Transformed::no(e)),
            })
        })
    })
    .map(|t| t.data)
}

/// The subquery's one value as a literal (NULL when it returns no row).
async fn evaluate(subquery: &Subquery, ctx: &SessionContext) -> Result<Expr> {
    let plan = subquery.subquery.as_ref().clone();
    let schema = plan.schema().clone();
    if schema.fields().len() != 1 {
        return Err(DataFusionError::Plan(
            "subquery must return only one column".into(),
        ));
    }
    let field = schema.field(0).clone();
    // Streamed: a second row ends it (not every row held first).
    let mut stream = ctx
        .execute_logical_plan(plan)
        .await?
        .execute_stream()
        .await?;
    let mut value: Option<ScalarValue> = None;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        let column = batch.column(0);
        for row in 0..column.len() {
            if value.is_some() {
                return Err(DataFusionError::External(Box::new(SubqueryReturnedRows)));
            }
            value = Some(ScalarValue::try_from_array(column, row)?);
        }
    }
    let value = match value {
        Some(value) => value,
        None => ScalarValue::try_from(field.data_type())?,
    };
    let metadata = (!field.metadata().is_empty()).then(|| field.metadata().clone().into());
    Ok(Expr::Literal(value, metadata))
}

/// The uncorrelated scalar subqueries that are arguments of distance
/// functions in `plan` (under casts at most), in plan order.
fn search_subqueries(plan: &LogicalPlan) -> Vec<Subquery> {
    let mut found = Vec::new();
    let _ = plan.apply(|node| {
        node.apply_expressions(|expr| {
            expr.apply(|e| {
                if let Expr::ScalarFunction(ScalarFunction { func, args }) = e {
                    if metric_of_function(func.name()).is_some() {
                        found.extend(args.iter().filter_map(uncorrelated_subquery));
                    }
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    });
    found
}

/// The scalar subquery `arg` is (under casts), when it refers to nothing
/// outside itself.
fn uncorrelated_subquery(arg: &Expr) -> Option<Subquery> {
    match arg {
        Expr::Cast(cast) => uncorrelated_subquery(&cast.expr),
        Expr::TryCast(cast) => uncorrelated_subquery(&cast.expr),
        Expr::ScalarSubquery(subquery) if subquery.outer_ref_columns.is_empty() => {
            Some(subquery.clone())
        }
        _ => None,
    }
}
