//! Tests of private files: modes of what the storage layer creates, and the
//! data-directory check.

use std::os::unix::fs::PermissionsExt;

use object_store::{ObjectStoreExt, PutPayload};

use super::*;
use crate::{LocalWal, MetaStore, RedbMetaStore, SyncPolicy, Wal, WalOptions};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Every directory under `root` (itself excluded) is 0700 and every file
/// 0600; returns how many files were seen.
fn assert_private_tree(root: &Path) -> usize {
    let mut files = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                assert_eq!(mode(&path), 0o700, "{}", path.display());
                stack.push(path);
            } else {
                assert_eq!(mode(&path), 0o600, "{}", path.display());
                files += 1;
            }
        }
    }
    files
}

#[test]
fn a_missing_data_dir_is_created_0700() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("a/b/data");
    open_data_dir(&dir).unwrap();
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&parent.path().join("a")), 0o700);
    // Opening it again is fine.
    open_data_dir(&dir).unwrap();
}

#[test]
fn a_data_dir_open_to_group_or_others_is_refused() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("data");
    std::fs::create_dir(&dir).unwrap();
    for bad in [0o755, 0o750, 0o711, 0o701, 0o770, 0o777] {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(bad)).unwrap();
        let err = open_data_dir(&dir).unwrap_err();
        assert!(
            matches!(err, StorageError::DataDirPermissions { mode, .. } if mode == bad),
            "{bad:o}: {err}"
        );
        let message = err.to_string();
        assert!(
            message.contains(&format!(
                "data directory \"{}\" has invalid permissions",
                dir.display()
            )),
            "{message}"
        );
        assert!(message.contains("chmod 700"), "{message}");
    }
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    open_data_dir(&dir).unwrap();
}

#[test]
fn a_file_is_no_data_dir() {
    let parent = tempfile::tempdir().unwrap();
    let file = parent.path().join("data");
    std::fs::write(&file, b"x").unwrap();
    assert!(open_data_dir(&file).is_err());
}

#[tokio::test]
async fn objects_are_0600_in_0700_directories() {
    let parent = tempfile::tempdir().unwrap();
    let root = parent.path().join("objects");
    let store = PrivateLocalStore::new(&root).unwrap();
    assert_eq!(mode(&root), 0o700);
    let a = ObjectPath::from("t/1/segments/a.parquet");
    store
        .put(&a, PutPayload::from_static(b"abc"))
        .await
        .unwrap();
    let mut upload = store
        .put_multipart(&ObjectPath::from("t/2/index/big.bin"))
        .await
        .unwrap();
    upload
        .put_part(PutPayload::from(vec![7u8; 1024]))
        .await
        .unwrap();
    upload.complete().await.unwrap();
    store
        .copy(&a, &ObjectPath::from("t/3/copy/a.parquet"))
        .await
        .unwrap();
    store
        .rename(&a, &ObjectPath::from("t/4/moved/a.parquet"))
        .await
        .unwrap();
    assert_eq!(assert_private_tree(&root), 3);
    let got = store
        .get(&ObjectPath::from("t/4/moved/a.parquet"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&got[..], b"abc");
}

#[tokio::test]
async fn wal_and_meta_files_are_private() {
    let parent = tempfile::tempdir().unwrap();
    let data = parent.path().join("data");
    open_data_dir(&data).unwrap();
    let meta = RedbMetaStore::open(&data.join("meta.redb")).unwrap();
    meta.put("k", b"v".to_vec()).await.unwrap();
    let wal = LocalWal::open(WalOptions {
        dir: data.join("wal"),
        segment_bytes: 4096,
        sync: SyncPolicy::Always,
    })
    .unwrap();
    for i in 0..64u8 {
        wal.append(vec![vec![i; 200]]).unwrap();
    }
    let files = assert_private_tree(&data);
    // The meta store and more than one WAL segment.
    assert!(files >= 3, "{files} files");
    assert_eq!(mode(&data), 0o700);
}
