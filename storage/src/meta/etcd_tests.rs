//! The etcd meta store against a live etcd: the conformance suite, leases,
//! and the errors of an unreachable one. The endpoints come from
//! `QUIVER_TEST_ETCD_ENDPOINTS` (`scripts/test.sh` starts an etcd and sets
//! it); without it the live tests are skipped, unless
//! `QUIVER_TEST_REQUIRE_SERVICES=1` (CI), where they fail.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;

/// Held by every test writing to the live etcd: the conformance suite
/// compares store revisions, which are etcd-wide.
pub(crate) static LIVE_ETCD_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The live etcd's endpoints, or `None` (skip) outside CI.
pub(crate) fn live_etcd() -> Option<Vec<String>> {
    match std::env::var("QUIVER_TEST_ETCD_ENDPOINTS") {
        Ok(endpoints) if !endpoints.trim().is_empty() => {
            Some(endpoints.split(',').map(|e| e.trim().to_string()).collect())
        }
        _ if std::env::var("QUIVER_TEST_REQUIRE_SERVICES").as_deref() == Ok("1") => {
            panic!("QUIVER_TEST_ETCD_ENDPOINTS is not set but QUIVER_TEST_REQUIRE_SERVICES=1")
        }
        _ => {
            eprintln!("skipped: no etcd (set QUIVER_TEST_ETCD_ENDPOINTS)");
            None
        }
    }
}

/// A root no other test run uses.
fn fresh_root(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "/qt/{name}-{}-{}",
        std::process::id(),
        nanos % 1_000_000_000
    )
}

// One test for everything on the live etcd: the suite compares store
// revisions, which are etcd-wide, so nothing else may write meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_store_on_a_live_etcd() {
    let Some(endpoints) = live_etcd() else {
        return;
    };
    let _only_writer = LIVE_ETCD_LOCK.lock().await;
    let root = fresh_root("conformance");
    conformance::run(|| {
        let options = EtcdOptions::new(endpoints.clone(), root.clone());
        async move { Arc::new(EtcdMetaStore::connect(options).await.unwrap()) as Arc<dyn MetaStore> }
    })
    .await;

    // Keys live under the root only: another root sees none of them.
    let other = EtcdMetaStore::connect(EtcdOptions::new(endpoints.clone(), fresh_root("other")))
        .await
        .unwrap();
    assert!(other.scan_prefix("").await.unwrap().is_empty());
    other.put("dur/a", b"elsewhere".to_vec()).await.unwrap();
    let store = EtcdMetaStore::connect(EtcdOptions::new(endpoints.clone(), root.clone()))
        .await
        .unwrap();
    assert_eq!(store.get_value("dur/a").await.unwrap(), Some(b"a".to_vec()));

    // A scan reads past etcd's page size, in key order.
    let mut batch = MetaBatch::new();
    for i in 0..MAX_TXN_OPS {
        batch = batch.put(format!("page/{i:04}"), vec![1]);
    }
    store.apply(batch).await.unwrap();
    let mut batch = MetaBatch::new();
    for i in MAX_TXN_OPS..2 * MAX_TXN_OPS {
        batch = batch.put(format!("page/{i:04}"), vec![2]);
    }
    store.apply(batch).await.unwrap();
    let scanned = store.scan_prefix("page/").await.unwrap();
    let keys: Vec<String> = scanned.into_iter().map(|kv| kv.key).collect();
    let expected: Vec<String> = (0..2 * MAX_TXN_OPS)
        .map(|i| format!("page/{i:04}"))
        .collect();
    assert_eq!(keys, expected);

    // A batch putting and deleting one key: deleted, as in the embedded store.
    store.put("twice", b"old".to_vec()).await.unwrap();
    store
        .apply(
            MetaBatch::new()
                .put("twice", b"1".to_vec())
                .put("twice", b"2".to_vec())
                .delete("twice"),
        )
        .await
        .unwrap();
    assert_eq!(store.get("twice").await.unwrap(), None);
    store
        .apply(
            MetaBatch::new()
                .put("twice", b"1".to_vec())
                .put("twice", b"2".to_vec()),
        )
        .await
        .unwrap();
    assert_eq!(store.get_value("twice").await.unwrap(), Some(b"2".to_vec()));

    // Leases: a key bound to one lives while it is renewed and goes with it.
    let lease = store.grant_lease(5).await.unwrap();
    assert!(lease.ttl >= 5, "{lease:?}");
    store
        .put_leased("session/node-1", b"127.0.0.1:7000".to_vec(), lease)
        .await
        .unwrap();
    assert!(store.keep_alive(lease).await.unwrap() > 0);
    assert!(store.get("session/node-1").await.unwrap().is_some());
    let mut events = store.watch_prefix("session/").await.unwrap();
    store.revoke_lease(lease).await.unwrap();
    assert_eq!(store.get("session/node-1").await.unwrap(), None);
    let event = tokio::time::timeout(
        Duration::from_secs(10),
        futures::StreamExt::next(&mut events),
    )
    .await
    .unwrap()
    .unwrap()
    .unwrap();
    assert_eq!(
        (event.kind, event.key.as_str()),
        (EventKind::Delete, "session/node-1")
    );
    assert_eq!(
        store.keep_alive(lease).await.unwrap(),
        0,
        "a revoked lease is gone"
    );

    // Clean up after ourselves.
    for store in [&store, &other] {
        let keys: Vec<String> = store
            .scan_prefix("")
            .await
            .unwrap()
            .into_iter()
            .map(|kv| kv.key)
            .collect();
        for chunk in keys.chunks(MAX_TXN_OPS) {
            let batch = chunk
                .iter()
                .fold(MetaBatch::new(), |b, k| b.delete(k.clone()));
            store.apply(batch).await.unwrap();
        }
    }
}

#[tokio::test]
async fn an_unreachable_etcd_is_a_clear_error_not_a_hang() {
    // Nothing listens on port 1 of loopback.
    let mut options = EtcdOptions::new(vec!["http://127.0.0.1:1".into()], "/quiver/none");
    options.connect_timeout = Duration::from_millis(500);
    options.request_timeout = Duration::from_millis(500);
    let started = Instant::now();
    let err = EtcdMetaStore::connect(options).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let message = err.to_string();
    assert!(
        matches!(
            err,
            StorageError::ServiceUnavailable {
                service: "etcd",
                ..
            }
        ),
        "{message}"
    );
    assert!(message.contains("etcd at http://127.0.0.1:1"), "{message}");

    let err = EtcdMetaStore::connect(EtcdOptions::new(Vec::new(), "/q"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("meta.etcd_endpoints"), "{err}");

    let long_root = format!("/quiver/{}", "r".repeat(super::MAX_ROOT_BYTES));
    let err = EtcdMetaStore::connect(EtcdOptions::new(
        vec!["http://127.0.0.1:1".into()],
        long_root,
    ))
    .await
    .unwrap_err();
    assert!(err.to_string().contains("at most 48 allowed"), "{err}");
}
