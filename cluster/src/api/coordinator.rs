//! The coordinator's API: the one active coordinator owns the catalog
//! (databases, tables with their schemas and options, vector indexes), the
//! timestamp oracle and the layout of every table (its shards and
//! segments). Every request and reply here is plain, serializable data.
//!
//! Aliases and partitions of the Milvus door are kept today as table
//! options ([`SetTableOptions`]); they become requests of their own when
//! the coordinator, not the door, gives them meaning.

use std::collections::BTreeMap;

use async_trait::async_trait;
use quiver_common::schema::{ColumnDef, TableSchema};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::indexes::IndexMeta;

/// A table by database and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TableRef {
    pub database: String,
    pub name: String,
}

impl TableRef {
    /// `database.name`.
    pub fn new(database: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            database: database.into(),
            name: name.into(),
        }
    }
}

/// Creates a database (Postgres schema, Milvus database).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateDatabase {
    pub name: String,
    /// An existing database is no error (the reply is `false`).
    pub if_not_exists: bool,
}

/// Drops a database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropDatabase {
    pub name: String,
    /// A missing database is no error (the reply is `false`).
    pub if_exists: bool,
    /// Drops its tables too (else a database with tables is an error).
    pub cascade: bool,
}

/// Creates a table (collection).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateTable {
    pub table: TableRef,
    pub schema: TableSchema,
    /// Number of shards, 1 to [`quiver_common::limits::MAX_SHARDS`].
    pub shards: u32,
    /// An existing table is no error (the reply is `false`).
    pub if_not_exists: bool,
    /// Created by a transaction block: the table is pending (see
    /// [`PendingChange`]) until [`Coordinator::end_block`] commits or
    /// aborts the block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_block: Option<u64>,
}

/// Drops a table, its segments, indexes and delete logs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropTable {
    pub table: TableRef,
    pub if_exists: bool,
    /// Dropped by a transaction block: the table stays (for every other
    /// session) until [`Coordinator::end_block`] commits the block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_block: Option<u64>,
}

pub use crate::coordinator::{
    client_table_name, is_pending_name, pending_table_name, PendingChange, PendingKind,
};

/// Ends a transaction block's catalog changes: applies them (`commit`) or
/// discards them, all in one meta-store transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndBlock {
    pub block: u64,
    pub commit: bool,
}

/// Renames a table within its database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenameTable {
    pub table: TableRef,
    pub new_name: String,
}

/// Adds a (nullable or defaulted) column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddColumn {
    pub table: TableRef,
    pub column: ColumnDef,
    /// An existing column of that name is no error (the reply is `false`).
    pub if_not_exists: bool,
}

/// Sets (`Some`) or removes (`None`) named options of a table, durably and
/// all at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetTableOptions {
    pub table: TableRef,
    pub changes: Vec<(String, Option<String>)>,
}

/// A vector index to define on a table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexDefinition {
    /// The index name; `None` picks `<table>_<column>_idx`.
    pub name: Option<String>,
    pub column: String,
    /// Index type name (`hnsw`, `ivfflat`, ...).
    pub kind: String,
    /// Metric name (`l2`, `ip`, `cosine`, `l1`).
    pub metric: String,
    pub params: BTreeMap<String, u64>,
}

/// Defines a vector index (its per-segment builds are data-node tasks).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateIndex {
    pub table: TableRef,
    pub definition: IndexDefinition,
    pub if_not_exists: bool,
}

/// Drops a vector index by name within a database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropIndex {
    pub database: String,
    pub name: String,
    pub if_exists: bool,
}

/// One index as the `quiver_catalog.indexes` view shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexStatus {
    pub database: String,
    pub table: String,
    pub name: String,
    pub column: String,
    pub kind: String,
    pub metric: String,
    /// `m=16, ef_construction=200`.
    pub params: String,
    /// `ready` when every sealed segment is indexed, else `building`.
    pub state: String,
    pub rows_indexed: usize,
    pub rows_total: usize,
    pub segments_indexed: usize,
    pub segments_total: usize,
}

/// One table of a catalog snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableInfo {
    pub id: u64,
    pub table: TableRef,
    pub schema: TableSchema,
    pub shards: u32,
    pub options: BTreeMap<String, String>,
    pub indexes: Vec<IndexMeta>,
}

/// The catalog at one version: every database and table. A reader caches
/// what it derives from a snapshot (plans, schemas) for that version only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CatalogSnapshot {
    /// Changes with every DDL (it moves when a change starts and again when
    /// it ends, so nothing read during a change stays valid).
    pub version: u64,
    pub databases: Vec<String>,
    pub tables: Vec<TableInfo>,
    /// The extensions installed, per database.
    #[serde(default)]
    pub extensions: Vec<ExtensionRef>,
}

/// An extension of a database (`CREATE EXTENSION vector` records one; the
/// types it names are built in).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ExtensionRef {
    pub database: String,
    pub name: String,
}

/// What [`Coordinator::create_extension`] or
/// [`Coordinator::drop_extension`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExtensionOutcome {
    Created,
    /// Nothing done: it was installed already.
    AlreadyInstalled,
    Dropped,
    /// Nothing done: it was not installed.
    NotInstalled,
    /// Nothing done: these tables of the database have columns of its
    /// types.
    InUse {
        tables: Vec<String>,
    },
}

