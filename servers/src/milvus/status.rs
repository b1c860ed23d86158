//! Errors as Milvus reports them: [`DoorError`] (a Milvus code and
//! message), the Milvus code of each Quiver status code, the engine errors
//! Milvus has words of its own for, rendered from their data, and the
//! `common.Status` a reply carries.

use milvus::proto::common::{ErrorCode, Status};
use quiver_common::status::StatusCode;
use quiver_sql::error::{ErrorSubject, SqlError};
use tonic::Response;

use super::filter;
use super::request::database_name;

/// Milvus' codes (its `merr` package) the door answers with by name.
pub(super) mod code {
    /// The legacy `UnexpectedError`, which Milvus reports for checks whose
    /// error is a plain message (e.g. too many shards).
    pub const UNEXPECTED: i32 = 1;
    /// `ErrServiceInternal`.
    pub const SERVICE_INTERNAL: i32 = 5;
    /// `ErrServiceUnavailable` ("service unavailable").
    pub const SERVICE_UNAVAILABLE: i32 = 2;
    /// `ErrCollectionNotFound`.
    pub const COLLECTION_NOT_FOUND: i32 = 100;
    /// `ErrIndexNotFound`.
    pub const INDEX_NOT_FOUND: i32 = 700;
    /// `ErrDatabaseNotFound`.
    pub const DATABASE_NOT_FOUND: i32 = 800;
    /// `ErrParameterInvalid`.
    pub const PARAMETER_INVALID: i32 = 1100;
    /// `ErrFieldNotFound`.
    pub const FIELD_NOT_FOUND: i32 = 1700;
}

/// An error of this door, with the Milvus code it is reported with.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct DoorError {
    pub code: i32,
    pub message: String,
}

