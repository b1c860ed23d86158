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

/// The schemas a `search_path` value lists, in order, each once: quotes
/// removed, `$user` read as the session user's name (a schema of that name
/// is searched when it exists, as PostgreSQL does).
pub(crate) fn search_path_entries(path: &str, user: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for entry in path.split(',') {
        let entry = entry.trim();
        let name = match entry {
            "$user" | "\"$user\"" => user.to_string(),
            quoted if quoted.len() >= 2 && quoted.starts_with('"') && quoted.ends_with('"') => {
                quoted[1..quoted.len() - 1].replace("\"\"", "\"")
            }
            plain => plain.to_ascii_lowercase(),
        };
        if !name.is_empty() && !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// `name` as a quoted SQL identifier (`"a""b"`), read back exactly.
pub(crate) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::search_path_entries;

    #[test]
    fn search_path_entries_read_user_and_quotes() {
        assert_eq!(
            search_path_entries("\"$user\", public", "alice"),
            ["alice", "public"]
        );
        assert_eq!(
            search_path_entries("x, \"My Schema\", X, public", "u"),
            ["x", "My Schema", "public"]
        );
        assert_eq!(search_path_entries("", "u"), Vec::<String>::new());
    }
}
