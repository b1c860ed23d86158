//! The behaviour every [`MetaStore`] implementation must have, as one test
//! suite: [`run`] takes a function opening the store under test (a fresh,
//! empty store the first time; the same store again on later calls) and
//! panics on the first difference. The embedded stores run it in their unit
//! tests; an etcd implementation runs it against a live cluster.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

use super::{EventKind, MetaBatch, MetaStore, WatchEvent, WatchStream, MAX_TXN_BYTES, MAX_TXN_OPS};
use crate::error::StorageError;

/// Runs every section below against the store `open` returns. `open` is
/// called once at the start (the store must be empty) and once more to
/// check durability (it must then open the same store again; the suite
/// drops its first handle before).
pub async fn run<F, Fut>(open: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn MetaStore>>,
{
    let store = open().await;
    basics(store.as_ref()).await;
    versions(store.as_ref()).await;
    compare_and_swap(store.as_ref()).await;
    concurrent_compare_and_swap(store.clone()).await;
    watch(store.as_ref()).await;
    limits(store.as_ref()).await;
    let before = durable_writes(store.as_ref()).await;
    drop(store);
    let reopened = open().await;
    check_durable(reopened.as_ref(), before).await;
}

async fn value(store: &dyn MetaStore, key: &str) -> Option<Vec<u8>> {
    store.get_value(key).await.unwrap()
}

async fn keys(store: &dyn MetaStore, prefix: &str) -> Vec<String> {
    store
        .scan_prefix(prefix)
        .await
        .unwrap()
        .into_iter()
        .map(|kv| kv.key)
        .collect()
}

async fn version(store: &dyn MetaStore, key: &str) -> Option<u64> {
    store.get(key).await.unwrap().map(|v| v.version)
}

/// get / put / delete / scan and unconditional batches (needs an empty store).
pub async fn basics(store: &dyn MetaStore) {
    store.put("b/2", b"two".to_vec()).await.unwrap();
    store.put("a/1", b"one".to_vec()).await.unwrap();
    store.put("b/1", b"one-b".to_vec()).await.unwrap();
    store.put("b0", b"not-b-slash".to_vec()).await.unwrap();
    store.put("c", b"c".to_vec()).await.unwrap();

    assert_eq!(value(store, "a/1").await, Some(b"one".to_vec()));
    assert_eq!(value(store, "missing").await, None);

    let scanned = store.scan_prefix("b/").await.unwrap();
    let scanned_keys: Vec<_> = scanned.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(scanned_keys, vec!["b/1", "b/2"]);
    assert_eq!(scanned[1].value, b"two".to_vec());

    assert_eq!(keys(store, "").await, vec!["a/1", "b/1", "b/2", "b0", "c"]);
    assert!(store.scan_prefix("zzz").await.unwrap().is_empty());

    // Atomic batch: puts and deletes land together.
    store
        .apply(
            MetaBatch::new()
                .put("a/2", b"x".to_vec())
                .put("a/3", b"y".to_vec())
                .delete("a/1")
                .delete("never-existed"),
        )
        .await
        .unwrap();
    assert_eq!(keys(store, "a/").await, vec!["a/2", "a/3"]);

    // Put then delete of the same key in one batch: deleted.
    store
        .apply(MetaBatch::new().put("d", b"d".to_vec()).delete("d"))
        .await
        .unwrap();
    assert_eq!(value(store, "d").await, None);

    store.delete("c").await.unwrap();
    assert_eq!(value(store, "c").await, None);
    store.put("a/2", b"overwritten".to_vec()).await.unwrap();
    assert_eq!(value(store, "a/2").await, Some(b"overwritten".to_vec()));

    // An empty batch changes nothing, not even the revision.
    let revision = store.revision().await.unwrap();
    assert_eq!(store.apply(MetaBatch::new()).await.unwrap(), revision);
    assert_eq!(store.revision().await.unwrap(), revision);
}

/// Versions: a key's version is the revision of the transaction that last
/// wrote it; revisions only grow; a no-op changes nothing.
pub async fn versions(store: &dyn MetaStore) {
    let start = store.revision().await.unwrap();
    let v1 = store.put("v/a", b"1".to_vec()).await.unwrap();
    assert!(v1 > start, "a write moves the revision");
    assert_eq!(store.revision().await.unwrap(), v1);
    assert_eq!(version(store, "v/a").await, Some(v1));

    let v2 = store.put("v/b", b"2".to_vec()).await.unwrap();
    assert!(v2 > v1);
    assert_eq!(
        version(store, "v/a").await,
        Some(v1),
        "untouched key keeps its version"
    );
    assert_eq!(version(store, "v/b").await, Some(v2));

    // One transaction, one revision for all its changes.
    let v3 = store
        .apply(
            MetaBatch::new()
                .put("v/a", b"1'".to_vec())
                .put("v/c", b"3".to_vec()),
        )
        .await
        .unwrap();
    assert!(v3 > v2);
    let scanned = store.scan_prefix("v/").await.unwrap();
    let versions: Vec<(String, u64)> = scanned.into_iter().map(|kv| (kv.key, kv.version)).collect();
    assert_eq!(
        versions,
        vec![
            ("v/a".to_string(), v3),
            ("v/b".to_string(), v2),
            ("v/c".to_string(), v3)
        ]
    );

    // Rewriting the same value is a new version.
    let v4 = store.put("v/b", b"2".to_vec()).await.unwrap();
    assert!(v4 > v3);
    assert_eq!(version(store, "v/b").await, Some(v4));

    // Deleting a missing key changes nothing.
    assert_eq!(store.delete("v/missing").await.unwrap(), v4);
    assert_eq!(store.revision().await.unwrap(), v4);

    // Delete, then put again: a version the key never had.
    let v5 = store.delete("v/c").await.unwrap();
    assert!(v5 > v4);
    assert_eq!(version(store, "v/c").await, None);
    let v6 = store.put("v/c", b"again".to_vec()).await.unwrap();
    assert!(v6 > v5);
    assert_eq!(version(store, "v/c").await, Some(v6));
}

/// Conditional transactions: applied whole when every condition holds,
/// not at all otherwise.
pub async fn compare_and_swap(store: &dyn MetaStore) {
    // Create if absent.
    let created = store
        .txn(
            MetaBatch::new()
                .if_absent("cas/k")
                .put("cas/k", b"1".to_vec()),
        )
        .await
        .unwrap();
    assert!(created.succeeded);
    let v1 = version(store, "cas/k").await.unwrap();
    assert_eq!(created.revision, v1);

    // A second create fails and changes nothing.
    let again = store
        .txn(
            MetaBatch::new()
                .if_absent("cas/k")
                .put("cas/k", b"other".to_vec())
                .put("cas/side", b"x".to_vec()),
        )
        .await
        .unwrap();
    assert!(!again.succeeded);
    assert_eq!(
        again.revision, v1,
        "a failed transaction reports the current revision"
    );
    assert_eq!(value(store, "cas/k").await, Some(b"1".to_vec()));
    assert_eq!(
        value(store, "cas/side").await,
        None,
        "nothing of a failed transaction lands"
    );
    assert_eq!(store.revision().await.unwrap(), v1);

    // Swap at the version read.
    let swapped = store
        .txn(
            MetaBatch::new()
                .if_version("cas/k", v1)
                .put("cas/k", b"2".to_vec())
                .delete("cas/gone"),
        )
        .await
        .unwrap();
    assert!(swapped.succeeded);
    let v2 = version(store, "cas/k").await.unwrap();
    assert!(v2 > v1);

    // A swap at a stale version fails.
    let stale = store
        .txn(
            MetaBatch::new()
                .if_version("cas/k", v1)
                .put("cas/k", b"3".to_vec()),
        )
        .await
        .unwrap();
    assert!(!stale.succeeded);
    assert_eq!(value(store, "cas/k").await, Some(b"2".to_vec()));

    // A version condition on a missing key fails; so does if_absent on a
    // present one; every condition must hold.
    let missing = store
        .txn(
            MetaBatch::new()
                .if_version("cas/none", v2)
                .put("cas/x", b"x".to_vec()),
        )
        .await
        .unwrap();
    assert!(!missing.succeeded);
    let mixed = store
        .txn(
            MetaBatch::new()
                .if_version("cas/k", v2)
                .if_absent("cas/k")
                .put("cas/x", b"x".to_vec()),
        )
        .await
        .unwrap();
    assert!(!mixed.succeeded);
    assert_eq!(value(store, "cas/x").await, None);

    // A conditional delete.
    let deleted = store
        .txn(
            MetaBatch::new()
                .if_unchanged("cas/k", Some(v2))
                .delete("cas/k"),
        )
        .await
        .unwrap();
    assert!(deleted.succeeded);
    assert_eq!(value(store, "cas/k").await, None);
    let recreated = store
        .txn(
            MetaBatch::new()
                .if_unchanged("cas/k", None)
                .put("cas/k", b"4".to_vec()),
        )
        .await
        .unwrap();
    assert!(recreated.succeeded);

    // `apply` reports a failed condition as a typed error naming the keys.
    let err = store
        .apply(
            MetaBatch::new()
                .if_absent("cas/k")
                .put("cas/k", b"5".to_vec()),
        )
        .await
        .unwrap_err();
    match err {
        StorageError::CompareFailed { keys } => assert_eq!(keys, vec!["cas/k".to_string()]),
        other => panic!("expected CompareFailed, got {other}"),
    }
    assert_eq!(value(store, "cas/k").await, Some(b"4".to_vec()));
}

/// Concurrent read-modify-write loops with compare-and-swap lose no update.
pub async fn concurrent_compare_and_swap(store: Arc<dyn MetaStore>) {
    const TASKS: u64 = 4;
    const INCREMENTS: u64 = 10;
    let mut handles = Vec::new();
    for _ in 0..TASKS {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            let mut conflicts = 0u64;
            for _ in 0..INCREMENTS {
                loop {
                    let current = store.get("cas/counter").await.unwrap();
                    let (n, version) = match &current {
                        Some(v) => (
                            String::from_utf8(v.value.clone())
                                .unwrap()
                                .parse::<u64>()
                                .unwrap(),
                            Some(v.version),
                        ),
                        None => (0, None),
                    };
                    let outcome = store
                        .txn(
                            MetaBatch::new()
                                .if_unchanged("cas/counter", version)
                                .put("cas/counter", (n + 1).to_string().into_bytes()),
                        )
                        .await
                        .unwrap();
                    if outcome.succeeded {
                        break;
                    }
                    conflicts += 1;
                }
            }
            conflicts
        }));
    }
    for handle in handles {
        handle.await.unwrap();
    }
    assert_eq!(
        value(store.as_ref(), "cas/counter").await,
        Some((TASKS * INCREMENTS).to_string().into_bytes())
    );
}

