//! `generate_series` where PostgreSQL puts it, read as PostgreSQL reads it:
//!
//! * in a select list, `SELECT generate_series(1, 3)` yields one row per
//!   value, where DataFusion's scalar `generate_series` answers one array:
//!   a select item that is a call of it is planned as
//!   `unnest(generate_series(...))` (the column keeps PostgreSQL's name,
//!   `generate_series`, see `output_names`);
//! * in `FROM`, its one column takes the table alias's name
//!   (`FROM generate_series(1, 3) x` has column `x`; without an alias the
//!   column is `generate_series`), where DataFusion names it `value`.
//!
//! Every query of the statement is rewritten: CTEs, derived tables, set
//! operations and subqueries of the select list's expressions excepted.

use std::borrow::Cow;

use super::array_subquery::function_call;

use datafusion::sql::sqlparser::ast::{
    Expr, Ident, ObjectName, ObjectNamePart, Query, SelectItem, SetExpr, Statement, TableAlias,
    TableAliasColumnDef, TableFactor,
};

const GENERATE_SERIES: &str = "generate_series";

/// `statement` with `generate_series` read as PostgreSQL reads it; the
/// statement itself when it calls none.
pub(crate) fn expand_generate_series(statement: Cow<'_, Statement>) -> Cow<'_, Statement> {
    if !calls_generate_series(&statement) {
        return statement;
    }
    let mut rewritten = statement.clone().into_owned();
    let changed = match &mut rewritten {
        Statement::Query(query) => rewrite_query(query),
        Statement::Insert(insert) => insert.source.as_deref_mut().is_some_and(rewrite_query),
        _ => false,
    };
    if changed {
        Cow::Owned(rewritten)
    } else {
        statement
    }
}

/// Whether any expression or relation of `statement` names
/// `generate_series` (a walk of the tree, no text rendered).
fn calls_generate_series(statement: &Statement) -> bool {
    use datafusion::sql::sqlparser::ast::{visit_expressions, visit_relations};
    use std::ops::ControlFlow;
    let in_expressions = visit_expressions(statement, |expr| match expr {
        Expr::Function(function) if is_generate_series(&function.name) => ControlFlow::Break(()),
        _ => ControlFlow::Continue(()),
    });
    let in_relations = visit_relations(statement, |name| {
        if is_generate_series(name) {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
    in_expressions.is_break() || in_relations.is_break()
}

fn is_generate_series(name: &ObjectName) -> bool {
    matches!(
        name.0.as_slice(),
        [ObjectNamePart::Identifier(ident)] if ident.value.eq_ignore_ascii_case(GENERATE_SERIES)
    )
}

fn rewrite_query(query: &mut Query) -> bool {
    let mut changed = false;
    if let Some(with) = &mut query.with {
        for cte in &mut with.cte_tables {
            changed |= rewrite_query(&mut cte.query);
        }
    }
    changed | rewrite_set_expr(&mut query.body)
}

fn rewrite_set_expr(body: &mut SetExpr) -> bool {
    match body {
        SetExpr::Select(select) => {
            let mut changed = false;
            for item in &mut select.projection {
                let (SelectItem::UnnamedExpr(expr) | SelectItem::ExprWithAlias { expr, .. }) = item
                else {
                    continue;
                };
                if let Expr::Function(function) = expr {
                    if is_generate_series(&function.name) {
                        *expr = unnest(expr.clone());
                        changed = true;
                    }
                }
            }
            for table in &mut select.from {
                changed |= rewrite_factor(&mut table.relation);
                for join in &mut table.joins {
                    changed |= rewrite_factor(&mut join.relation);
                }
            }
            changed
        }
        SetExpr::SetOperation { left, right, .. } => {
            rewrite_set_expr(left) | rewrite_set_expr(right)
        }
        SetExpr::Query(query) => rewrite_query(query),
        _ => false,
    }
}

fn rewrite_factor(factor: &mut TableFactor) -> bool {
    match factor {
        TableFactor::Table {
            name,
            args: Some(_),
            alias,
            ..
        } if is_generate_series(name) => {
            let alias = alias.get_or_insert_with(|| TableAlias {
                explicit: false,
                name: Ident::new(GENERATE_SERIES),
                columns: Vec::new(),
                at: None,
            });
            if alias.columns.is_empty() {
                alias.columns = vec![TableAliasColumnDef {
                    name: alias.name.clone(),
                    data_type: None,
                }];
                true
            } else {
                false
            }
        }
        TableFactor::Derived { subquery, .. } => rewrite_query(subquery),
        TableFactor::NestedJoin {
            table_with_joins, ..
        } => {
            let mut changed = rewrite_factor(&mut table_with_joins.relation);
            for join in &mut table_with_joins.joins {
                changed |= rewrite_factor(&mut join.relation);
            }
            changed
        }
        _ => false,
    }
}

/// `unnest(<expr>)`.
fn unnest(expr: Expr) -> Expr {
    function_call("unnest", vec![expr])
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    use super::*;

    fn rewritten(sql: &str) -> String {
        let statement = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .remove(0);
        expand_generate_series(Cow::Owned(statement)).to_string()
    }

    #[test]
    fn select_list_calls_become_rows_and_from_calls_name_their_column() {
        assert_eq!(
            rewritten("SELECT generate_series(1, 3)"),
            "SELECT unnest(generate_series(1, 3))"
        );
        assert_eq!(
            rewritten("SELECT generate_series(1, 3) AS n"),
            "SELECT unnest(generate_series(1, 3)) AS n"
        );
        assert_eq!(
            rewritten("SELECT x FROM generate_series(1, 3) x"),
            "SELECT x FROM generate_series(1, 3) x (x)"
        );
        assert_eq!(
            rewritten("SELECT * FROM generate_series(1, 3)"),
            "SELECT * FROM generate_series(1, 3) generate_series (generate_series)"
        );
        assert_eq!(
            rewritten("SELECT * FROM generate_series(1, 3) AS t(n)"),
            "SELECT * FROM generate_series(1, 3) AS t (n)"
        );
        assert_eq!(rewritten("SELECT 1"), "SELECT 1");
        assert_eq!(
            rewritten("SELECT 1 UNION ALL SELECT generate_series(2, 3)"),
            "SELECT 1 UNION ALL SELECT unnest(generate_series(2, 3))"
        );
    }
}
