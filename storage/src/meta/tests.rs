use std::sync::Arc;

use futures::StreamExt;
use redb::{Durability, TableDefinition};

use super::*;

#[tokio::test]
async fn memory_store_conformance() {
    let store = MemoryMetaStore::new();
    conformance::run(|| {
        let store = store.clone();
        async move { Arc::new(store) as Arc<dyn MetaStore> }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_store_conformance() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.redb");
    conformance::run(|| {
        let path = path.clone();
        async move { Arc::new(RedbMetaStore::open(&path).unwrap()) as Arc<dyn MetaStore> }
    })
    .await;
}

#[tokio::test]
async fn memory_store_semantics() {
    conformance::basics(&MemoryMetaStore::new()).await;
}

#[tokio::test]
async fn redb_store_semantics_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested").join("meta.redb");
    {
        let store = RedbMetaStore::open(&path).unwrap();
        conformance::basics(&store).await;
    }
    let store = RedbMetaStore::open(&path).unwrap();
    assert_eq!(
        store.get_value("a/2").await.unwrap(),
        Some(b"overwritten".to_vec())
    );
    assert_eq!(store.get_value("a/1").await.unwrap(), None);
    let keys: Vec<_> = store
        .scan_prefix("")
        .await
        .unwrap()
        .into_iter()
        .map(|kv| kv.key)
        .collect();
    assert_eq!(keys, vec!["a/2", "a/3", "b/1", "b/2", "b0"]);
}

#[tokio::test]
async fn redb_failed_batch_is_not_applied() {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbMetaStore::open(&dir.path().join("meta.redb")).unwrap();
    store.put("k", b"v".to_vec()).await.unwrap();
    // `txn` relies on redb aborting a write transaction that is dropped
    // before commit (e.g. when an insert fails midway): nothing of it
    // may become visible.
    {
        let txn = store.database().begin_write().unwrap();
        {
            let mut table = txn
                .open_table(TableDefinition::<&str, &[u8]>::new("meta"))
                .unwrap();
            table.insert("k", b"changed".as_slice()).unwrap();
            table.insert("k2", b"new".as_slice()).unwrap();
        }
        drop(txn);
    }
    assert_eq!(store.get_value("k").await.unwrap(), Some(b"v".to_vec()));
    assert_eq!(store.get_value("k2").await.unwrap(), None);
}

#[tokio::test]
async fn empty_batch_is_noop() {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbMetaStore::open(&dir.path().join("meta.redb")).unwrap();
    store.apply(MetaBatch::default()).await.unwrap();
    assert!(store.scan_prefix("").await.unwrap().is_empty());
    assert_eq!(store.revision().await.unwrap(), 0);
}

/// A file written before keys had versions: every key gets one on open.
#[tokio::test]
async fn redb_file_without_versions_gets_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.redb");
    {
        let db = redb::Database::create(&path).unwrap();
        let mut txn = db.begin_write().unwrap();
        txn.set_durability(Durability::Immediate);
        {
            let mut table = txn
                .open_table(TableDefinition::<&str, &[u8]>::new("meta"))
                .unwrap();
            table.insert("old/1", b"1".as_slice()).unwrap();
            table.insert("old/2", b"2".as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }
    let store = RedbMetaStore::open(&path).unwrap();
    let revision = store.revision().await.unwrap();
    assert_eq!(revision, 1);
    let scanned = store.scan_prefix("old/").await.unwrap();
    assert_eq!(scanned.len(), 2);
    assert!(scanned.iter().all(|kv| kv.version == revision));
    let cas = store
        .txn(
            MetaBatch::new()
                .if_version("old/1", revision)
                .put("old/1", b"new".to_vec()),
        )
        .await
        .unwrap();
    assert!(cas.succeeded);
    drop(store);
    // Reopening stamps nothing again.
    let store = RedbMetaStore::open(&path).unwrap();
    assert_eq!(store.revision().await.unwrap(), 2);
}

/// A watcher that falls more than [`WATCH_BUFFER`] transactions behind is
/// told to re-read, then its stream ends.
async fn lagging_watcher(store: &dyn MetaStore) {
    let mut stream = store.watch_prefix("lag/").await.unwrap();
    for i in 0..WATCH_BUFFER + 10 {
        store.put(&format!("lag/{i}"), vec![1]).await.unwrap();
    }
    let err = stream.next().await.unwrap().unwrap_err();
    assert!(
        matches!(err, StorageError::WatchLagged { missed } if missed >= 10),
        "{err}"
    );
    assert!(err.to_string().contains("re-read"), "{err}");
    assert!(stream.next().await.is_none());
}

#[tokio::test]
async fn lagging_watcher_is_told_to_reread() {
    lagging_watcher(&MemoryMetaStore::new()).await;
    let dir = tempfile::tempdir().unwrap();
    let store = RedbMetaStore::open(&dir.path().join("meta.redb")).unwrap();
    lagging_watcher(&store).await;
}

#[test]
fn batch_size_counts_keys_values_and_overhead() {
    let batch = MetaBatch::new()
        .if_absent("k")
        .put("key", vec![0; 10])
        .delete("gone");
    assert_eq!(batch.op_count(), 2);
    assert_eq!(
        batch.size_bytes(),
        1 + 3 + 10 + 4 + 3 * TXN_OP_OVERHEAD_BYTES
    );
    batch.check_limits().unwrap();
    assert_eq!(MAX_TXN_BYTES, 1_572_864 - 4096);
}
