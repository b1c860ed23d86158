//! Integer constants typed as PostgreSQL types them: a constant that fits
//! in 32 bits is an `integer` (`int4`), a larger one a `bigint`.
//! DataFusion types every integer constant `bigint`, so `SELECT 1` was
//! described as `int8`, `pg_typeof(1)` answered `bigint`, and
//! `2147483647 + 1` gave 2147483648 where PostgreSQL fails with
//! `integer out of range` (`22003`, from [`crate::checked_arithmetic`]
//! once the operands are `integer`s).
//!
//! [`type_integer_literals`] retypes the constants of a freshly planned
//! statement, before the plan's schema is described to the client, so the
//! described and the produced types agree. It leaves alone what is not an
//! expression of the query's own: `LIMIT`/`OFFSET` counts, `VALUES` rows
//! (typed by their column), the arguments of aggregate and window functions
//! (`count(*)` is `count(1)` inside DataFusion, which its statistics
//! recognize), the arguments of the `json_*` functions (which take array
//! indexes as `bigint`s only), and the branches of a set operation keep the column types
//! the operation was planned with.

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::{cast, Expr, LogicalPlan, Projection, Union};

/// `plan` with its integer constants that fit in 32 bits typed `integer`.
pub fn type_integer_literals(plan: LogicalPlan) -> Result<LogicalPlan> {
    let rewritten = plan.transform_up_with_subqueries(|node| {
        match node {
            LogicalPlan::Limit(_) | LogicalPlan::Values(_) => {
                return Ok(Transformed::no(node));
            }
            LogicalPlan::Union(union) => return keep_union_types(union).map(Transformed::yes),
            _ => {}
        }
        let names = NamePreserver::new(&node);
        let changed = node.map_expressions(|expr| {
            let name = names.save(&expr);
            let rewritten = retype(expr)?;
            Ok(if rewritten.transformed {
                rewritten.update_data(|e| name.restore(e))
            } else {
                rewritten
            })
        })?;
        // A child's column may have changed type even when this node's
        // expressions did not: every schema is derived again.
        changed
            .map_data(|p| p.recompute_schema())
            .map(|t| Transformed::yes(t.data))
    })?;
    Ok(rewritten.data)
}

/// The constants of `expr` that fit in 32 bits, as `integer`s (not under an
/// aggregate or window function).
fn retype(expr: Expr) -> Result<Transformed<Expr>> {
    expr.transform_down(|e| match e {
        Expr::AggregateFunction(AggregateFunction { .. }) | Expr::WindowFunction(_) => {
            Ok(Transformed::new(e, false, TreeNodeRecursion::Jump))
        }
        // datafusion-functions-json takes array indexes as `bigint`s only.
        Expr::ScalarFunction(ref call) if call.name().starts_with("json_") => {
            Ok(Transformed::new(e, false, TreeNodeRecursion::Jump))
        }
        Expr::Literal(ScalarValue::Int64(Some(value)), metadata) => {
            Ok(match i32::try_from(value) {
                Ok(small) => {
                    Transformed::yes(Expr::Literal(ScalarValue::Int32(Some(small)), metadata))
                }
                Err(_) => Transformed::no(Expr::Literal(ScalarValue::Int64(Some(value)), metadata)),
            })
        }
        other => Ok(Transformed::no(other)),
    })
}

/// A set operation keeps the column types it was planned with: a branch
/// whose columns changed type is cast back to them (DataFusion derives
/// the operation's types again from its branches when it is analyzed; the
/// client was told these).
fn keep_union_types(union: Union) -> Result<LogicalPlan> {
    let Union { inputs, schema } = union;
    let inputs = inputs
        .into_iter()
        .map(|input| {
            let same = input
                .schema()
                .fields()
                .iter()
                .zip(schema.fields())
                .all(|(a, b)| a.data_type() == b.data_type());
            if same {
                return Ok(input);
            }
            let exprs = input
                .schema()
                .iter()
                .zip(schema.fields())
                .map(|((qualifier, field), target)| {
                    let column = Expr::Column((qualifier, field).into());
                    if field.data_type() == target.data_type() {
                        column
                    } else {
                        cast(column, target.data_type().clone()).alias(field.name())
                    }
                })
                .collect();
            Ok(Arc::new(LogicalPlan::Projection(Projection::try_new(
                exprs, input,
            )?)))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(LogicalPlan::Union(Union { inputs, schema }))
}

#[cfg(test)]
mod tests {
    use datafusion::prelude::SessionContext;

    use super::*;

    async fn planned(sql: &str) -> LogicalPlan {
        let ctx = SessionContext::new();
        let plan = ctx.state().create_logical_plan(sql).await.unwrap();
        type_integer_literals(plan).unwrap()
    }

    fn types(plan: &LogicalPlan) -> Vec<String> {
        plan.schema()
            .fields()
            .iter()
            .map(|f| f.data_type().to_string())
            .collect()
    }

    #[tokio::test]
    async fn constants_that_fit_are_integers() {
        let plan = planned("SELECT 1, 2147483647, 2147483648, -5, 1 + 2").await;
        assert_eq!(types(&plan), ["Int32", "Int32", "Int64", "Int32", "Int32"]);
    }

    #[tokio::test]
    async fn names_and_outer_references_survive() {
        let plan = planned("SELECT x + 1 FROM (SELECT 1 AS x) s").await;
        assert_eq!(types(&plan), ["Int32"]);
        assert_eq!(plan.schema().field(0).name(), "s.x + Int64(1)");
    }

    #[tokio::test]
    async fn aggregates_limits_and_set_operations_keep_their_types() {
        let plan = planned("SELECT count(*) FROM (VALUES (1)) v LIMIT 1").await;
        assert_eq!(types(&plan), ["Int64"]);
        let plan = planned("SELECT 1 UNION ALL SELECT 2").await;
        assert_eq!(types(&plan), ["Int64"]);
        let executed = SessionContext::new()
            .execute_logical_plan(plan)
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        assert_eq!(
            executed[0].schema().field(0).data_type().to_string(),
            "Int64"
        );
    }
}
