//! Small transactional key/value store for catalog and cluster metadata,
//! shaped after etcd's key/value API so an etcd implementation plugs in
//! behind the same trait.
//!
//! [`MetaStore`] is the abstraction; [`RedbMetaStore`] is the durable
//! embedded implementation used in standalone mode and [`MemoryMetaStore`]
//! a volatile one for unit tests. [`conformance::run`] is the test suite
//! every implementation passes.
//!
//! * **Versions.** The store keeps a *revision* counter that every
//!   transaction changing something increments by one; all changes of one
//!   transaction share its revision. Every key carries the revision of its
//!   last modification as its **version** (etcd's `mod_revision`), so a
//!   version never repeats for a key, not even after a delete and a re-put.
//! * **Transactions.** A [`MetaBatch`] holds conditions on keys' versions
//!   ([`MetaBatch::if_version`], [`MetaBatch::if_absent`]) and puts and
//!   deletes; [`MetaStore::txn`] applies the writes atomically and durably
//!   (fsync before returning) if every condition holds, and nothing
//!   otherwise, and reports which happened (compare-and-swap).
//!   [`MetaStore::apply`] turns a failed condition into
//!   [`StorageError::CompareFailed`].
//! * **Watch.** [`MetaStore::watch_prefix`] streams the put and delete
//!   events of keys under a prefix, in revision order, from the moment it is
//!   called (read after subscribing: an event whose revision is not above
//!   the version read is already reflected).
//! * **Limits.** etcd refuses, by default, a transaction with more than 128
//!   operations (`--max-txn-ops`) or a request over 1.5 MiB
//!   (`--max-request-bytes`, envelope included: [`MAX_TXN_BYTES`] keeps
//!   4 KiB for it). Every implementation refuses the same
//!   ([`MAX_TXN_OPS`], [`MAX_TXN_BYTES`], [`StorageError::TxnLimitExceeded`]),
//!   so nothing written in standalone breaks on etcd.

pub mod conformance;
mod etcd_store;
#[cfg(test)]
mod etcd_tests;
#[cfg(test)]
pub(crate) use etcd_tests::{live_etcd, LIVE_ETCD_LOCK};
mod memory;
mod redb_store;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::BoxStream;
use tokio::sync::broadcast;

use crate::error::{Result, StorageError};

pub use etcd_store::{EtcdMetaStore, EtcdOptions, Lease};
pub use memory::MemoryMetaStore;
pub use redb_store::RedbMetaStore;

/// Most writes (puts + deletes) in one transaction, and most conditions:
/// etcd's default `--max-txn-ops`.
pub const MAX_TXN_OPS: usize = 128;

/// etcd's default `--max-request-bytes` (1.5 MiB): the most bytes of one
/// request, counted on etcd's raft entry (the transaction in an envelope).
pub const ETCD_MAX_REQUEST_BYTES: usize = 1536 * 1024;

/// Headroom kept below [`ETCD_MAX_REQUEST_BYTES`] for etcd's envelope of a
/// request (its raft header): a batch of exactly 1.5 MiB of keys and values
/// is refused by etcd ("request is too large"; measured on etcd 3.5).
pub const TXN_ENVELOPE_BYTES: usize = 4096;

/// Most bytes one transaction may take, measured by
/// [`MetaBatch::size_bytes`]: etcd's request limit less the envelope.
pub const MAX_TXN_BYTES: usize = ETCD_MAX_REQUEST_BYTES - TXN_ENVELOPE_BYTES;

/// Longest key prefix (`meta.root`) an etcd store accepts: every key of a
/// request carries it, inside [`TXN_OP_OVERHEAD_BYTES`].
pub const MAX_ROOT_BYTES: usize = 48;

/// Bytes counted per condition, put and delete on top of its key and value:
/// an upper bound of the request framing (protobuf tags and lengths, at
/// most 16 bytes) and of the key prefix (`meta.root`, at most
/// [`MAX_ROOT_BYTES`]) an etcd implementation adds, so a batch the embedded
/// store accepts also fits etcd's request limit.
pub const TXN_OP_OVERHEAD_BYTES: usize = 64;

/// A value with its version (the revision that last modified the key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    pub value: Vec<u8>,
    pub version: u64,
}

/// A key, its value and its version, as a scan returns them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Vec<u8>,
    pub version: u64,
}

/// A condition of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// The key exists and its version is `version` (etcd: `mod_revision == version`).
    Version { key: String, version: u64 },
    /// The key does not exist (etcd: `create_revision == 0`).
    Absent { key: String },
}

impl Condition {
    /// The key the condition is on.
    pub fn key(&self) -> &str {
        match self {
            Condition::Version { key, .. } | Condition::Absent { key } => key,
        }
    }

