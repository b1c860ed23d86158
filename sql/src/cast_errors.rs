//! Arrow's cast errors in PostgreSQL's words. A cast DataFusion runs (a
//! literal's `::int`, a text column read as a number) fails with Arrow's
//! text (`Cast error: Cannot cast string 'abc' to value of Int32 type`);
//! a PostgreSQL client expects `invalid input syntax for type integer:
//! "abc"` (`22P02`), `integer out of range` (`22003`) for a number that
//! does not fit, and `22007` for a date or time it cannot read.

use quiver_common::status::StatusCode;

/// PostgreSQL's name of the type Arrow names (`Int32` → `integer`).
fn pg_type_name(arrow_name: &str) -> Option<&'static str> {
    Some(match arrow_name {
        "Int16" => "smallint",
        "Int32" => "integer",
        "Int64" => "bigint",
        "Float32" => "real",
        "Float64" => "double precision",
        "Boolean" => "boolean",
        "Date32" | "Date64" => "date",
        name if name.starts_with("Decimal") => "numeric",
        name if name.starts_with("Timestamp") => "timestamp with time zone",
        _ => return None,
    })
}

fn is_datetime(pg_name: &str) -> bool {
    pg_name == "date" || pg_name.starts_with("timestamp")
}

/// The PostgreSQL status and message of an Arrow cast or parse error's
/// text (`Cast error: ...` / `Parser error: ...` included or not), when it
/// is one of the shapes Arrow words.
pub fn postgres_cast_error(message: &str) -> Option<(StatusCode, String)> {
    let message = message
        .strip_prefix("Cast error: ")
        .or_else(|| message.strip_prefix("Parser error: "))
        .unwrap_or(message);
    // `Cannot cast string 'abc' to value of Int32 type`,
    // `Cannot cast value 'maybe' to value of Boolean type`.
    for prefix in ["Cannot cast string '", "Cannot cast value '"] {
        if let Some(rest) = message.strip_prefix(prefix) {
            let (text, rest) = rest.rsplit_once("' to value of ")?;
            let type_name = pg_type_name(rest.strip_suffix(" type")?)?;
            let code = if is_datetime(type_name) {
                StatusCode::InvalidDatetimeFormat
            } else {
                StatusCode::InvalidTextRepresentation
            };
            return Some((
                code,
                format!("invalid input syntax for type {type_name}: \"{text}\""),
            ));
        }
    }
    // `Can't cast value 40000 to type Int16`.
    if let Some(rest) = message.strip_prefix("Can't cast value ") {
        let (_, arrow_type) = rest.rsplit_once(" to type ")?;
        let type_name = pg_type_name(arrow_type)?;
        if matches!(type_name, "smallint" | "integer" | "bigint") {
            return Some((
                StatusCode::NumericValueOutOfRange,
                format!("{type_name} out of range"),
            ));
        }
    }
    // `Error parsing timestamp from 'zz': ...`.
    if let Some(rest) = message.strip_prefix("Error parsing timestamp from '") {
        let (text, _) = rest.split_once("':")?;
        return Some((
            StatusCode::InvalidDatetimeFormat,
            format!("invalid input syntax for type timestamp with time zone: \"{text}\""),
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrow_cast_errors_read_as_postgresql_words_them() {
        let cases = [
            (
                "Cast error: Cannot cast string 'abc' to value of Int32 type",
                StatusCode::InvalidTextRepresentation,
                "invalid input syntax for type integer: \"abc\"",
            ),
            (
                "Cast error: Cannot cast string 'x' to value of Float64 type",
                StatusCode::InvalidTextRepresentation,
                "invalid input syntax for type double precision: \"x\"",
            ),
            (
                "Cast error: Cannot cast value 'maybe' to value of Boolean type",
                StatusCode::InvalidTextRepresentation,
                "invalid input syntax for type boolean: \"maybe\"",
            ),
            (
                "Cast error: Can't cast value 40000 to type Int16",
                StatusCode::NumericValueOutOfRange,
                "smallint out of range",
            ),
            (
                "Cast error: Cannot cast string 'x' to value of Decimal128(38, 10) type",
                StatusCode::InvalidTextRepresentation,
                "invalid input syntax for type numeric: \"x\"",
            ),
            (
                "Cast error: Cannot cast string '2024-13-01' to value of Date32 type",
                StatusCode::InvalidDatetimeFormat,
                "invalid input syntax for type date: \"2024-13-01\"",
            ),
            (
                "Parser error: Error parsing timestamp from 'zz': timestamp must contain at least 10 characters",
                StatusCode::InvalidDatetimeFormat,
                "invalid input syntax for type timestamp with time zone: \"zz\"",
            ),
        ];
        for (arrow, code, message) in cases {
            assert_eq!(
                postgres_cast_error(arrow),
                Some((code, message.to_string())),
                "{arrow}"
            );
        }
        assert_eq!(postgres_cast_error("Cast error: something else"), None);
    }
}
