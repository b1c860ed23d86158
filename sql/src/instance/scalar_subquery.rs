//! Correlated scalar subqueries that do not aggregate, such as psql's
//! `\dT` filter `(SELECT c.relkind = 'c' FROM pg_catalog.pg_class c WHERE
//! c.oid = t.typrelid)`: DataFusion plans a correlated scalar subquery only
//! when it aggregates. Such a subquery reads as
//! `quiver_subquery_check((SELECT quiver_subquery_value(e) FROM ...))`
//! (`quiver_planner::subquery_value`), which means the same: the one row's
//! value, NULL for none, `21000` for more.
//!
//! Only a plain `SELECT e FROM ... [WHERE ...]` is rewritten, and only when
//! it names a relation its own `FROM` does not define (`t.typrelid` above):
//! an uncorrelated subquery is DataFusion's to plan (and a search's query
//! vector from one is evaluated once, `quiver_planner::search_subqueries`).

use std::borrow::Cow;
use std::collections::HashSet;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    visit_expressions, visit_expressions_mut, Expr, Query, SelectItem, SetExpr, Statement,
    TableFactor,
};
use quiver_planner::subquery_value::{SUBQUERY_CHECK, SUBQUERY_VALUE};

use super::array_subquery::{function_call, plain_single_item};

/// Aggregate functions: a subquery calling one already aggregates.
const AGGREGATES: &[&str] = &[
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "array_agg",
    "string_agg",
    "bool_and",
    "bool_or",
    "every",
    "json_agg",
    "jsonb_agg",
    "json_object_agg",
    "jsonb_object_agg",
    "stddev",
    "stddev_pop",
    "stddev_samp",
    "variance",
    "var_pop",
    "var_samp",
    "bit_and",
    "bit_or",
    "vector_avg",
];

/// `statement` with its correlated, non-aggregating scalar subqueries
/// wrapped (see the module documentation); itself when it has none.
pub(crate) fn rewrite_scalar_subqueries(statement: Cow<'_, Statement>) -> Cow<'_, Statement> {
    let found = visit_expressions(statement.as_ref(), |expr| match wrappable(expr) {
        Some(_) => ControlFlow::Break(()),
        None => ControlFlow::Continue(()),
    });
    if found.is_continue() {
        return statement;
    }
    let mut rewritten = statement.into_owned();
    let _ = visit_expressions_mut(&mut rewritten, |expr| {
        if let Some(item) = wrappable(expr).cloned() {
            if let Some(wrapped) = wrapped(expr, item) {
                *expr = wrapped;
            }
        }
        ControlFlow::<()>::Continue(())
    });
    Cow::Owned(rewritten)
}

/// The select item of `expr` when it is a scalar subquery to wrap.
fn wrappable(expr: &Expr) -> Option<&Expr> {
    let Expr::Subquery(query) = expr else {
        return None;
    };
    let (_, item) = plain_single_item(query)?;
    if aggregates(item) || !correlated(query) {
        return None;
    }
    Some(item)
}

/// True when `expr` calls an aggregate (or a window) function.
fn aggregates(expr: &Expr) -> bool {
    visit_expressions(expr, |e| match e {
        Expr::Function(function)
            if function.over.is_some()
                || function
                    .name
                    .0
                    .last()
                    .and_then(|p| p.as_ident())
                    .is_some_and(|name| {
                        AGGREGATES.contains(&name.value.to_ascii_lowercase().as_str())
                    }) =>
        {
            ControlFlow::Break(())
        }
        _ => ControlFlow::Continue(()),
    })
    .is_break()
}

/// True when `query` names (as `x.column`) a relation its `FROM` does not
/// define: a reference to the outer query.
fn correlated(query: &Query) -> bool {
    let SetExpr::Select(select) = query.body.as_ref() else {
        return false;
    };
    let mut defined = HashSet::new();
    for from in &select.from {
        let factors = std::iter::once(&from.relation).chain(from.joins.iter().map(|j| &j.relation));
        for factor in factors {
            match factor {
                TableFactor::Table { name, alias, .. } => {
                    if let Some(alias) = alias {
                        defined.insert(alias.name.value.to_ascii_lowercase());
                    } else if let Some(last) = name.0.last().and_then(|p| p.as_ident()) {
                        defined.insert(last.value.to_ascii_lowercase());
                    }
                }
                other => {
                    // A derived table or function: its alias, if any.
                    let alias = match other {
                        TableFactor::Derived { alias, .. }
                        | TableFactor::UNNEST { alias, .. }
                        | TableFactor::Function { alias, .. } => alias.as_ref(),
                        _ => None,
                    };
                    match alias {
                        Some(alias) => {
                            defined.insert(alias.name.value.to_ascii_lowercase());
                        }
                        None => return false,
                    }
                }
            }
        }
    }
    visit_expressions(query, |e| match e {
        Expr::CompoundIdentifier(parts)
            if parts.len() == 2 && !defined.contains(&parts[0].value.to_ascii_lowercase()) =>
        {
            ControlFlow::Break(())
        }
        _ => ControlFlow::Continue(()),
    })
    .is_break()
}

/// `quiver_subquery_check((SELECT quiver_subquery_value(item) ...))`.
fn wrapped(expr: &Expr, item: Expr) -> Option<Expr> {
    let Expr::Subquery(query) = expr else {
        return None;
    };
    let mut query = query.clone();
    let value = function_call(SUBQUERY_VALUE, vec![item]);
    if let SetExpr::Select(select) = query.body.as_mut() {
        select.projection = vec![SelectItem::UnnamedExpr(value)];
    }
    Some(function_call(SUBQUERY_CHECK, vec![Expr::Subquery(query)]))
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    use super::*;

    fn rewrite(sql: &str) -> String {
        let statement = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .remove(0);
        rewrite_scalar_subqueries(Cow::Owned(statement)).to_string()
    }

    #[test]
    fn only_correlated_plain_subqueries_are_wrapped() {
        assert_eq!(
            rewrite(
                "SELECT t.oid FROM pg_type t WHERE t.typrelid = 0 OR \
                 (SELECT c.relkind = 'c' FROM pg_class c WHERE c.oid = t.typrelid)"
            ),
            "SELECT t.oid FROM pg_type t WHERE t.typrelid = 0 OR \
             quiver_subquery_check((SELECT quiver_subquery_value(c.relkind = 'c') \
             FROM pg_class c WHERE c.oid = t.typrelid))"
        );
        // Uncorrelated, aggregating, limited: left alone.
        for sql in [
            "SELECT id FROM pts ORDER BY v <-> (SELECT v FROM pts WHERE id = 9) LIMIT 3",
            "SELECT (SELECT count(*) FROM c WHERE c.x = t.x) FROM t",
            "SELECT (SELECT c.y FROM c WHERE c.x = t.x LIMIT 1) FROM t",
        ] {
            assert_eq!(rewrite(sql), sql);
        }
    }
}