impl DoorError {
    pub(super) fn new(code: i32, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// Milvus' `ParameterInvalid` (1100).
    pub fn invalid(message: String) -> Self {
        Self::new(code::PARAMETER_INVALID, message)
    }

    /// A feature Quiver's Milvus door does not have yet (1100, named).
    pub fn unsupported(feature: String) -> Self {
        Self::new(
            code::PARAMETER_INVALID,
            format!("{feature} is not supported yet by Quiver"),
        )
    }

    /// An unexpected server fault (Milvus' `ServiceInternal`, 5).
    pub fn internal(message: String) -> Self {
        Self::new(code::SERVICE_INTERNAL, message)
    }

    /// Milvus' `collection not found[database=..][collection=..]` (100)
    /// for a collection of `schema`.
    pub(super) fn collection_not_found(schema: &str, collection: &str) -> Self {
        Self::new(
            code::COLLECTION_NOT_FOUND,
            format!(
                "collection not found[database={}][collection={collection}]",
                database_name(schema)
            ),
        )
    }

    /// Milvus' `database not found[database=..]` (800), `database` as the
    /// client named it.
    pub(super) fn database_not_found(database: &str) -> Self {
        Self::new(
            code::DATABASE_NOT_FOUND,
            format!("database not found[database={database}]"),
        )
    }

    /// Milvus' `index not found[collection=..]` (700): the collection has
    /// no index (by that name or on that field).
    pub(super) fn index_not_found(collection: &str) -> Self {
        Self::new(
            code::INDEX_NOT_FOUND,
            format!("index not found[collection={collection}]"),
        )
    }
}

/// Milvus' code for a Quiver status code (exhaustive, no wildcard).
pub(super) fn milvus_code(code: StatusCode) -> i32 {
    match code {
        StatusCode::TableNotFound => code::COLLECTION_NOT_FOUND,
        StatusCode::IndexNotFound => code::INDEX_NOT_FOUND,
        StatusCode::DatabaseNotFound | StatusCode::UndefinedDatabase => code::DATABASE_NOT_FOUND,
        StatusCode::Internal | StatusCode::StorageUnavailable | StatusCode::OutcomeUnknown => {
            code::SERVICE_INTERNAL
        }
        StatusCode::ServiceUnavailable => code::SERVICE_UNAVAILABLE,
        StatusCode::SyntaxError
        | StatusCode::Unsupported
        | StatusCode::TableAlreadyExists
        | StatusCode::DatabaseAlreadyExists
        | StatusCode::DuplicateDatabase
        | StatusCode::ObjectInUse
        | StatusCode::LockNotAvailable
        | StatusCode::InvalidRowCountInLimit
        | StatusCode::InvalidRowCountInOffset
        | StatusCode::ColumnNotFound
        | StatusCode::ColumnAlreadyExists
        | StatusCode::TypeMismatch
        | StatusCode::DimensionMismatch
        | StatusCode::InvalidValue
        | StatusCode::InvalidTextRepresentation
        | StatusCode::InvalidDatetimeFormat
        | StatusCode::InvalidParameter
        | StatusCode::NotNullViolation
        | StatusCode::UniqueViolation
        | StatusCode::InvalidTableDefinition
        | StatusCode::LimitExceeded
        | StatusCode::StatementTooComplex
        | StatusCode::NameTooLong
        | StatusCode::ProtocolViolation
        | StatusCode::ActiveSqlTransaction
        | StatusCode::InFailedSqlTransaction
        | StatusCode::NoActiveSqlTransaction
        | StatusCode::InvalidSavepoint
        | StatusCode::ReadOnlySqlTransaction
        | StatusCode::NumericValueOutOfRange
        | StatusCode::DivisionByZero
        | StatusCode::CardinalityViolation
        | StatusCode::DuplicateObject
        | StatusCode::UndefinedObject
        | StatusCode::DependentObjectsStillExist
        | StatusCode::UndefinedFunction => code::PARAMETER_INVALID,
        // A write conflict: retry, as Milvus' "service unavailable".
        StatusCode::SerializationFailure => code::SERVICE_UNAVAILABLE,
        // merr: ErrServiceMemoryLimitExceeded ("memory limit exceeded").
        StatusCode::OutOfMemory => 3,
        // merr: ErrServiceRequestLimitExceeded ("request limit exceeded").
        StatusCode::TooManyConnections => 4,
        StatusCode::Cancelled
        | StatusCode::IdleInTransactionTimeout
        | StatusCode::IdleSessionTimeout => 1,
    }
}

/// An error in Milvus' words, from what it is about (`None`: Milvus has
/// no words of its own for it, and the error keeps Quiver's). The codes are
/// Milvus' where it has one (`merr`); where it answers an unclassified
/// error, the status code's.
fn in_milvus_words(e: &SqlError) -> Option<DoorError> {
    let same_code = || milvus_code(e.status_code());
    Some(match e.subject()? {
        ErrorSubject::TableNotFound { database, table } => {
            DoorError::collection_not_found(database, table)
        }
        ErrorSubject::DatabaseNotFound(schema) => {
            DoorError::database_not_found(&database_name(schema))
        }
        // Milvus' rootcoord (meta table).
        ErrorSubject::DatabaseAlreadyExists(schema) => DoorError::new(
            same_code(),
            format!("database already exist: {}", database_name(schema)),
        ),
        ErrorSubject::DatabaseNotEmpty(schema) => DoorError::new(
            same_code(),
            format!(
                "database:{} not empty, must drop all collections before drop database",
                database_name(schema)
            ),
        ),
        // The door creates a collection only after looking for it, so the
        // engine reports an existing name on a rename (Milvus' wording).
        ErrorSubject::TableAlreadyExists { database, table } => DoorError::new(
            same_code(),
            format!(
                "duplicated new collection name {}:{table} with other collection name or alias",
                database_name(database)
            ),
        ),
        ErrorSubject::IndexNotFound(name) => DoorError::new(
            code::INDEX_NOT_FOUND,
            format!("index not found[indexName={name}]"),
        ),
        ErrorSubject::ColumnNotFound { column, .. } => DoorError::new(
            code::FIELD_NOT_FOUND,
            format!("field not found[field={column}]"),
        ),
        // The door writes inserts and upserts as upserts, which refuse only
        // a key repeated within the batch (Milvus 2.6's upsert check).
        ErrorSubject::DuplicateKey { .. } => DoorError::new(
            code::PARAMETER_INVALID,
            "duplicate primary keys are not allowed in the same batch: invalid parameter",
        ),
    })
}

impl From<datafusion::error::DataFusionError> for DoorError {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        DoorError::from(SqlError::from(e))
    }
}

impl From<SqlError> for DoorError {
    fn from(e: SqlError) -> Self {
        if let Some(door) = in_milvus_words(&e) {
            return door;
        }
        DoorError::new(milvus_code(e.status_code()), e.to_string())
    }
}

impl From<filter::FilterError> for DoorError {
    fn from(e: filter::FilterError) -> Self {
        DoorError::invalid(e.to_string())
    }
}

pub(super) fn ok_status() -> Status {
    #[allow(deprecated)]
    Status {
        error_code: ErrorCode::Success as i32,
        code: 0,
        ..Default::default()
    }
}

