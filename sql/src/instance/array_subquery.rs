//! PostgreSQL's array constructor from a subquery, `ARRAY(SELECT ...)`
//! (psql's `\d+` and `\du` and many catalog queries use it), which
//! DataFusion does not plan ("Invalid function 'array'"): it is read as an
//! aggregating scalar subquery — `ARRAY(SELECT e FROM ... WHERE ... ORDER
//! BY o)` as `(SELECT array_agg(e ORDER BY o) FROM ... WHERE ...)`, so
//! correlated uses work as DataFusion's correlated subqueries do; a query
//! of another shape (grouped, distinct, limited, a set operation) as
//! `(SELECT array_agg(v) FROM (query) AS a(v))`. One difference: no rows
//! give NULL where PostgreSQL gives `{}`.
//!
//! An array mapped element by element, `ARRAY(SELECT e(x) FROM unnest(a)
//! x)` (psql's `\d+` over `pg_class.reloptions`, pg_dump's catalog
//! queries), is correlated through its `FROM`, which DataFusion cannot
//! plan; it reads as `array_transform(a, x -> e(x))` (NULL for a NULL
//! array).

use std::borrow::Cow;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    visit_expressions, visit_expressions_mut, Expr, Function, FunctionArg, FunctionArgExpr,
    FunctionArgumentList, FunctionArguments, GroupByExpr, Ident, LambdaFunction,
    LambdaFunctionParameter, LambdaSyntax, ObjectName, ObjectNamePart, OneOrManyWithParens,
    OrderByKind, Query, Select, SelectItem, SetExpr, Statement, TableFactor, Value,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

/// The subquery of an `ARRAY(SELECT ...)` call, if `expr` is one.
fn array_subquery(expr: &Expr) -> Option<&Query> {
    let Expr::Function(function) = expr else {
        return None;
    };
    let [name] = function.name.0.as_slice() else {
        return None;
    };
    let name = name.as_ident()?;
    if name.quote_style.is_some() || !name.value.eq_ignore_ascii_case("array") {
        return None;
    }
    match &function.args {
        FunctionArguments::Subquery(query) => Some(query),
        _ => None,
    }
}

