//! Building the three storage services from the configuration
//! (`[meta]`, `[objects]`, `[wal]`).
//!
//! `local` is the default of each: the meta store in
//! `<data_dir>/meta.redb`, objects under `<data_dir>/objects`, the WAL under
//! `<data_dir>/wal`. On real services: the meta store on etcd
//! (`meta.backend = "etcd"`, `meta.etcd_endpoints`, keys under
//! `meta.root`), the objects on S3 (`objects.backend = "s3"`,
//! `objects.s3_endpoint`, `objects.s3_bucket`, `objects.s3_region`,
//! `objects.s3_prefix`) and the WAL in the object store
//! (`wal.backend = "object_store"`: objects under [`OBJECT_WAL_PREFIX`]);
//! an unreachable service fails at startup with
//! [`StorageError::ServiceUnavailable`](crate::StorageError::ServiceUnavailable) naming it.

use std::sync::Arc;
use std::time::Duration;

use quiver_common::config::{MetaBackend, ObjectsBackend, QuiverConfig, WalBackend, WalSync};

use crate::error::Result;
use crate::{
    local_object_store, EtcdMetaStore, EtcdOptions, LocalWal, MetaStore, ObjectStoreRef, ObjectWal,
    ObjectWalOptions, RedbMetaStore, SyncPolicy, Wal, WalOptions,
};

/// File name of the local meta store in the data directory.
pub const META_FILE: &str = "meta.redb";
/// Directory of the local object store in the data directory.
pub const OBJECTS_DIR: &str = "objects";
/// Directory of the local WAL in the data directory.
pub const WAL_DIR: &str = "wal";

/// The meta store `[meta]` selects.
pub async fn open_meta_store(config: &QuiverConfig) -> Result<Arc<dyn MetaStore>> {
    match config.meta.backend {
        MetaBackend::Local => Ok(Arc::new(RedbMetaStore::open(
            &config.data_dir.join(META_FILE),
        )?)),
        MetaBackend::Etcd => Ok(Arc::new(
            EtcdMetaStore::connect(EtcdOptions {
                connect_timeout: Duration::from_millis(config.meta.etcd_connect_timeout_ms),
                request_timeout: Duration::from_millis(config.meta.etcd_request_timeout_ms),
                ..EtcdOptions::new(config.meta.etcd_endpoints.clone(), config.meta.root.clone())
            })
            .await?,
        )),
    }
}

/// The object store `[objects]` selects.
pub async fn open_object_store(config: &QuiverConfig) -> Result<ObjectStoreRef> {
    match config.objects.backend {
        ObjectsBackend::Local => local_object_store(&config.data_dir.join(OBJECTS_DIR)),
        ObjectsBackend::S3 => crate::s3_object_store(&config.objects).await,
    }
}

/// Where the object-store WAL keeps its objects (one channel in
/// standalone), next to the `tables/` objects.
pub const OBJECT_WAL_PREFIX: &str = "wal/default";

/// The write-ahead log `[wal]` selects; `objects` is the object store
/// (`open_object_store`) an `object_store` WAL writes to.
pub async fn open_wal(config: &QuiverConfig, objects: &ObjectStoreRef) -> Result<Arc<dyn Wal>> {
    match config.wal.backend {
        WalBackend::Local => Ok(Arc::new(LocalWal::open(WalOptions {
            dir: config.data_dir.join(WAL_DIR),
            segment_bytes: config.wal.segment_bytes,
            sync: match config.wal.sync {
                WalSync::Always => SyncPolicy::Always,
                WalSync::Never => SyncPolicy::Never,
            },
        })?)),
        WalBackend::ObjectStore => Ok(Arc::new(ObjectWal::open(ObjectWalOptions {
            objects: objects.clone(),
            prefix: OBJECT_WAL_PREFIX.into(),
        })?)),
    }
}

#[cfg(test)]
mod tests {
    use quiver_common::config::{MetaBackend, ObjectsBackend, QuiverConfig, WalBackend};

    use super::*;

    fn config(dir: &std::path::Path) -> QuiverConfig {
        QuiverConfig {
            data_dir: dir.to_path_buf(),
            ..QuiverConfig::default()
        }
    }

