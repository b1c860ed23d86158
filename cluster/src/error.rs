//! Errors of the engine roles.

use quiver_common::status::StatusCode;
use quiver_common::vector::VectorError;

/// An engine error; every variant reports a [`StatusCode`].
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// `table` of schema `database` (the message names the table only, as
    /// PostgreSQL's does).
    #[error("relation \"{table}\" does not exist")]
    TableNotFound { database: String, table: String },
    /// A table by id that no longer exists (dropped meanwhile).
    #[error("relation with id {0} does not exist")]
    TableIdNotFound(u64),
    #[error("relation \"{table}\" already exists")]
    TableAlreadyExists { database: String, table: String },
    #[error("schema \"{0}\" does not exist")]
    DatabaseNotFound(String),
    #[error("schema \"{0}\" already exists")]
    DatabaseAlreadyExists(String),
    #[error("schema \"{0}\" is not empty")]
    DatabaseNotEmpty(String),
    #[error("column \"{column}\" of relation \"{table}\" already exists")]
    ColumnAlreadyExists { table: String, column: String },
    #[error("column \"{column}\" of relation \"{table}\" does not exist")]
    ColumnNotFound { table: String, column: String },
    #[error(
        "null value in column \"{column}\" of relation \"{table}\" violates not-null constraint"
    )]
    NotNull { table: String, column: String },
    /// A transaction's write to a key another write changed after the
    /// transaction's snapshot.
    #[error("could not serialize access due to concurrent update")]
    SerializationFailure { table: String, key: String },
    #[error("duplicate key value violates unique constraint \"{table}_pkey\": Key ({column})=({key}) already exists.")]
    DuplicateKey {
        table: String,
        column: String,
        key: String,
    },
    #[error("{0}")]
    Vector(#[from] VectorError),
    #[error("invalid table definition: {0}")]
    InvalidDefinition(String),
    #[error("value of type {actual} does not fit column \"{column}\" of type {expected}")]
    TypeMismatch {
        column: String,
        expected: String,
        actual: String,
    },
    #[error("value too long for type character varying({0})")]
    ValueTooLong(u32),
    /// A value for a `JSONB` column that is not JSON.
    #[error("invalid input syntax for type json")]
    InvalidJson { column: String },
    #[error("storage: {0}")]
    Storage(#[from] quiver_storage::StorageError),
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("WAL record: {0}")]
    Proto(#[from] quiver_proto::ProtoError),
    #[error("relation \"{0}\" does not exist")]
    IndexNotFound(String),
    #[error("relation \"{0}\" already exists")]
    IndexAlreadyExists(String),
    #[error("index: {0}")]
    Index(String),
    #[error("corrupt metadata: {0}")]
    CorruptMeta(String),
    #[error("engine is shutting down")]
    ShuttingDown,
    #[error("no timestamp available: the meta store has not persisted the timestamp oracle's next window yet")]
    TimestampUnavailable,
    /// A table's shard count outside 1 ..= `max` (PostgreSQL's wording for
    /// a table option out of bounds).
    #[error("value {shards} out of bounds for option \"shards\": valid values are between \"1\" and \"{max}\"")]
    TooManyShards { shards: u32, max: u32 },
    /// An identity (auto-increment) key of a `smallint` / `integer` column
    /// ran past its type's largest value (PostgreSQL's words for its
    /// sequence).
    #[error("nextval: reached maximum value of sequence \"{table}_{column}_seq\" ({max})")]
    IdentityExhausted {
        table: String,
        column: String,
        max: i64,
    },
    /// A table another transaction block is changing (PostgreSQL would
    /// wait for its lock; Quiver answers at once).
    #[error("could not obtain lock on relation \"{table}\"")]
    TableLocked { table: String },
    #[error("internal error: {0}")]
    Internal(String),
    /// An error a role raised on the other side of a seam, as its status
    /// code and message (see `api::wire_error`).
    #[error("{message}")]
    Remote { code: StatusCode, message: String },
}

impl EngineError {
    /// The status code of this error.
    pub fn status_code(&self) -> StatusCode {
        match self {
            EngineError::TableNotFound { .. } => StatusCode::TableNotFound,
            EngineError::TableIdNotFound(_) => StatusCode::TableNotFound,
            EngineError::TableAlreadyExists { .. } => StatusCode::TableAlreadyExists,
            EngineError::TableLocked { .. } => StatusCode::LockNotAvailable,
            EngineError::DatabaseNotFound(_) => StatusCode::DatabaseNotFound,
            EngineError::DatabaseAlreadyExists(_) => StatusCode::DatabaseAlreadyExists,
            EngineError::DatabaseNotEmpty(_) => StatusCode::InvalidParameter,
            EngineError::ColumnAlreadyExists { .. } => StatusCode::ColumnAlreadyExists,
            EngineError::ColumnNotFound { .. } => StatusCode::ColumnNotFound,
            EngineError::NotNull { .. } => StatusCode::NotNullViolation,
            EngineError::DuplicateKey { .. } => StatusCode::UniqueViolation,
            EngineError::SerializationFailure { .. } => StatusCode::SerializationFailure,
            EngineError::Vector(e) => e.status_code(),
            EngineError::InvalidDefinition(_) => StatusCode::InvalidTableDefinition,
            EngineError::TypeMismatch { .. } => StatusCode::TypeMismatch,
            EngineError::ValueTooLong(_) => StatusCode::LimitExceeded,
            EngineError::InvalidJson { .. } => StatusCode::InvalidTextRepresentation,
            EngineError::Storage(quiver_storage::StorageError::RecordTooLarge { .. }) => {
                StatusCode::LimitExceeded
            }
            EngineError::Storage(quiver_storage::StorageError::TxnLimitExceeded { .. }) => {
                StatusCode::LimitExceeded
            }
            EngineError::Storage(quiver_storage::StorageError::WalOutcomeUnknown { .. }) => {
                StatusCode::OutcomeUnknown
            }
            EngineError::Storage(
                quiver_storage::StorageError::ServiceUnavailable { .. }
                | quiver_storage::StorageError::ObjectStoreUnreachable(_),
            ) => StatusCode::ServiceUnavailable,
            EngineError::Storage(_) => StatusCode::StorageUnavailable,
            EngineError::Arrow(_) => StatusCode::Internal,
            EngineError::Parquet(_) => StatusCode::StorageUnavailable,
            EngineError::Proto(_) => StatusCode::Internal,
            EngineError::IndexNotFound(_) => StatusCode::TableNotFound,
            EngineError::IndexAlreadyExists(_) => StatusCode::TableAlreadyExists,
            EngineError::Index(_) => StatusCode::InvalidParameter,
            EngineError::CorruptMeta(_) => StatusCode::Internal,
            EngineError::ShuttingDown => StatusCode::StorageUnavailable,
            EngineError::TimestampUnavailable => StatusCode::ServiceUnavailable,
            EngineError::TooManyShards { .. } => StatusCode::InvalidParameter,
            EngineError::IdentityExhausted { .. } => StatusCode::LimitExceeded,
            EngineError::Internal(_) => StatusCode::Internal,
            EngineError::Remote { code, .. } => *code,
        }
    }
}

/// Result alias of the engine.
pub type Result<T> = std::result::Result<T, EngineError>;

#[cfg(test)]
mod tests {
    use quiver_storage::StorageError;

    use super::*;

    /// A dependency that does not answer is "retry later" at both doors
    /// (57P03 / Milvus 2); other storage failures stay 58030, an append of
    /// unknown outcome 08007.
    #[test]
    fn outages_are_service_unavailable() {
        let code = |e: StorageError| EngineError::Storage(e).status_code();
        let etcd = StorageError::ServiceUnavailable {
            service: "etcd",
            endpoints: "http://127.0.0.1:2379".into(),
            detail: "no answer within 10s".into(),
        };
        assert_eq!(code(etcd), StatusCode::ServiceUnavailable);
        let s3 = object_store::Error::Generic {
            store: "S3",
            source: "timed out".into(),
        };
        assert_eq!(
            code(StorageError::ObjectStoreUnreachable(s3)),
            StatusCode::ServiceUnavailable
        );
        assert_eq!(
            EngineError::TimestampUnavailable.status_code(),
            StatusCode::ServiceUnavailable
        );
        let unknown = StorageError::WalOutcomeUnknown {
            object: "wal/default/1.wal".into(),
            detail: "timed out".into(),
        };
        assert_eq!(code(unknown), StatusCode::OutcomeUnknown);
        assert_eq!(
            code(StorageError::Meta("disk full".into())),
            StatusCode::StorageUnavailable
        );
    }
}
