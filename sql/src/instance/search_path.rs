//! Name lookup along `search_path`, as PostgreSQL does it: an unqualified
//! name of an existing relation means the first schema on the path that
//! holds it (a session connected to database `x` searches `x`, then
//! `public`); a new relation goes to the first schema on the path that
//! exists. DataFusion itself resolves unqualified names in one default
//! schema, so queries have their unqualified relations qualified here
//! before planning, when they live further down the path.

use std::collections::HashSet;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    visit_relations_mut, Ident, ObjectName, ObjectNamePart, Query, Statement, Visit, Visitor,
};

use super::names::normalize_ident;
use super::session::SqlSession;
use super::session_cmds::current_schema;

/// The schemas of the session's `search_path` that exist, in order.
/// `$user` is skipped, as the current schema skips it (`SET search_path`).
pub(crate) fn path_schemas(session: &SqlSession) -> Vec<String> {
    let Some(path) = session.settings.get("search_path") else {
        return Vec::new();
    };
    let Some(catalog) = session.ctx.catalog(quiver_planner::session::CATALOG_NAME) else {
        return Vec::new();
    };
    let mut schemas: Vec<String> = Vec::new();
    for entry in path.split(',') {
        // Read as `SET search_path` reads it for the current schema.
        let name = entry.trim().trim_matches('"').to_string();
        if name == "$user" {
            continue;
        }
        if !name.is_empty() && !schemas.contains(&name) && catalog.schema(&name).is_some() {
            schemas.push(name);
        }
    }
    schemas
}

/// The schema an unqualified `table` of an existing relation is in: the
/// first on the path holding it, else the current schema (whose lookup
/// then reports it missing).
pub(crate) fn schema_of(session: &SqlSession, table: &str) -> String {
    let current = current_schema(session);
    let schemas = path_schemas(session);
    if schemas.len() < 2 {
        return current;
    }
    let Some(catalog) = session.ctx.catalog(quiver_planner::session::CATALOG_NAME) else {
        return current;
    };
    schemas
        .into_iter()
        .find(|schema| {
            catalog
                .schema(schema)
                .is_some_and(|provider| provider.table_exist(table))
        })
        .unwrap_or(current)
}

/// The names the statement's `WITH` clauses define (never qualified).
struct CommonTableNames(HashSet<String>);

impl Visitor for CommonTableNames {
    type Break = ();

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        if let Some(with) = &query.with {
            for cte in &with.cte_tables {
                self.0.insert(normalize_ident(&cte.alias.name));
            }
        }
        ControlFlow::Continue(())
    }
}

/// `statement` with its unqualified relations that live in a schema further
/// down the path than the current one qualified with that schema; the
/// statement itself (no copy) when the path has one schema.
pub(crate) fn qualify_relations<'s>(
    session: &SqlSession,
    statement: &'s Statement,
) -> std::borrow::Cow<'s, Statement> {
    if path_schemas(session).len() < 2 {
        return std::borrow::Cow::Borrowed(statement);
    }
    let current = current_schema(session);
    let mut common = CommonTableNames(HashSet::new());
    let _ = statement.visit(&mut common);
    let mut qualified = statement.clone();
    let _ = visit_relations_mut(&mut qualified, |name: &mut ObjectName| {
        if let [ObjectNamePart::Identifier(ident)] = name.0.as_slice() {
            let table = normalize_ident(ident);
            if !common.0.contains(&table) {
                let schema = schema_of(session, &table);
                if schema != current {
                    name.0.insert(
                        0,
                        ObjectNamePart::Identifier(Ident::with_quote('"', schema)),
                    );
                }
            }
        }
        ControlFlow::<()>::Continue(())
    });
    std::borrow::Cow::Owned(qualified)
}
