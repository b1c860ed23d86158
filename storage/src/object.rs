//! Object storage: the `object_store` crate behind a shared handle, plus a
//! few convenience helpers.
//!
//! Standalone mode uses [`local_object_store`] (a directory on local disk)
//! by default; [`crate::s3_object_store`] puts an S3-compatible store
//! behind the same [`ObjectStoreRef`].

use std::path::Path as FsPath;
use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::error::Result;
use crate::private::PrivateLocalStore;

/// Shared handle to any object store implementation.
pub type ObjectStoreRef = Arc<dyn ObjectStore>;

/// Object store rooted at the local directory `dir` (created `0700` if
/// missing); its files are `0600` and its directories `0700`
/// ([`PrivateLocalStore`]).
pub fn local_object_store(dir: &FsPath) -> Result<ObjectStoreRef> {
    Ok(Arc::new(PrivateLocalStore::new(dir)?))
}

fn parse_path(path: &str) -> Result<Path> {
    Ok(Path::parse(path).map_err(object_store::Error::from)?)
}

/// Prefix path for listing; an empty string means the whole store.
fn parse_prefix(prefix: &str) -> Result<Option<Path>> {
    let trimmed = prefix.trim_matches('/');
    if trimmed.is_empty() {
        Ok(None)
    } else {
        parse_path(trimmed).map(Some)
    }
}

/// Writes `bytes` to `path` atomically (readers never see a partial object).
pub async fn put_bytes(store: &dyn ObjectStore, path: &str, bytes: Vec<u8>) -> Result<()> {
    let location = parse_path(path)?;
    store.put(&location, PutPayload::from(bytes)).await?;
    Ok(())
}

/// Reads the whole object at `path`.
pub async fn get_bytes(store: &dyn ObjectStore, path: &str) -> Result<Bytes> {
    let location = parse_path(path)?;
    Ok(store.get(&location).await?.bytes().await?)
}

/// All object paths under `prefix` (evaluated per path segment, recursive),
/// sorted.
pub async fn list_paths(store: &dyn ObjectStore, prefix: &str) -> Result<Vec<String>> {
    let prefix = parse_prefix(prefix)?;
    let mut paths: Vec<String> = store
        .list(prefix.as_ref())
        .map_ok(|meta| meta.location.to_string())
        .try_collect()
        .await?;
    paths.sort();
    Ok(paths)
}

/// Deletes every object under `prefix`; returns how many were deleted.
pub async fn delete_prefix(store: &dyn ObjectStore, prefix: &str) -> Result<usize> {
    let prefix = parse_prefix(prefix)?;
    let locations = store
        .list(prefix.as_ref())
        .map_ok(|meta| meta.location)
        .boxed();
    let deleted: Vec<Path> = store.delete_stream(locations).try_collect().await?;
    Ok(deleted.len())
}

/// Puts, gets, lists and deletes objects on an empty `store` the way the
/// engine does, and checks the results (every implementation passes it).
#[cfg(test)]
pub(crate) async fn round_trip(store: &dyn ObjectStore) {
    put_bytes(store, "tables/t1/seg-1.parquet", b"one".to_vec())
        .await
        .unwrap();
    put_bytes(store, "tables/t1/seg-2.parquet", b"two".to_vec())
        .await
        .unwrap();
    put_bytes(store, "tables/t10/seg-1.parquet", b"ten".to_vec())
        .await
        .unwrap();
    put_bytes(store, "other/x", Vec::new()).await.unwrap();

    assert_eq!(
        get_bytes(store, "tables/t1/seg-2.parquet").await.unwrap(),
        Bytes::from_static(b"two")
    );
    assert!(get_bytes(store, "other/x").await.unwrap().is_empty());
    assert!(matches!(
        get_bytes(store, "tables/missing").await,
        Err(crate::StorageError::ObjectStore(
            object_store::Error::NotFound { .. }
        ))
    ));

    assert_eq!(
        list_paths(store, "tables/t1").await.unwrap(),
        vec!["tables/t1/seg-1.parquet", "tables/t1/seg-2.parquet"]
    );
    assert_eq!(list_paths(store, "").await.unwrap().len(), 4);

    assert_eq!(delete_prefix(store, "tables/t1/").await.unwrap(), 2);
    assert!(list_paths(store, "tables/t1").await.unwrap().is_empty());
    assert_eq!(
        list_paths(store, "tables").await.unwrap(),
        vec!["tables/t10/seg-1.parquet"]
    );
    assert_eq!(delete_prefix(store, "nothing/here").await.unwrap(), 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_store_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("objects");
        let store = local_object_store(&root).unwrap();
        assert!(root.is_dir());
        round_trip(store.as_ref()).await;

        // Reopening the same directory sees the same objects.
        let again = local_object_store(&root).unwrap();
        assert_eq!(
            get_bytes(&*again, "tables/t10/seg-1.parquet")
                .await
                .unwrap(),
            Bytes::from_static(b"ten")
        );
    }
}
