//! Errors as Milvus reports them: [`DoorError`] (a Milvus code and
//! message), the Milvus code of each Quiver status code, and the
//! `common.Status` a reply carries.

use milvus::proto::common::{ErrorCode, Status};
use quiver_common::status::StatusCode;
use tonic::Response;

use super::filter;
use crate::error::SqlError;

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
        Self::new(1100, message)
    }

    /// A feature Quiver's Milvus door does not have yet (1100, named).
    pub fn unsupported(feature: String) -> Self {
        Self::new(1100, format!("{feature} is not supported yet by Quiver"))
    }

    /// An unexpected server fault (Milvus' `ServiceInternal`, 5).
    pub fn internal(message: String) -> Self {
        Self::new(5, message)
    }

    pub(super) fn collection_not_found(name: &str) -> Self {
        Self::new(100, format!("collection not found[collection={name}]"))
    }
}

/// Milvus' code for a Quiver status code (exhaustive, no wildcard).
pub(super) fn milvus_code(code: StatusCode) -> i32 {
    match code {
        StatusCode::TableNotFound => 100,
        StatusCode::IndexNotFound => 700,
        StatusCode::DatabaseNotFound => 800,
        StatusCode::Internal | StatusCode::StorageUnavailable => 5,
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
        | StatusCode::ProtocolViolation => 1100,
        // merr: ErrServiceMemoryLimitExceeded ("memory limit exceeded").
        StatusCode::OutOfMemory => 3,
        // merr: ErrServiceRequestLimitExceeded ("request limit exceeded").
        StatusCode::TooManyConnections => 4,
        StatusCode::Cancelled
        | StatusCode::IdleInTransactionTimeout
        | StatusCode::IdleSessionTimeout => 1,
    }
}

impl From<SqlError> for DoorError {
    fn from(e: SqlError) -> Self {
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
        100 => ErrorCode::CollectionNotExists,
        700 => ErrorCode::IndexNotExist,
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
