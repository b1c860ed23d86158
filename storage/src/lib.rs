//! Persistent storage primitives for Quiver.
//!
//! This crate owns the three storage services every Quiver node relies on.
//! Each is a trait with an embedded implementation for standalone mode
//! and one on real services (etcd, S3, a WAL in object storage) behind
//! the same trait.
//!
//! * **Meta store** ([`MetaStore`], async): a small ordered key/value store
//!   for catalog and cluster metadata, shaped after etcd: per-key versions,
//!   atomic durable transactions with version conditions (compare-and-swap),
//!   prefix watches and etcd's transaction limits (see [`meta`]).
//!   [`RedbMetaStore::open`] is the embedded (redb) implementation,
//!   [`EtcdMetaStore::connect`] the one on etcd (cluster mode; also leases);
//!   [`MemoryMetaStore`] is a volatile one for tests;
//!   [`meta::conformance`] is the test suite every implementation passes.
//! * **Object storage** ([`ObjectStoreRef`]): bulk immutable data (segment
//!   files, index files) through the `object_store` crate.
//!   [`local_object_store`] roots a store in a local directory,
//!   [`s3_object_store`] reaches an S3-compatible bucket; the
//!   [`put_bytes`], [`get_bytes`], [`list_paths`] and [`delete_prefix`]
//!   helpers cover the common operations.
//! * **Write-ahead log** ([`Wal`]): an append-only log of opaque records with
//!   group commit and crash recovery. [`LocalWal::open`] stores it as
//!   segment files in a local directory, [`ObjectWal::open`] as one
//!   immutable object per group commit, fenced by terms.
//!
//! * **Private files** ([`open_data_dir`], [`PrivateLocalStore`]): the data
//!   directory is `0700` and refused when group or others can use it;
//!   every directory and file the storage layer creates is `0700` / `0600`.
//!
//! * **Factories** ([`open_meta_store`], [`open_object_store`], [`open_wal`]):
//!   build each from the configuration's `[meta]`, `[objects]` and `[wal]`
//!   sections; an unreachable service fails with
//!   [`StorageError::ServiceUnavailable`].
//!
//! All fallible operations return [`Result`] with a [`StorageError`].

mod error;
mod factory;
pub mod meta;
mod object;
mod private;
mod s3;
pub mod wal;

pub use error::{Result, StorageError};
pub use factory::{
    open_meta_store, open_object_store, open_wal, META_FILE, OBJECTS_DIR, OBJECT_WAL_PREFIX,
    WAL_DIR,
};
pub use meta::{
    Condition, EtcdMetaStore, EtcdOptions, EventKind, KeyValue, Lease, MemoryMetaStore, MetaBatch,
    MetaStore, RedbMetaStore, TxnOutcome, Versioned, WatchEvent, WatchStream, MAX_TXN_BYTES,
    MAX_TXN_OPS,
};
pub use object::{
    delete_prefix, get_bytes, list_paths, local_object_store, put_bytes, ObjectStoreRef,
};
pub use private::{
    create_private_dir_all, create_private_file, open_data_dir, PrivateLocalStore,
    PRIVATE_DIR_MODE, PRIVATE_FILE_MODE,
};
pub use s3::s3_object_store;
pub use wal::{
    LocalWal, Lsn, ObjectWal, ObjectWalOptions, SyncPolicy, Wal, WalOptions, DEFAULT_SEGMENT_BYTES,
    MAX_RECORD_BYTES,
};
