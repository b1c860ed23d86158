//! `INSERT ... SELECT` whose source holds a `VALUES` list below its top
//! level (`INSERT INTO t SELECT x + 1, ... FROM (VALUES (1), (2)) v(x)`):
//! DataFusion's INSERT planning types *every* `VALUES` list of the source
//! as a row of the table, so such a nested list fails ("Inconsistent data
//! length across values list") or is cast to the wrong columns. Such a
//! source is planned on its own, as a query, and its columns are then cast
//! to the target columns by position, the columns the INSERT does not name
//! left NULL (their `DEFAULT`s are filled afterwards) — what DataFusion's
//! INSERT planning does with any other source. A leaf: it imports no
//! sibling module of `instance`.

use std::ops::ControlFlow;

use datafusion::common::{Column, ScalarValue};
use datafusion::logical_expr::{Cast, Expr, LogicalPlan, LogicalPlanBuilder};
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::{Insert, Query, SetExpr, Statement, Visit, Visitor};
use quiver_common::schema::TableSchema;
use quiver_common::status::StatusCode;

use crate::error::{Result, SqlError};

/// The source query of `insert` when it holds a `VALUES` list below its
/// top level.
pub(super) fn nested_values_source(insert: &Insert) -> Option<&Query> {
    let source = insert.source.as_deref()?;
    if matches!(source.body.as_ref(), SetExpr::Values(_)) {
        return None;
    }
    struct FindValues(bool);
    impl Visitor for FindValues {
        type Break = ();
        fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
            if matches!(query.body.as_ref(), SetExpr::Values(_)) {
                self.0 = true;
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        }
    }
    let mut finder = FindValues(false);
    let _ = source.visit(&mut finder);
    finder.0.then_some(source)
}

/// The rows `source` (a query statement) gives, as the table's rows: its columns cast to the
/// `targets` (table column indexes, in the source's column order), every
/// other column NULL. With no column list (`named` false) the source may
/// give fewer columns than the table has: the first ones, as in
/// PostgreSQL.
pub(super) async fn plan_rows(
    ctx: &SessionContext,
    source: Statement,
    table: &TableSchema,
    targets: &[usize],
    named: bool,
) -> Result<LogicalPlan> {
    let plan = ctx
        .state()
        .statement_to_plan(DFStatement::Statement(Box::new(source)))
        .await?;
    let produced = plan.schema().fields().len();
    let targets = match named {
        false if produced < targets.len() => &targets[..produced],
        _ => targets,
    };
    if produced != targets.len() {
        let message = if produced > targets.len() {
            "INSERT has more expressions than target columns"
        } else {
            "INSERT has more target columns than expressions"
        };
        return Err(SqlError::Query {
            code: StatusCode::SyntaxError,
            message: message.into(),
        });
    }
    let arrow = table.arrow_schema();
    let exprs: Vec<Expr> = arrow
        .fields()
        .iter()
        .enumerate()
        .map(|(column, field)| {
            let value = match targets.iter().position(|&t| t == column) {
                Some(position) => {
                    Expr::Column(Column::from(plan.schema().qualified_field(position)))
                }
                None => Expr::Literal(ScalarValue::Null, None),
            };
            // A plain cast: the analyzer turns one to a vector type into
            // `to_vector` (pgvector's parsing and errors).
            Expr::Cast(Cast::new(Box::new(value), field.data_type().clone())).alias(field.name())
        })
        .collect();
    Ok(LogicalPlanBuilder::from(plan).project(exprs)?.build()?)
}
