//! The names of a query's output columns as PostgreSQL gives them: an
//! alias as written, a column's name, a function's name (`count`, `sum`,
//! `current_database`), a cast's type name when what it casts has no name
//! (`1::int` is `int4`), `case`, `exists`, `array`, `row`, and `?column?`
//! for everything else. Names may repeat (`SELECT 1 AS a, 2 AS a`).
//!
//! DataFusion names a column after its whole expression and refuses
//! repeated names, so the top-level select list of a query whose names
//! repeat is planned under unique internal aliases ([`unique_aliases`]),
//! and the output columns are renamed to PostgreSQL's names afterwards
//! ([`rename_schema`]), by position.

use std::borrow::Cow;
use std::sync::Arc;

use arrow::datatypes::{Schema, SchemaRef};
use datafusion::sql::sqlparser::ast::{
    CastKind, DataType, Expr, Ident, Query, Select, SelectItem, SetExpr, Statement,
};

use super::names::normalize_ident;

/// PostgreSQL's name of an output expression without an alias.
pub(crate) fn column_name(expr: &Expr) -> String {
    const UNNAMED: &str = "?column?";
    match expr {
        Expr::Identifier(ident) => normalize_ident(ident),
        Expr::CompoundIdentifier(parts) => parts.last().map(normalize_ident).unwrap_or_default(),
        Expr::Function(function) => function
            .name
            .0
            .last()
            .and_then(|part| part.as_ident())
            .map(normalize_ident)
            .unwrap_or_else(|| UNNAMED.to_string()),
        Expr::Cast {
            expr,
            data_type,
            kind,
            ..
        } => match column_name(expr) {
            // Only a column's or a function's name wins over the cast's
            // type name (`'[1]'::vector::real[]` is `float4`, `(CASE ...
            // END)::text` is `text`), as in PostgreSQL's FigureColname.
            name if strongly_named(expr) => name,
            _ if matches!(kind, CastKind::TryCast | CastKind::SafeCast) => "try_cast".into(),
            _ => type_name(data_type),
        },
        Expr::TypedString(typed) => type_name(&typed.data_type),
        Expr::Nested(inner) => column_name(inner),
        Expr::Case { .. } => "case".into(),
        Expr::Exists { .. } => "exists".into(),
        Expr::Array(_) => "array".into(),
        Expr::Tuple(_) => "row".into(),
        Expr::Subquery(query) => first_column_name(query).unwrap_or_else(|| UNNAMED.into()),
        Expr::Ceil { .. } => "ceil".into(),
        Expr::Floor { .. } => "floor".into(),
        Expr::Position { .. } => "position".into(),
        Expr::Substring { .. } => "substring".into(),
        Expr::Trim { .. } => "btrim".into(),
        Expr::Overlay { .. } => "overlay".into(),
        Expr::Extract { .. } => "extract".into(),
        Expr::Interval(_) => "interval".into(),
        _ => UNNAMED.into(),
    }
}

/// Whether PostgreSQL names `expr` after a column or a function (its
/// strongest kind of name, which a cast around it keeps).
fn strongly_named(expr: &Expr) -> bool {
    match expr {
        Expr::Identifier(_)
        | Expr::CompoundIdentifier(_)
        | Expr::Function(_)
        | Expr::Subquery(_)
        | Expr::Ceil { .. }
        | Expr::Floor { .. }
        | Expr::Position { .. }
        | Expr::Substring { .. }
        | Expr::Trim { .. }
        | Expr::Overlay { .. }
        | Expr::Extract { .. } => true,
        Expr::Cast { expr, .. } | Expr::Nested(expr) => strongly_named(expr),
        _ => false,
    }
}

/// The type name PostgreSQL's grammar gives a cast's target (`int` is
/// `int4`, `double precision` is `float8`, `varchar(10)` is `varchar`).
fn type_name(data_type: &DataType) -> String {
    let text = data_type.to_string().to_ascii_lowercase();
    let base = text
        .split(['(', '['])
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    match base.as_str() {
        "int" | "integer" | "int4" => "int4",
        "bigint" | "int8" => "int8",
        "smallint" | "int2" => "int2",
        "real" | "float4" => "float4",
        "double precision" | "double" | "float8" | "float" => "float8",
        "boolean" | "bool" => "bool",
        "decimal" | "numeric" => "numeric",
        "character varying" | "varchar" => "varchar",
        "character" | "char" => "bpchar",
        "timestamp with time zone" | "timestamptz" => "timestamptz",
        "timestamp" | "timestamp without time zone" => "timestamp",
        "time" | "time without time zone" => "time",
        other => other,
    }
    .to_string()
}

