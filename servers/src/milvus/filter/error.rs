//! [`FilterError`]: a Milvus filter expression that could not be
//! translated, with the position of the offending token. A leaf module: the
//! lexer, parser, limits and lowering all report through it.

use std::fmt;

/// A filter that could not be translated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError {
    /// 0-based `char` offset in the input expression.
    pub position: usize,
    pub message: String,
}

impl FilterError {
    pub(super) fn new(position: usize, message: impl Into<String>) -> Self {
        FilterError {
            position,
            message: message.into(),
        }
    }

    /// Renders the error in Milvus style, including the offending expression.
    pub fn describe(&self, expr: &str) -> String {
        format!(
            "cannot parse expression: {expr}, error: {} at position {}",
            self.message, self.position
        )
    }
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot parse expression, error: {} at position {}",
            self.message, self.position
        )
    }
}

impl std::error::Error for FilterError {}