/// Consecutive timestamps `first .. first + count`, each later than every
/// acknowledged write (hybrid: physical milliseconds << 18 | logical).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimestampBatch {
    pub first: u64,
    pub count: u32,
}

/// One shard of a table: its WAL channel, growing segment and sealed
/// segments, and the node serving it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardLayout {
    pub shard: u32,
    /// The WAL channel the shard's writes go to.
    pub channel: String,
    /// The streaming node owning the channel (`standalone` in one process).
    pub streaming_node: String,
    pub growing_segment: u64,
    /// Rows in the growing segment.
    pub growing_rows: u64,
    /// Sealed segments with the query node serving each.
    pub sealed_segments: Vec<SegmentPlacement>,
}

/// A sealed segment and the query node serving it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentPlacement {
    pub segment: u64,
    pub rows: u64,
    pub query_node: String,
}

/// What one [`Coordinator::build_index_step`] did: (segment, index) builds
/// done (0 or 1) and how many a table still lacks after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexBuildStep {
    pub built: usize,
    pub missing: usize,
}

/// Where a table's data lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableLayout {
    pub table_id: u64,
    pub shards: Vec<ShardLayout>,
}

/// The coordinator role.
#[async_trait]
pub trait Coordinator: Send + Sync + 'static {
    /// `Ok(false)`: it existed and `if_not_exists`.
    async fn create_database(&self, request: CreateDatabase) -> Result<bool>;
    /// `Ok(false)`: it was missing and `if_exists`.
    async fn drop_database(&self, request: DropDatabase) -> Result<bool>;
    /// Records an extension as installed in a database.
    async fn create_extension(&self, extension: ExtensionRef) -> Result<ExtensionOutcome>;
    /// Removes an extension of a database, unless its tables use its types.
    async fn drop_extension(&self, extension: ExtensionRef) -> Result<ExtensionOutcome>;
    /// `Ok(false)`: it existed and `if_not_exists`.
    async fn create_table(&self, request: CreateTable) -> Result<bool>;
    /// `Ok(false)`: it was missing and `if_exists`.
    async fn drop_table(&self, request: DropTable) -> Result<bool>;
    /// Commits or aborts the pending catalog changes of a transaction
    /// block (see [`PendingChange`]); a block with none is no error.
    async fn end_block(&self, request: EndBlock) -> Result<()>;
    async fn rename_table(&self, request: RenameTable) -> Result<()>;
    /// `Ok(false)`: the column existed and `if_not_exists`.
    async fn add_column(&self, request: AddColumn) -> Result<bool>;
    async fn set_table_options(&self, request: SetTableOptions) -> Result<()>;
    /// The index's name, `None` when it existed and `if_not_exists`.
    async fn create_index(&self, request: CreateIndex) -> Result<Option<String>>;
    /// `Ok(false)`: it was missing and `if_exists`.
    async fn drop_index(&self, request: DropIndex) -> Result<bool>;
    /// Every index with its build progress, by database, table and name.
    async fn index_statuses(&self) -> Result<Vec<IndexStatus>>;
    /// One table's indexes with their build progress, by name.
    async fn table_index_statuses(&self, table: TableRef) -> Result<Vec<IndexStatus>>;
    /// The whole catalog at its current version.
    async fn catalog(&self) -> Result<CatalogSnapshot>;
    /// The current catalog version (cheap: no snapshot).
    async fn catalog_version(&self) -> Result<u64>;
    /// One table's definition (a missing table is
    /// [`EngineError::TableNotFound`](crate::error::EngineError)).
    async fn describe_table(&self, table: TableRef) -> Result<TableInfo>;
    /// `count` (at least 1) fresh timestamps.
    async fn allocate_timestamps(&self, count: u32) -> Result<TimestampBatch>;
    /// The read timestamp of a strong read: a fresh timestamp, or — while
    /// none can be handed out (the meta store is down) — the newest one
    /// handed out, which every acknowledged write is at or below, so reads
    /// of loaded data go on through a meta-store outage.
    async fn read_timestamp(&self) -> Result<u64>;
    /// Where a table's data lives.
    async fn layout(&self, table: TableRef) -> Result<TableLayout>;
    /// Compacts a table now, regardless of thresholds (Milvus
    /// `ManualCompaction`): its growing data flushed, then every flushed
    /// segment of a shard merged into one by the data node's leased tasks;
    /// returns the segments merged.
    async fn compact(&self, table: TableRef) -> Result<usize>;
    /// Builds one index a table's sealed segments lack (its growing data
    /// flushed first), committed before it answers: a caller that waits
    /// for an index (`CREATE INDEX`) drives the build step by step and
    /// reports progress between steps; a crash keeps every finished step.
    async fn build_index_step(&self, table: TableRef) -> Result<IndexBuildStep>;
    /// Starts a maintenance pass (flushes, index builds, compaction) now
    /// instead of at its next tick (`CREATE INDEX CONCURRENTLY`).
    async fn request_maintenance(&self) -> Result<()>;
}