pub(super) fn error_status(e: &DoorError) -> Status {
    let legacy = match e.code {
        code::COLLECTION_NOT_FOUND => ErrorCode::CollectionNotExists,
        code::INDEX_NOT_FOUND => ErrorCode::IndexNotExist,
        _ => ErrorCode::UnexpectedError,
    };
    #[allow(deprecated)]
    Status {
        error_code: legacy as i32,
        code: e.code,
        reason: e.message.clone(),
        ..Default::default()
    }
}

pub(super) fn status_of(result: Result<(), DoorError>) -> Status {
    match result {
        Ok(()) => ok_status(),
        Err(e) => error_status(&e),
    }
}

pub(super) type RpcResult<T> = Result<Response<T>, tonic::Status>;

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use quiver_cluster::EngineError;

    use super::*;

    fn engine(e: EngineError) -> DoorError {
        DoorError::from(SqlError::Engine(e))
    }

    fn said(e: &DoorError) -> (i32, &str) {
        (e.code, e.message.as_str())
    }

    #[test]
    fn missing_collections_and_databases_are_in_milvus_words() {
        let e = engine(EngineError::TableNotFound {
            database: "public".into(),
            table: "items".into(),
        });
        assert_eq!(
            said(&e),
            (
                100,
                "collection not found[database=default][collection=items]"
            )
        );
        let e = engine(EngineError::TableNotFound {
            database: "db1".into(),
            table: "items".into(),
        });
        assert_eq!(
            said(&e),
            (100, "collection not found[database=db1][collection=items]")
        );
        let e = engine(EngineError::DatabaseNotFound("db1".into()));
        assert_eq!(said(&e), (800, "database not found[database=db1]"));
    }

    #[test]
    fn names_taken_and_databases_in_use_are_in_milvus_words() {
        let e = engine(EngineError::DatabaseAlreadyExists("db1".into()));
        assert_eq!(said(&e), (1100, "database already exist: db1"));
        let e = engine(EngineError::DatabaseNotEmpty("db1".into()));
        assert_eq!(
            said(&e),
            (
                1100,
                "database:db1 not empty, must drop all collections before drop database"
            )
        );
        let e = engine(EngineError::TableAlreadyExists {
            database: "public".into(),
            table: "b".into(),
        });
        assert_eq!(
            said(&e),
            (
                1100,
                "duplicated new collection name default:b with other collection name or alias"
            )
        );
    }

    #[test]
    fn missing_indexes_and_fields_and_repeated_keys_are_in_milvus_words() {
        let e = engine(EngineError::IndexNotFound("items_vec".into()));
        assert_eq!(said(&e), (700, "index not found[indexName=items_vec]"));
        let e = engine(EngineError::ColumnNotFound {
            table: "items".into(),
            column: "f".into(),
        });
        assert_eq!(said(&e), (1700, "field not found[field=f]"));
        let e = engine(EngineError::DuplicateKey {
            table: "items".into(),
            column: "id".into(),
            key: "1".into(),
        });
        assert_eq!(
            said(&e),
            (
                1100,
                "duplicate primary keys are not allowed in the same batch: invalid parameter"
            )
        );
    }

    /// The engine's errors keep Postgres' words and status: the Milvus
    /// wording is the door's rendering only.
    #[test]
    fn the_postgres_words_stay_with_the_error() {
        let e = SqlError::Engine(EngineError::TableNotFound {
            database: "public".into(),
            table: "items".into(),
        });
        assert_eq!(e.to_string(), "relation \"items\" does not exist");
        assert_eq!(e.status_code(), StatusCode::TableNotFound);
        let e = SqlError::Engine(EngineError::DatabaseNotFound("db1".into()));
        assert_eq!(e.to_string(), "schema \"db1\" does not exist");
    }

    #[test]
    fn other_errors_keep_their_words_with_the_code_of_their_status() {
        let e = DoorError::from(SqlError::Syntax("near x".into()));
        assert_eq!(said(&e), (1100, "syntax error: near x"));
        let e = engine(EngineError::NotNull {
            table: "items".into(),
            column: "f".into(),
        });
        assert_eq!(e.code, 1100);
        assert!(e.message.contains("not-null"), "{}", e.message);
        assert_eq!(DoorError::from(SqlError::Timeout).code, 1);
        assert_eq!(DoorError::from(SqlError::Internal("x".into())).code, 5);
        let oom = SqlError::OutOfMemory {
            detail: "d".into(),
            hint: None,
        };
        assert_eq!(said(&DoorError::from(oom)), (3, "out of memory: d"));
    }

    #[test]
    fn every_status_code_has_its_milvus_code() {
        let expected = [
            (StatusCode::Internal, 5),
            (StatusCode::StorageUnavailable, 5),
            (StatusCode::OutcomeUnknown, 5),
            (StatusCode::ServiceUnavailable, 2),
            (StatusCode::SyntaxError, 1100),
            (StatusCode::Unsupported, 1100),
            (StatusCode::TableNotFound, 100),
            (StatusCode::TableAlreadyExists, 1100),
            (StatusCode::DatabaseNotFound, 800),
            (StatusCode::DatabaseAlreadyExists, 1100),
            (StatusCode::ColumnNotFound, 1100),
            (StatusCode::ColumnAlreadyExists, 1100),
            (StatusCode::IndexNotFound, 700),
            (StatusCode::TypeMismatch, 1100),
            (StatusCode::DimensionMismatch, 1100),
            (StatusCode::InvalidValue, 1100),
            (StatusCode::InvalidTextRepresentation, 1100),
            (StatusCode::InvalidDatetimeFormat, 1100),
            (StatusCode::InvalidParameter, 1100),
            (StatusCode::NotNullViolation, 1100),
            (StatusCode::UniqueViolation, 1100),
            (StatusCode::InvalidTableDefinition, 1100),
            (StatusCode::Cancelled, 1),
            (StatusCode::LimitExceeded, 1100),
            (StatusCode::StatementTooComplex, 1100),
            (StatusCode::OutOfMemory, 3),
            (StatusCode::TooManyConnections, 4),
            (StatusCode::NameTooLong, 1100),
            (StatusCode::ProtocolViolation, 1100),
            (StatusCode::IdleInTransactionTimeout, 1),
            (StatusCode::IdleSessionTimeout, 1),
            (StatusCode::SerializationFailure, 2),
            (StatusCode::ActiveSqlTransaction, 1100),
            (StatusCode::InFailedSqlTransaction, 1100),
            (StatusCode::NoActiveSqlTransaction, 1100),
            (StatusCode::InvalidSavepoint, 1100),
            (StatusCode::ReadOnlySqlTransaction, 1100),
            (StatusCode::NumericValueOutOfRange, 1100),
            (StatusCode::DivisionByZero, 1100),
            (StatusCode::CardinalityViolation, 1100),
            (StatusCode::DuplicateObject, 1100),
            (StatusCode::UndefinedObject, 1100),
            (StatusCode::DependentObjectsStillExist, 1100),
        ];
        for (status, milvus) in expected {
            assert_eq!(milvus_code(status), milvus, "{status}");
        }
    }

    #[test]
    fn filter_errors_are_invalid_parameters() {
        let fields = [filter::FilterField {
            name: "id",
            kind: filter::FieldKind::Int,
        }];
        let err = filter::filter_to_sql("id >", &fields, &HashMap::new()).unwrap_err();
        let e = DoorError::from(err);
        assert_eq!(e.code, 1100);
        assert!(!e.message.is_empty());
    }

    #[test]
    #[allow(deprecated)] // error_code: old clients still read it
    fn replies_carry_the_code_and_the_legacy_error_code() {
        let s = error_status(&DoorError::collection_not_found("public", "x"));
        assert_eq!(s.code, 100);
        assert_eq!(s.error_code, ErrorCode::CollectionNotExists as i32);
        assert_eq!(
            s.reason,
            "collection not found[database=default][collection=x]"
        );
        let s = error_status(&DoorError::index_not_found("x"));
        assert_eq!(
            (s.code, s.error_code),
            (700, ErrorCode::IndexNotExist as i32)
        );
        assert_eq!(s.reason, "index not found[collection=x]");
        let s = error_status(&DoorError::invalid("bad".into()));
        assert_eq!(
            (s.code, s.error_code),
            (1100, ErrorCode::UnexpectedError as i32)
        );
        let s = error_status(&DoorError::unsupported("this".into()));
        assert_eq!(s.reason, "this is not supported yet by Quiver");
        let ok = status_of(Ok(()));
        assert_eq!((ok.code, ok.error_code), (0, ErrorCode::Success as i32));
        assert_eq!(ok, ok_status());
        assert_eq!(status_of(Err(DoorError::database_not_found("d"))).code, 800);
    }
}
