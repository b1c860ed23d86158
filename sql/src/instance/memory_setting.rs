//! `SET quiver.query_memory_limit`: a session lowers the memory limit of its
//! statements (never past the server's `memory.query_limit_bytes`).
//!
//! Values are written as PostgreSQL writes memory settings (`64MB`, `512kB`,
//! `1GB`, units of 1024, case-insensitive); a number without a unit is
//! bytes (unlike `work_mem`, whose bare unit is kB: this is a limit on the
//! whole statement, not on each of its operations).

use super::session::SqlSession;
use crate::error::{Result, SqlError};

/// The setting's name.
pub(crate) const NAME: &str = "quiver.query_memory_limit";

/// Reads `64MB`, `512kB`, `1GB`, `1TB`, `100B` or a bare byte count.
pub(crate) fn parse_bytes(value: &str) -> Option<usize> {
    let text = value.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = (&text[..split], text[split..].trim());
    let n: usize = number.parse().ok()?;
    let scale: usize = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1 << 10,
        "mb" => 1 << 20,
        "gb" => 1 << 30,
        "tb" => 1 << 40,
        _ => return None,
    };
    n.checked_mul(scale)
}

/// Writes bytes in the largest unit that divides them (`1GB`, `64MB`, `100B`).
pub(crate) fn format_bytes(bytes: usize) -> String {
    for (unit, scale) in [
        ("TB", 1usize << 40),
        ("GB", 1 << 30),
        ("MB", 1 << 20),
        ("kB", 1 << 10),
    ] {
        if bytes >= scale && bytes.is_multiple_of(scale) {
            return format!("{}{unit}", bytes / scale);
        }
    }
    format!("{bytes}B")
}

/// Applies the setting to the session's memory pool.
pub(crate) fn apply(session: &SqlSession, value: &str) -> Result<()> {
    let bytes = parse_bytes(value).ok_or_else(|| {
        SqlError::InvalidParameter(format!(
            "invalid value for parameter \"{NAME}\": \"{value}\" (a size such as '64MB')"
        ))
    })?;
    session
        .memory
        .set_limit(bytes)
        .map_err(|e| SqlError::InvalidParameter(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_and_write_as_postgres_spells_them() {
        assert_eq!(parse_bytes("64MB"), Some(64 << 20));
        assert_eq!(parse_bytes(" 512kB "), Some(512 << 10));
        assert_eq!(parse_bytes("1gb"), Some(1 << 30));
        assert_eq!(parse_bytes("2 GB"), Some(2 << 30));
        assert_eq!(parse_bytes("1048576"), Some(1 << 20));
        assert_eq!(parse_bytes("12XB"), None);
        assert_eq!(parse_bytes("-1"), None);
        assert_eq!(parse_bytes("99999999999TB"), None);
        assert_eq!(format_bytes(1 << 30), "1GB");
        assert_eq!(format_bytes(3 << 20), "3MB");
        assert_eq!(format_bytes(1000), "1000B");
    }
}
