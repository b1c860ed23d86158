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

/// What the next put of a [`FlakyPuts`] store does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// The object is created, but the put reports a failure (a timeout
    /// after the request was served).
    LandThenFail,
    /// The put fails and nothing is created.
    FailWithoutLanding,
}

/// An object store whose next put can be made to fail, over another one.
#[derive(Debug)]
struct FlakyPuts {
    inner: ObjectStoreRef,
    next_put: parking_lot::Mutex<Option<Fault>>,
}

impl std::fmt::Display for FlakyPuts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FlakyPuts({})", self.inner)
    }
}

fn injected() -> object_store::Error {
    object_store::Error::Generic {
        store: "FlakyPuts",
        source: "injected timeout".into(),
    }
}

#[async_trait::async_trait]
impl object_store::ObjectStore for FlakyPuts {
    async fn put_opts(
        &self,
        location: &object_store::path::Path,
        payload: object_store::PutPayload,
        opts: object_store::PutOptions,
    ) -> object_store::Result<object_store::PutResult> {
        let fault = self.next_put.lock().take();
        match fault {
            None => self.inner.put_opts(location, payload, opts).await,
            Some(Fault::LandThenFail) => {
                self.inner.put_opts(location, payload, opts).await?;
                Err(injected())
            }
            Some(Fault::FailWithoutLanding) => Err(injected()),
        }
    }

    async fn put_multipart_opts(
        &self,
        location: &object_store::path::Path,
        opts: object_store::PutMultipartOptions,
    ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &object_store::path::Path,
        options: object_store::GetOptions,
    ) -> object_store::Result<object_store::GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &object_store::path::Path,
        ranges: &[std::ops::Range<u64>],
    ) -> object_store::Result<Vec<bytes::Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: futures::stream::BoxStream<
            'static,
            object_store::Result<object_store::path::Path>,
        >,
    ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::path::Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(
        &self,
        prefix: Option<&object_store::path::Path>,
    ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&object_store::path::Path>,
        offset: &object_store::path::Path,
    ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(
        &self,
        prefix: Option<&object_store::path::Path>,
    ) -> object_store::Result<object_store::ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &object_store::path::Path,
        to: &object_store::path::Path,
        options: object_store::CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(
        &self,
        from: &object_store::path::Path,
        to: &object_store::path::Path,
        options: object_store::RenameOptions,
    ) -> object_store::Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}

/// A put of unknown outcome fails the append saying so; the log goes on,
/// and a group that landed anyway is never replayed once a later append
/// succeeded (the running server never applied it either).
#[test]
fn an_append_of_unknown_outcome_is_never_replayed_after_a_later_append() {
    let dir = tempfile::tempdir().unwrap();
    let flaky = Arc::new(FlakyPuts {
        inner: local_object_store(dir.path()).unwrap(),
        next_put: parking_lot::Mutex::new(None),
    });
    let objects: ObjectStoreRef = flaky.clone();
    let wal = open(&objects);
    assert_eq!(wal.append(vec![b"a".to_vec()]).unwrap(), vec![1]);

    *flaky.next_put.lock() = Some(Fault::LandThenFail);
    let err = wal
        .append(vec![b"b (landed, reported failed)".to_vec()])
        .unwrap_err();
    assert!(
        matches!(&err, StorageError::WalOutcomeUnknown { object, .. } if object.ends_with(".wal")),
        "{err}"
    );
    assert!(
        err.to_string().contains("may or may not be durable"),
        "{err}"
    );
    assert_eq!(
        wal.append(vec![b"c".to_vec()]).unwrap(),
        vec![2],
        "its LSN is reused"
    );

    *flaky.next_put.lock() = Some(Fault::FailWithoutLanding);
    assert!(wal.append(vec![b"d (never landed)".to_vec()]).is_err());
    assert_eq!(
        wal.append(vec![b"e".to_vec(), b"f".to_vec()]).unwrap(),
        vec![3, 4]
    );
    wal.close().unwrap();

    let wal = open(&objects);
    assert_eq!(
        wal.read_from(1).unwrap(),
        vec![
            (1, b"a".to_vec()),
            (2, b"c".to_vec()),
            (3, b"e".to_vec()),
            (4, b"f".to_vec())
        ]
    );
    // Truncation removes the shadowed object with the ones below the LSN:
    // left are e/f's object and the newest (this writer's fence).
    wal.truncate_before(3).unwrap();
    assert_eq!(
        list_paths(objects.as_ref(), "wal/test").unwrap_now().len(),
        2
    );
    assert_eq!(wal.read_from(1).unwrap().len(), 2);
    assert_eq!(wal.append(vec![b"g".to_vec()]).unwrap(), vec![5]);
    wal.close().unwrap();
}
