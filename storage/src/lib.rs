//! Persistent storage primitives for Quiver.
//!
//! This crate owns the three storage services every Quiver node relies on.
//! Each is a trait with an embedded implementation for standalone mode;
//! cluster mode will add etcd / S3 implementations behind the same traits
//! later.
//!
//! * **Meta store** ([`MetaStore`]): a small ordered key/value store with
//!   atomic, durable batches for catalog and cluster metadata.
//!   [`RedbMetaStore::open`] is the embedded (redb) implementation;
//!   [`MemoryMetaStore`] is a volatile one for tests.
//! * **Object storage** ([`ObjectStoreRef`]): bulk immutable data (segment
//!   files, index files) through the `object_store` crate.
//!   [`local_object_store`] roots a store in a local directory; the
//!   [`put_bytes`], [`get_bytes`], [`list_paths`] and [`delete_prefix`]
//!   helpers cover the common operations.
//! * **Write-ahead log** ([`Wal`]): an append-only log of opaque records with
//!   group commit and crash recovery. [`LocalWal::open`] stores it as
//!   segment files in a local directory.
//!
//! * **Private files** ([`open_data_dir`], [`PrivateLocalStore`]): the data
//!   directory is `0700` and refused when group or others can use it;
//!   every directory and file the storage layer creates is `0700` / `0600`.
//!
//! All fallible operations return [`Result`] with a [`StorageError`].

mod error;
mod meta;
mod object;
mod private;
pub mod wal;

pub use error::{Result, StorageError};
pub use meta::{MemoryMetaStore, MetaBatch, MetaStore, RedbMetaStore};
pub use object::{
    delete_prefix, get_bytes, list_paths, local_object_store, put_bytes, ObjectStoreRef,
};
pub use private::{
    create_private_dir_all, create_private_file, open_data_dir, PrivateLocalStore,
    PRIVATE_DIR_MODE, PRIVATE_FILE_MODE,
};
pub use wal::{
    LocalWal, Lsn, SyncPolicy, Wal, WalOptions, DEFAULT_SEGMENT_BYTES, MAX_RECORD_BYTES,
};
