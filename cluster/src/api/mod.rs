//! The role APIs at the network edges: async traits keyed by ids and names
//! whose requests and replies are plain data (names, ids, timestamps,
//! schemas; later Arrow batches and encoded expressions), never references
//! into another role's memory, so a transport can be put between a caller
//! and the role without changing either.
//!
//! * [`coordinator`] — DDL, the catalog with its version, the timestamp
//!   oracle and the table layout;
//! * [`streaming`] — writes and deletes by table id, flush, the safe
//!   timestamp;
//! * [`query`] — the query node: loading and releasing the flushed
//!   segments it serves;
//! * [`reads`] — a node's part of a table at a read timestamp, as the
//!   fragments searches and scans scatter to (streaming and query nodes);
//! * [`data`] — the data node's leased tasks (index builds, compaction);
//! * [`wire`] — the same APIs through encoded messages
//!   (`cluster.serialize_seams`).
//!
//! Standalone implements each trait in process (the [`Engine`](crate::Engine)
//! for the coordinator); cluster mode adds clients that send the same
//! messages over gRPC.

pub mod coordinator;
pub mod data;
pub mod query;
pub mod reads;
pub mod streaming;
pub mod wire;
pub mod wire_error;
pub mod wire_streaming;

pub use coordinator::{
    AddColumn, CatalogSnapshot, Coordinator, CreateDatabase, CreateIndex, CreateTable,
    DropDatabase, DropIndex, DropTable, EndBlock, ExtensionOutcome, ExtensionRef, IndexBuildStep,
    IndexDefinition, IndexStatus, PendingChange, PendingKind, RenameTable, SegmentPlacement,
    SetTableOptions, ShardLayout, TableInfo, TableLayout, TableRef, TimestampBatch,
};
