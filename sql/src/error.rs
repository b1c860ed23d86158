//! Errors of the access layer.

use datafusion::error::DataFusionError;
use quiver_cluster::EngineError;
use quiver_common::status::StatusCode;
use quiver_common::vector::VectorError;

/// An access-layer error; every variant reports a [`StatusCode`].
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    #[error("syntax error: {0}")]
    Syntax(String),
    #[error("{0} is not supported")]
    Unsupported(String),
    #[error("{0}")]
    Engine(#[from] EngineError),
    #[error("{0}")]
    Vector(#[from] VectorError),
    #[error("{message}")]
    Query { code: StatusCode, message: String },
    #[error("{0}")]
    InvalidParameter(String),
    #[error("canceling statement due to statement timeout")]
    Timeout,
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
            SqlError::Syntax(_) => StatusCode::SyntaxError,
            SqlError::Unsupported(_) => StatusCode::Unsupported,
            SqlError::Engine(e) => e.status_code(),
            SqlError::Vector(e) => e.status_code(),
            SqlError::Query { code, .. } => *code,
            SqlError::InvalidParameter(_) => StatusCode::InvalidParameter,
            SqlError::Timeout => StatusCode::Cancelled,
            SqlError::TooComplex(e) => e.status_code(),
            SqlError::Internal(_) => StatusCode::Internal,
        }
    }

    /// An "X is not supported" error naming the feature.
    pub fn unsupported(feature: impl Into<String>) -> Self {
        SqlError::Unsupported(feature.into())
    }
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

/// Recovers the typed cause of a DataFusion error.
fn classify_datafusion(err: DataFusionError) -> SqlError {
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
                    format!("column \"{}\" does not exist", field.name)
                }
                other => other.to_string(),
            };
            SqlError::Query { code, message }
        }
        DataFusionError::NotImplemented(msg) => SqlError::Unsupported(msg),
        DataFusionError::Plan(msg) => {
            // DataFusion reports unknown tables as a plan error with this shape.
            if let Some(rest) = msg.strip_prefix("table '") {
                if let Some(name) = rest.strip_suffix("' not found") {
                    let short = name.rsplit('.').next().unwrap_or(name);
                    return SqlError::Engine(EngineError::TableNotFound(short.to_string()));
                }
            }
            if msg.contains("does not exist")
                || msg.contains("No function matches")
                || msg.contains("Invalid function")
            {
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
        DataFusionError::ArrowError(e, _) => SqlError::Query {
            code: match e.as_ref() {
                arrow::error::ArrowError::CastError(_)
                | arrow::error::ArrowError::ParseError(_) => StatusCode::InvalidTextRepresentation,
                arrow::error::ArrowError::DivideByZero => StatusCode::InvalidValue,
                arrow::error::ArrowError::ArithmeticOverflow(_) => StatusCode::InvalidValue,
                _ => StatusCode::Internal,
            },
            message: e.to_string(),
        },
        DataFusionError::Execution(msg) => SqlError::Query {
            code: StatusCode::InvalidValue,
            message: msg,
        },
        DataFusionError::ResourcesExhausted(msg) => SqlError::Query {
            code: StatusCode::LimitExceeded,
            message: msg,
        },
        other => SqlError::Query {
            code: StatusCode::Internal,
            message: other.to_string(),
        },
    }
}
