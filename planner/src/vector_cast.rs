//! Analyzer rule: `x::vector` and `x::vector(n)` casts become `to_vector(x[, n])`,
//! because Arrow cannot cast text (`'[1,2,3]'`) or arrays to vectors with
//! pgvector's parsing and errors.

use std::sync::Arc;

use arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::expr::{Cast, ScalarFunction, TryCast};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::{lit, Expr, LogicalPlan, ScalarUDF};
use datafusion::optimizer::AnalyzerRule;
use quiver_common::schema::vector_dim;

use crate::functions::ToVector;
use crate::vector_field::VECTOR_FIELD_METADATA;

/// Rewrites casts to the vector type into `to_vector` calls.
#[derive(Debug, Default)]
pub struct VectorCastRule;

fn is_vector_target(field: &arrow::datatypes::Field) -> bool {
    let tagged = field
        .metadata()
        .get(VECTOR_FIELD_METADATA.0)
        .is_some_and(|v| v == VECTOR_FIELD_METADATA.1);
    tagged || vector_dim(field.data_type()).is_some()
}

fn to_vector_call(expr: Expr, target: &DataType) -> Expr {
    let mut args = vec![expr];
    if let Some(dim) = vector_dim(target) {
        args.push(lit(ScalarValue::Int64(Some(dim as i64))));
    }
    Expr::ScalarFunction(ScalarFunction::new_udf(
        Arc::new(ScalarUDF::from(ToVector::default())),
        args,
    ))
}

fn rewrite(expr: Expr) -> Result<Transformed<Expr>> {
    match expr {
        Expr::Cast(Cast { expr, field }) if is_vector_target(&field) => {
            Ok(Transformed::yes(to_vector_call(*expr, field.data_type())))
        }
        Expr::TryCast(TryCast { expr, field }) if is_vector_target(&field) => {
            Ok(Transformed::yes(to_vector_call(*expr, field.data_type())))
        }
        other => Ok(Transformed::no(other)),
    }
}

/// Applies the rewrite to every expression of a plan (including subqueries).
/// A rewritten expression keeps its name where the plan's output names
/// it (a projection's unaliased `x::vector` is still the column the plan
/// above refers to: an `INSERT ... SELECT`'s, for one).
pub fn rewrite_vector_casts(plan: LogicalPlan) -> Result<LogicalPlan> {
    let rewritten = plan.transform_up_with_subqueries(|plan| {
        let names = NamePreserver::new(&plan);
        let changed = plan.map_expressions(|e| {
            let name = names.save(&e);
            let rewritten = e.transform_up(rewrite)?;
            Ok(if rewritten.transformed {
                rewritten.update_data(|e| name.restore(e))
            } else {
                rewritten
            })
        })?;
        if changed.transformed {
            changed.map_data(|p| p.recompute_schema())
        } else {
            Ok(changed)
        }
    })?;
    Ok(rewritten.data)
}

impl AnalyzerRule for VectorCastRule {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        rewrite_vector_casts(plan)
    }

    fn name(&self) -> &str {
        "quiver_vector_cast"
    }
}
