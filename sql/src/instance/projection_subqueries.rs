//! Scalar subqueries in a select list, kept. datafusion-pg-catalog's
//! compatibility parser rewrites every statement with a set of rules, one
//! of which (`RemoveSubqueryFromProjection`) replaces a correlated scalar
//! subquery of a select list with NULL — `SELECT t.id, (SELECT c.name FROM
//! c WHERE c.k = t.k) FROM t` answered NULL for every row — and adds
//! `LIMIT 1` to an uncorrelated one, hiding the `21000` error of a
//! subquery with more rows. A statement holding such a subquery is read
//! by the compatibility parser's other rules only
//! ([`rewrite_without_projection_rule`]); Quiver plans the subquery
//! (`scalar_subquery`, DataFusion's decorrelation).

use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::common::tree_node::TreeNode;
use datafusion::logical_expr::{Expr as LogicalExpr, LogicalPlan};
use datafusion::sql::sqlparser::ast::{visit_relations, Expr, SelectItem, SetExpr, Statement};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion_pg_catalog::sql::rules::{
    AliasDuplicatedProjectionRewrite, CurrentUserVariableToSessionUserFunctionCall,
    FixArrayLiteral, FixVersionColumnName, PrependUnqualifiedPgTableName,
    RemoveSubqueryFromProjection, ResolveUnqualifiedIdentifier, RewriteArrayAnyAllOperation,
    RewritePgCatalogOperator, RewriteRegCastToSubquery, SqlStatementRewriteRule,
    StripCallableQualifier, StripCollate,
};

/// The compatibility parser's rules, in its order, without the one that
/// drops select-list subqueries.
pub(super) struct ProjectionSafeRules(Vec<Arc<dyn SqlStatementRewriteRule>>);

impl std::fmt::Debug for ProjectionSafeRules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ProjectionSafeRules({} rules)", self.0.len())
    }
}

impl Default for ProjectionSafeRules {
    fn default() -> Self {
        Self(vec![
            Arc::new(AliasDuplicatedProjectionRewrite),
            Arc::new(ResolveUnqualifiedIdentifier),
            Arc::new(RewriteArrayAnyAllOperation),
            Arc::new(PrependUnqualifiedPgTableName),
            Arc::new(StripCallableQualifier),
            Arc::new(FixArrayLiteral),
            Arc::new(CurrentUserVariableToSessionUserFunctionCall),
            Arc::new(StripCollate),
            Arc::new(RewritePgCatalogOperator),
            Arc::new(RewriteRegCastToSubquery::new()),
            Arc::new(FixVersionColumnName),
        ])
    }
}

impl ProjectionSafeRules {
    /// `statement` read by the rules.
    pub(super) fn rewrite_without_projection_rule(&self, mut statement: Statement) -> Statement {
        for rule in &self.0 {
            statement = rule.rewrite(statement);
        }
        statement
    }

    /// `compat` (the compatibility parser's statements of `sql`) with each
    /// statement whose text has a subquery in a select list read again
    /// from the text by the rules that keep it. `compat` itself when the
    /// text has none (or parses into other statements).
    pub(super) fn keep_projection_subqueries(
        &self,
        sql: &str,
        compat: Vec<Statement>,
    ) -> Vec<Statement> {
        // A subquery needs a second SELECT: the text of almost every
        // statement is not parsed again.
        if sql.to_ascii_lowercase().matches("select").nth(1).is_none() {
            return compat;
        }
        let Ok(raw) = Parser::parse_sql(&PostgreSqlDialect {}, sql) else {
            return compat;
        };
        if raw.len() != compat.len() || !raw.iter().any(has_projection_subquery) {
            return compat;
        }
        raw.into_iter()
            .zip(compat)
            .map(|(raw, compat)| {
                if has_projection_subquery(&raw) {
                    self.rewrite_without_projection_rule(raw)
                } else {
                    compat
                }
            })
            .collect()
    }
}

/// True when `plan` still evaluates a correlated scalar subquery
/// (DataFusion could not turn it into a join; its physical planner cannot
/// run it).
pub(super) fn has_scalar_subquery(plan: &LogicalPlan) -> bool {
    plan.exists(|node| {
        Ok(node.expressions().iter().any(|expr| {
            expr.exists(|e| {
                Ok(matches!(e, LogicalExpr::ScalarSubquery(s) if !s.outer_ref_columns.is_empty()))
            })
            .unwrap_or(true)
        }))
    })
    .unwrap_or(true)
}

/// True when every relation `statement` reads is a system catalog
/// (`pg_catalog`, `information_schema`, a `pg_*` table).
pub(super) fn reads_system_catalogs_only(statement: &Statement) -> bool {
    let mut all = true;
    let _ = visit_relations(statement, |name| {
        let parts: Vec<String> = name
            .0
            .iter()
            .filter_map(|p| p.as_ident().map(|i| i.value.to_ascii_lowercase()))
            .collect();
        let system = match parts.as_slice() {
            [schema, _] => schema == "pg_catalog" || schema == "information_schema",
            [table] => table.starts_with("pg_"),
            _ => false,
        };
        all &= system;
        ControlFlow::<()>::Continue(())
    });
    all
}

/// `statement` with its select-list subqueries NULL (the compatibility
/// parser's reading).
pub(super) fn without_projection_subqueries(statement: &Statement) -> Statement {
    RemoveSubqueryFromProjection.rewrite(statement.clone())
}

/// True when some select list of `statement` has a scalar subquery item.
pub(super) fn has_projection_subquery(statement: &Statement) -> bool {
    let mut found = false;
    let _ = datafusion::sql::sqlparser::ast::visit_expressions(statement, |expr| {
        if let Expr::Subquery(query) = expr {
            found |= select_list_has_subquery(&query.body);
        }
        ControlFlow::<()>::Continue(())
    });
    if let Statement::Query(query) = statement {
        found |= select_list_has_subquery(&query.body);
    }
    found
}

fn select_list_has_subquery(body: &SetExpr) -> bool {
    match body {
        SetExpr::Select(select) => select.projection.iter().any(|item| {
            matches!(
                item,
                SelectItem::UnnamedExpr(Expr::Subquery(_))
                    | SelectItem::ExprWithAlias {
                        expr: Expr::Subquery(_),
                        ..
                    }
            )
        }),
        SetExpr::SetOperation { left, right, .. } => {
            select_list_has_subquery(left) || select_list_has_subquery(right)
        }
        SetExpr::Query(query) => select_list_has_subquery(&query.body),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use datafusion_pg_catalog::sql::PostgresCompatibilityParser;

    use super::*;

    #[test]
    fn select_list_subqueries_are_kept() {
        let sql = "SELECT t.id, (SELECT c.name FROM c WHERE c.k = t.k) FROM t";
        let compat = PostgresCompatibilityParser::new().parse(sql).unwrap();
        // What the compatibility parser alone makes of it.
        assert_eq!(compat[0].to_string(), "SELECT t.id, NULL FROM t");
        let kept = ProjectionSafeRules::default().keep_projection_subqueries(sql, compat);
        assert_eq!(kept[0].to_string(), sql);
        // Other statements are the compatibility parser's.
        let sql = "SELECT 1; SELECT relname FROM pg_class";
        let compat = PostgresCompatibilityParser::new().parse(sql).unwrap();
        let expected: Vec<String> = compat.iter().map(|s| s.to_string()).collect();
        let kept = ProjectionSafeRules::default().keep_projection_subqueries(sql, compat);
        assert_eq!(
            kept.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            expected
        );
    }
}
