//! Size bounds of Milvus filter expressions, on both sides of their
//! translation to SQL.
//!
//! The filter parser keeps operators on an explicit stack and chains of one
//! precedence level flat, and [`super::MAX_DEPTH`] bounds its nesting, so
//! the filter's own tree is safe to build; what is not is the SQL it
//! becomes: `a or b or ...` is rendered as one flat SQL chain, which
//! sqlparser and DataFusion turn into a left-deep tree as deep as it is
//! long. So:
//! - [`check_tokens`] bounds the operators of the filter on its tokens,
//!   before its tree is built ([`MAX_FILTER_OPERATORS`]; each becomes at
//!   least one SQL operator);
//! - [`check_translated`] holds the translated predicate to the SQL limits
//!   of [`quiver_sql::complexity`], less the headroom the door's own predicates
//!   (partition scope, ...) need in the statement around it, so that a
//!   filter is refused with a filter error naming the limit rather than
//!   when the statement is parsed.
//!
//! Both errors are Milvus' 1100 (invalid parameter) through [`FilterError`].

use quiver_common::limits::{
    MAX_EXPRESSION_DEPTH, MAX_EXPRESSION_OPERATORS, MAX_FUNCTION_NESTING, MAX_LIST_ITEMS,
};
use quiver_sql::complexity::{self, ComplexityLimits, TooComplex};

use super::error::FilterError;
use super::lexer::{Tok, Token};

/// Most operators one filter may hold (comparisons, arithmetic, logical
/// operators, `in`, `like`, `is`): the SQL limit, as each of them becomes
/// at least one SQL operator.
pub const MAX_FILTER_OPERATORS: usize = MAX_EXPRESSION_OPERATORS;

/// The SQL limits a translated filter must meet: those of a statement, less
/// what the statement around the filter uses.
pub const TRANSLATED_LIMITS: ComplexityLimits = ComplexityLimits {
    depth: MAX_EXPRESSION_DEPTH - 4,
    operators: MAX_EXPRESSION_OPERATORS - 16,
    function_nesting: MAX_FUNCTION_NESTING,
    list_items: MAX_LIST_ITEMS,
};

fn is_operator(tok: &Tok) -> bool {
    matches!(
        tok,
        Tok::Eq
            | Tok::Ne
            | Tok::Lt
            | Tok::Le
            | Tok::Gt
            | Tok::Ge
            | Tok::Plus
            | Tok::Minus
            | Tok::Star
            | Tok::Slash
            | Tok::Percent
            | Tok::Pow
            | Tok::And
            | Tok::Or
            | Tok::Not
            | Tok::In
            | Tok::Like
            | Tok::Is
    )
}

/// Refuses a filter of more than [`MAX_FILTER_OPERATORS`] operators, at
/// the first one over.
pub(super) fn check_tokens(tokens: &[Token]) -> Result<(), FilterError> {
    let mut operators = 0usize;
    for token in tokens.iter().filter(|t| is_operator(&t.tok)) {
        operators += 1;
        if operators > MAX_FILTER_OPERATORS {
            return Err(FilterError::new(
                token.pos,
                format!(
                    "expression is too complex: more than {MAX_FILTER_OPERATORS} operators \
                     (quiver limit max_expression_operators = {MAX_FILTER_OPERATORS})"
                ),
            ));
        }
    }
    Ok(())
}

/// Refuses a translated filter (`sql`, from [`super::filter_to_sql`]) over
/// [`TRANSLATED_LIMITS`].
pub fn check_translated(sql: &str) -> Result<(), FilterError> {
    complexity::check(sql, TRANSLATED_LIMITS).map_err(|e| {
        let (what, name, statement_limit, limit) = match e {
            TooComplex::Depth { limit } => (
                format!("nests more than {limit} levels deep"),
                "max_expression_depth",
                MAX_EXPRESSION_DEPTH,
                limit,
            ),
            TooComplex::Operators { limit } => (
                format!("holds more than {limit} operators"),
                "max_expression_operators",
                MAX_EXPRESSION_OPERATORS,
                limit,
            ),
            TooComplex::FunctionNesting { limit } => (
                format!("nests function calls more than {limit} deep"),
                "max_function_nesting",
                MAX_FUNCTION_NESTING,
                limit,
            ),
            TooComplex::ListItems { limit } => (
                format!("holds more than {limit} list items"),
                "max_list_items",
                MAX_LIST_ITEMS,
                limit,
            ),
            TooComplex::ParserRecursion { limit } => (
                format!("nests more than {limit} levels deep"),
                "the SQL parser's recursion limit",
                limit,
                limit,
            ),
        };
        let reserved = statement_limit - limit;
        let headroom = if reserved > 0 {
            format!(", less {reserved} for the request's own conditions")
        } else {
            String::new()
        };
        FilterError::new(
            0,
            format!(
                "expression is too complex: its SQL translation {what} \
                 (quiver limit {name} = {statement_limit}{headroom})"
            ),
        )
    })
}

#[cfg(test)]
mod tests;
