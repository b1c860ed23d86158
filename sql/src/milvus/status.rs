//! Errors as Milvus reports them: [`DoorError`] (a Milvus code and
//! message), the Milvus code of each Quiver status code, the engine errors
//! Milvus has words of its own for, rendered from their data, and the
//! `common.Status` a reply carries.

use milvus::proto::common::{ErrorCode, Status};
use quiver_cluster::EngineError;
use quiver_common::status::StatusCode;
use tonic::Response;

use super::filter;
use super::request::database_name;
use crate::error::SqlError;

/// Milvus' codes (its `merr` package) the door answers with by name.
pub(super) mod code {
    /// `ErrServiceInternal`.
    pub const SERVICE_INTERNAL: i32 = 5;
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
        StatusCode::DatabaseNotFound => code::DATABASE_NOT_FOUND,
        StatusCode::Internal | StatusCode::StorageUnavailable => code::SERVICE_INTERNAL,
        StatusCode::SyntaxError
        | StatusCode::Unsupported
        | StatusCode::TableAlreadyExists
        | StatusCode::DatabaseAlreadyExists
        | StatusCode::ColumnNotFound
        | StatusCode::ColumnAlreadyExists
        | StatusCode::TypeMismatch
        | StatusCode::DimensionMismatch
        | StatusCode::InvalidValue
        | StatusCode::InvalidTextRepresentation
        | StatusCode::InvalidParameter
        | StatusCode::NotNullViolation
        | StatusCode::UniqueViolation
        | StatusCode::InvalidTableDefinition
        | StatusCode::LimitExceeded
        | StatusCode::StatementTooComplex
        | StatusCode::NameTooLong
        | StatusCode::ProtocolViolation => code::PARAMETER_INVALID,
        // merr: ErrServiceMemoryLimitExceeded ("memory limit exceeded").
        StatusCode::OutOfMemory => 3,
        // merr: ErrServiceRequestLimitExceeded ("request limit exceeded").
        StatusCode::TooManyConnections => 4,
        StatusCode::Cancelled
        | StatusCode::IdleInTransactionTimeout
        | StatusCode::IdleSessionTimeout => 1,
    }
}

/// An engine error in Milvus' words, from its data (`None`: Milvus has no
/// words of its own for it, and the error keeps Quiver's). The codes are
/// Milvus' where it has one (`merr`); where it answers an unclassified
/// error, the status code's.
fn in_milvus_words(e: &EngineError) -> Option<DoorError> {
    let same_code = || milvus_code(e.status_code());
    Some(match e {
        EngineError::TableNotFound { database, table } => {
            DoorError::collection_not_found(database, table)
        }
        EngineError::DatabaseNotFound(schema) => {
            DoorError::database_not_found(&database_name(schema))
        }
        // Milvus' rootcoord (meta table).
        EngineError::DatabaseAlreadyExists(schema) => DoorError::new(
            same_code(),
            format!("database already exist: {}", database_name(schema)),
        ),
        EngineError::DatabaseNotEmpty(schema) => DoorError::new(
            same_code(),
            format!(
                "database:{} not empty, must drop all collections before drop database",
                database_name(schema)
            ),
        ),
        // The door creates a collection only after looking for it, so the
        // engine reports an existing name on a rename (Milvus' wording).
        EngineError::TableAlreadyExists { database, table } => DoorError::new(
            same_code(),
            format!(
                "duplicated new collection name {}:{table} with other collection name or alias",
                database_name(database)
            ),
        ),
        EngineError::IndexNotFound(name) => DoorError::new(
            code::INDEX_NOT_FOUND,
            format!("index not found[indexName={name}]"),
        ),
        EngineError::ColumnNotFound { column, .. } => DoorError::new(
            code::FIELD_NOT_FOUND,
            format!("field not found[field={column}]"),
        ),
        // The door writes inserts and upserts as upserts, which refuse only
        // a key repeated within the batch (Milvus 2.6's upsert check).
        EngineError::DuplicateKey { .. } => DoorError::new(
            code::PARAMETER_INVALID,
            "duplicate primary keys are not allowed in the same batch: invalid parameter",
        ),
        _ => return None,
    })
}

impl From<SqlError> for DoorError {
    fn from(e: SqlError) -> Self {
        if let SqlError::Engine(engine) = &e {
            if let Some(door) = in_milvus_words(engine) {
                return door;
            }
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
