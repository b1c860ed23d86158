//! Engine errors across a seam: what a transport sends back for a failed
//! call — the structured variants with their fields, anything else as its
//! status code and message ([`EngineError::Remote`]) — so a caller on the
//! other side words and classifies the error as it would in process.

use quiver_common::status::StatusCode;
use serde::{Deserialize, Serialize};

use crate::error::EngineError;

/// The serializable form of an [`EngineError`].
#[derive(Debug, Serialize, Deserialize)]
enum WireError {
    TableNotFound {
        database: String,
        table: String,
    },
    TableIdNotFound(u64),
    TableAlreadyExists {
        database: String,
        table: String,
    },
    DatabaseNotFound(String),
    DatabaseAlreadyExists(String),
    DatabaseNotEmpty(String),
    ColumnAlreadyExists {
        table: String,
        column: String,
    },
    ColumnNotFound {
        table: String,
        column: String,
    },
    NotNull {
        table: String,
        column: String,
    },
    DuplicateKey {
        table: String,
        column: String,
        key: String,
    },
    SerializationFailure {
        table: String,
        key: String,
    },
    InvalidDefinition(String),
    TypeMismatch {
        column: String,
        expected: String,
        actual: String,
    },
    ValueTooLong(u32),
    IndexNotFound(String),
    IndexAlreadyExists(String),
    Index(String),
    TooManyShards {
        shards: u32,
        max: u32,
    },
    ShuttingDown,
    TimestampUnavailable,
    /// Everything else: its status code and message.
    Other {
        code: StatusCode,
        message: String,
    },
}

impl From<EngineError> for WireError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::TableNotFound { database, table } => {
                Self::TableNotFound { database, table }
            }
            EngineError::TableIdNotFound(id) => Self::TableIdNotFound(id),
            EngineError::TableAlreadyExists { database, table } => {
                Self::TableAlreadyExists { database, table }
            }
            EngineError::DatabaseNotFound(d) => Self::DatabaseNotFound(d),
            EngineError::DatabaseAlreadyExists(d) => Self::DatabaseAlreadyExists(d),
            EngineError::DatabaseNotEmpty(d) => Self::DatabaseNotEmpty(d),
            EngineError::ColumnAlreadyExists { table, column } => {
                Self::ColumnAlreadyExists { table, column }
            }
            EngineError::ColumnNotFound { table, column } => Self::ColumnNotFound { table, column },
            EngineError::NotNull { table, column } => Self::NotNull { table, column },
            EngineError::DuplicateKey { table, column, key } => {
                Self::DuplicateKey { table, column, key }
            }
            EngineError::SerializationFailure { table, key } => {
                Self::SerializationFailure { table, key }
            }
            EngineError::InvalidDefinition(m) => Self::InvalidDefinition(m),
            EngineError::TypeMismatch {
                column,
                expected,
                actual,
            } => Self::TypeMismatch {
                column,
                expected,
                actual,
            },
            EngineError::ValueTooLong(n) => Self::ValueTooLong(n),
            EngineError::IndexNotFound(n) => Self::IndexNotFound(n),
            EngineError::IndexAlreadyExists(n) => Self::IndexAlreadyExists(n),
            EngineError::Index(m) => Self::Index(m),
            EngineError::TooManyShards { shards, max } => Self::TooManyShards { shards, max },
            EngineError::ShuttingDown => Self::ShuttingDown,
            EngineError::TimestampUnavailable => Self::TimestampUnavailable,
            other => Self::Other {
                code: other.status_code(),
                message: other.to_string(),
            },
        }
    }
}

impl From<WireError> for EngineError {
    fn from(e: WireError) -> Self {
        match e {
            WireError::TableNotFound { database, table } => Self::TableNotFound { database, table },
            WireError::TableIdNotFound(id) => Self::TableIdNotFound(id),
            WireError::TableAlreadyExists { database, table } => {
                Self::TableAlreadyExists { database, table }
            }
            WireError::DatabaseNotFound(d) => Self::DatabaseNotFound(d),
            WireError::DatabaseAlreadyExists(d) => Self::DatabaseAlreadyExists(d),
            WireError::DatabaseNotEmpty(d) => Self::DatabaseNotEmpty(d),
            WireError::ColumnAlreadyExists { table, column } => {
                Self::ColumnAlreadyExists { table, column }
            }
            WireError::ColumnNotFound { table, column } => Self::ColumnNotFound { table, column },
            WireError::NotNull { table, column } => Self::NotNull { table, column },
            WireError::DuplicateKey { table, column, key } => {
                Self::DuplicateKey { table, column, key }
            }
            WireError::SerializationFailure { table, key } => {
                Self::SerializationFailure { table, key }
            }
            WireError::InvalidDefinition(m) => Self::InvalidDefinition(m),
            WireError::TypeMismatch {
                column,
                expected,
                actual,
            } => Self::TypeMismatch {
                column,
                expected,
                actual,
            },
            WireError::ValueTooLong(n) => Self::ValueTooLong(n),
            WireError::IndexNotFound(n) => Self::IndexNotFound(n),
            WireError::IndexAlreadyExists(n) => Self::IndexAlreadyExists(n),
            WireError::Index(m) => Self::Index(m),
            WireError::TooManyShards { shards, max } => Self::TooManyShards { shards, max },
            WireError::ShuttingDown => Self::ShuttingDown,
            WireError::TimestampUnavailable => Self::TimestampUnavailable,
            WireError::Other { code, message } => Self::Remote { code, message },
        }
    }
}

/// `error` as a transport carries it: encoded, then decoded.
pub fn error_over_the_wire(error: EngineError) -> EngineError {
    let wire = WireError::from(error);
    match serde_json::to_vec(&wire).and_then(|b| serde_json::from_slice::<WireError>(&b)) {
        Ok(decoded) => decoded.into(),
        Err(e) => EngineError::Internal(format!("encoding an error: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_keep_their_kind_code_and_words() {
        let errors = vec![
            EngineError::TableNotFound {
                database: "public".into(),
                table: "t".into(),
            },
            EngineError::DuplicateKey {
                table: "t".into(),
                column: "id".into(),
                key: "7".into(),
            },
            EngineError::TooManyShards {
                shards: 17,
                max: 16,
            },
            EngineError::Vector(quiver_common::vector::VectorError::WrongDimension {
                expected: 3,
                actual: 2,
            }),
            EngineError::Internal("boom".into()),
        ];
        for error in errors {
            let (code, words) = (error.status_code(), error.to_string());
            let back = error_over_the_wire(error);
            assert_eq!(back.status_code(), code);
            assert_eq!(back.to_string(), words);
        }
        let back = error_over_the_wire(EngineError::TableNotFound {
            database: "db".into(),
            table: "x".into(),
        });
        assert!(
            matches!(back, EngineError::TableNotFound { ref database, ref table } if database == "db" && table == "x")
        );
    }
}
