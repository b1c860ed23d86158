//! Name lookup along `search_path`, as PostgreSQL does it: an unqualified
//! name of an existing relation means the first schema on the path that
//! holds it (a session connected to database `x` searches `x`, then
//! `public`); a new relation goes to the first schema on the path that
//! exists. DataFusion itself resolves unqualified names in one default
//! schema, so queries have their unqualified relations qualified here
//! before planning, when they live further down the path.

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::catalog::SchemaProvider;

use datafusion::sql::sqlparser::ast::{
    visit_relations_mut, Ident, ObjectName, ObjectNamePart, Query, Statement, Visit, Visitor,
};

use super::names::{normalize_ident, search_path_entries};
use super::session::SqlSession;
use super::session_cmds::current_schema;

/// A session's `search_path` when it lists more than one schema that
/// exists (with one, unqualified names need no lookup: they are the
/// current schema's), read once per statement.
struct SearchPath {
    /// The current schema (the first on the path that exists).
    current: String,
    /// The schemas on the path that exist, in order, with their providers.
    schemas: Vec<(String, Arc<dyn SchemaProvider>)>,
}

impl SearchPath {
    /// The session's path; `None` when it lists fewer than two schemas
    /// that exist. `$user` is the session user's schema, when it exists.
    fn of(session: &SqlSession) -> Option<SearchPath> {
        let path = session.settings.get("search_path")?;
        // Read as `SET search_path` reads it for the current schema.
        let names = search_path_entries(path, &session.user);
        if names.len() < 2 {
            return None;
        }
        let catalog = session.ctx.catalog(quiver_planner::session::CATALOG_NAME)?;
        let schemas: Vec<(String, Arc<dyn SchemaProvider>)> = names
            .into_iter()
            .filter_map(|name| Some((name.clone(), catalog.schema(&name)?)))
            .collect();
        (schemas.len() >= 2).then(|| SearchPath {
            current: current_schema(session),
            schemas,
        })
    }

    /// The schema an unqualified `table` of an existing relation is in:
    /// the first on the path holding it, else the current schema (whose
    /// lookup then reports it missing).
    fn schema_of(&self, table: &str) -> &str {
        self.schemas
            .iter()
            .find(|(_, provider)| provider.table_exist(table))
            .map_or(self.current.as_str(), |(name, _)| name.as_str())
    }
}

/// The schema an unqualified `table` of an existing relation is in (see
/// [`SearchPath::schema_of`]).
pub(crate) fn schema_of(session: &SqlSession, table: &str) -> String {
    match SearchPath::of(session) {
        Some(path) => path.schema_of(table).to_string(),
        None => current_schema(session),
    }
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
    let Some(path) = SearchPath::of(session) else {
        return std::borrow::Cow::Borrowed(statement);
    };
    let mut common = CommonTableNames(HashSet::new());
    let _ = statement.visit(&mut common);
    let mut qualified = statement.clone();
    let _ = visit_relations_mut(&mut qualified, |name: &mut ObjectName| {
        if let [ObjectNamePart::Identifier(ident)] = name.0.as_slice() {
            let table = normalize_ident(ident);
            if !common.0.contains(&table) {
                let schema = path.schema_of(&table);
                if schema != path.current {
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
