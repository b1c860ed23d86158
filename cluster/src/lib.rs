//! `quiver-cluster` owns the roles of the Milvus architecture and their
//! standalone wiring:
//!
//! * [`api`] — the role APIs at the network edges (plain-data requests and
//!   replies): coordinator, streaming node, data-node tasks;
//! * [`coordinator`] — the timestamp oracle, id allocators and catalog records
//!   in the meta store;
//! * [`streaming`] — the write path: validation, TSO timestamp, WAL append
//!   (durable before acknowledging), apply to the growing segment; seal and
//!   flush of segments and delete logs to Parquet in object storage;
//! * [`data_node`] — the data node's leased tasks: index builds and
//!   compaction steps;
//! * [`segment_files`] — object paths and Parquet encoding of segments and
//!   delete logs;
//! * [`task_leases`] — the coordinator's leases of data-node tasks;
//! * [`indexes`] — vector index definitions and per-segment index files
//!   (built by the data role, loaded by the query role);
//! * [`query_node`] — the query node: the flushed segments it serves, and
//!   the readers of segment and delete-log objects;
//! * [`shards`] — which shard of a table a row belongs to;
//! * [`table`] — one table's run-time state on its streaming node;
//! * [`catalog_table`] — one table in the coordinator's catalog (its
//!   record and the lock its record writers take);
//! * [`table_view`] — a table as execution reads it (streaming and query
//!   node together), the execution layer's `TableSource`;
//! * [`engine`] — [`engine::Engine`], all roles in one process over the
//!   embedded storage implementations, with recovery and background maintenance.
//!
//! Cluster mode replaces the in-process calls between roles with RPCs and the
//! embedded storage with etcd/S3 implementations of the same storage traits.

pub mod api;
pub mod catalog_table;
pub mod coordinator;
pub mod data_node;
pub mod engine;
pub mod error;
pub mod indexes;
pub mod query_node;
pub mod segment_files;
pub mod shards;
pub mod streaming;
pub mod table;
pub mod table_view;
pub mod task_leases;

pub use api::streaming::{WriteMode, WriteOutcome};
pub use engine::{Engine, DEFAULT_DATABASE};
pub use error::{EngineError, Result};