/// `statement` with every `ARRAY(subquery)` read as an aggregate subquery;
/// the statement itself when it has none.
pub(crate) fn rewrite_array_subqueries(statement: Cow<'_, Statement>) -> Cow<'_, Statement> {
    let found = visit_expressions(statement.as_ref(), |expr| match array_subquery(expr) {
        Some(_) => ControlFlow::Break(()),
        None => ControlFlow::Continue(()),
    });
    if found.is_continue() {
        return statement;
    }
    let mut rewritten = statement.into_owned();
    let _ = visit_expressions_mut(&mut rewritten, |expr| {
        if let Some(replacement) =
            array_subquery(expr).and_then(|query| element_map(query).or_else(|| aggregating(query)))
        {
            *expr = replacement;
        }
        ControlFlow::<()>::Continue(())
    });
    Cow::Owned(rewritten)
}

fn parse_expr(text: &str) -> Option<Expr> {
    Parser::new(&PostgreSqlDialect {})
        .try_with_sql(text)
        .and_then(|mut parser| parser.parse_expr())
        .ok()
}

/// The select of `query` and its one item, when `query` is a plain
/// `SELECT e FROM ... [WHERE ...]`: no ordering, limit, `WITH`,
/// `DISTINCT`, grouping or `TOP`.
pub(super) fn plain_single_item(query: &Query) -> Option<(&Select, &Expr)> {
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    let plain = query.order_by.is_none()
        && query.limit_clause.is_none()
        && query.fetch.is_none()
        && query.with.is_none()
        && select.distinct.is_none()
        && select.having.is_none()
        && select.top.is_none()
        && matches!(&select.group_by, GroupByExpr::Expressions(e, m) if e.is_empty() && m.is_empty());
    match select.projection.as_slice() {
        [SelectItem::UnnamedExpr(item)] | [SelectItem::ExprWithAlias { expr: item, .. }]
            if plain =>
        {
            Some((select, item))
        }
        _ => None,
    }
}

/// `ARRAY(SELECT e(x) FROM [pg_catalog.]unnest(a) [AS] t[(x)])`, nothing
/// else in the query: `array_transform(a, element -> e(element))`.
fn element_map(query: &Query) -> Option<Expr> {
    let (select, item) = plain_single_item(query)?;
    let [from] = select.from.as_slice() else {
        return None;
    };
    if select.selection.is_some() || !from.joins.is_empty() {
        return None;
    }
    let (array, alias) = match &from.relation {
        TableFactor::UNNEST {
            alias,
            array_exprs,
            with_offset: false,
            with_ordinality: false,
            ..
        } => match array_exprs.as_slice() {
            [array] => (array.clone(), alias.as_ref()?),
            _ => return None,
        },
        TableFactor::Table {
            name,
            args: Some(args),
            alias,
            ..
        } => {
            let parts: Vec<String> = name
                .0
                .iter()
                .map(|p| p.as_ident().map(|i| i.value.to_ascii_lowercase()))
                .collect::<Option<_>>()?;
            let unnest = matches!(
                parts
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .as_slice(),
                ["unnest"] | ["pg_catalog", "unnest"]
            );
            match args.args.as_slice() {
                [FunctionArg::Unnamed(FunctionArgExpr::Expr(array))] if unnest => {
                    (array.clone(), alias.as_ref()?)
                }
                _ => return None,
            }
        }
        _ => return None,
    };
    let table = alias.name.value.to_ascii_lowercase();
    let column = match alias.columns.as_slice() {
        [] => table.clone(),
        [column] => column.name.value.to_ascii_lowercase(),
        _ => return None,
    };
    let element = Ident::new("__quiver_element");
    let mut body = item.clone();
    let mut subquery = false;
    let _ = visit_expressions_mut(&mut body, |e| {
        match e {
            Expr::Identifier(ident) if ident.value.to_ascii_lowercase() == column => {
                *e = Expr::Identifier(element.clone());
            }
            Expr::CompoundIdentifier(parts)
                if parts.len() == 2
                    && parts[0].value.to_ascii_lowercase() == table
                    && parts[1].value.to_ascii_lowercase() == column =>
            {
                *e = Expr::Identifier(element.clone());
            }
            Expr::Subquery(_) | Expr::Exists { .. } | Expr::InSubquery { .. } => subquery = true,
            _ => {}
        }
        ControlFlow::<()>::Continue(())
    });
    if subquery {
        return None;
    }
    let lambda = Expr::Lambda(LambdaFunction {
        params: OneOrManyWithParens::One(LambdaFunctionParameter {
            name: element,
            data_type: None,
        }),
        body: Box::new(body),
        syntax: LambdaSyntax::Arrow,
    });
    Some(function_call("array_transform", vec![array, lambda]))
}

/// `name(args...)`, a call of a function by its plain name.
pub(super) fn function_call(name: &str, args: Vec<Expr>) -> Expr {
    Expr::Function(Function {
        name: ObjectName(vec![ObjectNamePart::Identifier(Ident::new(name))]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: args
                .into_iter()
                .map(|arg| FunctionArg::Unnamed(FunctionArgExpr::Expr(arg)))
                .collect(),
            clauses: Vec::new(),
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: Vec::new(),
    })
}

/// The aggregating scalar subquery `ARRAY(query)` reads as.
fn aggregating(query: &Query) -> Option<Expr> {
    let SetExpr::Select(select) = query.body.as_ref() else {
        return wrapped(query);
    };
    let plain = select.distinct.is_none()
        && select.having.is_none()
        && matches!(&select.group_by, GroupByExpr::Expressions(e, m) if e.is_empty() && m.is_empty())
        && query.limit_clause.is_none()
        && query.fetch.is_none()
        && query.with.is_none();
    let item = match select.projection.as_slice() {
        [SelectItem::UnnamedExpr(e)] | [SelectItem::ExprWithAlias { expr: e, .. }] if plain => e,
        _ => return wrapped(query),
    };
    let order = match query.order_by.as_ref().map(|o| &o.kind) {
        None => String::new(),
        Some(OrderByKind::Expressions(exprs)) => {
            // A position (`ORDER BY 1`) names the one output column.
            let terms: Vec<String> = exprs
                .iter()
                .map(|term| {
                    let mut term = term.clone();
                    if matches!(&term.expr, Expr::Value(v) if matches!(v.value, Value::Number(..)))
                    {
                        term.expr = item.clone();
                    }
                    term.to_string()
                })
                .collect();
            format!(" ORDER BY {}", terms.join(", "))
        }
        Some(OrderByKind::All(_)) => return wrapped(query),
    };
    let aggregate = parse_expr(&format!("array_agg({item}{order})"))?;
    let mut query = query.clone();
    query.order_by = None;
    if let SetExpr::Select(select) = query.body.as_mut() {
        select.projection = vec![SelectItem::UnnamedExpr(aggregate)];
    }
    Some(Expr::Subquery(Box::new(query)))
}

/// `(SELECT array_agg(v) FROM (query) AS a(v))`.
fn wrapped(query: &Query) -> Option<Expr> {
    parse_expr(&format!(
        "(SELECT array_agg(__quiver_array_value) FROM ({query}) AS __quiver_array(__quiver_array_value))"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite(sql: &str) -> String {
        let statement = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .remove(0);
        rewrite_array_subqueries(Cow::Owned(statement)).to_string()
    }

    #[test]
    fn array_of_a_subquery_becomes_an_aggregate_subquery() {
        assert_eq!(
            rewrite("SELECT ARRAY(SELECT oid FROM pg_class WHERE relname = r.n ORDER BY 1) AS a FROM r"),
            "SELECT (SELECT array_agg(oid ORDER BY oid) FROM pg_class WHERE relname = r.n) AS a FROM r"
        );
        assert_eq!(
            rewrite("SELECT ARRAY(SELECT DISTINCT oid FROM pg_class)"),
            "SELECT (SELECT array_agg(__quiver_array_value) FROM (SELECT DISTINCT oid FROM \
             pg_class) AS __quiver_array (__quiver_array_value))"
        );
        // An array mapped element by element.
        assert_eq!(
            rewrite("SELECT ARRAY(SELECT 'toast.' || x FROM pg_catalog.unnest(tc.reloptions) x) FROM tc"),
            "SELECT array_transform(tc.reloptions, __quiver_element -> 'toast.' || __quiver_element) FROM tc"
        );
        assert_eq!(
            rewrite("SELECT ARRAY(SELECT quote_literal(t.x) FROM unnest(e.tags) AS t(x)) FROM e"),
            "SELECT array_transform(e.tags, __quiver_element -> quote_literal(__quiver_element)) FROM e"
        );
        // An array literal and a quoted "array" function are left alone.
        assert_eq!(rewrite("SELECT ARRAY[1, 2]"), "SELECT ARRAY[1, 2]");
    }
}
