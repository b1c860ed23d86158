//! Token-level fixes the SQL parser needs before it sees a statement
//! (token-level, so strings and comments are untouched): pgvector's `<+>`
//! operator, which the tokenizer splits into `<`, `+`, `>`, joined back;
//! PostgreSQL's `CREATE UNLOGGED TABLE`, which the parser does not know,
//! read as `CREATE TABLE` (Quiver logs every table: an unlogged table is
//! one PostgreSQL may lose in a crash, a logged one is the stronger
//! promise).

use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

use crate::error::{Result, SqlError};

/// The tokens of `sql` when a fix applies to them (`None`: parse the text
/// as it is).
pub(super) fn fix_tokens(sql: &str) -> Result<Option<Vec<Token>>> {
    let operators = sql.contains('<') && sql.contains('+');
    let unlogged = sql
        .as_bytes()
        .windows(8)
        .any(|w| w.eq_ignore_ascii_case(b"unlogged"));
    if !operators && !unlogged {
        return Ok(None);
    }
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql)
        .tokenize()
        .map_err(|e| SqlError::Syntax(e.to_string()))?;
    let (tokens, joined) = join_vector_operators(tokens);
    let (tokens, dropped) = drop_unlogged(tokens);
    Ok((joined || dropped).then_some(tokens))
}

/// `CREATE UNLOGGED TABLE` without its `UNLOGGED`.
fn drop_unlogged(tokens: Vec<Token>) -> (Vec<Token>, bool) {
    let word = |token: &Token, keyword: &str| matches!(token, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(keyword));
    let significant = |tokens: &[Token], from: usize, step: isize| -> Option<usize> {
        let mut i = from as isize + step;
        while i >= 0 && (i as usize) < tokens.len() {
            if !matches!(tokens[i as usize], Token::Whitespace(_)) {
                return Some(i as usize);
            }
            i += step;
        }
        None
    };
    let drop: Vec<usize> = (0..tokens.len())
        .filter(|&i| {
            word(&tokens[i], "unlogged")
                && significant(&tokens, i, -1).is_some_and(|p| word(&tokens[p], "create"))
                && significant(&tokens, i, 1).is_some_and(|n| word(&tokens[n], "table"))
        })
        .collect();
    if drop.is_empty() {
        return (tokens, false);
    }
    let kept = tokens
        .into_iter()
        .enumerate()
        .filter(|(i, _)| !drop.contains(i))
        .map(|(_, token)| token)
        .collect();
    (kept, true)
}

/// pgvector's `<+>`, split by the tokenizer into `<`, `+`, `>`, as one
/// operator token.
fn join_vector_operators(tokens: Vec<Token>) -> (Vec<Token>, bool) {
    let mut out: Vec<Token> = Vec::with_capacity(tokens.len());
    let mut i = 0;
    let mut changed = false;
    while i < tokens.len() {
        let mut joined = None;
        for k in 2..=3 {
            if i + k <= tokens.len() {
                let text: String = tokens[i..i + k].iter().map(|t| t.to_string()).collect();
                let operator_parts = tokens[i..i + k].iter().all(|t| {
                    !matches!(
                        t,
                        Token::Whitespace(_) | Token::Word(_) | Token::SingleQuotedString(_)
                    )
                });
                if operator_parts && text == "<+>" {
                    joined = Some(k);
                    break;
                }
            }
        }
        match joined {
            Some(k) => {
                out.push(Token::CustomBinaryOperator("<+>".into()));
                i += k;
                changed = true;
            }
            None => {
                out.push(tokens[i].clone());
                i += 1;
            }
        }
    }
    (out, changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(tokens: Option<Vec<Token>>) -> Option<String> {
        tokens.map(|t| t.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn unlogged_tables_are_read_as_tables() {
        assert_eq!(
            text(fix_tokens("create Unlogged  table t (id bigint primary key)").unwrap()),
            Some("create   table t (id bigint primary key)".into())
        );
        // Only between CREATE and TABLE; strings and other names stay.
        assert_eq!(
            text(fix_tokens("SELECT 'unlogged' AS unlogged").unwrap()),
            None
        );
        assert_eq!(
            text(fix_tokens("SELECT v <+> '[1]' FROM t").unwrap()),
            Some("SELECT v <+> '[1]' FROM t".into())
        );
    }
}
