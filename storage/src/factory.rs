//! Building the three storage services from the configuration
//! (`[meta]`, `[objects]`, `[wal]`).
//!
//! `local` is the default of each: the meta store in
//! `<data_dir>/meta.redb`, objects under `<data_dir>/objects`, the WAL under
//! `<data_dir>/wal`. The meta store can also live on etcd
//! (`meta.backend = "etcd"`, `meta.etcd_endpoints`, keys under
//! `meta.root`); an unreachable etcd fails at startup with
//! [`StorageError::ServiceUnavailable`] naming the endpoints. `s3` and
//! `object_store` are recognised settings whose implementations come
//! later; choosing one fails at startup with
//! [`StorageError::BackendUnavailable`], which names the setting, before
//! anything is opened.

use std::sync::Arc;

use quiver_common::config::{MetaBackend, ObjectsBackend, QuiverConfig, WalBackend, WalSync};

use crate::error::{Result, StorageError};
use crate::{
    local_object_store, EtcdMetaStore, EtcdOptions, LocalWal, MetaStore, ObjectStoreRef,
    RedbMetaStore, SyncPolicy, Wal, WalOptions,
};

/// File name of the local meta store in the data directory.
pub const META_FILE: &str = "meta.redb";
/// Directory of the local object store in the data directory.
pub const OBJECTS_DIR: &str = "objects";
/// Directory of the local WAL in the data directory.
pub const WAL_DIR: &str = "wal";

fn unavailable(setting: &'static str, env: &'static str, value: &str) -> StorageError {
    StorageError::BackendUnavailable {
        setting,
        env,
        value: value.to_string(),
    }
}

/// Fails with [`StorageError::BackendUnavailable`] when a configured
/// backend is not part of this build (checked before opening anything).
pub fn check_backends(config: &QuiverConfig) -> Result<()> {
    if config.objects.backend != ObjectsBackend::Local {
        return Err(unavailable(
            "objects.backend",
            "QUIVER__OBJECTS__BACKEND",
            config.objects.backend.name(),
        ));
    }
    if config.wal.backend != WalBackend::Local {
        return Err(unavailable(
            "wal.backend",
            "QUIVER__WAL__BACKEND",
            config.wal.backend.name(),
        ));
    }
    Ok(())
}

/// The meta store `[meta]` selects.
pub async fn open_meta_store(config: &QuiverConfig) -> Result<Arc<dyn MetaStore>> {
    match config.meta.backend {
        MetaBackend::Local => Ok(Arc::new(RedbMetaStore::open(
            &config.data_dir.join(META_FILE),
        )?)),
        MetaBackend::Etcd => Ok(Arc::new(
            EtcdMetaStore::connect(EtcdOptions::new(
                config.meta.etcd_endpoints.clone(),
                config.meta.root.clone(),
            ))
            .await?,
        )),
    }
}

/// The object store `[objects]` selects.
pub async fn open_object_store(config: &QuiverConfig) -> Result<ObjectStoreRef> {
    match config.objects.backend {
        ObjectsBackend::Local => local_object_store(&config.data_dir.join(OBJECTS_DIR)),
        ObjectsBackend::S3 => Err(unavailable(
            "objects.backend",
            "QUIVER__OBJECTS__BACKEND",
            config.objects.backend.name(),
        )),
    }
}

/// The write-ahead log `[wal]` selects.
pub async fn open_wal(config: &QuiverConfig) -> Result<Arc<dyn Wal>> {
    match config.wal.backend {
        WalBackend::Local => Ok(Arc::new(LocalWal::open(WalOptions {
            dir: config.data_dir.join(WAL_DIR),
            segment_bytes: config.wal.segment_bytes,
            sync: match config.wal.sync {
                WalSync::Always => SyncPolicy::Always,
                WalSync::Never => SyncPolicy::Never,
            },
        })?)),
        WalBackend::ObjectStore => Err(unavailable(
            "wal.backend",
            "QUIVER__WAL__BACKEND",
            config.wal.backend.name(),
        )),
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
        check_backends(&config).unwrap();
        let meta = open_meta_store(&config).await.unwrap();
        meta.put("k", b"v".to_vec()).await.unwrap();
        let objects = open_object_store(&config).await.unwrap();
        crate::put_bytes(objects.as_ref(), "x", b"y".to_vec())
            .await
            .unwrap();
        let wal = open_wal(&config).await.unwrap();
        assert_eq!(wal.append(vec![b"r".to_vec()]).unwrap(), vec![1]);
        wal.close().unwrap();
        assert!(dir.path().join(META_FILE).is_file());
        assert!(dir.path().join(OBJECTS_DIR).join("x").is_file());
        assert!(dir.path().join(WAL_DIR).is_dir());
    }

    #[tokio::test]
    async fn unavailable_backends_fail_naming_the_setting() {
        let dir = tempfile::tempdir().unwrap();
        let mut s3 = config(dir.path());
        s3.objects.backend = ObjectsBackend::S3;
        let mut wal = config(dir.path());
        wal.wal.backend = WalBackend::ObjectStore;
        let cases = [
            (&s3, "objects.backend", "QUIVER__OBJECTS__BACKEND", "s3"),
            (&wal, "wal.backend", "QUIVER__WAL__BACKEND", "object_store"),
        ];
        for (config, setting, env, value) in cases {
            let err = check_backends(config).unwrap_err();
            match &err {
                StorageError::BackendUnavailable {
                    setting: s,
                    env: e,
                    value: v,
                } => assert_eq!((*s, *e, v.as_str()), (setting, env, value)),
                other => panic!("expected BackendUnavailable, got {other}"),
            }
            let message = err.to_string();
            assert!(message.contains(setting), "{message}");
            assert!(message.contains("not available in this build"), "{message}");
        }
        assert!(matches!(
            open_object_store(&s3).await,
            Err(StorageError::BackendUnavailable {
                setting: "objects.backend",
                ..
            })
        ));
        assert!(matches!(
            open_wal(&wal).await,
            Err(StorageError::BackendUnavailable {
                setting: "wal.backend",
                ..
            })
        ));
        // Nothing was created for the refused backends.
        assert!(!dir.path().join(META_FILE).exists());
        assert!(!dir.path().join(WAL_DIR).exists());
        assert!(!dir.path().join(OBJECTS_DIR).exists());
    }

    #[tokio::test]
    async fn the_etcd_meta_store_opens_from_the_config() {
        let dir = tempfile::tempdir().unwrap();
        let mut unreachable = config(dir.path());
        unreachable.meta.backend = MetaBackend::Etcd;
        unreachable.meta.etcd_endpoints = vec!["http://127.0.0.1:1".into()];
        check_backends(&unreachable).unwrap();
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
