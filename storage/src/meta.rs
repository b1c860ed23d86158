//! Small transactional key/value store for catalog and cluster metadata.
//!
//! [`MetaStore`] is the abstraction; [`RedbMetaStore`] is the durable embedded
//! implementation used in standalone mode and [`MemoryMetaStore`] is a
//! volatile implementation for unit tests.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};

use parking_lot::RwLock;
use redb::{Database, Durability, TableDefinition};

use crate::error::Result;

/// A batch of writes applied atomically by [`MetaStore::apply`].
///
/// Puts are applied first, then deletes, so a key that appears in both ends
/// up deleted.
#[derive(Default, Debug, Clone, PartialEq, Eq)]
pub struct MetaBatch {
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

    pub fn is_empty(&self) -> bool {
        self.puts.is_empty() && self.deletes.is_empty()
    }
}

/// Ordered key/value metadata store with atomic, durable batches.
pub trait MetaStore: Send + Sync + std::fmt::Debug + 'static {
    /// Returns the value stored under `key`, if any.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;

    /// Applies all puts and deletes atomically and durably (fsync) before
    /// returning.
    fn apply(&self, batch: MetaBatch) -> Result<()>;

    /// Stores `value` under `key` durably.
    fn put(&self, key: &str, value: Vec<u8>) -> Result<()> {
        self.apply(MetaBatch::new().put(key, value))
    }

    /// Removes `key` durably (no error if it does not exist).
    fn delete(&self, key: &str) -> Result<()> {
        self.apply(MetaBatch::new().delete(key))
    }

    /// All (key, value) pairs whose key starts with `prefix`, in key order.
    fn scan_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>>;
}

const META_TABLE: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("meta");

/// [`MetaStore`] backed by a single-file redb database.
pub struct RedbMetaStore {
    db: Database,
    path: PathBuf,
}

impl std::fmt::Debug for RedbMetaStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbMetaStore")
            .field("path", &self.path)
            .finish()
    }
}

impl RedbMetaStore {
    /// Opens (creating if needed) the database file at `path`. The parent
    /// directory is created if missing.
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
        // Make sure the table exists so read transactions never fail with
        // "table does not exist".
        let mut txn = db.begin_write()?;
        txn.set_durability(Durability::Immediate);
        txn.open_table(META_TABLE)?;
        txn.commit()?;
        Ok(Self {
            db,
            path: path.to_path_buf(),
        })
    }

    /// The database file path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl MetaStore for RedbMetaStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(META_TABLE)?;
        Ok(table.get(key)?.map(|v| v.value().to_vec()))
    }

    fn apply(&self, batch: MetaBatch) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::Immediate);
        {
            let mut table = txn.open_table(META_TABLE)?;
            for (k, v) in &batch.puts {
                table.insert(k.as_str(), v.as_slice())?;
            }
            for k in &batch.deletes {
                table.remove(k.as_str())?;
            }
        }
        // Dropping an uncommitted write transaction aborts it, so an error
        // above leaves the store untouched.
        txn.commit()?;
        Ok(())
    }

    fn scan_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(META_TABLE)?;
        let mut out = Vec::new();
        for entry in table.range(prefix..)? {
            let (k, v) = entry?;
            let key = k.value();
            if !key.starts_with(prefix) {
                break;
            }
            out.push((key.to_string(), v.value().to_vec()));
        }
        Ok(out)
    }
}

/// Volatile [`MetaStore`] for tests: a `BTreeMap` behind a lock.
#[derive(Debug, Default)]
pub struct MemoryMetaStore {
    map: RwLock<BTreeMap<String, Vec<u8>>>,
}

impl MemoryMetaStore {
    pub fn new() -> Self {
        Self::default()
    }
}

impl MetaStore for MemoryMetaStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.map.read().get(key).cloned())
    }

    fn apply(&self, batch: MetaBatch) -> Result<()> {
        let mut map = self.map.write();
        for (k, v) in batch.puts {
            map.insert(k, v);
        }
        for k in batch.deletes {
            map.remove(&k);
        }
        Ok(())
    }

    fn scan_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let map = self.map.read();
        Ok(map
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exercise(store: &dyn MetaStore) {
        store.put("b/2", b"two".to_vec()).unwrap();
        store.put("a/1", b"one".to_vec()).unwrap();
        store.put("b/1", b"one-b".to_vec()).unwrap();
        store.put("b0", b"not-b-slash".to_vec()).unwrap();
        store.put("c", b"c".to_vec()).unwrap();

        assert_eq!(store.get("a/1").unwrap(), Some(b"one".to_vec()));
        assert_eq!(store.get("missing").unwrap(), None);

        let scanned = store.scan_prefix("b/").unwrap();
        let keys: Vec<_> = scanned.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, vec!["b/1", "b/2"]);
        assert_eq!(scanned[1].1, b"two".to_vec());

        let all: Vec<_> = store
            .scan_prefix("")
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(all, vec!["a/1", "b/1", "b/2", "b0", "c"]);
        assert!(store.scan_prefix("zzz").unwrap().is_empty());

        // Atomic batch: puts and deletes land together.
        store
            .apply(
                MetaBatch::new()
                    .put("a/2", b"x".to_vec())
                    .put("a/3", b"y".to_vec())
                    .delete("a/1")
                    .delete("never-existed"),
            )
            .unwrap();
        let keys: Vec<_> = store
            .scan_prefix("a/")
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, vec!["a/2", "a/3"]);

        // Put then delete of the same key in one batch: deleted.
        store
            .apply(MetaBatch::new().put("d", b"d".to_vec()).delete("d"))
            .unwrap();
        assert_eq!(store.get("d").unwrap(), None);

        store.delete("c").unwrap();
        assert_eq!(store.get("c").unwrap(), None);
        store.put("a/2", b"overwritten".to_vec()).unwrap();
        assert_eq!(store.get("a/2").unwrap(), Some(b"overwritten".to_vec()));
    }

    #[test]
    fn memory_store_semantics() {
        exercise(&MemoryMetaStore::new());
    }

    #[test]
    fn redb_store_semantics_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested").join("meta.redb");
        {
            let store = RedbMetaStore::open(&path).unwrap();
            exercise(&store);
        }
        let store = RedbMetaStore::open(&path).unwrap();
        assert_eq!(store.get("a/2").unwrap(), Some(b"overwritten".to_vec()));
        assert_eq!(store.get("a/1").unwrap(), None);
        let keys: Vec<_> = store
            .scan_prefix("")
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, vec!["a/2", "a/3", "b/1", "b/2", "b0"]);
    }

    #[test]
    fn redb_failed_batch_is_not_applied() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbMetaStore::open(&dir.path().join("meta.redb")).unwrap();
        store.put("k", b"v".to_vec()).unwrap();
        // `apply` relies on redb aborting a write transaction that is dropped
        // before commit (e.g. when an insert fails midway): nothing of it
        // may become visible.
        {
            let txn = store.db.begin_write().unwrap();
            {
                let mut table = txn.open_table(META_TABLE).unwrap();
                table.insert("k", b"changed".as_slice()).unwrap();
                table.insert("k2", b"new".as_slice()).unwrap();
            }
            drop(txn);
        }
        assert_eq!(store.get("k").unwrap(), Some(b"v".to_vec()));
        assert_eq!(store.get("k2").unwrap(), None);
    }

    #[test]
    fn empty_batch_is_noop() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbMetaStore::open(&dir.path().join("meta.redb")).unwrap();
        store.apply(MetaBatch::default()).unwrap();
        assert!(store.scan_prefix("").unwrap().is_empty());
    }
}
