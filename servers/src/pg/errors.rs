//! Status codes to SQLSTATE, and errors to pgwire `ErrorResponse`s.

use pgwire::error::{ErrorInfo, PgWireError};
use quiver_common::status::StatusCode;
use quiver_sql::error::SqlError;

/// SQLSTATE of `query_canceled` (statement timeout, cancel request, failed COPY).
pub const QUERY_CANCELED: &str = "57014";
/// SQLSTATE of `protocol_violation`.
pub const PROTOCOL_VIOLATION: &str = "08P01";

/// The SQLSTATE reported for a status code.
///
/// Exhaustive on purpose: a new [`StatusCode`] must be given its SQLSTATE here.
pub fn sqlstate(code: StatusCode) -> &'static str {
    match code {
        StatusCode::Internal => "XX000",
        StatusCode::StorageUnavailable => "58030",
        StatusCode::OutcomeUnknown => "08007",
        // cannot_connect_now: the server cannot serve this now, retry later.
        StatusCode::ServiceUnavailable => "57P03",
        StatusCode::SyntaxError => "42601",
        StatusCode::Unsupported => "0A000",
        StatusCode::TableNotFound => "42P01",
        StatusCode::TableAlreadyExists => "42P07",
        StatusCode::DatabaseNotFound => "3F000",
        StatusCode::DatabaseAlreadyExists => "42P06",
        StatusCode::UndefinedDatabase => "3D000",
        StatusCode::DuplicateDatabase => "42P04",
        StatusCode::ObjectInUse => "55006",
        StatusCode::LockNotAvailable => "55P03",
        StatusCode::InvalidRowCountInLimit => "2201W",
        StatusCode::InvalidRowCountInOffset => "2201X",
        StatusCode::ColumnNotFound => "42703",
        StatusCode::ColumnAlreadyExists => "42701",
        StatusCode::IndexNotFound => "42704",
        StatusCode::TypeMismatch => "42804",
        StatusCode::DimensionMismatch => "22000",
        StatusCode::InvalidValue => "22000",
        StatusCode::InvalidTextRepresentation => "22P02",
        StatusCode::InvalidDatetimeFormat => "22007",
        StatusCode::InvalidParameter => "22023",
        StatusCode::NotNullViolation => "23502",
        StatusCode::UniqueViolation => "23505",
        StatusCode::InvalidTableDefinition => "42P16",
        StatusCode::Cancelled => QUERY_CANCELED,
        StatusCode::LimitExceeded => "54000",
        StatusCode::StatementTooComplex => "54001",
        StatusCode::OutOfMemory => "53200",
        StatusCode::TooManyConnections => "53300",
        StatusCode::NameTooLong => "42622",
        StatusCode::ProtocolViolation => PROTOCOL_VIOLATION,
        StatusCode::IdleInTransactionTimeout => "25P03",
        StatusCode::IdleSessionTimeout => "57P05",
        StatusCode::SerializationFailure => "40001",
        StatusCode::ActiveSqlTransaction => "25001",
        StatusCode::InFailedSqlTransaction => "25P02",
        StatusCode::NoActiveSqlTransaction => "25P01",
        StatusCode::InvalidSavepoint => "3B001",
        StatusCode::ReadOnlySqlTransaction => "25006",
        StatusCode::NumericValueOutOfRange => "22003",
        StatusCode::DivisionByZero => "22012",
        StatusCode::CardinalityViolation => "21000",
        StatusCode::DuplicateObject => "42710",
        StatusCode::UndefinedObject => "42704",
        StatusCode::DependentObjectsStillExist => "2BP01",
        StatusCode::UndefinedFunction => "42883",
    }
}

/// An `ERROR` with the given SQLSTATE and message.
pub fn pg_error(code: &str, message: impl Into<String>) -> PgWireError {
    let message = message.into();
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".to_owned(),
        code.to_owned(),
        quiver_sql::error::client_text(&message).into_owned(),
    )))
}

/// The `ErrorResponse` for an access-layer error.
pub fn to_pg_error(err: &SqlError) -> PgWireError {
    match err {
        // As PostgreSQL words it: `out of memory`, the failed request in
        // DETAIL, and (Quiver's addition) which limit to raise in HINT.
        SqlError::OutOfMemory { detail, hint } => {
            let mut info = ErrorInfo::new(
                "ERROR".to_owned(),
                sqlstate(err.status_code()).to_owned(),
                "out of memory".to_owned(),
            );
            info.detail = Some(detail.clone());
            info.hint = hint.clone();
            PgWireError::UserError(Box::new(info))
        }
        // The character the parser stopped at: psql shows `LINE n:` and a
        // caret under it.
        SqlError::SyntaxAt { message, position } => {
            let mut info = ErrorInfo::new(
                "ERROR".to_owned(),
                sqlstate(err.status_code()).to_owned(),
                message.clone(),
            );
            info.position = Some(position.to_string());
            PgWireError::UserError(Box::new(info))
        }
        _ => pg_error(sqlstate(err.status_code()), err.to_string()),
    }
}

