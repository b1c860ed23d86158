//! The pgvector operators `<->`, `<=>`, `<#>`, `<+>` planned as calls of the
//! distance functions, and typing of `$n` parameters next to them so a client
//! sees `vector` at Describe time.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field};
use datafusion::common::{DFSchema, Result};
use datafusion::logical_expr::expr::{Placeholder, ScalarFunction};
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult, RawBinaryExpr};
use datafusion::logical_expr::{Expr, ExprSchemable, ScalarUDF};
use datafusion::sql::sqlparser::ast::BinaryOperator;
use quiver_common::schema::vector_dim;
use quiver_index::Metric;

use crate::functions::DistanceFunction;

pub use crate::vector_field::{vector_field, VECTOR_FIELD_METADATA};

/// Plans the pgvector operators.
#[derive(Debug, Default)]
pub struct VectorOperatorPlanner;

/// The metric of a pgvector operator.
pub fn metric_of_operator(op: &BinaryOperator) -> Option<Metric> {
    match op {
        BinaryOperator::LtDashGt => Some(Metric::L2),
        BinaryOperator::Spaceship => Some(Metric::Cosine),
        BinaryOperator::Custom(s) if s == "<#>" => Some(Metric::NegativeInnerProduct),
        BinaryOperator::Custom(s) if s == "<+>" => Some(Metric::L1),
        _ => None,
    }
}

fn type_placeholder(expr: Expr, other: &Expr, schema: &DFSchema) -> Expr {
    match expr {
        Expr::Placeholder(Placeholder { id, field: None }) => {
            let data_type = other
                .get_type(schema)
                .ok()
                .filter(|t| vector_dim(t).is_some())
                .unwrap_or_else(|| {
                    DataType::List(Arc::new(Field::new_list_field(DataType::Float32, true)))
                });
            Expr::Placeholder(Placeholder {
                id,
                field: Some(Arc::new(vector_field("param", data_type))),
            })
        }
        other => other,
    }
}

impl ExprPlanner for VectorOperatorPlanner {
    fn plan_binary_op(
        &self,
        expr: RawBinaryExpr,
        schema: &DFSchema,
    ) -> Result<PlannerResult<RawBinaryExpr>> {
        let Some(metric) = metric_of_operator(&expr.op) else {
            return Ok(PlannerResult::Original(expr));
        };
        let left = type_placeholder(expr.left, &expr.right, schema);
        let right = type_placeholder(expr.right, &left, schema);
        let udf = Arc::new(ScalarUDF::from(DistanceFunction::new(metric)));
        Ok(PlannerResult::Planned(Expr::ScalarFunction(
            ScalarFunction::new_udf(udf, vec![left, right]),
        )))
    }
}
