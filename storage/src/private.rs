//! Private files: what Quiver stores is readable by its own user only.
//!
//! * The data directory is created `0700`, and [`open_data_dir`] refuses
//!   one that group or others may enter, read or write (as PostgreSQL
//!   refuses a data directory with invalid permissions; Quiver demands
//!   exactly `u=rwx`, where PostgreSQL also allows `u=rwx,g=rx`).
//! * Directories the storage layer creates are `0700`
//!   ([`create_private_dir_all`]), files `0600` ([`create_private_file`]).
//! * The `object_store` crate's local store creates files and directories
//!   with the process umask; [`PrivateLocalStore`] wraps it and narrows
//!   what each write created to `0600` / `0700`, so library users get
//!   private files whatever their umask.
//!
//! On other platforms than Unix these are plain creations.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use futures::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, UploadPart,
};

use crate::error::{Result, StorageError};

/// Mode of the directories Quiver creates.
pub const PRIVATE_DIR_MODE: u32 = 0o700;
/// Mode of the files Quiver creates.
pub const PRIVATE_FILE_MODE: u32 = 0o600;

/// Creates `dir` and its missing parents with mode `0700` (existing
/// directories are left as they are).
pub fn create_private_dir_all(dir: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(PRIVATE_DIR_MODE);
    }
    builder.create(dir)
}

/// Opens `options` on `path`, creating the file with mode `0600`.
pub fn create_private_file(options: &mut OpenOptions, path: &Path) -> io::Result<File> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(PRIVATE_FILE_MODE);
    }
    options.open(path)
}

/// Narrows the mode of an existing file or directory to `mode`.
fn restrict(path: &Path, mode: u32) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let current = std::fs::metadata(path)?.permissions().mode() & 0o777;
        if current & !mode != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(current & mode))?;
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (path, mode);
    }
    Ok(())
}

/// Prepares the data directory of a server: creates it `0700` if missing,
/// refuses it if it is no directory or group or others have any access to
/// it. (`quiver` calls it before opening the engine.)
pub fn open_data_dir(dir: &Path) -> Result<()> {
    match std::fs::metadata(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // Created 0700 (a umask can only narrow that); a parent that
            // existed is left alone.
            create_private_dir_all(dir)?;
            Ok(())
        }
        Err(e) => Err(e.into()),
        Ok(meta) if !meta.is_dir() => Err(StorageError::Io(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "data directory \"{}\" exists and is no directory",
                dir.display()
            ),
        ))),
        Ok(meta) => check_mode(dir, &meta),
    }
}

#[cfg(unix)]
fn check_mode(dir: &Path, meta: &std::fs::Metadata) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(StorageError::DataDirPermissions {
            path: dir.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_mode(_dir: &Path, _meta: &std::fs::Metadata) -> Result<()> {
    Ok(())
}

/// A local object store whose files are `0600` and directories `0700`.
///
/// Every write (put, multipart completion, copy, rename) narrows the
/// object's file and the directories between it and the root.
#[derive(Debug)]
pub struct PrivateLocalStore {
    inner: LocalFileSystem,
    root: PathBuf,
}

impl PrivateLocalStore {
    /// A store rooted at `dir` (created `0700` if missing).
    pub fn new(dir: &Path) -> Result<Self> {
        create_private_dir_all(dir)?;
        let root = dir.canonicalize()?;
        let inner = LocalFileSystem::new_with_prefix(&root)?.with_automatic_cleanup(true);
        Ok(Self { inner, root })
    }

    /// Narrows the object at `location` and its directories.
    fn make_private(&self, location: &ObjectPath) -> object_store::Result<()> {
        let file = self.inner.path_to_filesystem(location)?;
        narrow_object(&file, &self.root)
    }
}

/// Narrows an object's `file` to `0600` and the directories between it and
/// `root` to `0700`.
fn narrow_object(file: &Path, root: &Path) -> object_store::Result<()> {
    let narrow = || -> io::Result<()> {
        restrict(file, PRIVATE_FILE_MODE)?;
        let mut dir = file.parent();
        while let Some(d) = dir {
            if !d.starts_with(root) || d == root {
                break;
            }
            restrict(d, PRIVATE_DIR_MODE)?;
            dir = d.parent();
        }
        Ok(())
    };
    narrow().map_err(|e| object_store::Error::Generic {
        store: "PrivateLocalStore",
        source: Box::new(e),
    })
}

impl fmt::Display for PrivateLocalStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateLocalStore({})", self.root.display())
    }
}

#[async_trait]
impl ObjectStore for PrivateLocalStore {
    async fn put_opts(
        &self,
        location: &ObjectPath,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let result = self.inner.put_opts(location, payload, opts).await?;
        self.make_private(location)?;
        Ok(result)
    }

    async fn put_multipart_opts(
        &self,
        location: &ObjectPath,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        let upload = self.inner.put_multipart_opts(location, opts).await?;
        let file = self.inner.path_to_filesystem(location)?;
        Ok(Box::new(PrivateUpload {
            upload,
            file,
            root: self.root.clone(),
        }))
    }

    async fn get_opts(
        &self,
        location: &ObjectPath,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &ObjectPath,
        ranges: &[std::ops::Range<u64>],
    ) -> object_store::Result<Vec<bytes::Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<ObjectPath>>,
    ) -> BoxStream<'static, object_store::Result<ObjectPath>> {
        self.inner.delete_stream(locations)
    }

    fn list(
        &self,
        prefix: Option<&ObjectPath>,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&ObjectPath>,
        offset: &ObjectPath,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(
        &self,
        prefix: Option<&ObjectPath>,
    ) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &ObjectPath,
        to: &ObjectPath,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await?;
        self.make_private(to)
    }

    async fn rename_opts(
        &self,
        from: &ObjectPath,
        to: &ObjectPath,
        options: RenameOptions,
    ) -> object_store::Result<()> {
        self.inner.rename_opts(from, to, options).await?;
        self.make_private(to)
    }
}

/// A multipart upload whose completed file is narrowed.
#[derive(Debug)]
struct PrivateUpload {
    upload: Box<dyn MultipartUpload>,
    file: PathBuf,
    root: PathBuf,
}

#[async_trait]
impl MultipartUpload for PrivateUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        self.upload.put_part(data)
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        let result = self.upload.complete().await?;
        narrow_object(&self.file, &self.root)?;
        Ok(result)
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        self.upload.abort().await
    }
}

#[cfg(test)]
#[path = "private_tests.rs"]
mod tests;
