//! [`RedbMetaStore`]: the embedded, durable meta store (one redb file).
//!
//! Three redb tables: `meta` (key → value), `meta_version` (key → version)
//! and `meta_system` (`revision` → the store revision). A transaction reads
//! the versions its conditions name, writes values, versions and the new
//! revision, and commits with `Durability::Immediate` (fsync), all in one
//! redb write transaction: it lands whole or not at all.
//!
//! Watch events are published by the store's own writes (a tokio broadcast
//! channel, sent after the commit and in commit order). A watcher therefore
//! sees only this process's writes — which are all the writes there are in
//! standalone, where the process owns the file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::Mutex;
use redb::{Database, Durability, ReadableTable, ReadableTableMetadata, TableDefinition};
use tokio::sync::broadcast;

use super::{
    event_channel, watch_stream, EventBatch, KeyValue, MetaBatch, MetaStore, TxnOutcome, Versioned,
    WatchStream,
};
use crate::error::{Result, StorageError};

const META_TABLE: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("meta");
const VERSION_TABLE: TableDefinition<'static, &str, u64> = TableDefinition::new("meta_version");
const SYSTEM_TABLE: TableDefinition<'static, &str, u64> = TableDefinition::new("meta_system");
const REVISION_KEY: &str = "revision";

/// [`MetaStore`] backed by a single-file redb database.
#[derive(Clone)]
pub struct RedbMetaStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: Database,
    path: PathBuf,
    /// Held from the start of a write transaction until its events are
    /// published, so watchers get events in revision order.
    writer: Mutex<()>,
    events: broadcast::Sender<EventBatch>,
}

impl std::fmt::Debug for RedbMetaStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbMetaStore")
            .field("path", &self.inner.path)
            .finish()
    }
}

impl RedbMetaStore {
    /// Opens (creating if needed) the database file at `path`. The parent
    /// directory is created if missing. A file written before keys had
    /// versions gets them: every key without one is stamped with a new
    /// revision.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(parent) = path.parent() {
            if !parent.as_os_str().is_empty() {
                crate::private::create_private_dir_all(parent)?;
            }
        }
        // redb initializes an empty file: create it private first.
        crate::private::create_private_file(
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false),
            path,
        )?;
        let db = Database::create(path)?;
        // Make sure the tables exist so read transactions never fail with
        // "table does not exist".
        let mut txn = db.begin_write()?;
        txn.set_durability(Durability::Immediate);
        {
            let meta = txn.open_table(META_TABLE)?;
            let mut versions = txn.open_table(VERSION_TABLE)?;
            let mut system = txn.open_table(SYSTEM_TABLE)?;
            if meta.len()? != versions.len()? {
                let revision = system.get(REVISION_KEY)?.map(|v| v.value()).unwrap_or(0) + 1;
                let mut stamped = false;
                for entry in meta.iter()? {
                    let (key, _) = entry?;
                    let key = key.value();
                    if versions.get(key)?.is_none() {
                        versions.insert(key, revision)?;
                        stamped = true;
                    }
                }
                if stamped {
                    system.insert(REVISION_KEY, revision)?;
                }
            }
        }
        txn.commit()?;
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                path: path.to_path_buf(),
                writer: Mutex::new(()),
                events: event_channel(),
            }),
        })
    }

    /// The database file path.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    #[cfg(test)]
    pub(crate) fn database(&self) -> &Database {
        &self.inner.db
    }

    /// Runs blocking redb work off the async runtime's threads.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Inner) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || work(&inner))
            .await
            .map_err(|e| StorageError::Meta(format!("meta store task failed: {e}")))?
    }
}

impl Inner {
    fn get(&self, key: &str) -> Result<Option<Versioned>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(META_TABLE)?;
        let Some(value) = table.get(key)? else {
            return Ok(None);
        };
        let versions = txn.open_table(VERSION_TABLE)?;
        let version = versions.get(key)?.map(|v| v.value()).unwrap_or(0);
        Ok(Some(Versioned {
            value: value.value().to_vec(),
            version,
        }))
    }

    fn scan_prefix(&self, prefix: &str) -> Result<Vec<KeyValue>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(META_TABLE)?;
        let versions = txn.open_table(VERSION_TABLE)?;
        let mut out = Vec::new();
        for entry in table.range(prefix..)? {
            let (k, v) = entry?;
            let key = k.value();
            if !key.starts_with(prefix) {
                break;
            }
            let version = versions.get(key)?.map(|v| v.value()).unwrap_or(0);
            out.push(KeyValue {
                key: key.to_string(),
                value: v.value().to_vec(),
                version,
            });
        }
        Ok(out)
    }

    fn revision(&self) -> Result<u64> {
        let txn = self.db.begin_read()?;
        let system = txn.open_table(SYSTEM_TABLE)?;
        Ok(system.get(REVISION_KEY)?.map(|v| v.value()).unwrap_or(0))
    }

    fn txn(&self, batch: MetaBatch) -> Result<TxnOutcome> {
        batch.check_limits()?;
        let _writer = self.writer.lock();
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::Immediate);
        let (outcome, events) = {
            let mut table = txn.open_table(META_TABLE)?;
            let mut versions = txn.open_table(VERSION_TABLE)?;
            let mut system = txn.open_table(SYSTEM_TABLE)?;
            let current = system.get(REVISION_KEY)?.map(|v| v.value()).unwrap_or(0);
            for condition in &batch.conditions {
                let version = versions.get(condition.key())?.map(|v| v.value());
                if !condition.holds(version) {
                    // Dropping the write transaction aborts it.
                    return Ok(TxnOutcome {
                        succeeded: false,
                        revision: current,
                    });
                }
            }
            let revision = current + 1;
            let events = batch.events(revision, |key| Ok(versions.get(key)?.map(|v| v.value())))?;
            if events.is_empty() {
                return Ok(TxnOutcome {
                    succeeded: true,
                    revision: current,
                });
            }
            for (k, v) in &batch.puts {
                table.insert(k.as_str(), v.as_slice())?;
                versions.insert(k.as_str(), revision)?;
            }
            for k in &batch.deletes {
                table.remove(k.as_str())?;
                versions.remove(k.as_str())?;
            }
            system.insert(REVISION_KEY, revision)?;
            (
                TxnOutcome {
                    succeeded: true,
                    revision,
                },
                events,
            )
        };
        // Dropping an uncommitted write transaction aborts it, so an error
        // above leaves the store untouched.
        txn.commit()?;
        // No receiver is not an error: nobody watches.
        let _ = self.events.send(Arc::new(events));
        Ok(outcome)
    }
}

#[async_trait]
impl MetaStore for RedbMetaStore {
    async fn get(&self, key: &str) -> Result<Option<Versioned>> {
        let key = key.to_string();
        self.blocking(move |inner| inner.get(&key)).await
    }

    async fn scan_prefix(&self, prefix: &str) -> Result<Vec<KeyValue>> {
        let prefix = prefix.to_string();
        self.blocking(move |inner| inner.scan_prefix(&prefix)).await
    }

    async fn txn(&self, batch: MetaBatch) -> Result<TxnOutcome> {
        self.blocking(move |inner| inner.txn(batch)).await
    }

    async fn revision(&self) -> Result<u64> {
        self.blocking(|inner| inner.revision()).await
    }

    /// Events of this process's writes only (see the module documentation).
    async fn watch_prefix(&self, prefix: &str) -> Result<WatchStream> {
        Ok(watch_stream(
            self.inner.events.subscribe(),
            prefix.to_string(),
        ))
    }
}
