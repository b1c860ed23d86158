//! Building the three storage services from the configuration
//! (`[meta]`, `[objects]`, `[wal]`).
//!
//! `local` is the only backend of each in this build: the meta store in
//! `<data_dir>/meta.redb`, objects under `<data_dir>/objects`, the WAL under
//! `<data_dir>/wal`. `etcd`, `s3` and `object_store` are recognised
//! settings whose implementations come later; choosing one fails at
//! startup with [`StorageError::BackendUnavailable`], which names the
//! setting, before anything is opened.

use std::sync::Arc;

use quiver_common::config::{MetaBackend, ObjectsBackend, QuiverConfig, WalBackend, WalSync};

use crate::error::{Result, StorageError};
use crate::{
    local_object_store, LocalWal, MetaStore, ObjectStoreRef, RedbMetaStore, SyncPolicy, Wal,
    WalOptions,
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
    if config.meta.backend != MetaBackend::Local {
        return Err(unavailable(
            "meta.backend",
            "QUIVER__META__BACKEND",
            config.meta.backend.name(),
        ));
    }
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
        MetaBackend::Etcd => Err(unavailable(
            "meta.backend",
            "QUIVER__META__BACKEND",
            config.meta.backend.name(),
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
        let mut etcd = config(dir.path());
        etcd.meta.backend = MetaBackend::Etcd;
        let mut s3 = config(dir.path());
        s3.objects.backend = ObjectsBackend::S3;
        let mut wal = config(dir.path());
        wal.wal.backend = WalBackend::ObjectStore;
        let cases = [
            (&etcd, "meta.backend", "QUIVER__META__BACKEND", "etcd"),
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
            open_meta_store(&etcd).await,
            Err(StorageError::BackendUnavailable {
                setting: "meta.backend",
                ..
            })
        ));
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
}
