//! Errors of the access layer.

use datafusion::error::DataFusionError;
use quiver_cluster::EngineError;
use quiver_common::status::StatusCode;
use quiver_common::vector::VectorError;
use quiver_planner::checked_arithmetic::IntegerOutOfRange;
use quiver_planner::json::InvalidJson;
use quiver_planner::search_subqueries::SubqueryReturnedRows;

/// An access-layer error; every variant reports a [`StatusCode`].
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    #[error("syntax error: {0}")]
    Syntax(String),
    /// A statement text the parser stopped in, as PostgreSQL words it
    /// (`syntax error at or near "x"`, `syntax error at end of input`),
    /// with the 1-based character position in the text it stopped at.
    #[error("{message}")]
    SyntaxAt { message: String, position: usize },
    #[error("{0} is not supported")]
    Unsupported(String),
    #[error("{0}")]
    Engine(#[from] EngineError),
    #[error("{0}")]
    Vector(#[from] VectorError),
    #[error("{message}")]
    Query { code: StatusCode, message: String },
    /// A column the statement names does not exist (`42703`).
    #[error("column \"{column}\" does not exist")]
    UndefinedColumn { column: String },
    #[error("{0}")]
    InvalidParameter(String),
    /// An identifier over [`MAX_IDENTIFIER_LEN`] bytes (PostgreSQL's
    /// "identifier too long"; `shown` is its start).
    ///
    /// [`MAX_IDENTIFIER_LEN`]: quiver_common::limits::MAX_IDENTIFIER_LEN
    #[error("identifier too long: \"{shown}\" has {bytes} bytes; identifiers must be at most {limit} bytes")]
    IdentifierTooLong {
        shown: String,
        bytes: usize,
        limit: usize,
    },
    #[error("canceling statement due to statement timeout")]
    Timeout,
    /// A statement needed more memory than its limit (or the server's)
    /// allows: PostgreSQL's "out of memory", its detail
    /// (`Failed on request of size N in memory context "X".`) and a hint
    /// naming the limit to raise.
    #[error("out of memory: {detail}{}", .hint.as_deref().map(|h| format!(" {h}")).unwrap_or_default())]
    OutOfMemory {
        detail: String,
        hint: Option<String>,
    },
    #[error("{0}")]
    TooComplex(#[from] crate::complexity::TooComplex),
    #[error("internal error: {0}")]
    Internal(String),
}

/// Result alias of the access layer.
pub type Result<T> = std::result::Result<T, SqlError>;

impl SqlError {
    /// The status code of this error.
    pub fn status_code(&self) -> StatusCode {
        match self {
            SqlError::Syntax(_) | SqlError::SyntaxAt { .. } => StatusCode::SyntaxError,
            SqlError::Unsupported(_) => StatusCode::Unsupported,
            SqlError::Engine(e) => e.status_code(),
            SqlError::Vector(e) => e.status_code(),
            SqlError::Query { code, .. } => *code,
            SqlError::UndefinedColumn { .. } => StatusCode::ColumnNotFound,
            SqlError::InvalidParameter(_) => StatusCode::InvalidParameter,
            SqlError::IdentifierTooLong { .. } => StatusCode::NameTooLong,
            SqlError::Timeout => StatusCode::Cancelled,
            SqlError::OutOfMemory { .. } => StatusCode::OutOfMemory,
            SqlError::TooComplex(e) => e.status_code(),
            SqlError::Internal(_) => StatusCode::Internal,
        }
    }

    /// An "X is not supported" error naming the feature.
    pub fn unsupported(feature: impl Into<String>) -> Self {
        SqlError::Unsupported(feature.into())
    }

    /// The error of a table `table` of database (schema) `database` that
    /// does not exist (`relation "t" does not exist`).
    pub fn table_not_found(database: impl Into<String>, table: impl Into<String>) -> Self {
        SqlError::Engine(EngineError::TableNotFound {
            database: database.into(),
            table: table.into(),
        })
    }

    /// The name the statement's text wrote for what the error is about,
    /// when it is a relation or column that does not exist: a front end
    /// points at it in the text (PostgreSQL's error position).
    pub fn named_in_statement(&self) -> Option<&str> {
        match self {
            SqlError::Engine(EngineError::TableNotFound { table, .. }) => Some(table),
            SqlError::UndefinedColumn { column } => Some(column),
            _ => None,
        }
    }

    /// What the error is about, from its data, when it is one of the
    /// catalog and key errors a front end may word itself (`None`: the
    /// error has only its message and status code).
    pub fn subject(&self) -> Option<ErrorSubject<'_>> {
        let SqlError::Engine(engine) = self else {
            return None;
        };
        Some(match engine {
            EngineError::TableNotFound { database, table } => {
                ErrorSubject::TableNotFound { database, table }
            }
            EngineError::TableAlreadyExists { database, table } => {
                ErrorSubject::TableAlreadyExists { database, table }
            }
            EngineError::DatabaseNotFound(database) => ErrorSubject::DatabaseNotFound(database),
            EngineError::DatabaseAlreadyExists(database) => {
                ErrorSubject::DatabaseAlreadyExists(database)
            }
            EngineError::DatabaseNotEmpty(database) => ErrorSubject::DatabaseNotEmpty(database),
            EngineError::IndexNotFound(index) => ErrorSubject::IndexNotFound(index),
            EngineError::ColumnNotFound { table, column } => {
                ErrorSubject::ColumnNotFound { table, column }
            }
            EngineError::DuplicateKey { table, column, key } => {
                ErrorSubject::DuplicateKey { table, column, key }
            }
            _ => return None,
        })
    }
}

/// The catalog object or key an error is about ([`SqlError::subject`]):
/// the data a front end words an error from in its own protocol's terms
/// (the Milvus door's `collection not found[database=..][collection=..]`).
/// Databases are schema names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorSubject<'a> {
    TableNotFound {
        database: &'a str,
        table: &'a str,
    },
    TableAlreadyExists {
        database: &'a str,
        table: &'a str,
    },
    DatabaseNotFound(&'a str),
    DatabaseAlreadyExists(&'a str),
    DatabaseNotEmpty(&'a str),
    IndexNotFound(&'a str),
    ColumnNotFound {
        table: &'a str,
        column: &'a str,
    },
    /// A primary key written twice (`column` = `key`).
    DuplicateKey {
        table: &'a str,
        column: &'a str,
        key: &'a str,
    },
}

impl From<DataFusionError> for SqlError {
    fn from(err: DataFusionError) -> Self {
        classify_datafusion(err)
    }
}

impl From<datafusion::sql::sqlparser::parser::ParserError> for SqlError {
    fn from(err: datafusion::sql::sqlparser::parser::ParserError) -> Self {
        use datafusion::sql::sqlparser::parser::ParserError;
        match err {
            ParserError::RecursionLimitExceeded => {
                SqlError::TooComplex(crate::complexity::TooComplex::ParserRecursion {
                    limit: crate::complexity::PARSER_RECURSION_LIMIT,
                })
            }
            other => SqlError::Syntax(other.to_string()),
        }
    }
}

impl From<arrow::error::ArrowError> for SqlError {
    fn from(err: arrow::error::ArrowError) -> Self {
        classify_datafusion(DataFusionError::ArrowError(Box::new(err), None))
    }
}

/// PostgreSQL's `division by zero` (`22012`).
fn division_by_zero() -> SqlError {
    SqlError::Query {
        code: StatusCode::DivisionByZero,
        message: "division by zero".into(),
    }
}

/// Recovers the typed cause of a DataFusion error.
fn classify_datafusion(err: DataFusionError) -> SqlError {
    // A memory pool refusal, however deep it is wrapped (a sort adds
    // context, a stream an Arrow external error).
    if let DataFusionError::ResourcesExhausted(message) = err.find_root() {
        let (detail, hint) = quiver_exec::memory::out_of_memory_parts(message);
        return SqlError::OutOfMemory { detail, hint };
    }
    // An uncorrelated scalar subquery DataFusion runs, however wrapped.
    if matches!(err.find_root(), DataFusionError::Execution(msg)
        if msg == "Scalar subquery returned more than one row")
    {
        return SqlError::Query {
            code: StatusCode::CardinalityViolation,
            message: SubqueryReturnedRows.to_string(),
        };
    }
    match err {
        DataFusionError::External(inner) => {
            let inner = match inner.downcast::<VectorError>() {
                Ok(v) => return SqlError::Vector(*v),
                Err(other) => other,
            };
            let inner = match inner.downcast::<EngineError>() {
                Ok(e) => return SqlError::Engine(*e),
                Err(other) => other,
            };
            // The planner's value errors, worded as PostgreSQL words them.
            let value_error = if inner.is::<InvalidJson>() {
                Some(StatusCode::InvalidTextRepresentation)
            } else if inner.is::<IntegerOutOfRange>() {
                Some(StatusCode::NumericValueOutOfRange)
            } else if inner.is::<SubqueryReturnedRows>() {
                Some(StatusCode::CardinalityViolation)
            } else {
                None
            };
            if let Some(code) = value_error {
                return SqlError::Query {
                    code,
                    message: inner.to_string(),
                };
            }
            match inner.downcast::<DataFusionError>() {
                Ok(df) => classify_datafusion(*df),
                Err(other) => SqlError::Query {
                    code: StatusCode::Internal,
                    message: other.to_string(),
                },
            }
        }
        DataFusionError::Context(_, inner) | DataFusionError::Diagnostic(_, inner) => {
            classify_datafusion(*inner)
        }
        DataFusionError::Shared(inner) => SqlError::Query {
            code: StatusCode::Internal,
            message: inner.to_string(),
        },
        DataFusionError::SQL(e, _) => SqlError::from(*e),
        DataFusionError::SchemaError(e, _) => {
            use datafusion::common::SchemaError;
            let code = match e.as_ref() {
                SchemaError::FieldNotFound { .. } => StatusCode::ColumnNotFound,
                SchemaError::AmbiguousReference { .. } => StatusCode::ColumnNotFound,
                _ => StatusCode::InvalidParameter,
            };
            let message = match e.as_ref() {
                SchemaError::FieldNotFound { field, .. } => {
                    return SqlError::UndefinedColumn {
                        column: field.name.clone(),
                    }
                }
                other => other.to_string(),
            };
            SqlError::Query { code, message }
        }
        DataFusionError::NotImplemented(msg) => SqlError::Unsupported(msg),
        DataFusionError::Plan(msg) => {
            // DataFusion reports unknown tables as a plan error with this
            // shape, the name resolved (`catalog.schema.table`).
            if let Some(rest) = msg.strip_prefix("table '") {
                if let Some(name) = rest.strip_suffix("' not found") {
                    let mut parts = name.rsplit('.');
                    let table = parts.next().unwrap_or(name);
                    let database = parts.next().unwrap_or(quiver_cluster::DEFAULT_DATABASE);
                    return SqlError::Engine(EngineError::TableNotFound {
                        database: database.to_string(),
                        table: table.to_string(),
                    });
                }
            }
            // An unknown function name: `Invalid function 'x'.` (and a
            // guess on the next line), in PostgreSQL's words.
            if let Some(name) = msg
                .strip_prefix("Invalid function '")
                .and_then(|rest| rest.split_once('\''))
                .map(|(name, _)| name)
            {
                return SqlError::Query {
                    code: StatusCode::UndefinedFunction,
                    message: format!("function {name} does not exist"),
                };
            }
            if msg.contains("does not exist") || msg.contains("No function matches") {
                return SqlError::Query {
                    code: StatusCode::TypeMismatch,
                    message: msg,
                };
            }
            SqlError::Query {
                code: StatusCode::InvalidParameter,
                message: msg,
            }
        }
        DataFusionError::ArrowError(e, _)
            if matches!(
                e.as_ref(),
                arrow::error::ArrowError::CastError(_) | arrow::error::ArrowError::ParseError(_)
            ) =>
        {
            // In PostgreSQL's words when Arrow's are one of its known shapes.
            let (code, message) = crate::cast_errors::postgres_cast_error(&e.to_string())
                .unwrap_or((StatusCode::InvalidTextRepresentation, e.to_string()));
            SqlError::Query { code, message }
        }
        DataFusionError::ArrowError(e, _) => SqlError::Query {
            code: match e.as_ref() {
                arrow::error::ArrowError::DivideByZero => return division_by_zero(),
                arrow::error::ArrowError::ArithmeticOverflow(_) => {
                    StatusCode::NumericValueOutOfRange
                }
                _ => StatusCode::Internal,
            },
            message: e.to_string(),
        },
        // DataFusion's own kernels word it so (integer `/` and `%`).
        DataFusionError::Execution(msg) if msg == "Divide by zero error" => division_by_zero(),
        DataFusionError::Execution(msg) => SqlError::Query {
            code: StatusCode::InvalidValue,
            message: msg,
        },
        other => SqlError::Query {
            code: StatusCode::Internal,
            message: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A memory pool refusal is 53200's status however DataFusion wraps it.
    #[test]
    fn resources_exhausted_is_out_of_memory() {
        let refusal = || {
            DataFusionError::ResourcesExhausted(
                "Failed on request of size 10 in memory context \"x\".\nHINT: raise it".into(),
            )
        };
        let wrapped = [
            refusal(),
            refusal().context("Not enough memory to continue external sort"),
            DataFusionError::External(Box::new(refusal())),
            DataFusionError::ArrowError(
                Box::new(arrow::error::ArrowError::ExternalError(Box::new(refusal()))),
                None,
            ),
        ];
        for err in wrapped {
            match SqlError::from(err) {
                SqlError::OutOfMemory { detail, hint } => {
                    assert_eq!(
                        detail,
                        "Failed on request of size 10 in memory context \"x\"."
                    );
                    assert_eq!(hint.as_deref(), Some("raise it"));
                }
                other => panic!("not out of memory: {other:?}"),
            }
        }
        let err = SqlError::OutOfMemory {
            detail: "d".into(),
            hint: None,
        };
        assert_eq!(err.status_code(), StatusCode::OutOfMemory);
        assert_eq!(err.to_string(), "out of memory: d");
    }

    /// DataFusion's unknown-table plan error becomes the engine's, with the
    /// schema it resolved the name in, and keeps PostgreSQL's wording.
    #[test]
    fn unknown_tables_carry_their_schema() {
        let cases = [
            ("table 'quiver.db1.items' not found", "db1"),
            ("table 'db1.items' not found", "db1"),
            ("table 'items' not found", "public"),
        ];
        for (message, schema) in cases {
            let err = SqlError::from(DataFusionError::Plan(message.to_string()));
            match &err {
                SqlError::Engine(EngineError::TableNotFound { database, table }) => {
                    assert_eq!((database.as_str(), table.as_str()), (schema, "items"));
                }
                other => panic!("{message}: {other:?}"),
            }
            assert_eq!(err.to_string(), "relation \"items\" does not exist");
            assert_eq!(err.status_code(), StatusCode::TableNotFound);
            assert_eq!(
                err.subject(),
                Some(ErrorSubject::TableNotFound {
                    database: schema,
                    table: "items"
                })
            );
        }
    }

    /// A stand-in handler's table-not-found error is the engine's, with
    /// its subject; errors without catalog data have none.
    #[test]
    fn subjects_come_from_the_error_data() {
        let err = SqlError::table_not_found("db1", "items");
        assert_eq!(err.status_code(), StatusCode::TableNotFound);
        assert_eq!(err.to_string(), "relation \"items\" does not exist");
        assert_eq!(
            err.subject(),
            Some(ErrorSubject::TableNotFound {
                database: "db1",
                table: "items"
            })
        );
        let err = SqlError::Engine(EngineError::DuplicateKey {
            table: "t".into(),
            column: "id".into(),
            key: "7".into(),
        });
        assert_eq!(
            err.subject(),
            Some(ErrorSubject::DuplicateKey {
                table: "t",
                column: "id",
                key: "7"
            })
        );
        assert_eq!(SqlError::Syntax("x".into()).subject(), None);
        assert_eq!(SqlError::Engine(EngineError::ShuttingDown).subject(), None);
    }
}

/// `message` with the names only the server uses made client names again:
/// a table a transaction block is creating (`name\0block<id>`) and a table
/// named with its hidden columns (`name\0with_hidden_columns`). A NUL
/// never reaches a client (the Postgres protocol ends strings with it).
pub fn client_text(message: &str) -> std::borrow::Cow<'_, str> {
    if !message.contains('\u{0}') {
        return std::borrow::Cow::Borrowed(message);
    }
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find('\u{0}') {
        out.push_str(&rest[..at]);
        let tail = &rest[at + 1..];
        rest = if let Some(after) = tail.strip_prefix("with_hidden_columns") {
            after
        } else if let Some(after) = tail.strip_prefix("block") {
            after.trim_start_matches(|c: char| c.is_ascii_digit())
        } else {
            tail
        };
    }
    out.push_str(rest);
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod client_text_tests {
    use super::client_text;

    #[test]
    fn server_only_names_read_as_the_clients() {
        assert_eq!(
            client_text("relation \"t\" does not exist"),
            "relation \"t\" does not exist"
        );
        assert_eq!(
            client_text("duplicate key value violates unique constraint \"made\u{0}block42_pkey\""),
            "duplicate key value violates unique constraint \"made_pkey\""
        );
        assert_eq!(
            client_text("\"t\u{0}with_hidden_columns\" and \u{0}x"),
            "\"t\" and x"
        );
    }
}
