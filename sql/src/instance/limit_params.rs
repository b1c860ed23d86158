//! `LIMIT $1` / `OFFSET $2`: once parameters are bound, a limit or offset
//! is a cast of the bound value (`CAST($1 AS BIGINT)` over an `int2`, an
//! `int8` or a `text` parameter, as ORMs send them), which the physical
//! planner does not evaluate. This folds each to the integer literal it
//! means, with PostgreSQL's rules: `NULL` is no limit (no offset), a
//! negative count is refused (`2201W` / `2201X`), text that is no integer
//! is `22P02`.

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::simplify::SimplifyContext;
use datafusion::logical_expr::{Expr, Limit, LogicalPlan};
use datafusion::optimizer::simplify_expressions::ExprSimplifier;
use quiver_common::status::StatusCode;

use crate::error::{Result, SqlError};

/// Which clause a count belongs to.
#[derive(Clone, Copy)]
enum Clause {
    Limit,
    Offset,
}

/// `plan` with the limits and offsets of its `Limit` nodes (subqueries
/// included) that are constant expressions folded to literals.
pub(crate) fn fold_limit_params(plan: LogicalPlan) -> Result<LogicalPlan> {
    let mut failure = None;
    let folded = plan.transform_up_with_subqueries(|node| {
        let LogicalPlan::Limit(limit) = node else {
            return Ok(Transformed::no(node));
        };
        if is_folded(limit.skip.as_deref()) && is_folded(limit.fetch.as_deref()) {
            return Ok(Transformed::no(LogicalPlan::Limit(limit)));
        }
        let counts = fold(limit.skip.as_deref(), Clause::Offset)
            .and_then(|skip| Ok((skip, fold(limit.fetch.as_deref(), Clause::Limit)?)));
        match counts {
            Ok((skip, fetch)) => Ok(Transformed::yes(LogicalPlan::Limit(Limit {
                skip: skip.map(Box::new),
                fetch: fetch.map(Box::new),
                input: limit.input,
            }))),
            Err(e) => {
                failure = Some(e);
                Ok(Transformed::no(LogicalPlan::Limit(limit)))
            }
        }
    })?;
    match failure {
        Some(e) => Err(e),
        None => Ok(folded.data),
    }
}

/// No count, or a literal one.
fn is_folded(count: Option<&Expr>) -> bool {
    matches!(count, None | Some(Expr::Literal(..)))
}

/// A count expression as the literal it means (`None`: no count).
fn fold(count: Option<&Expr>, clause: Clause) -> Result<Option<Expr>> {
    let Some(count) = count else {
        return Ok(None);
    };
    if let Expr::Literal(..) = count {
        return Ok(Some(count.clone()));
    }
    let simplified = ExprSimplifier::new(SimplifyContext::default())
        .simplify(count.clone())
        .map_err(|_| not_an_integer(count))?;
    // Not a constant (a column, a subquery): left to the planner.
    let Expr::Literal(value, _) = simplified else {
        return Ok(Some(count.clone()));
    };
    let Ok(ScalarValue::Int64(value)) =
        value.cast_to(&datafusion::arrow::datatypes::DataType::Int64)
    else {
        return Err(not_an_integer(count));
    };
    match value {
        None => Ok(None),
        Some(n) if n < 0 => Err(match clause {
            Clause::Limit => SqlError::Query {
                code: StatusCode::InvalidRowCountInLimit,
                message: "LIMIT must not be negative".to_string(),
            },
            Clause::Offset => SqlError::Query {
                code: StatusCode::InvalidRowCountInOffset,
                message: "OFFSET must not be negative".to_string(),
            },
        }),
        Some(n) => Ok(Some(Expr::Literal(ScalarValue::Int64(Some(n)), None))),
    }
}

/// The error of a count that is no integer: PostgreSQL's words for the
/// text it was given.
fn not_an_integer(count: &Expr) -> SqlError {
    let mut text = None;
    let _ = count.apply(|e| {
        if let Expr::Literal(value, _) = e {
            text = Some(value.to_string());
        }
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    });
    SqlError::Query {
        code: StatusCode::InvalidTextRepresentation,
        message: format!(
            "invalid input syntax for type bigint: \"{}\"",
            text.unwrap_or_default()
        ),
    }
}

/// The parameters a `LIMIT` or `OFFSET` is made of, which PostgreSQL types
/// `bigint` when the client did not declare them.
pub(crate) fn count_parameters(plan: &LogicalPlan) -> std::collections::HashSet<String> {
    use datafusion::common::tree_node::TreeNodeRecursion;
    let mut ids = std::collections::HashSet::new();
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::Limit(limit) = node {
            for count in [&limit.skip, &limit.fetch].into_iter().flatten() {
                let _ = count.apply(|e| {
                    if let Expr::Placeholder(placeholder) = e {
                        ids.insert(placeholder.id.clone());
                    }
                    Ok(TreeNodeRecursion::Continue)
                });
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    ids
}