/// The `FATAL` error refusing a connection whose session could not open
/// (PostgreSQL's `3D000` `database "x" does not exist` for a database that
/// does not exist).
pub(crate) fn startup_refusal(err: &SqlError) -> ErrorInfo {
    ErrorInfo::new(
        "FATAL".to_owned(),
        sqlstate(err.status_code()).to_owned(),
        err.to_string(),
    )
}

/// The error of a statement of `text`, with the position in `text` of the
/// relation or column it is about (see `error_position`).
pub(crate) fn sql_err_in(text: &str) -> impl Fn(SqlError) -> PgWireError + '_ {
    move |err| {
        let Some(position) = super::error_position::error_position(text, &err) else {
            return to_pg_error(&err);
        };
        let mut info = ErrorInfo::new(
            "ERROR".to_owned(),
            sqlstate(err.status_code()).to_owned(),
            err.to_string(),
        );
        info.position = Some(position.to_string());
        PgWireError::UserError(Box::new(info))
    }
}

/// Converts an owned access-layer error (for `map_err`).
pub(crate) fn sql_err(err: SqlError) -> PgWireError {
    to_pg_error(&err)
}

/// Converts a DataFusion error raised while streaming rows.
pub(crate) fn df_err(err: datafusion::error::DataFusionError) -> PgWireError {
    sql_err(SqlError::from(err))
}

/// The statement-timeout error (57014).
pub(crate) fn timeout_error() -> PgWireError {
    sql_err(SqlError::Timeout)
}

/// The error of a statement cancelled by a cancel request (57014).
pub(crate) fn cancel_error() -> PgWireError {
    pg_error(QUERY_CANCELED, "canceling statement due to user request")
}

#[cfg(test)]
mod tests {
    use super::*;
    use quiver_common::vector::VectorError;

    fn info(err: PgWireError) -> ErrorInfo {
        match err {
            PgWireError::UserError(info) => *info,
            other => panic!("not a user error: {other:?}"),
        }
    }

    #[test]
    fn maps_status_codes_to_sqlstate() {
        assert_eq!(sqlstate(StatusCode::Internal), "XX000");
        assert_eq!(sqlstate(StatusCode::SyntaxError), "42601");
        assert_eq!(sqlstate(StatusCode::TableNotFound), "42P01");
        assert_eq!(sqlstate(StatusCode::DimensionMismatch), "22000");
        assert_eq!(sqlstate(StatusCode::InvalidTextRepresentation), "22P02");
        assert_eq!(sqlstate(StatusCode::UniqueViolation), "23505");
        assert_eq!(sqlstate(StatusCode::Cancelled), "57014");
        assert_eq!(sqlstate(StatusCode::LimitExceeded), "54000");
        assert_eq!(sqlstate(StatusCode::OutcomeUnknown), "08007");
        assert_eq!(sqlstate(StatusCode::ServiceUnavailable), "57P03");
        assert_eq!(sqlstate(StatusCode::NumericValueOutOfRange), "22003");
        assert_eq!(sqlstate(StatusCode::DivisionByZero), "22012");
        assert_eq!(sqlstate(StatusCode::CardinalityViolation), "21000");
        assert_eq!(sqlstate(StatusCode::DuplicateObject), "42710");
        assert_eq!(sqlstate(StatusCode::UndefinedObject), "42704");
        assert_eq!(sqlstate(StatusCode::DependentObjectsStillExist), "2BP01");
    }

    #[test]
    fn converts_sql_errors() {
        let e = info(to_pg_error(&SqlError::Vector(
            VectorError::WrongDimension {
                expected: 3,
                actual: 2,
            },
        )));
        assert_eq!(e.severity, "ERROR");
        assert_eq!(e.code, "22000");
        assert_eq!(e.message, "expected 3 dimensions, not 2");

        let e = info(to_pg_error(&SqlError::Syntax("oops".into())));
        assert_eq!(e.code, "42601");

        let e = info(to_pg_error(&SqlError::OutOfMemory {
            detail: "Failed on request of size 8 in memory context \"x\".".into(),
            hint: Some("Raise quiver.query_memory_limit.".into()),
        }));
        assert_eq!(e.code, "53200");
        assert_eq!(e.message, "out of memory");
        assert_eq!(
            e.detail.as_deref(),
            Some("Failed on request of size 8 in memory context \"x\".")
        );
        assert_eq!(e.hint.as_deref(), Some("Raise quiver.query_memory_limit."));

        let e = info(timeout_error());
        assert_eq!(e.code, "57014");
        assert_eq!(e.message, "canceling statement due to statement timeout");
    }
}
