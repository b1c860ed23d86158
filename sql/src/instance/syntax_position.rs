//! Where a statement text stops parsing, as PostgreSQL reports it: the
//! message `syntax error at or near "x"` (or `at end of input`) and the
//! 1-based character position of that token, which psql turns into
//! `LINE n:` and a caret. Run only on the error path: the text is parsed
//! again by sqlparser with token locations (the compatibility parser's
//! errors carry none).

use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};

use crate::error::SqlError;

/// The positioned form of a syntax error in `sql`, or `error` itself when
/// the parser gives no location for it.
pub(super) fn locate(sql: &str, error: SqlError) -> SqlError {
    if !matches!(error, SqlError::Syntax(_)) {
        return error;
    }
    let Err(ParserError::ParserError(message) | ParserError::TokenizerError(message)) =
        Parser::new(&PostgreSqlDialect {})
            .try_with_sql(sql)
            .and_then(|mut p| p.parse_statements())
    else {
        return error;
    };
    match positioned(sql, &message) {
        Some((message, position)) => SqlError::SyntaxAt { message, position },
        None => error,
    }
}

/// `(message, position)` from sqlparser's `... found: TOKEN at Line: l,
/// Column: c` (or `... found: EOF`).
fn positioned(sql: &str, message: &str) -> Option<(String, usize)> {
    // The end of input has no location of its own.
    if message.ends_with("found: EOF") {
        return Some((
            "syntax error at end of input".to_string(),
            sql.chars().count() + 1,
        ));
    }
    let (head, location) = message.rsplit_once(" at Line: ")?;
    let (line, column) = location.split_once(", Column: ")?;
    let line: usize = line.trim().parse().ok()?;
    let column: usize = column.trim().parse().ok()?;
    let found = head.rsplit_once("found: ").map(|(_, token)| token);
    if found == Some("EOF") {
        return Some((
            "syntax error at end of input".to_string(),
            sql.chars().count() + 1,
        ));
    }
    let before: usize = sql
        .split('\n')
        .take(line.checked_sub(1)?)
        .map(|l| l.chars().count() + 1)
        .sum();
    let position = before + column;
    let token = match found {
        Some(token) => token.to_string(),
        None => sql
            .chars()
            .skip(position - 1)
            .take_while(|c| !c.is_whitespace())
            .collect(),
    };
    Some((format!("syntax error at or near \"{token}\""), position))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(sql: &str) -> (String, usize) {
        match locate(sql, SqlError::Syntax("x".into())) {
            SqlError::SyntaxAt { message, position } => (message, position),
            other => panic!("not positioned: {other}"),
        }
    }

    #[test]
    fn errors_point_at_the_token_or_the_end_of_input() {
        assert_eq!(
            at("SELECT 1 +"),
            ("syntax error at end of input".to_string(), 11)
        );
        assert_eq!(
            at("SELECT * FORM t"),
            ("syntax error at or near \"t\"".to_string(), 15)
        );
        assert_eq!(
            at("SELECT 1;\nSELECT * FROM t WHERE"),
            ("syntax error at end of input".to_string(), 32)
        );
        assert_eq!(
            at("SELECT 1;\nSELEC 2"),
            ("syntax error at or near \"SELEC\"".to_string(), 11)
        );
        // Not a syntax error: left as it is.
        assert!(matches!(
            locate("SELECT 1", SqlError::Internal("x".into())),
            SqlError::Internal(_)
        ));
    }
}