async fn next_event(stream: &mut WatchStream) -> WatchEvent {
    tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("a watch event within 10 s")
        .expect("the watch stream goes on")
        .expect("no watch error")
}

/// A prefix watch gets the puts and deletes under its prefix, in order,
/// with their revisions, and nothing else.
pub async fn watch(store: &dyn MetaStore) {
    let mut events = store.watch_prefix("w/").await.unwrap();
    let mut all = store.watch_prefix("w/").await.unwrap();
    let r1 = store.put("w/a", b"1".to_vec()).await.unwrap();
    store.put("x/elsewhere", b"no".to_vec()).await.unwrap();
    store.delete("w/never-existed").await.unwrap();
    let r2 = store
        .apply(MetaBatch::new().put("w/b", b"2".to_vec()).delete("w/a"))
        .await
        .unwrap();
    // A failed transaction produces no event.
    let failed = store
        .txn(MetaBatch::new().if_absent("w/b").put("w/c", b"no".to_vec()))
        .await
        .unwrap();
    assert!(!failed.succeeded);
    let r3 = store.delete("w/b").await.unwrap();
    assert!(r1 < r2 && r2 < r3);

    let expected = vec![
        WatchEvent {
            kind: EventKind::Put,
            key: "w/a".into(),
            value: b"1".to_vec(),
            revision: r1,
        },
        WatchEvent {
            kind: EventKind::Put,
            key: "w/b".into(),
            value: b"2".to_vec(),
            revision: r2,
        },
        WatchEvent {
            kind: EventKind::Delete,
            key: "w/a".into(),
            value: Vec::new(),
            revision: r2,
        },
        WatchEvent {
            kind: EventKind::Delete,
            key: "w/b".into(),
            value: Vec::new(),
            revision: r3,
        },
    ];
    for stream in [&mut events, &mut all] {
        let mut got = Vec::new();
        for _ in 0..expected.len() {
            got.push(next_event(stream).await);
        }
        assert_eq!(got, expected);
    }
    // Nothing more is pending: the next event is the next write.
    let r4 = store.put("w/d", b"4".to_vec()).await.unwrap();
    let next = next_event(&mut events).await;
    assert_eq!((next.key.as_str(), next.revision), ("w/d", r4));
}

