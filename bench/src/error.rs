//! The one error type of the tool.

use std::path::PathBuf;

use thiserror::Error;

/// Everything that can stop a benchmark run.
#[derive(Debug, Error)]
pub enum BenchError {
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A `.fvecs`/`.ivecs` file without a single record.
    #[error("{}: empty file (no records)", path.display())]
    EmptyFile { path: PathBuf },
    /// A record whose dimension header is zero, negative or absurdly large.
    #[error("{}: record {record} has invalid dimension {dim}", path.display())]
    BadDimension {
        path: PathBuf,
        record: usize,
        dim: i64,
    },
    /// A record whose dimension differs from the first record's.
    #[error(
        "{}: record {record} has dimension {found}, but the first record has {expected}",
        path.display()
    )]
    DimensionMismatch {
        path: PathBuf,
        record: usize,
        expected: usize,
        found: usize,
    },
    /// The file ends inside a record.
    #[error("{}: truncated inside record {record} (file is {len} bytes)", path.display())]
    Truncated {
        path: PathBuf,
        record: usize,
        len: u64,
    },
    /// Dataset files that are missing or do not fit together.
    #[error("dataset: {0}")]
    Dataset(String),
    /// The dataset's converter script failed.
    #[error("converter `{command}` failed ({status}): {stderr}")]
    Converter {
        command: String,
        status: String,
        stderr: String,
    },
    /// A command-line value outside what the tool accepts.
    #[error("{0}")]
    Argument(String),
    /// An index kind the tool does not know at all.
    #[error("unknown index kind `{0}` (known: {1})")]
    UnknownIndex(String, String),
    /// An index kind the tool knows but that is not available in this mode
    /// or in this build of `quiver-index`.
    #[error("index kind `{kind}` is not supported by {mode}")]
    UnsupportedIndex { kind: String, mode: String },
    /// Building or searching a Quiver index failed.
    #[error("quiver index: {0}")]
    Index(#[from] quiver_index::IndexError),
    /// A statement sent through the Postgres door failed.
    #[error("postgres: {context}: {message}")]
    Sql { context: String, message: String },
    /// A peer library run failed or printed something unreadable.
    #[error("peer {peer}: {message}")]
    Peer { peer: String, message: String },
    /// A `milvus` mode target (one URI driven by pymilvus) failed or
    /// printed something unreadable.
    #[error("milvus target {system} ({uri}): {message}")]
    Milvus {
        system: String,
        uri: String,
        message: String,
    },
}

impl BenchError {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        BenchError::Io {
            path: path.into(),
            source,
        }
    }

    /// Wraps a tokio-postgres error with what was being done, keeping the
    /// server's message and SQLSTATE when there is one.
    pub fn sql(context: impl Into<String>, err: tokio_postgres::Error) -> Self {
        let message = match err.as_db_error() {
            Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
            None => {
                let mut message = err.to_string();
                let mut source = std::error::Error::source(&err);
                while let Some(s) = source {
                    message.push_str(": ");
                    message.push_str(&s.to_string());
                    source = s.source();
                }
                message
            }
        };
        BenchError::Sql {
            context: context.into(),
            message,
        }
    }
}

pub type Result<T, E = BenchError> = std::result::Result<T, E>;
