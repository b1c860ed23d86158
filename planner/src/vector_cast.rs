//! Analyzer rule: `x::vector` and `x::vector(n)` casts become `to_vector(x[, n])`,
//! because Arrow cannot cast text (`'[1,2,3]'`) or arrays to vectors with
//! pgvector's parsing and errors. Casts *from* a vector: `v::text` becomes
//! `vector_to_text(v)` (pgvector's text, `[1,2,3]`), and any other target
//! (`v::real[]`) is typed as the target alone — DataFusion would carry the
//! vector marker over to a cast that only changes the Arrow type, and the
//! `real[]` would print as a vector.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, Result, ScalarValue};
use datafusion::logical_expr::expr::{Cast, ScalarFunction, TryCast};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::{lit, Expr, ExprSchemable, LogicalPlan, ScalarUDF};
use datafusion::optimizer::AnalyzerRule;
use quiver_common::schema::vector_dim;

use crate::functions::{ToVector, VectorToText};
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

/// Which casts a pass rewrites.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Casts {
    /// To and from vectors (the analyzer rule).
    All,
    /// Only from vectors (at planning, so the statement's described
    /// columns already have the target types).
    FromVectors,
}

fn rewrite(expr: Expr, schema: &DFSchema, casts: Casts) -> Result<Transformed<Expr>> {
    let to_vectors = casts == Casts::All;
    match expr {
        Expr::Cast(Cast { expr, field }) if to_vectors && is_vector_target(&field) => {
            Ok(Transformed::yes(to_vector_call(*expr, field.data_type())))
        }
        Expr::TryCast(TryCast { expr, field }) if to_vectors && is_vector_target(&field) => {
            Ok(Transformed::yes(to_vector_call(*expr, field.data_type())))
        }
        Expr::Cast(Cast { expr, field })
            if !is_vector_target(&field) && is_vector_value(&expr, schema) =>
        {
            Ok(Transformed::yes(cast_from_vector(
                *expr,
                &field,
                |expr, field| Expr::Cast(Cast { expr, field }),
            )))
        }
        Expr::TryCast(TryCast { expr, field })
            if !is_vector_target(&field) && is_vector_value(&expr, schema) =>
        {
            Ok(Transformed::yes(cast_from_vector(
                *expr,
                &field,
                |expr, field| Expr::TryCast(TryCast { expr, field }),
            )))
        }
        other => Ok(Transformed::no(other)),
    }
}

/// True when `expr` is a vector (its field carries the marker, or it is a
/// vector column's `FixedSizeList<Float32>`).
fn is_vector_value(expr: &Expr, schema: &DFSchema) -> bool {
    expr.to_field(schema)
        .is_ok_and(|(_, field)| is_vector_target(&field))
}

/// A cast of a vector to a non-vector type: `vector_to_text` for text
/// targets, else the same cast with an explicit target field (so the output
/// is the target type, without the vector marker).
fn cast_from_vector(
    expr: Expr,
    target: &FieldRef,
    make: impl Fn(Box<Expr>, FieldRef) -> Expr,
) -> Expr {
    let data_type = target.data_type();
    let (value, source_is_text) = match data_type {
        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 => (
            Expr::ScalarFunction(ScalarFunction::new_udf(
                Arc::new(ScalarUDF::from(VectorToText::default())),
                vec![expr],
            )),
            true,
        ),
        _ => (expr, false),
    };
    if source_is_text && data_type == &DataType::Utf8 {
        return value;
    }
    // A named target field is "explicit": DataFusion then types the cast's
    // output by it alone instead of keeping the source's metadata.
    let explicit: FieldRef = Arc::new(Field::new("cast", data_type.clone(), true));
    make(Box::new(value), explicit)
}

/// Applies the rewrite to every expression of a plan (including subqueries).
/// A rewritten expression keeps its name where the plan's output names
/// it (a projection's unaliased `x::vector` is still the column the plan
/// above refers to: an `INSERT ... SELECT`'s, for one).
pub fn rewrite_vector_casts(plan: LogicalPlan) -> Result<LogicalPlan> {
    rewrite_casts(plan, Casts::All)
}

/// Only the casts from vectors (`v::real[]`, `v::text`), applied to a plan
/// as it is made from SQL so its output columns are described with the
/// cast's type (the analyzer rule would fix them only in the optimized plan).
pub fn retype_casts_from_vectors(plan: LogicalPlan) -> Result<LogicalPlan> {
    rewrite_casts(plan, Casts::FromVectors)
}

fn rewrite_casts(plan: LogicalPlan, casts: Casts) -> Result<LogicalPlan> {
    let rewritten = plan.transform_up_with_subqueries(|plan| {
        let schema = expression_schema(&plan)?;
        let names = NamePreserver::new(&plan);
        let changed = plan.map_expressions(|e| {
            let name = names.save(&e);
            let rewritten = e.transform_up(|e| rewrite(e, &schema, casts))?;
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

/// The schema a plan node's expressions are typed against: its inputs'
/// columns (a join's both sides), or its own for a leaf (a scan's filters).
fn expression_schema(plan: &LogicalPlan) -> Result<DFSchema> {
    let inputs = plan.inputs();
    let Some((first, rest)) = inputs.split_first() else {
        return Ok(plan.schema().as_ref().clone());
    };
    let mut schema = first.schema().as_ref().clone();
    for input in rest {
        schema.merge(input.schema());
    }
    Ok(schema)
}

impl AnalyzerRule for VectorCastRule {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        rewrite_vector_casts(plan)
    }

    fn name(&self) -> &str {
        "quiver_vector_cast"
    }
}