/// The name of a subquery's first output column, when it has one.
fn first_column_name(query: &Query) -> Option<String> {
    let names = item_names(leftmost_select(query)?);
    names.into_iter().next().flatten()
}

/// The select whose list names a query's columns (the leftmost of a set
/// operation).
fn leftmost_select(query: &Query) -> Option<&Select> {
    let mut body = query.body.as_ref();
    loop {
        match body {
            SetExpr::Select(select) => return Some(select),
            SetExpr::SetOperation { left, .. } => body = left,
            SetExpr::Query(inner) => body = inner.body.as_ref(),
            _ => return None,
        }
    }
}

/// Per select item: its name, `None` for a wildcard (whose columns keep
/// their own names).
fn item_names(select: &Select) -> Vec<Option<String>> {
    select
        .projection
        .iter()
        .map(|item| match item {
            SelectItem::UnnamedExpr(expr) => Some(column_name(expr)),
            SelectItem::ExprWithAlias { alias, .. } => Some(normalize_ident(alias)),
            _ => None,
        })
        .collect()
}

/// `schema` (of `statement`'s output) with its columns named as PostgreSQL
/// names them; unchanged for anything but a query, or when the select list
/// cannot be lined up with the columns (more than one wildcard).
pub(crate) fn rename_schema(statement: &Statement, schema: SchemaRef) -> SchemaRef {
    let Statement::Query(query) = statement else {
        return schema;
    };
    let Some(select) = leftmost_select(query) else {
        return schema;
    };
    let names = item_names(select);
    let wildcards = names.iter().filter(|n| n.is_none()).count();
    let columns = schema.fields().len();
    let wildcard_width = match wildcards {
        0 if names.len() == columns => 0,
        1 if columns + 1 >= names.len() => columns + 1 - names.len(),
        _ => return schema,
    };
    let mut renamed = Vec::with_capacity(columns);
    let mut fields = schema.fields().iter();
    for name in &names {
        match name {
            Some(name) => {
                let Some(field) = fields.next() else {
                    return schema;
                };
                renamed.push(Arc::new(field.as_ref().clone().with_name(name.as_str())));
            }
            None => renamed.extend(fields.by_ref().take(wildcard_width).cloned()),
        }
    }
    if renamed.len() != columns {
        return schema;
    }
    Arc::new(Schema::new_with_metadata(
        renamed,
        schema.metadata().clone(),
    ))
}

/// Internal alias of the top-level select item at `position`.
fn internal_alias(position: usize) -> Ident {
    Ident::with_quote('"', format!("?column?{position}"))
}

/// `statement` with its top-level select list under unique internal
/// aliases where DataFusion would refuse its names: every item when
/// PostgreSQL's names of them repeat, the items without an alias when a
/// wildcard's columns are listed too (`SELECT *, id::text`, whose cast
/// DataFusion names after its column); itself otherwise. Aliases the user
/// wrote stay when nothing repeats, so `ORDER BY` may name them. Each
/// branch of a set operation is one such select list (psql's `\d+` asks
/// `SELECT pubname, NULL, NULL ... UNION ...`); the operation's columns are
/// named after its first branch, as PostgreSQL names them.
pub(crate) fn unique_aliases(statement: &Statement) -> Cow<'_, Statement> {
    let Statement::Query(query) = statement else {
        return Cow::Borrowed(statement);
    };
    if !needs_aliases(&query.body) {
        return Cow::Borrowed(statement);
    }
    let mut rewritten = statement.clone();
    if let Statement::Query(query) = &mut rewritten {
        alias_set_expr(&mut query.body);
    }
    Cow::Owned(rewritten)
}

/// True when some select list of `body` (a branch of a set operation)
/// needs internal aliases.
fn needs_aliases(body: &SetExpr) -> bool {
    match body {
        SetExpr::Select(select) => select_needs_aliases(select).is_some(),
        SetExpr::SetOperation { left, right, .. } => needs_aliases(left) || needs_aliases(right),
        SetExpr::Query(query) => needs_aliases(&query.body),
        _ => false,
    }
}

