//! Identifiers: [`quote_ident`] (PostgreSQL's quoting), and the
//! identifier-length limit of SQL statements: every name a statement
//! gives or references (tables, schemas, indexes, columns, column
//! references in expressions) is at most [`MAX_IDENTIFIER_LEN`] bytes.
//!
//! PostgreSQL truncates identifiers longer than 63 bytes with a NOTICE
//! (`identifier "..." will be truncated to "..."`). Quiver instead allows
//! Milvus' 255 (so every collection stays reachable as a table) and refuses
//! longer identifiers with SQLSTATE 42622 (`name_too_long`) and
//! PostgreSQL's "identifier too long", never truncating one: a truncated
//! name could silently address another table.
//!
//! Checked where statements are dispatched ([`check`] from
//! `QueryHandler::prepare` and `execute`), so the Milvus door's statements
//! are held to it too.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    visit_expressions, visit_relations, AlterTableOperation, Expr, Ident, ObjectName,
    RenameTableNameKind, SchemaName, Statement,
};
use quiver_common::limits::MAX_IDENTIFIER_LEN;

use crate::error::{Result, SqlError};

/// How much of a refused identifier the error shows.
const SHOWN_CHARS: usize = 63;

/// Refuses `statement` if any identifier in it is too long.
pub(crate) fn check(statement: &Statement) -> Result<()> {
    if let Some(ident) = too_long(statement) {
        return Err(too_long_error(&ident.value));
    }
    Ok(())
}

