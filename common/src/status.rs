//! Status codes: the error kinds of the whole system.
//!
//! Every crate's error enum reports a [`StatusCode`]. Front ends map each code,
//! exhaustively and without wildcard arms, to their protocol's codes
//! (SQLSTATE for Postgres, `common.ErrorCode` for Milvus).

/// The kind of an error, independent of the protocol that reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum StatusCode {
    /// Unexpected internal failure (a bug or an environment fault).
    Internal,
    /// Storage (WAL, meta store, object storage) failed.
    StorageUnavailable,
    /// A write's outcome is unknown: storage did not answer in time, and
    /// the write may or may not be durable (PostgreSQL's
    /// `transaction_resolution_unknown`).
    OutcomeUnknown,
    /// A service storage depends on (etcd, S3) does not answer right now;
    /// retry once it is back (a meta-store write that timed out may still
    /// have landed).
    ServiceUnavailable,
    /// The request is syntactically wrong.
    SyntaxError,
    /// The request names a feature Quiver does not implement.
    Unsupported,
    /// A table/collection does not exist.
    TableNotFound,
    /// A table/collection already exists.
    TableAlreadyExists,
    /// A schema/database does not exist.
    DatabaseNotFound,
    /// A schema/database already exists.
    DatabaseAlreadyExists,
    /// A database named the way PostgreSQL names one (a connection's
    /// database, `CREATE`/`DROP DATABASE`) does not exist: SQLSTATE `3D000`
    /// (a database is a schema in Quiver, so this is the same catalog
    /// object as [`StatusCode::DatabaseNotFound`], named differently).
    UndefinedDatabase,
    /// The database of `CREATE DATABASE` already exists (`42P04`).
    DuplicateDatabase,
    /// A negative `LIMIT` (`2201W`).
    InvalidRowCountInLimit,
    /// A negative `OFFSET` (`2201X`).
    InvalidRowCountInOffset,
    /// The object is in use and cannot be dropped now (`55006`: the
    /// database the session is connected to).
    ObjectInUse,
    /// An object another transaction holds (`55P03`).
    LockNotAvailable,
    /// A column/field does not exist.
    ColumnNotFound,
    /// A column already exists.
    ColumnAlreadyExists,
    /// An index does not exist.
    IndexNotFound,
    /// A value has the wrong type for its column or operator.
    TypeMismatch,
    /// A vector has the wrong number of dimensions.
    DimensionMismatch,
    /// A value is out of its domain (NaN or infinity in a vector).
    InvalidValue,
    /// A literal's text cannot be read as its type (`'[1,x]'::vector`).
    InvalidTextRepresentation,
    /// A date or time text cannot be read as its type (`22007`).
    InvalidDatetimeFormat,
    /// A parameter (top-k, index option, setting) is out of range.
    InvalidParameter,
    /// A NOT NULL column got NULL.
    NotNullViolation,
    /// A primary key value is already present.
    UniqueViolation,
    /// The table definition is invalid (no primary key, bad type...).
    InvalidTableDefinition,
    /// The query was cancelled (client cancel or statement timeout).
    Cancelled,
    /// A request exceeded a documented limit.
    LimitExceeded,
    /// An expression or statement is larger or deeper than the planner accepts.
    StatementTooComplex,
    /// A request needed more memory than its limit allows.
    OutOfMemory,
    /// The server already serves as many connections as it is configured for.
    TooManyConnections,
    /// An identifier or name is longer than the limit.
    NameTooLong,
    /// A malformed protocol message.
    ProtocolViolation,
    /// A session stayed idle inside a transaction past its timeout.
    IdleInTransactionTimeout,
    /// A session stayed idle past its timeout.
    IdleSessionTimeout,
    /// A transaction's write conflicts with one committed after its
    /// snapshot (`40001`).
    SerializationFailure,
    /// A statement that cannot run inside a transaction block (`25001`).
    ActiveSqlTransaction,
    /// A statement in a transaction block that an error aborted (`25P02`).
    InFailedSqlTransaction,
    /// A statement that needs a transaction block outside one (`25P01`).
    NoActiveSqlTransaction,
    /// A savepoint that does not exist (`3B001`).
    InvalidSavepoint,
    /// A write in a `READ ONLY` transaction (`25006`).
    ReadOnlySqlTransaction,
    /// An integer result outside its type (`22003`).
    NumericValueOutOfRange,
    /// A division or modulo by zero (`22012`).
    DivisionByZero,
    /// A scalar subquery that returned more than one row (`21000`).
    CardinalityViolation,
    /// An object (an extension) that exists already (`42710`).
    DuplicateObject,
    /// An object (an extension) that does not exist (`42704`).
    UndefinedObject,
    /// A drop refused because other objects depend on the object
    /// (`2BP01`).
    DependentObjectsStillExist,
    /// A function that does not exist by that name (`42883`).
    UndefinedFunction,
}

impl StatusCode {
    /// True when the error is the client's fault rather than the server's.
    pub fn is_user_error(self) -> bool {
        !matches!(
            self,
            StatusCode::Internal
                | StatusCode::StorageUnavailable
                | StatusCode::OutcomeUnknown
                | StatusCode::ServiceUnavailable
        )
    }
}

impl std::fmt::Display for StatusCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}
