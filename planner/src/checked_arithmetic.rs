//! Integer arithmetic that fails on overflow, as PostgreSQL's does
//! (`integer out of range`, SQLSTATE `22003`), instead of DataFusion's
//! wrapping `+ - *`:
//!
//! * [`CheckedArithmeticRule`] (physical optimizer rule) turns every
//!   integer `+`, `-`, `*` of a projection or a filter into a
//!   [`CheckedIntegerOp`], DataFusion's checked kernels under a wrapper
//!   that reports the overflow as [`IntegerOutOfRange`] with its type;
//! * [`ConstantArithmeticRule`] (analyzer rule) folds integer arithmetic
//!   over constants itself, checked, before DataFusion's simplifier folds
//!   it with wrapping kernels.

use std::fmt;
use std::hash::Hash;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Schema};
use arrow::error::ArrowError;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::config::ConfigOptions;
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::{BinaryExpr as LogicalBinary, Expr, LogicalPlan, Operator};
use datafusion::optimizer::AnalyzerRule;
use datafusion::physical_expr::expressions::BinaryExpr;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::filter::{FilterExec, FilterExecBuilder};
use datafusion::physical_plan::projection::{ProjectionExec, ProjectionExpr};
use datafusion::physical_plan::{ColumnarValue, ExecutionPlan};

/// An integer operation whose result does not fit its type: PostgreSQL's
/// `smallint out of range` / `integer out of range` / `bigint out of range`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntegerOutOfRange {
    /// The SQL name of the type (`smallint`, `integer`, `bigint`).
    pub type_name: &'static str,
}

impl fmt::Display for IntegerOutOfRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} out of range", self.type_name)
    }
}

impl std::error::Error for IntegerOutOfRange {}

/// The SQL name of an integer type whose arithmetic is checked.
fn integer_type_name(data_type: &DataType) -> Option<&'static str> {
    match data_type {
        DataType::Int16 => Some("smallint"),
        DataType::Int32 => Some("integer"),
        DataType::Int64 => Some("bigint"),
        _ => None,
    }
}

fn is_checked_operator(op: &Operator) -> bool {
    matches!(op, Operator::Plus | Operator::Minus | Operator::Multiply)
}

fn out_of_range(type_name: &'static str) -> DataFusionError {
    DataFusionError::External(Box::new(IntegerOutOfRange { type_name }))
}

/// An integer `+`, `-` or `*` that fails on overflow with
/// [`IntegerOutOfRange`].
#[derive(Debug, Eq)]
pub struct CheckedIntegerOp {
    /// The operation, with DataFusion's checked kernels.
    inner: Arc<dyn PhysicalExpr>,
    type_name: &'static str,
}

impl PartialEq for CheckedIntegerOp {
    fn eq(&self, other: &Self) -> bool {
        self.inner.eq(&other.inner)
    }
}

impl Hash for CheckedIntegerOp {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.inner.hash(state);
    }
}

impl fmt::Display for CheckedIntegerOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

impl PhysicalExpr for CheckedIntegerOp {
    fn data_type(&self, input_schema: &Schema) -> Result<DataType> {
        self.inner.data_type(input_schema)
    }

    fn nullable(&self, input_schema: &Schema) -> Result<bool> {
        self.inner.nullable(input_schema)
    }

    fn evaluate(&self, batch: &RecordBatch) -> Result<ColumnarValue> {
        self.inner.evaluate(batch).map_err(|e| match e {
            DataFusionError::ArrowError(inner, _)
                if matches!(inner.as_ref(), ArrowError::ArithmeticOverflow(_)) =>
            {
                out_of_range(self.type_name)
            }
            other => other,
        })
    }

    fn children(&self) -> Vec<&Arc<dyn PhysicalExpr>> {
        self.inner.children()
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn PhysicalExpr>>,
    ) -> Result<Arc<dyn PhysicalExpr>> {
        Ok(Arc::new(CheckedIntegerOp {
            inner: self.inner.clone().with_new_children(children)?,
            type_name: self.type_name,
        }))
    }

    fn fmt_sql(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt_sql(f)
    }
}

/// `expr` with every integer `+ - *` in it checked.
fn checked(
    expr: Arc<dyn PhysicalExpr>,
    schema: &Schema,
) -> Result<Transformed<Arc<dyn PhysicalExpr>>> {
    expr.transform_up(|e| {
        let Some(binary) = e.downcast_ref::<BinaryExpr>() else {
            return Ok(Transformed::no(e));
        };
        if !is_checked_operator(binary.op()) {
            return Ok(Transformed::no(e));
        }
        let Some(type_name) = integer_type_name(&e.data_type(schema)?) else {
            return Ok(Transformed::no(e));
        };
        let inner = BinaryExpr::new(binary.left().clone(), *binary.op(), binary.right().clone())
            .with_fail_on_overflow(true);
        Ok(Transformed::yes(Arc::new(CheckedIntegerOp {
            inner: Arc::new(inner),
            type_name,
        })))
    })
}

/// Checks the integer arithmetic of projections and filters.
#[derive(Debug, Default)]
pub struct CheckedArithmeticRule;