/// An identifier as PostgreSQL's `quote_ident` writes it: bare when it is
/// a plain lower-case identifier, double-quoted otherwise (`"Mixed"`).
pub(crate) fn quote_ident(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// The error for an identifier `value` over the limit.
pub(crate) fn too_long_error(value: &str) -> SqlError {
    let shown: String = value.chars().take(SHOWN_CHARS).collect();
    let shown = if shown.len() < value.len() {
        format!("{shown}...")
    } else {
        shown
    };
    SqlError::IdentifierTooLong {
        shown,
        bytes: value.len(),
        limit: MAX_IDENTIFIER_LEN,
    }
}

fn long(ident: &Ident) -> bool {
    ident.value.len() > MAX_IDENTIFIER_LEN
}

fn long_in(name: &ObjectName) -> Option<&Ident> {
    name.0
        .iter()
        .filter_map(|part| part.as_ident())
        .find(|i| long(i))
}

/// The first identifier of `statement` over the limit.
fn too_long(statement: &Statement) -> Option<Ident> {
    if let Some(ident) = named_by_ddl(statement) {
        return Some(ident.clone());
    }
    let mut found = None;
    let _ = visit_relations(statement, |name| match long_in(name) {
        Some(ident) => {
            found = Some(ident.clone());
            ControlFlow::Break(())
        }
        None => ControlFlow::Continue(()),
    });
    if found.is_some() {
        return found;
    }
    let _ = visit_expressions(statement, |expr| {
        let hit = match expr {
            Expr::Identifier(ident) => long(ident).then_some(ident),
            Expr::CompoundIdentifier(idents) => idents.iter().find(|i| long(i)),
            _ => None,
        };
        match hit {
            Some(ident) => {
                found = Some(ident.clone());
                ControlFlow::Break(())
            }
            None => ControlFlow::Continue(()),
        }
    });
    found
}

/// Names a DDL statement gives that are no relation references.
fn named_by_ddl(statement: &Statement) -> Option<&Ident> {
    match statement {
        Statement::CreateTable(create) => long_in(&create.name).or_else(|| {
            create
                .columns
                .iter()
                .map(|c| &c.name)
                .find(|name| long(name))
        }),
        Statement::CreateIndex(create) => create.name.as_ref().and_then(long_in),
        Statement::CreateSchema { schema_name, .. } => match schema_name {
            SchemaName::Simple(name) | SchemaName::NamedAuthorization(name, _) => long_in(name),
            SchemaName::UnnamedAuthorization(_) => None,
        },
        Statement::AlterTable(alter) => alter.operations.iter().find_map(|op| match op {
            AlterTableOperation::AddColumn { column_def, .. } => {
                long(&column_def.name).then_some(&column_def.name)
            }
            AlterTableOperation::RenameColumn {
                new_column_name, ..
            } => long(new_column_name).then_some(new_column_name),
            AlterTableOperation::RenameTable { table_name } => match table_name {
                RenameTableNameKind::As(name) | RenameTableNameKind::To(name) => long_in(name),
            },
            _ => None,
        }),
        Statement::Drop { names, .. } => names.iter().find_map(long_in),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;
    use quiver_common::status::StatusCode;

    fn checked(sql: &str) -> Result<()> {
        let statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).expect("parses");
        statements.iter().try_for_each(check)
    }

    fn refused(sql: &str) -> SqlError {
        checked(sql).expect_err(sql)
    }

    #[test]
    fn names_up_to_the_limit_pass() {
        let name = "t".repeat(MAX_IDENTIFIER_LEN);
        checked(&format!(
            "CREATE TABLE {name} (id bigint primary key, {name} int)"
        ))
        .unwrap();
        checked(&format!("SELECT {name}.{name} FROM public.{name}")).unwrap();
        checked(&format!("CREATE SCHEMA \"{name}\"")).unwrap();
        checked("SELECT 'a very long string literal is no identifier at all, however long it grows past any limit whatsoever, this is fine, a string literal never names a table or a column, so it can be as long as the message limit lets it be, and it still passes this check because only names are counted here, this one included, really'").unwrap();
    }

    #[test]
    fn every_kind_of_name_is_held_to_the_limit() {
        let long = "x".repeat(MAX_IDENTIFIER_LEN + 1);
        let cases = [
            format!("CREATE TABLE {long} (id bigint)"),
            format!("CREATE TABLE t (id bigint, {long} int)"),
            format!("CREATE TABLE \"{long}\".t (id bigint)"),
            format!("CREATE INDEX {long} ON t USING hnsw (v vector_l2_ops)"),
            format!("CREATE SCHEMA {long}"),
            format!("ALTER TABLE t ADD COLUMN {long} int"),
            format!("ALTER TABLE t RENAME COLUMN a TO {long}"),
            format!("ALTER TABLE t RENAME TO {long}"),
            format!("DROP TABLE {long}"),
            format!("SELECT * FROM {long}"),
            format!("SELECT {long} FROM t"),
            format!("SELECT t.{long} FROM t"),
            format!("SELECT id FROM t WHERE {long} > 1"),
            format!("INSERT INTO {long} VALUES (1)"),
            format!("DELETE FROM t WHERE {long} = 1"),
            format!("UPDATE {long} SET a = 1"),
        ];
        for sql in &cases {
            let e = refused(sql);
            assert_eq!(e.status_code(), StatusCode::NameTooLong, "{sql}");
        }
    }

    #[test]
    fn the_error_reads_like_postgres_and_shows_the_start() {
        let long = "n".repeat(10_000);
        let e = refused(&format!("SELECT * FROM {long}"));
        let message = e.to_string();
        assert!(message.starts_with("identifier too long: \""), "{message}");
        assert!(message.contains("has 10000 bytes"), "{message}");
        assert!(message.contains(&format!("at most {MAX_IDENTIFIER_LEN} bytes")));
        assert!(
            message.len() < 200,
            "the name is not echoed whole: {message}"
        );
    }

    #[test]
    fn bytes_count_not_characters() {
        // 128 two-byte characters: 256 bytes.
        let name = "é".repeat(128);
        assert!(checked(&format!("SELECT * FROM \"{name}\"")).is_err());
        let name = "é".repeat(127);
        assert!(checked(&format!("SELECT * FROM \"{name}\"")).is_ok());
    }

    #[test]
    fn show_max_identifier_length_reports_the_enforced_limit() {
        assert_eq!(
            super::super::session_cmds::MAX_IDENTIFIER_LENGTH_SETTING,
            MAX_IDENTIFIER_LEN.to_string()
        );
    }
}