fn alias_set_expr(body: &mut SetExpr) {
    match body {
        SetExpr::Select(select) => alias_select(select),
        SetExpr::SetOperation { left, right, .. } => {
            alias_set_expr(left);
            alias_set_expr(right);
        }
        SetExpr::Query(query) => alias_set_expr(&mut query.body),
        _ => {}
    }
}

/// `Some(repeated)` when the select list needs internal aliases: every
/// item's when names repeat (`Some(true)`), the unnamed items' when a
/// wildcard is listed with them (`Some(false)`).
fn select_needs_aliases(select: &Select) -> Option<bool> {
    let item_names = item_names(select);
    let wildcard = item_names.iter().any(Option::is_none);
    let names: Vec<&String> = item_names.iter().flatten().collect();
    let mut seen = std::collections::HashSet::new();
    let repeated = !names.iter().all(|name| seen.insert(*name));
    let unnamed = select
        .projection
        .iter()
        .any(|item| matches!(item, SelectItem::UnnamedExpr(_)));
    (repeated || (wildcard && unnamed)).then_some(repeated)
}

fn alias_select(select: &mut Select) {
    let Some(repeated) = select_needs_aliases(select) else {
        return;
    };
    for (position, item) in select.projection.iter_mut().enumerate() {
        let placeholder = SelectItem::Wildcard(Default::default());
        *item = match std::mem::replace(item, placeholder) {
            SelectItem::UnnamedExpr(expr) => SelectItem::ExprWithAlias {
                expr,
                alias: internal_alias(position),
            },
            SelectItem::ExprWithAlias { expr, .. } if repeated => SelectItem::ExprWithAlias {
                expr,
                alias: internal_alias(position),
            },
            other => other,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn names(sql: &str) -> Vec<Option<String>> {
        let statement = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .remove(0);
        let Statement::Query(query) = statement else {
            panic!("not a query");
        };
        item_names(leftmost_select(&query).unwrap())
    }

    #[test]
    fn names_are_postgresqls() {
        let expected = [
            ("SELECT 1", "?column?"),
            ("SELECT count(*) FROM t", "count"),
            ("SELECT SUM(t.id) FROM t", "sum"),
            ("SELECT t.Id FROM t", "id"),
            ("SELECT \"Id\" FROM t", "Id"),
            ("SELECT 5::float8", "float8"),
            ("SELECT 1::int", "int4"),
            ("SELECT CAST(1 AS double precision)", "float8"),
            ("SELECT '1'::varchar(3)", "varchar"),
            ("SELECT id::text FROM t", "id"),
            ("SELECT id::text::int4 FROM t", "id"),
            ("SELECT '[1,2]'::vector::real[]", "float4"),
            ("SELECT (CASE WHEN true THEN 1 END)::text", "text"),
            ("SELECT (1 + 1)::int", "int4"),
            ("SELECT count(*)::int FROM t", "count"),
            ("SELECT current_database()", "current_database"),
            ("SELECT CASE WHEN true THEN 1 END", "case"),
            ("SELECT EXISTS (SELECT 1)", "exists"),
            ("SELECT (SELECT max(id) FROM t)", "max"),
            ("SELECT 1 + 1", "?column?"),
            ("SELECT NULL", "?column?"),
            ("SELECT 1 AS One", "one"),
            ("SELECT 1 AS \"One\"", "One"),
            ("SELECT 1 UNION SELECT 2 AS b", "?column?"),
        ];
        for (sql, name) in expected {
            assert_eq!(names(sql), [Some(name.to_string())], "{sql}");
        }
        assert_eq!(names("SELECT *, 1 FROM t"), [None, Some("?column?".into())]);
    }

    #[test]
    fn repeated_names_are_planned_under_unique_aliases() {
        let statement = Parser::parse_sql(&PostgreSqlDialect {}, "SELECT 1 AS a, 2 AS a, 3")
            .unwrap()
            .remove(0);
        let rewritten = unique_aliases(&statement);
        assert_eq!(
            rewritten.to_string(),
            "SELECT 1 AS \"?column?0\", 2 AS \"?column?1\", 3 AS \"?column?2\""
        );
        let unique = Parser::parse_sql(&PostgreSqlDialect {}, "SELECT 1 AS a, 2 AS b")
            .unwrap()
            .remove(0);
        assert!(matches!(unique_aliases(&unique), Cow::Borrowed(_)));
    }
}