impl PhysicalOptimizerRule for CheckedArithmeticRule {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            if let Some(projection) = node.downcast_ref::<ProjectionExec>() {
                let input = projection.input().clone();
                let schema = input.schema();
                let mut changed = false;
                let mut exprs = Vec::with_capacity(projection.expr().len());
                for item in projection.expr() {
                    let expr = checked(item.expr.clone(), &schema)?;
                    changed |= expr.transformed;
                    exprs.push(ProjectionExpr {
                        expr: expr.data,
                        alias: item.alias.clone(),
                    });
                }
                if !changed {
                    return Ok(Transformed::no(node));
                }
                let schema = projection.schema();
                return Ok(Transformed::yes(Arc::new(
                    ProjectionExec::try_new_with_schema_metadata(exprs, input, &schema)?,
                )));
            }
            if let Some(filter) = node.downcast_ref::<FilterExec>() {
                let input = filter.input().clone();
                let predicate = checked(filter.predicate().clone(), &input.schema())?;
                if !predicate.transformed {
                    return Ok(Transformed::no(node));
                }
                let rebuilt = FilterExecBuilder::from(filter)
                    .with_predicate(predicate.data)
                    .build()?;
                return Ok(Transformed::yes(Arc::new(rebuilt)));
            }
            Ok(Transformed::no(node))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "checked_integer_arithmetic"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Folds integer `+ - *` over constants, checked (DataFusion's simplifier
/// would fold them wrapping).
#[derive(Debug, Default)]
pub struct ConstantArithmeticRule;

impl AnalyzerRule for ConstantArithmeticRule {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| {
            // A folded expression keeps its name (the plan's schema).
            let names = NamePreserver::new(&node);
            node.map_expressions(|expr| {
                let name = names.save(&expr);
                Ok(expr
                    .transform_up(fold_constant)?
                    .update_data(|folded| name.restore(folded)))
            })
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "fold_constant_integer_arithmetic"
    }
}

/// The integer constant `expr` is (a literal, or a cast of one), if any.
fn integer_constant(expr: &Expr) -> Option<ScalarValue> {
    let value = match expr {
        Expr::Literal(value, _) => value.clone(),
        Expr::Cast(cast) => match cast.expr.as_ref() {
            Expr::Literal(value, _) => value.cast_to(cast.field.data_type()).ok()?,
            _ => return None,
        },
        _ => return None,
    };
    integer_type_name(&value.data_type())?;
    Some(value)
}

fn fold_constant(expr: Expr) -> Result<Transformed<Expr>> {
    let Expr::BinaryExpr(LogicalBinary { left, op, right }) = &expr else {
        return Ok(Transformed::no(expr));
    };
    if !is_checked_operator(op) {
        return Ok(Transformed::no(expr));
    }
    let (Some(l), Some(r)) = (integer_constant(left), integer_constant(right)) else {
        return Ok(Transformed::no(expr));
    };
    if l.data_type() != r.data_type() || l.is_null() || r.is_null() {
        return Ok(Transformed::no(expr));
    }
    let type_name = integer_type_name(&l.data_type()).unwrap_or("bigint");
    let folded = match op {
        Operator::Plus => l.add_checked(&r),
        Operator::Minus => l.sub_checked(&r),
        _ => l.mul_checked(&r),
    }
    .map_err(|_| out_of_range(type_name))?;
    Ok(Transformed::yes(Expr::Literal(folded, None)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn literal(value: ScalarValue) -> Expr {
        Expr::Literal(value, None)
    }

    fn binary(l: ScalarValue, op: Operator, r: ScalarValue) -> Expr {
        Expr::BinaryExpr(LogicalBinary::new(
            Box::new(literal(l)),
            op,
            Box::new(literal(r)),
        ))
    }

    #[test]
    fn constants_fold_checked() {
        let sum = fold_constant(binary(
            ScalarValue::Int32(Some(2)),
            Operator::Plus,
            ScalarValue::Int32(Some(3)),
        ))
        .unwrap();
        assert_eq!(sum.data, literal(ScalarValue::Int32(Some(5))));
        let err = fold_constant(binary(
            ScalarValue::Int32(Some(i32::MAX)),
            Operator::Plus,
            ScalarValue::Int32(Some(1)),
        ))
        .unwrap_err();
        assert_eq!(err.to_string(), "External error: integer out of range");
        let err = fold_constant(binary(
            ScalarValue::Int64(Some(i64::MIN)),
            Operator::Minus,
            ScalarValue::Int64(Some(1)),
        ))
        .unwrap_err();
        assert!(err.to_string().contains("bigint out of range"), "{err}");
        let err = fold_constant(binary(
            ScalarValue::Int16(Some(300)),
            Operator::Multiply,
            ScalarValue::Int16(Some(300)),
        ))
        .unwrap_err();
        assert!(err.to_string().contains("smallint out of range"), "{err}");
        // Not integers: left to DataFusion.
        let untouched = binary(
            ScalarValue::Float64(Some(1.0)),
            Operator::Plus,
            ScalarValue::Float64(Some(2.0)),
        );
        assert!(!fold_constant(untouched).unwrap().transformed);
    }
}
