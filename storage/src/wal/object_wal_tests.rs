//! The object-store WAL on a local object store and, when one is running
//! (`QUIVER_TEST_S3_ENDPOINT`), on S3: durability across reopen, group
//! commit, truncation, fencing of an older writer, damaged objects.

use std::sync::Arc;

use quiver_common::config::{ObjectsBackend, ObjectsConfig};

use super::object_wal::{ObjectWal, ObjectWalOptions};
use super::Wal;
use crate::error::StorageError;
use crate::object::{list_paths, local_object_store, put_bytes, ObjectStoreRef};

fn open(objects: &ObjectStoreRef) -> ObjectWal {
    ObjectWal::open(ObjectWalOptions {
        objects: objects.clone(),
        prefix: "wal/test".into(),
    })
    .unwrap()
}

fn records(range: std::ops::Range<u32>) -> Vec<Vec<u8>> {
    range.map(|i| format!("record {i}").into_bytes()).collect()
}

/// Every behaviour, on `objects` (an empty store).
fn behaves_as_a_wal(objects: ObjectStoreRef) {
    // Appends and reads back; a reopen sees every acknowledged record.
    let wal = open(&objects);
    assert_eq!(wal.last_lsn(), 0);
    assert_eq!(wal.append(records(0..3)).unwrap(), vec![1, 2, 3]);
    assert_eq!(wal.append(records(3..4)).unwrap(), vec![4]);
    assert!(wal.append(Vec::new()).unwrap().is_empty());
    assert_eq!(wal.last_lsn(), 4);
    let first_term = wal.term();
    wal.close().unwrap();
    assert!(matches!(
        wal.append(records(0..1)),
        Err(StorageError::Closed)
    ));

    let wal = open(&objects);
    assert!(wal.term() > first_term, "a reopen claims a newer term");
    assert_eq!(wal.last_lsn(), 4);
    let read = wal.read_from(1).unwrap();
    let lsns: Vec<u64> = read.iter().map(|(lsn, _)| *lsn).collect();
    assert_eq!(lsns, vec![1, 2, 3, 4]);
    assert_eq!(read[3].1, b"record 3".to_vec());
    assert_eq!(wal.read_from(3).unwrap().len(), 2);

    // Concurrent appends: every record once, LSNs dense.
    let wal = Arc::new(wal);
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let wal = wal.clone();
            std::thread::spawn(move || {
                (0..10)
                    .flat_map(|i| wal.append(records(t * 100 + i..t * 100 + i + 1)).unwrap())
                    .collect::<Vec<u64>>()
            })
        })
        .collect();
    let mut lsns: Vec<u64> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    lsns.sort_unstable();
    assert_eq!(lsns, (5..45).collect::<Vec<u64>>());
    assert_eq!(wal.last_lsn(), 44);

    // Truncation deletes whole objects below the LSN, never the newest.
    let objects_before = list_paths(objects.as_ref(), "wal/test").unwrap_now();
    wal.truncate_before(30).unwrap();
    let after = wal.read_from(1).unwrap();
    assert!(
        after.first().unwrap().0 <= 30 && after.first().unwrap().0 > 1,
        "{:?}",
        after.first()
    );
    assert_eq!(after.last().unwrap().0, 44);
    let objects_after = list_paths(objects.as_ref(), "wal/test").unwrap_now();
    assert!(objects_after.len() < objects_before.len());
    wal.truncate_before(u64::MAX).unwrap();
    assert_eq!(
        list_paths(objects.as_ref(), "wal/test").unwrap_now().len(),
        1,
        "the newest object stays"
    );
    let wal = Arc::try_unwrap(wal).unwrap();
    wal.close().unwrap();
    let wal = open(&objects);
    assert_eq!(wal.last_lsn(), 44, "the log goes on after its truncation");
    assert_eq!(wal.append(records(0..1)).unwrap(), vec![45]);

    // Fencing: a newer writer opens while the old one runs; the old one
    // acknowledges nothing more, and nothing of it is replayed.
    let old = wal;
    assert_eq!(old.append(records(0..1)).unwrap(), vec![46]);
    let new = open(&objects);
    assert!(new.term() > old.term());
    let err = old.append(records(900..901)).unwrap_err();
    assert!(err.to_string().contains("fenced off"), "{err}");
    assert!(old.append(records(901..902)).is_err(), "fenced for good");
    assert_eq!(new.append(records(0..1)).unwrap(), vec![47]);
    let replayed = new.read_from(45).unwrap();
    assert_eq!(
        replayed.iter().map(|(l, _)| *l).collect::<Vec<_>>(),
        vec![45, 46, 47]
    );
    assert!(replayed.iter().all(|(_, r)| !r.starts_with(b"record 90")));
    old.close().unwrap();
    new.close().unwrap();

    // A damaged object is an error naming it, never a panic or a silent skip.
    let reader = open(&objects);
    let damaged = list_paths(objects.as_ref(), "wal/test").unwrap_now()[0].clone();
    put_bytes(objects.as_ref(), &damaged, b"QWOBgarbage".to_vec()).unwrap_now();
    let err = reader.read_from(1).unwrap_err();
    assert!(
        matches!(&err, StorageError::Corrupt { file, .. } if *file == damaged),
        "{err}"
    );
    reader.close().unwrap();
}

/// `list_paths` from synchronous test code.
trait UnwrapNow<T> {
    fn unwrap_now(self) -> T;
}

impl<T, F: std::future::Future<Output = crate::Result<T>>> UnwrapNow<T> for F {
    fn unwrap_now(self) -> T {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(self)
            .unwrap()
    }
}

#[test]
fn object_wal_on_a_local_object_store() {
    let dir = tempfile::tempdir().unwrap();
    behaves_as_a_wal(local_object_store(dir.path()).unwrap());
}

#[test]
fn object_wal_on_s3() {
    let Some((endpoint, bucket)) = crate::s3::live_s3() else {
        return;
    };
    let config = ObjectsConfig {
        backend: ObjectsBackend::S3,
        s3_endpoint: endpoint,
        s3_bucket: bucket,
        s3_prefix: format!("object-wal-{}", std::process::id()),
        ..ObjectsConfig::default()
    };
    let objects = async { crate::s3_object_store(&config).await }.unwrap_now();
    behaves_as_a_wal(objects.clone());
    async { crate::delete_prefix(objects.as_ref(), "").await }.unwrap_now();
}