/// etcd's default limits: 128 writes, 128 conditions, 1.5 MiB per
/// transaction; a transaction past one fails whole with a typed error.
pub async fn limits(store: &dyn MetaStore) {
    let mut full = MetaBatch::new();
    for i in 0..MAX_TXN_OPS {
        full = full.put(format!("lim/{i:04}"), b"v".to_vec());
    }
    store.apply(full.clone()).await.unwrap();
    assert_eq!(keys(store, "lim/").await.len(), MAX_TXN_OPS);

    let over = full.clone().put("lim/extra", b"v".to_vec());
    let err = store.apply(over).await.unwrap_err();
    assert!(
        matches!(
            err,
            StorageError::TxnLimitExceeded {
                what: "writes",
                actual,
                max: MAX_TXN_OPS
            } if actual == MAX_TXN_OPS + 1
        ),
        "{err}"
    );
    assert_eq!(value(store, "lim/extra").await, None, "nothing of it lands");

    let mut deletes = MetaBatch::new();
    for i in 0..=MAX_TXN_OPS {
        deletes = deletes.delete(format!("lim/{i:04}"));
    }
    assert!(matches!(
        store.apply(deletes).await,
        Err(StorageError::TxnLimitExceeded { what: "writes", .. })
    ));
    assert_eq!(keys(store, "lim/").await.len(), MAX_TXN_OPS);

    let mut conditions = MetaBatch::new().put("lim/cond", b"v".to_vec());
    for i in 0..=MAX_TXN_OPS {
        conditions = conditions.if_absent(format!("lim/none/{i}"));
    }
    assert!(matches!(
        store.txn(conditions).await,
        Err(StorageError::TxnLimitExceeded {
            what: "conditions",
            ..
        })
    ));

    // Bytes: a batch just under the limit lands; one byte more does not.
    let key = "lim/big";
    let room = MAX_TXN_BYTES - key.len() - super::TXN_OP_OVERHEAD_BYTES;
    let fits = MetaBatch::new().put(key, vec![7u8; room]);
    assert_eq!(fits.size_bytes(), MAX_TXN_BYTES);
    store.apply(fits).await.unwrap();
    assert_eq!(value(store, key).await.map(|v| v.len()), Some(room));
    let err = store
        .apply(MetaBatch::new().put(key, vec![8u8; room + 1]))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StorageError::TxnLimitExceeded {
                what: "bytes",
                max: MAX_TXN_BYTES,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        value(store, key).await.unwrap()[0],
        7,
        "the old value stays"
    );
    store.delete(key).await.unwrap();
}

