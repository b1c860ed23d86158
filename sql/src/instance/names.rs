//! Name rules every part of the instance shares (a leaf module): how an
//! identifier folds, and the names of the default database.

/// Postgres identifier rules: unquoted names fold to lower case.
pub(crate) fn normalize_ident(ident: &datafusion::sql::sqlparser::ast::Ident) -> String {
    if ident.quote_style.is_some() {
        ident.value.clone()
    } else {
        ident.value.to_lowercase()
    }
}

/// The names a connection may give the default database besides its
/// schema's (`public`; Milvus calls it `default`).
const DEFAULT_DATABASE_ALIASES: [&str; 3] = ["quiver", "postgres", "default"];

/// The database (schema) a database name means: the default database's
/// schema for each of its names, the name itself otherwise.
pub(crate) fn database_schema(name: &str) -> &str {
    if DEFAULT_DATABASE_ALIASES.contains(&name) {
        quiver_cluster::DEFAULT_DATABASE
    } else {
        name
    }
}
