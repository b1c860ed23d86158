//! Error type shared by every storage component.

/// Errors returned by the meta store, object storage helpers and the WAL.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// An operating-system level I/O failure.
    #[error("io error: {0}")]
    Io(#[from] std::io::Error),

    /// Persistent data failed validation (bad checksum, bad header, gap in
    /// the log, ...). `file` names the offending file and `offset` the byte
    /// position at which the problem was detected.
    #[error("corrupt data in {file} at offset {offset}: {reason}")]
    Corrupt {
        file: String,
        offset: u64,
        reason: String,
    },

    /// Failure reported by the embedded meta store (redb).
    #[error("meta store error: {0}")]
    Meta(String),

    /// Failure reported by the object store.
    #[error("object store error: {0}")]
    ObjectStore(object_store::Error),

    /// The object store did not answer: connecting failed or timed out, or
    /// the request timed out, through every retry (an S3 server that is
    /// down or paused).
    #[error("object storage is unreachable: {0}")]
    ObjectStoreUnreachable(object_store::Error),

    /// A WAL record exceeded the maximum record size.
    #[error("record of {size} bytes exceeds the maximum of {max} bytes")]
    RecordTooLarge { size: usize, max: usize },

    /// The WAL writer hit an unrecoverable error earlier; no further appends
    /// are accepted until the log is reopened (which re-runs recovery).
    #[error("write-ahead log failed: {0}")]
    WalFailed(String),

    /// The data directory may be entered, read or written by group or
    /// others (PostgreSQL's "data directory ... has invalid permissions").
    #[error(
        "data directory \"{}\" has invalid permissions ({mode:04o}): it must be u=rwx (0700), with no access for group or others; fix it with: chmod 700 {}",
        path.display(),
        path.display()
    )]
    DataDirPermissions { path: std::path::PathBuf, mode: u32 },

    /// A meta-store transaction exceeds etcd's default limits (128 writes,
    /// 128 conditions, 1.5 MiB); `what` is `writes`, `conditions` or `bytes`.
    /// Nothing of it was applied.
    #[error("meta-store transaction too large: {actual} {what}, at most {max} allowed (etcd's default limit)")]
    TxnLimitExceeded {
        what: &'static str,
        actual: usize,
        max: usize,
    },

    /// A condition of a meta-store transaction did not hold (a key changed
    /// since it was read); nothing was applied.
    #[error("meta-store transaction not applied: {} changed since it was read (re-read and retry)", keys.join(", "))]
    CompareFailed { keys: Vec<String> },

    /// A meta-store watcher fell behind and events were lost.
    #[error("meta-store watch fell {missed} transactions behind and lost events: re-read the keys and watch again")]
    WatchLagged { missed: u64 },

    /// A write-ahead-log append whose object the store did not confirm in
    /// time: it may still be created, so the write may or may not be
    /// durable (never replayed once a later append succeeded).
    #[error("the outcome of writing WAL object {object} is unknown, the write may or may not be durable: {detail}")]
    WalOutcomeUnknown { object: String, detail: String },

    /// A storage service (etcd, S3) could not be reached or did not answer
    /// in time; `endpoints` names where it was looked for.
    #[error("{service} at {endpoints} is unavailable: {detail}")]
    ServiceUnavailable {
        service: &'static str,
        endpoints: String,
        detail: String,
    },

    /// A storage setting has a value that cannot work.
    #[error("{setting} (environment {env}): {reason}")]
    InvalidSetting {
        setting: &'static str,
        env: &'static str,
        reason: String,
    },

    /// The component was closed.
    #[error("storage component is closed")]
    Closed,
}

impl From<object_store::Error> for StorageError {
    fn from(e: object_store::Error) -> Self {
        if unreachable(&e) {
            StorageError::ObjectStoreUnreachable(e)
        } else {
            StorageError::ObjectStore(e)
        }
    }
}

/// True when `e` comes from an HTTP request that never got an answer:
/// connecting failed or timed out, or the request timed out or was cut
/// off (object_store reports these after its retries ran out).
fn unreachable(e: &object_store::Error) -> bool {
    use object_store::client::{HttpError, HttpErrorKind};
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(error) = source {
        if let Some(http) = error.downcast_ref::<HttpError>() {
            return matches!(
                http.kind(),
                HttpErrorKind::Connect | HttpErrorKind::Timeout | HttpErrorKind::Interrupted
            );
        }
        source = error.source();
    }
    false
}

/// Result alias used throughout this crate.
pub type Result<T> = std::result::Result<T, StorageError>;

macro_rules! meta_error_from {
    ($($ty:ty),* $(,)?) => {
        $(
            impl From<$ty> for StorageError {
                fn from(e: $ty) -> Self {
                    StorageError::Meta(e.to_string())
                }
            }
        )*
    };
}

meta_error_from!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
);