/// Writes checked after reopening: (key, value, version) and the revision.
pub struct Durable {
    entries: Vec<(String, Vec<u8>, u64)>,
    revision: u64,
}

async fn durable_writes(store: &dyn MetaStore) -> Durable {
    store.put("dur/a", b"a".to_vec()).await.unwrap();
    store
        .apply(
            MetaBatch::new()
                .put("dur/b", b"b".to_vec())
                .put("dur/c", b"c".to_vec()),
        )
        .await
        .unwrap();
    store.delete("dur/c").await.unwrap();
    let entries = store
        .scan_prefix("dur/")
        .await
        .unwrap()
        .into_iter()
        .map(|kv| (kv.key, kv.value, kv.version))
        .collect();
    Durable {
        entries,
        revision: store.revision().await.unwrap(),
    }
}

async fn check_durable(store: &dyn MetaStore, before: Durable) {
    let after: Vec<(String, Vec<u8>, u64)> = store
        .scan_prefix("dur/")
        .await
        .unwrap()
        .into_iter()
        .map(|kv| (kv.key, kv.value, kv.version))
        .collect();
    assert_eq!(
        after, before.entries,
        "values and versions survive a reopen"
    );
    assert_eq!(after.len(), 2);
    assert_eq!(store.revision().await.unwrap(), before.revision);
    let next = store.put("dur/d", b"d".to_vec()).await.unwrap();
    assert!(
        next > before.revision,
        "revisions go on growing after a reopen"
    );
}
