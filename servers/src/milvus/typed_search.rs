//! The typed plan of a search: the collection's scan, the filter (lowered
//! from the Milvus expression) and the partition scope, the requested
//! columns with the distance to the query vector (`$1`) as
//! `__milvus_distance`, ordered by it, within a window — the plan SQL's
//! `SELECT .., v <op> $1 AS d FROM t WHERE .. ORDER BY v <op> $1 LIMIT k`
//! makes, built without SQL text. The handler caches it per key (every
//! part of the request the plan depends on), so a search of one vector
//! plans nothing once its shape has been seen.

use datafusion::arrow::datatypes::DataType;
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{Expr as DfExpr, LogicalPlan, LogicalPlanBuilder};
use quiver_sql::error::SqlError;
use quiver_sql::handler::vector_parameter;

use super::filter::{CheckedFilter, Registry};
use super::hidden_columns::column;
use super::status::DoorError;

/// Name of the distance column of a search's rows.
pub(super) const DISTANCE_COLUMN: &str = "__milvus_distance";

/// Everything a search's plan is made of, but its window.
pub(super) struct TypedSearch {
    pub(super) database: String,
    pub(super) collection: String,
    /// The columns returned before the distance.
    pub(super) select: Vec<String>,
    pub(super) vector: String,
    pub(super) vector_type: DataType,
    /// `l2_distance`, `negative_inner_product` or `cosine_distance`.
    pub(super) distance: &'static str,
    pub(super) filter: Option<CheckedFilter>,
    pub(super) scope: Option<DfExpr>,
}

/// The distance function of a Milvus metric (the function SQL's operator
/// `<->`, `<#>`, `<=>` plans to).
pub(super) fn distance_function(metric: &str) -> Result<&'static str, DoorError> {
    Ok(match super::convert::metric_operator(metric)?.0 {
        "<->" => "l2_distance",
        "<#>" => "negative_inner_product",
        _ => "cosine_distance",
    })
}

impl TypedSearch {
    /// The plan-cache key of the search of the `limit` nearest rows after
    /// `offset`.
    pub(super) fn key(&self, limit: usize, offset: usize) -> String {
        format!(
            "milvus search {:?}.{:?} {:?} by {:?} ({}) where [{}] scope [{}] limit {limit} offset {offset}",
            self.database,
            self.collection,
            self.select,
            self.vector,
            self.distance,
            self.filter.as_ref().map(CheckedFilter::key).unwrap_or(""),
            self.scope.as_ref().map(ToString::to_string).unwrap_or_default(),
        )
    }

    /// Builds the plan over the collection's `scan`.
    pub(super) fn build(
        &self,
        scan: LogicalPlanBuilder,
        functions: &dyn FunctionRegistry,
        limit: usize,
        offset: usize,
    ) -> Result<LogicalPlan, SqlError> {
        let mut plan = scan;
        let filter = match &self.filter {
            Some(filter) => Some(
                filter
                    .lower(&Registry(functions))
                    .map_err(|e| SqlError::InvalidParameter(e.to_string()))?,
            ),
            None => None,
        };
        let predicate = match (filter, self.scope.clone()) {
            (Some(a), Some(b)) => Some(a.and(b)),
            (a, b) => a.or(b),
        };
        if let Some(predicate) = predicate {
            plan = plan.filter(predicate)?;
        }
        let distance = DfExpr::ScalarFunction(ScalarFunction::new_udf(
            functions.udf(self.distance)?,
            vec![
                column(&self.vector),
                vector_parameter(1, self.vector_type.clone()),
            ],
        ));
        let mut select: Vec<DfExpr> = self.select.iter().map(|name| column(name)).collect();
        select.push(distance.alias(DISTANCE_COLUMN));
        Ok(plan
            .project(select)?
            .sort(vec![column(DISTANCE_COLUMN).sort(true, false)])?
            .limit(offset, Some(limit))?
            .build()?)
    }
}