    #[tokio::test]
    async fn local_backends_open_in_the_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        let meta = open_meta_store(&config).await.unwrap();
        meta.put("k", b"v".to_vec()).await.unwrap();
        let objects = open_object_store(&config).await.unwrap();
        crate::put_bytes(objects.as_ref(), "x", b"y".to_vec())
            .await
            .unwrap();
        let wal = open_wal(&config, &objects).await.unwrap();
        assert_eq!(wal.append(vec![b"r".to_vec()]).unwrap(), vec![1]);
        wal.close().unwrap();
        assert!(dir.path().join(META_FILE).is_file());
        assert!(dir.path().join(OBJECTS_DIR).join("x").is_file());
        assert!(dir.path().join(WAL_DIR).is_dir());
    }

    #[tokio::test]
    async fn the_object_store_wal_opens_from_the_config() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config(dir.path());
        config.wal.backend = WalBackend::ObjectStore;
        let objects = open_object_store(&config).await.unwrap();
        let wal = open_wal(&config, &objects).await.unwrap();
        assert_eq!(wal.append(vec![b"r".to_vec()]).unwrap(), vec![1]);
        wal.close().unwrap();
        assert!(!dir.path().join(WAL_DIR).exists(), "no local WAL");
        let again = open_wal(&config, &objects).await.unwrap();
        assert_eq!(again.read_from(1).unwrap(), vec![(1, b"r".to_vec())]);
        again.close().unwrap();
    }

    #[tokio::test]
    async fn the_s3_object_store_opens_from_the_config() {
        let dir = tempfile::tempdir().unwrap();
        let mut no_bucket = config(dir.path());
        no_bucket.objects.backend = ObjectsBackend::S3;
        let err = open_object_store(&no_bucket).await.unwrap_err().to_string();
        assert!(err.contains("objects.s3_bucket"), "{err}");

        let mut unreachable = no_bucket.clone();
        unreachable.objects.s3_bucket = "quiver".into();
        unreachable.objects.s3_endpoint = "http://127.0.0.1:1".into();
        let started = std::time::Instant::now();
        let err = open_object_store(&unreachable)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            started.elapsed() <= crate::s3::S3_STARTUP_TIMEOUT + std::time::Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert!(
            err.contains("S3 at http://127.0.0.1:1 (bucket \"quiver\") is unavailable"),
            "{err}"
        );
        assert!(!dir.path().join(OBJECTS_DIR).exists(), "no local objects");

        let Some((endpoint, bucket)) = crate::s3::live_s3() else {
            return;
        };
        let mut live = no_bucket.clone();
        live.objects.s3_endpoint = endpoint;
        live.objects.s3_bucket = bucket;
        let objects = open_object_store(&live).await.unwrap();
        let path = format!("factory-{}/x", std::process::id());
        crate::put_bytes(objects.as_ref(), &path, b"y".to_vec())
            .await
            .unwrap();
        let again = open_object_store(&live).await.unwrap();
        assert_eq!(
            &crate::get_bytes(again.as_ref(), &path).await.unwrap()[..],
            b"y"
        );
        crate::delete_prefix(again.as_ref(), &path).await.unwrap();
        assert!(!dir.path().join(OBJECTS_DIR).exists(), "no local objects");
    }

    #[tokio::test]
    async fn the_etcd_meta_store_opens_from_the_config() {
        let dir = tempfile::tempdir().unwrap();
        let mut unreachable = config(dir.path());
        unreachable.meta.backend = MetaBackend::Etcd;
        unreachable.meta.etcd_endpoints = vec!["http://127.0.0.1:1".into()];
        let err = open_meta_store(&unreachable).await.unwrap_err();
        assert!(
            err.to_string()
                .contains("etcd at http://127.0.0.1:1 is unavailable"),
            "{err}"
        );
        assert!(!dir.path().join(META_FILE).exists(), "no local meta store");

        let Some(endpoints) = crate::meta::live_etcd() else {
            return;
        };
        let _only_writer = crate::meta::LIVE_ETCD_LOCK.lock().await;
        let mut live = config(dir.path());
        live.meta.backend = MetaBackend::Etcd;
        live.meta.etcd_endpoints = endpoints;
        live.meta.root = format!("/qt/factory-{}", std::process::id());
        let meta = open_meta_store(&live).await.unwrap();
        meta.put("k", b"v".to_vec()).await.unwrap();
        let again = open_meta_store(&live).await.unwrap();
        assert_eq!(again.get_value("k").await.unwrap(), Some(b"v".to_vec()));
        again.delete("k").await.unwrap();
        assert!(!dir.path().join(META_FILE).exists(), "no local meta store");
    }
}
