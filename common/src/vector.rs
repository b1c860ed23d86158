//! The pgvector `vector` value: its text form (`[1,2,3]`), validation and
//! errors worded exactly as pgvector words them.

use crate::limits::MAX_VECTOR_DIM;
use crate::status::StatusCode;

/// Errors about vector values; the messages are pgvector's.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VectorError {
    #[error("invalid input syntax for type vector: \"{0}\"")]
    Syntax(String),
    #[error("vector must have at least 1 dimension")]
    Empty,
    #[error("vector cannot have more than {MAX_VECTOR_DIM} dimensions")]
    TooManyDimensions,
    #[error("NaN not allowed in vector")]
    NaN,
    #[error("infinite value not allowed in vector")]
    Infinite,
    #[error("expected {expected} dimensions, not {actual}")]
    WrongDimension { expected: usize, actual: usize },
    #[error("different vector dimensions {0} and {1}")]
    DifferentDimensions(usize, usize),
}

impl VectorError {
    /// The status code reported for this error.
    pub fn status_code(&self) -> StatusCode {
        match self {
            VectorError::Syntax(_) => StatusCode::InvalidTextRepresentation,
            VectorError::Empty | VectorError::NaN | VectorError::Infinite => {
                StatusCode::InvalidValue
            }
            VectorError::TooManyDimensions => StatusCode::LimitExceeded,
            VectorError::WrongDimension { .. } | VectorError::DifferentDimensions(..) => {
                StatusCode::DimensionMismatch
            }
        }
    }
}

/// Checks every element is finite and the dimension is within limits.
pub fn validate(values: &[f32]) -> Result<(), VectorError> {
    if values.is_empty() {
        return Err(VectorError::Empty);
    }
    if values.len() > MAX_VECTOR_DIM {
        return Err(VectorError::TooManyDimensions);
    }
    for v in values {
        if v.is_nan() {
            return Err(VectorError::NaN);
        }
        if v.is_infinite() {
            return Err(VectorError::Infinite);
        }
    }
    Ok(())
}

/// Parses pgvector's text form `[1, 2.5, -3e2]` and validates it.
pub fn parse_text(text: &str) -> Result<Vec<f32>, VectorError> {
    let syntax = || VectorError::Syntax(text.to_string());
    let trimmed = text.trim();
    let inner = trimmed
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .ok_or_else(syntax)?;
    if inner.trim().is_empty() {
        return Err(VectorError::Empty);
    }
    let mut values = Vec::with_capacity(inner.len() / 2);
    for part in inner.split(',') {
        let part = part.trim();
        if part.is_empty() {
            return Err(syntax());
        }
        let value: f32 = match part.to_ascii_lowercase().as_str() {
            "nan" => f32::NAN,
            "inf" | "infinity" | "+inf" | "+infinity" => f32::INFINITY,
            "-inf" | "-infinity" => f32::NEG_INFINITY,
            _ => part.parse().map_err(|_| syntax())?,
        };
        values.push(value);
    }
    validate(&values)?;
    Ok(values)
}

/// Formats a vector as pgvector prints it: `[1,2.5,-3]` (shortest round-trip floats).
pub fn format_text(values: &[f32]) -> String {
    let mut out = String::with_capacity(values.len() * 8 + 2);
    out.push('[');
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&format_float(*v));
    }
    out.push(']');
    out
}

fn format_float(v: f32) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// Checks a vector against a column's declared dimension.
pub fn check_dimension(expected: usize, actual: usize) -> Result<(), VectorError> {
    if expected == actual {
        Ok(())
    } else {
        Err(VectorError::WrongDimension { expected, actual })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats() {
        let v = parse_text(" [1, 2.5,-3e2 ] ").unwrap();
        assert_eq!(v, vec![1.0, 2.5, -300.0]);
        assert_eq!(format_text(&v), "[1,2.5,-300]");
    }

    #[test]
    fn rejects_bad_input_with_pgvector_wording() {
        assert_eq!(
            parse_text("[1,2").unwrap_err().to_string(),
            "invalid input syntax for type vector: \"[1,2\""
        );
        assert_eq!(parse_text("[]").unwrap_err(), VectorError::Empty);
        assert_eq!(parse_text("[1,NaN]").unwrap_err(), VectorError::NaN);
        assert_eq!(parse_text("[1,inf]").unwrap_err(), VectorError::Infinite);
        assert_eq!(
            parse_text("[1,,2]").unwrap_err(),
            VectorError::Syntax("[1,,2]".into())
        );
        assert_eq!(
            check_dimension(3, 2).unwrap_err().to_string(),
            "expected 3 dimensions, not 2"
        );
    }
}
