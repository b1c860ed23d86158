//! Where in the statement text an error's subject is written: PostgreSQL
//! reports the 1-based character position of a relation or column that
//! does not exist (psql shows `LINE n:` and a caret under it). The access
//! layer's error names the relation or column
//! ([`SqlError::named_in_statement`]); the door finds the first word of the
//! text the client sent that names it (a qualified name from its start).

use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
use quiver_sql::error::SqlError;

/// The 1-based character position in `text` of what `err` is about.
pub fn error_position(text: &str, err: &SqlError) -> Option<usize> {
    let name = err.named_in_statement()?;
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, text)
        .tokenize_with_location()
        .ok()?;
    let names_it = |token: &Token| match token {
        // An unquoted word is folded to lower case, as PostgreSQL reads it.
        Token::Word(word) => match word.quote_style {
            None => word.value.to_lowercase() == name,
            Some(_) => word.value == name,
        },
        _ => false,
    };
    let mut at = tokens.iter().position(|t| names_it(&t.token))?;
    // `schema.table`: from the qualified name's start.
    while at >= 2
        && tokens[at - 1].token == Token::Period
        && matches!(tokens[at - 2].token, Token::Word(_))
    {
        at -= 2;
    }
    let location = tokens[at].span.start;
    let line = usize::try_from(location.line).ok()?;
    let column = usize::try_from(location.column).ok()?;
    let before: usize = text
        .split('\n')
        .take(line.checked_sub(1)?)
        .map(|l| l.chars().count() + 1)
        .sum();
    Some(before + column)
}

#[cfg(test)]
mod tests {
    use super::*;
    use quiver_cluster::EngineError;

    fn table(name: &str) -> SqlError {
        SqlError::Engine(EngineError::TableNotFound {
            database: "public".into(),
            table: name.into(),
        })
    }

    #[test]
    fn points_at_the_first_word_naming_it() {
        assert_eq!(
            error_position("select * from nosuch", &table("nosuch")),
            Some(15)
        );
        assert_eq!(
            error_position("select 1;\nselect * from public.nosuch", &table("nosuch")),
            Some(25)
        );
        assert_eq!(
            error_position("SELECT * FROM \"Mixed\"", &table("Mixed")),
            Some(15)
        );
        let column = SqlError::UndefinedColumn {
            column: "foo".into(),
        };
        assert_eq!(error_position("select Foo from t", &column), Some(8));
        // A string that holds the name is not the name.
        assert_eq!(
            error_position("select 'foo', foo from t", &column),
            Some(15)
        );
        assert_eq!(error_position("select 1", &column), None);
        assert_eq!(error_position("select 1", &SqlError::Timeout), None);
    }
}