    /// Whether the condition holds for a key whose current version is
    /// `current` (`None`: absent).
    pub fn holds(&self, current: Option<u64>) -> bool {
        match self {
            Condition::Version { version, .. } => current == Some(*version),
            Condition::Absent { .. } => current.is_none(),
        }
    }
}

/// A transaction: conditions, then writes applied atomically by
/// [`MetaStore::txn`] / [`MetaStore::apply`] if every condition holds.
///
/// Puts are applied first, then deletes, so a key that appears in both ends
/// up deleted. (etcd refuses a transaction naming a key twice; its
/// implementation collapses such a batch to the same net effect.)
#[derive(Default, Debug, Clone, PartialEq, Eq)]
pub struct MetaBatch {
    pub conditions: Vec<Condition>,
    pub puts: Vec<(String, Vec<u8>)>,
    pub deletes: Vec<String>,
}

impl MetaBatch {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a put of `key` = `value`.
    pub fn put(mut self, key: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.puts.push((key.into(), value.into()));
        self
    }

    /// Adds a delete of `key` (deleting a missing key is not an error).
    pub fn delete(mut self, key: impl Into<String>) -> Self {
        self.deletes.push(key.into());
        self
    }

    /// Adds the condition that `key` exists with version `version`.
    pub fn if_version(mut self, key: impl Into<String>, version: u64) -> Self {
        self.conditions.push(Condition::Version {
            key: key.into(),
            version,
        });
        self
    }

    /// Adds the condition that `key` does not exist.
    pub fn if_absent(mut self, key: impl Into<String>) -> Self {
        self.conditions.push(Condition::Absent { key: key.into() });
        self
    }

    /// Adds the condition that `key` has version `version` when `Some`,
    /// or does not exist when `None` (the version a [`MetaStore::get`]
    /// returned).
    pub fn if_unchanged(self, key: impl Into<String>, version: Option<u64>) -> Self {
        match version {
            Some(version) => self.if_version(key, version),
            None => self.if_absent(key),
        }
    }

    /// No conditions and no writes.
    pub fn is_empty(&self) -> bool {
        self.conditions.is_empty() && self.puts.is_empty() && self.deletes.is_empty()
    }

    /// Writes (puts + deletes) in the batch.
    pub fn op_count(&self) -> usize {
        self.puts.len() + self.deletes.len()
    }

    /// The size the batch counts against [`MAX_TXN_BYTES`]: keys and values
    /// plus [`TXN_OP_OVERHEAD_BYTES`] per condition, put and delete.
    pub fn size_bytes(&self) -> usize {
        let conditions: usize = self
            .conditions
            .iter()
            .map(|c| c.key().len() + TXN_OP_OVERHEAD_BYTES)
            .sum();
        let puts: usize = self
            .puts
            .iter()
            .map(|(k, v)| k.len() + v.len() + TXN_OP_OVERHEAD_BYTES)
            .sum();
        let deletes: usize = self
            .deletes
            .iter()
            .map(|k| k.len() + TXN_OP_OVERHEAD_BYTES)
            .sum();
        conditions + puts + deletes
    }

    /// Refuses a batch over etcd's default limits
    /// ([`StorageError::TxnLimitExceeded`]).
    pub fn check_limits(&self) -> Result<()> {
        let checks = [
            ("writes", self.op_count(), MAX_TXN_OPS),
            ("conditions", self.conditions.len(), MAX_TXN_OPS),
            ("bytes", self.size_bytes(), MAX_TXN_BYTES),
        ];
        for (what, actual, max) in checks {
            if actual > max {
                return Err(StorageError::TxnLimitExceeded { what, actual, max });
            }
        }
        Ok(())
    }

    /// The events the batch produces at `revision`, given each key's current
    /// version (`version_of`): a put event per put, then a delete event per
    /// delete of a key that exists at that point. Empty when nothing changes.
    pub(crate) fn events(
        &self,
        revision: u64,
        mut version_of: impl FnMut(&str) -> Result<Option<u64>>,
    ) -> Result<Vec<WatchEvent>> {
        let mut events = Vec::with_capacity(self.op_count());
        let mut put_keys = std::collections::HashSet::new();
        for (key, value) in &self.puts {
            put_keys.insert(key.as_str());
            events.push(WatchEvent {
                kind: EventKind::Put,
                key: key.clone(),
                value: value.clone(),
                revision,
            });
        }
        let mut deleted = std::collections::HashSet::new();
        for key in &self.deletes {
            let exists = put_keys.contains(key.as_str()) || version_of(key)?.is_some();
            if exists && deleted.insert(key.as_str()) {
                events.push(WatchEvent {
                    kind: EventKind::Delete,
                    key: key.clone(),
                    value: Vec::new(),
                    revision,
                });
            }
        }
        Ok(events)
    }
}

