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

/// The names a connection may give the default database (whose schema is
/// `public`, Milvus' `default`).
pub(crate) const DEFAULT_DATABASE_ALIASES: [&str; 3] = ["quiver", "postgres", "default"];