/// What a transaction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnOutcome {
    /// Every condition held and the writes are applied (durably).
    pub succeeded: bool,
    /// The store revision after the transaction: the transaction's own
    /// revision when it changed something.
    pub revision: u64,
}

/// The kind of a [`WatchEvent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Put,
    Delete,
}

/// A change of one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchEvent {
    pub kind: EventKind,
    pub key: String,
    /// The new value of a put (empty for a delete).
    pub value: Vec<u8>,
    /// The revision of the transaction that made the change (the key's new
    /// version, for a put).
    pub revision: u64,
}

/// A stream of [`WatchEvent`]s in revision order. It ends with
/// [`StorageError::WatchLagged`] when the watcher fell behind and events
/// were lost: re-read the keys and watch again.
pub type WatchStream = BoxStream<'static, Result<WatchEvent>>;

/// Ordered key/value metadata store with versions, atomic conditional
/// transactions, prefix watches and etcd's transaction limits (see the
/// module documentation).
#[async_trait]
pub trait MetaStore: Send + Sync + std::fmt::Debug + 'static {
    /// The value stored under `key` with its version, if any.
    async fn get(&self, key: &str) -> Result<Option<Versioned>>;

    /// All keys starting with `prefix`, in key order, with values and versions.
    async fn scan_prefix(&self, prefix: &str) -> Result<Vec<KeyValue>>;

    /// Checks the batch's conditions and, if all hold, applies its puts and
    /// deletes atomically and durably (fsync) before returning; otherwise
    /// changes nothing. A batch over the limits fails with
    /// [`StorageError::TxnLimitExceeded`] and changes nothing.
    async fn txn(&self, batch: MetaBatch) -> Result<TxnOutcome>;

    /// The current store revision (0 for a new store).
    async fn revision(&self) -> Result<u64>;

    /// The put and delete events of keys starting with `prefix`, from now on.
    async fn watch_prefix(&self, prefix: &str) -> Result<WatchStream>;

    /// [`MetaStore::txn`], failing with [`StorageError::CompareFailed`]
    /// when a condition does not hold. Returns the revision after it.
    async fn apply(&self, batch: MetaBatch) -> Result<u64> {
        let keys: Vec<String> = batch
            .conditions
            .iter()
            .map(|c| c.key().to_string())
            .collect();
        let outcome = self.txn(batch).await?;
        if outcome.succeeded {
            Ok(outcome.revision)
        } else {
            Err(StorageError::CompareFailed { keys })
        }
    }

    /// Stores `value` under `key` durably; returns its new version.
    async fn put(&self, key: &str, value: Vec<u8>) -> Result<u64> {
        self.apply(MetaBatch::new().put(key, value)).await
    }

    /// Removes `key` durably (no error if it does not exist).
    async fn delete(&self, key: &str) -> Result<u64> {
        self.apply(MetaBatch::new().delete(key)).await
    }

    /// The value stored under `key`, without its version.
    async fn get_value(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.get(key).await?.map(|v| v.value))
    }
}

/// How many transactions' events an embedded store buffers for watchers
/// that have not read them yet; a watcher further behind gets
/// [`StorageError::WatchLagged`].
pub const WATCH_BUFFER: usize = 1024;

/// The events of one transaction, as the embedded stores publish them.
pub(crate) type EventBatch = Arc<Vec<WatchEvent>>;

/// A broadcast channel for an embedded store's events.
pub(crate) fn event_channel() -> broadcast::Sender<EventBatch> {
    broadcast::channel(WATCH_BUFFER).0
}

/// The stream of an embedded store's events under `prefix`.
pub(crate) fn watch_stream(rx: broadcast::Receiver<EventBatch>, prefix: String) -> WatchStream {
    struct State {
        rx: broadcast::Receiver<EventBatch>,
        prefix: String,
        pending: VecDeque<WatchEvent>,
        done: bool,
    }
    let state = State {
        rx,
        prefix,
        pending: VecDeque::new(),
        done: false,
    };
    Box::pin(futures::stream::unfold(state, |mut state| async move {
        loop {
            if let Some(event) = state.pending.pop_front() {
                return Some((Ok(event), state));
            }
            if state.done {
                return None;
            }
            match state.rx.recv().await {
                Ok(events) => state.pending.extend(
                    events
                        .iter()
                        .filter(|e| e.key.starts_with(&state.prefix))
                        .cloned(),
                ),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    state.done = true;
                    return Some((Err(StorageError::WatchLagged { missed }), state));
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }))
}
