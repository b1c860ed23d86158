//! [`Engine`]: the standalone wiring of the four roles in one process — the
//! coordinator (catalog, TSO), a streaming node (WAL, growing segments,
//! seal and flush), a data node (index builds and compaction as leased
//! tasks) and a query node (sealed segments) — over
//! the meta store, object storage and WAL the configuration selects
//! (`[meta]`, `[objects]`, `[wal]`; `local` by default: the embedded meta
//! store, local object storage and local WAL). Recovery is in
//! `engine/recovery.rs`; the maintenance pass (flush, compaction and index
//! tasks) in `engine/maintenance.rs`, `engine/compaction_tasks.rs` and
//! `engine/index_tasks.rs`.
//!
//! The meta store is async: catalog changes (`create_table`, `add_column`,
//! ...) are async functions. They hold `ddl_lock` (catalog-wide names) and
//! the table's `records` lock across their meta-store writes, never a
//! synchronous lock, and update the in-memory catalog only once the write
//! is durable.
//!
//! The coordinator's catalog holds each table's record
//! ([`CatalogTable`]); the streaming node and the query node hold the
//! table's data in registries of their own, keyed by the table id, and are
//! told of a table through their APIs ([`StreamingRole::open_table`],
//! [`Query::load_segments`], ...). No role holds a reference into
//! another's state.

mod blocks;
mod compaction_tasks;
mod coordinator_api;
mod index_tasks;
mod maintenance;
mod recovery;
mod streaming_api;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crate::api::coordinator::{
    client_table_name, is_pending_name, pending_table_name, ExtensionOutcome, PendingChange,
    PendingKind,
};
use arrow::array::RecordBatch;
use object_store::ObjectStoreExt;
use parking_lot::RwLock;
use quiver_common::config::QuiverConfig;
use quiver_common::limits::MAX_SHARDS;
use quiver_common::schema::{ColumnDef, ColumnType, TableSchema};
use quiver_exec::catalog::CatalogSource;
use quiver_exec::pk::PkValue;
use quiver_exec::table_source::TableSource;
use quiver_storage::{MetaBatch, MetaStore, ObjectStoreRef, Wal};

use crate::api::streaming::{OpenTable, StreamingRole, WriteMode, WriteOutcome};
use crate::catalog_table::{recorded_checkpoints, streaming_definition, CatalogTable};
use tokio::sync::Notify;

use crate::api::data::DataNodeTasks;
use crate::api::query::{DeleteSubscriber, Query};
use crate::api::reads::TableReads;
use crate::api::wire::WireTableReads;
pub use crate::api::{IndexDefinition, IndexStatus};
use crate::coordinator::{
    apply_in_chunks, decode, encode, keys, next_table_id, SegmentMeta, TableMeta, Tso,
};
use crate::data_node::DataNode;
use crate::error::{EngineError, Result};
use crate::indexes::IndexMeta;
use crate::query_node::QueryNode;
use crate::streaming::StreamingNode;
use crate::table::SealPolicy;
use crate::table_view::TableView;
use crate::task_leases::TaskLeases;
use quiver_exec::source::TableSnapshot;

/// The default database (Postgres schema `public`, Milvus database `default`).
pub const DEFAULT_DATABASE: &str = "public";

#[derive(Debug, Default)]
struct CatalogState {
    databases: BTreeSet<String>,
    /// (database, extension) installed.
    extensions: BTreeSet<(String, String)>,
    tables: BTreeMap<u64, Arc<CatalogTable>>,
    by_name: HashMap<(String, String), u64>,
}

/// Bumps the catalog version when dropped (see [`Engine::catalog_change`]).
struct CatalogChange<'a>(&'a AtomicU64);

impl Drop for CatalogChange<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::AcqRel);
    }
}

/// Counters of a recovery, for logs (the `recovered` line) and tests.
#[derive(Debug, Default, Clone)]
pub struct RecoveryStats {
    pub tables: usize,
    pub segments_loaded: usize,
    /// Segment indexes loaded from object storage (never rebuilt at startup).
    pub indexes_loaded: usize,
    /// The LSN the WAL was read from (the replay start persisted by the
    /// last checkpoint before the stop or crash; 1 when there was none).
    pub wal_replay_from: u64,
    /// WAL records read and applied (from `wal_replay_from` on).
    pub wal_records_replayed: usize,
    pub orphan_objects_removed: usize,
    /// Dropped tables whose cleanup a crash had cut short, finished.
    pub dropped_tables_cleaned: usize,
    /// Transaction blocks a crash left with pending catalog changes, ended
    /// (committed or aborted by their WAL entry).
    pub pending_blocks_ended: usize,
    /// Growing segments rebuilt by the replay and sealed by the checkpoint
    /// right after recovery.
    pub segments_sealed: usize,
    /// Segments flushed by that checkpoint.
    pub segments_flushed: usize,
}

/// A running standalone engine.
pub struct Engine {
    config: QuiverConfig,
    meta: Arc<dyn MetaStore>,
    objects: ObjectStoreRef,
    /// The streaming node's API, as the coordinator drives it.
    streaming: Arc<dyn StreamingRole>,
    /// The same streaming node in process, for inspection only (tests,
    /// [`Engine::inspect_snapshot`]); nothing of the coordinator's work or
    /// the read path goes through it.
    streaming_node: Arc<StreamingNode>,
    /// The data node's task API (index builds), behind encoded messages
    /// with `cluster.serialize_seams`.
    data_tasks: Arc<dyn DataNodeTasks>,
    /// Leases of the data-node tasks in flight.
    task_leases: TaskLeases,
    /// Distinguishes this process's task outputs from a previous one's.
    task_nonce: u64,
    /// The query node in process, for inspection only (as
    /// `streaming_node`).
    query_node: Arc<QueryNode>,
    /// The same query node's API (segments loaded, released, indexes
    /// attached).
    query: Arc<dyn Query>,
    /// The read sides of the streaming node and the query node.
    streaming_reads: Arc<dyn TableReads>,
    query_reads: Arc<dyn TableReads>,
    tso: Arc<Tso>,
    catalog: RwLock<CatalogState>,
    wake: Notify,
    stopping: AtomicBool,
    /// Serializes maintenance passes (flush, compaction, WAL truncation).
    maintenance_lock: tokio::sync::Mutex<()>,
    /// Serializes catalog changes that check and claim names (databases,
    /// tables, indexes) across their meta-store writes.
    ddl_lock: tokio::sync::Mutex<()>,
    /// Bumped by every change of databases, tables or columns; plans cached
    /// by the access layer are valid for one version.
    catalog_version: AtomicU64,
    pub recovery: RecoveryStats,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("data_dir", &self.config.data_dir)
            .finish()
    }
}

impl Engine {
    /// Opens (or creates) the data directory and recovers: catalog and flushed
    /// segments from meta + object storage, then the WAL tail; then
    /// checkpoints (flushes what the replay rebuilt and truncates the WAL).
    ///
    /// The meta store, object storage and WAL are the ones `[meta]`,
    /// `[objects]` and `[wal]` select (an unreachable etcd or S3 fails here
    /// with [`quiver_storage::StorageError::ServiceUnavailable`]).
    pub async fn open(config: QuiverConfig) -> Result<Arc<Self>> {
        // Created 0700 if missing (the server refuses an existing one that
        // group or others may use before it opens the engine).
        quiver_storage::create_private_dir_all(&config.data_dir)
            .map_err(quiver_storage::StorageError::from)?;
        let meta = quiver_storage::open_meta_store(&config).await?;
        let objects = quiver_storage::open_object_store(&config).await?;
        let wal = quiver_storage::open_wal(&config, &objects).await?;
        Self::open_with(config, meta, objects, wal).await
    }

    /// [`Engine::open`] over the given storage services.
    pub async fn open_with(
        config: QuiverConfig,
        meta: Arc<dyn MetaStore>,
        objects: ObjectStoreRef,
        wal: Arc<dyn Wal>,
    ) -> Result<Arc<Self>> {
        let tso = Arc::new(Tso::open(meta.clone()).await?);
        let data_node = Arc::new(DataNode {
            objects: objects.clone(),
        });
        let data_tasks: Arc<dyn DataNodeTasks> = if config.cluster.serialize_seams {
            Arc::new(crate::api::wire::WireDataNode::new(data_node))
        } else {
            data_node
        };
        let query_node = Arc::new(QueryNode::new(objects.clone()));
        let query: Arc<dyn Query> = if config.cluster.serialize_seams {
            Arc::new(crate::api::wire::WireQuery::new(query_node.clone()))
        } else {
            query_node.clone()
        };
        let delete_subscriber: Arc<dyn DeleteSubscriber> = if config.cluster.serialize_seams {
            Arc::new(crate::api::wire::WireDeleteSubscriber::new(
                query_node.clone(),
            ))
        } else {
            query_node.clone()
        };
        let streaming_node = Arc::new(StreamingNode::new(
            wal,
            tso.clone(),
            meta.clone(),
            objects.clone(),
            delete_subscriber,
            SealPolicy {
                rows: config.segment.seal_rows,
                bytes: config.segment.seal_bytes,
            },
        ));
        let (streaming_reads, query_reads): (Arc<dyn TableReads>, Arc<dyn TableReads>) =
            if config.cluster.serialize_seams {
                (
                    Arc::new(WireTableReads::new(streaming_node.clone())),
                    Arc::new(WireTableReads::new(query_node.clone())),
                )
            } else {
                (streaming_node.clone(), query_node.clone())
            };
        let mut engine = Engine {
            query,
            streaming_reads,
            query_reads,
            query_node,
            data_tasks,
            task_leases: TaskLeases::default(),
            task_nonce: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64),
            streaming: if config.cluster.serialize_seams {
                Arc::new(crate::api::wire_streaming::WireStreamingRole::new(
                    streaming_node.clone(),
                ))
            } else {
                streaming_node.clone()
            },
            streaming_node,
            config,
            meta,
            objects,
            tso,
            catalog: RwLock::new(CatalogState::default()),
            wake: Notify::new(),
            stopping: AtomicBool::new(false),
            maintenance_lock: tokio::sync::Mutex::new(()),
            ddl_lock: tokio::sync::Mutex::new(()),
            catalog_version: AtomicU64::new(1),
            recovery: RecoveryStats::default(),
        };
        engine.recover().await?;
        engine.checkpoint_after_recovery().await?;
        Ok(Arc::new(engine))
    }

    /// Opens a table on the streaming node: its definition, the
    /// checkpoints `recorded` elsewhere (see [`OpenTable::recorded`]) and
    /// its delete logs.
    async fn open_on_streaming(
        &self,
        meta: &TableMeta,
        recorded: crate::api::streaming::ShardCheckpoints,
        deltalogs: Vec<String>,
    ) -> Result<()> {
        self.streaming
            .open_table(OpenTable {
                table: streaming_definition(meta),
                recorded,
                deltalogs,
            })
            .await
    }

    /// The catalog version: changes whenever a database, table or column is
    /// created, dropped or renamed.
    pub fn catalog_version(&self) -> u64 {
        self.catalog_version.load(Ordering::Acquire)
    }

    /// Marks a catalog change: the version moves when the change starts and
    /// again when it ends, so no plan made during the change stays valid.
    fn catalog_change(&self) -> CatalogChange<'_> {
        self.catalog_version.fetch_add(1, Ordering::AcqRel);
        CatalogChange(&self.catalog_version)
    }

    /// The configuration the engine runs with.
    pub fn config(&self) -> &QuiverConfig {
        &self.config
    }

    /// A fresh timestamp.
    pub fn now(&self) -> Result<u64> {
        self.tso.next()
    }

    /// The read timestamp of a strong read: a fresh timestamp, or — while
    /// the oracle cannot hand one out (its meta store is down) — the newest
    /// one handed out, which every acknowledged write is at or below, so
    /// reads of loaded data go on through a meta-store outage.
    pub fn read_timestamp(&self) -> u64 {
        self.tso.read_timestamp()
    }

    /// Databases (schemas).
    pub fn databases(&self) -> Vec<String> {
        self.catalog.read().databases.iter().cloned().collect()
    }

    /// Creates a database; `Ok(false)` when it existed and `if_not_exists`.
    pub async fn create_database(&self, name: &str, if_not_exists: bool) -> Result<bool> {
        let _ddl = self.ddl_lock.lock().await;
        let _change = self.catalog_change();
        if self.catalog.read().databases.contains(name) {
            return if if_not_exists {
                Ok(false)
            } else {
                Err(EngineError::DatabaseAlreadyExists(name.to_string()))
            };
        }
        self.meta.put(&keys::db(name), encode(&true)).await?;
        self.catalog.write().databases.insert(name.to_string());
        Ok(true)
    }

    /// Drops a database; with `cascade` its tables too.
    pub async fn drop_database(&self, name: &str, if_exists: bool, cascade: bool) -> Result<bool> {
        let _ddl = self.ddl_lock.lock().await;
        let _change = self.catalog_change();
        let tables: Vec<String> = {
            let state = self.catalog.read();
            if !state.databases.contains(name) {
                return if if_exists {
                    Ok(false)
                } else {
                    Err(EngineError::DatabaseNotFound(name.to_string()))
                };
            }
            state
                .by_name
                .keys()
                .filter(|(db, _)| db == name)
                .map(|(_, t)| t.clone())
                .collect()
        };
        if name == DEFAULT_DATABASE {
            return Err(EngineError::InvalidDefinition(format!(
                "cannot drop the default schema \"{name}\""
            )));
        }
        if !tables.is_empty() && !cascade {
            return Err(EngineError::DatabaseNotEmpty(name.to_string()));
        }
        for table in tables {
            self.drop_table_locked(name, &table, true).await?;
        }
        let extensions: Vec<String> = self
            .catalog
            .read()
            .extensions
            .iter()
            .filter(|(db, _)| db == name)
            .map(|(_, ext)| ext.clone())
            .collect();
        for extension in &extensions {
            self.meta.delete(&keys::extension(name, extension)).await?;
        }
        self.meta.delete(&keys::db(name)).await?;
        let mut state = self.catalog.write();
        state.databases.remove(name);
        state.extensions.retain(|(db, _)| db != name);
        Ok(true)
    }

    /// Records extension `name` as installed in `database`.
    pub async fn create_extension(&self, database: &str, name: &str) -> Result<ExtensionOutcome> {
        let _ddl = self.ddl_lock.lock().await;
        let _change = self.catalog_change();
        let key = (database.to_string(), name.to_string());
        {
            let state = self.catalog.read();
            if !state.databases.contains(database) {
                return Err(EngineError::DatabaseNotFound(database.to_string()));
            }
            if state.extensions.contains(&key) {
                return Ok(ExtensionOutcome::AlreadyInstalled);
            }
        }
        self.meta
            .put(&keys::extension(database, name), encode(&true))
            .await?;
        self.catalog.write().extensions.insert(key);
        Ok(ExtensionOutcome::Created)
    }

    /// Removes extension `name` of `database`, unless a table of the
    /// database has a column of its types (`vector`).
    pub async fn drop_extension(&self, database: &str, name: &str) -> Result<ExtensionOutcome> {
        let _ddl = self.ddl_lock.lock().await;
        let _change = self.catalog_change();
        let key = (database.to_string(), name.to_string());
        let in_use: Vec<String> = {
            let state = self.catalog.read();
            if !state.extensions.contains(&key) {
                return Ok(ExtensionOutcome::NotInstalled);
            }
            let mut tables: Vec<String> = state
                .tables
                .values()
                .filter(|table| {
                    let meta = table.meta.read();
                    meta.database == database
                        && name == "vector"
                        && meta
                            .schema
                            .columns
                            .iter()
                            .any(|c| matches!(c.column_type, ColumnType::Vector { .. }))
                })
                .map(|table| table.meta.read().name.clone())
                .collect();
            tables.sort();
            tables
        };
        if !in_use.is_empty() {
            return Ok(ExtensionOutcome::InUse { tables: in_use });
        }
        self.meta.delete(&keys::extension(database, name)).await?;
        self.catalog.write().extensions.remove(&key);
        Ok(ExtensionOutcome::Dropped)
    }

    /// Creates a table with one shard; `Ok(false)` when it existed and
    /// `if_not_exists`.
    pub async fn create_table(
        &self,
        database: &str,
        name: &str,
        schema: TableSchema,
        if_not_exists: bool,
    ) -> Result<bool> {
        self.create_sharded_table(database, name, schema, 1, if_not_exists)
            .await
    }

    /// Creates a table with `shards` shards (1 to [`MAX_SHARDS`]); `Ok(false)`
    /// when it existed and `if_not_exists`.
    pub async fn create_sharded_table(
        &self,
        database: &str,
        name: &str,
        schema: TableSchema,
        shards: u32,
        if_not_exists: bool,
    ) -> Result<bool> {
        let _ddl = self.ddl_lock.lock().await;
        self.create_table_locked(database, name, schema, shards, if_not_exists, None)
            .await
    }

    /// Creates a table (pending for a transaction block when `pending` is
    /// set: see [`Engine::create_table_in_block`]), the caller holding
    /// `ddl_lock`.
    async fn create_table_locked(
        &self,
        database: &str,
        name: &str,
        schema: TableSchema,
        shards: u32,
        if_not_exists: bool,
        pending: Option<PendingChange>,
    ) -> Result<bool> {
        if shards == 0 || shards > MAX_SHARDS {
            return Err(EngineError::TooManyShards {
                shards,
                max: MAX_SHARDS,
            });
        }
        let _change = self.catalog_change();
        validate_schema(&schema)?;
        let stored_name = match pending {
            Some(p) => pending_table_name(name, p.block),
            None => name.to_string(),
        };
        {
            let state = self.catalog.read();
            if !state.databases.contains(database) {
                return Err(EngineError::DatabaseNotFound(database.to_string()));
            }
            // A name a block is creating is taken too (that block may
            // commit it); one this block is dropping is free for it.
            let dropped_by_this_block = |id: &u64| {
                pending.is_some_and(|p| {
                    state.tables.get(id).is_some_and(|t| {
                        t.meta.read().pending
                            == Some(PendingChange {
                                block: p.block,
                                kind: PendingKind::Drop,
                            })
                    })
                })
            };
            let taken = state.by_name.iter().any(|((db, n), id)| {
                db == database && client_table_name(n) == name && !dropped_by_this_block(id)
            });
            if taken {
                return if if_not_exists {
                    Ok(false)
                } else {
                    Err(EngineError::TableAlreadyExists {
                        database: database.to_string(),
                        table: name.to_string(),
                    })
                };
            }
        }
        let id = next_table_id(self.meta.as_ref()).await?;
        let mut meta = TableMeta::new(id, database, &stored_name, schema, shards);
        meta.pending = pending;
        self.meta.put(&keys::table(id), encode(&meta)).await?;
        self.open_on_streaming(&meta, recorded_checkpoints(&meta), Vec::new())
            .await?;
        let mut state = self.catalog.write();
        state
            .by_name
            .insert((database.to_string(), stored_name), id);
        state.tables.insert(id, Arc::new(CatalogTable::new(meta)));
        Ok(true)
    }

    /// Drops a table and deletes its objects.
    pub async fn drop_table(&self, database: &str, name: &str, if_exists: bool) -> Result<bool> {
        let _ddl = self.ddl_lock.lock().await;
        self.drop_table_locked(database, name, if_exists).await
    }

    /// [`Engine::drop_table`], the caller holding `ddl_lock`.
    async fn drop_table_locked(&self, database: &str, name: &str, if_exists: bool) -> Result<bool> {
        let _change = self.catalog_change();
        let table = {
            let mut state = self.catalog.write();
            let Some(id) = state
                .by_name
                .remove(&(database.to_string(), name.to_string()))
            else {
                return if if_exists {
                    Ok(false)
                } else {
                    Err(EngineError::TableNotFound {
                        database: database.to_string(),
                        table: name.to_string(),
                    })
                };
            };
            state.tables.remove(&id)
        };
        let Some(table) = table else { return Ok(false) };
        let id = table.id();
        // One table can have any number of segment and delete-log records,
        // more than one meta-store transaction may hold (128 writes), so
        // the drop is not one batch. It commits in one small transaction:
        // the table record goes, and a drop intent (`gc/table/<id>`) is
        // recorded; from then on the table does not exist (recovery loads
        // tables from `table/` records). The rest is idempotent cleanup:
        // the streaming node closes the table (no flush of it records
        // anything after that; its own keys go), the query node releases
        // it, then `finish_table_drop` deletes the segment and delete-log
        // records in chunks, the objects, then the intent. Recovery
        // finishes the cleanup of an intent a crash left behind.
        {
            let mut records = table.records.lock().await;
            // A hand-over or index build finishing late must not write the
            // table's records again.
            records.dropped = true;
            self.meta
                .apply(
                    MetaBatch::new()
                        .delete(keys::table(id))
                        .put(keys::dropped_table(id), encode(&true)),
                )
                .await?;
        }
        self.streaming.close_table(id).await?;
        self.query.release_table(id).await?;
        self.finish_table_drop(id).await?;
        Ok(true)
    }

    /// Deletes what a dropped table left (segment and delete-log records,
    /// objects), then its drop intent. Idempotent.
    pub(super) async fn finish_table_drop(&self, id: u64) -> Result<()> {
        for prefix in [keys::segment_prefix(id), keys::deltalog_prefix(id)] {
            let stale: Vec<MetaBatch> = self
                .meta
                .scan_prefix(&prefix)
                .await?
                .into_iter()
                .map(|kv| MetaBatch::new().delete(kv.key))
                .collect();
            apply_in_chunks(self.meta.as_ref(), stale).await?;
        }
        quiver_storage::delete_prefix(self.objects.as_ref(), &format!("tables/{id}/")).await?;
        self.meta.delete(&keys::dropped_table(id)).await?;
        Ok(())
    }

    /// Renames a table.
    pub async fn rename_table(&self, database: &str, name: &str, new_name: &str) -> Result<()> {
        let _ddl = self.ddl_lock.lock().await;
        let _change = self.catalog_change();
        let old_key = (database.to_string(), name.to_string());
        let new_key = (database.to_string(), new_name.to_string());
        let table = {
            let state = self.catalog.read();
            if state.by_name.contains_key(&new_key) {
                return Err(EngineError::TableAlreadyExists {
                    database: database.to_string(),
                    table: new_name.to_string(),
                });
            }
            let id = state
                .by_name
                .get(&old_key)
                .ok_or_else(|| EngineError::TableNotFound {
                    database: database.to_string(),
                    table: name.to_string(),
                })?;
            state.tables.get(id).cloned().expect("catalog consistent")
        };
        {
            let _records = table.lock_records().await?;
            let mut changed = table.meta.read().clone();
            changed.name = new_name.to_string();
            self.meta
                .put(&keys::table(changed.id), encode(&changed))
                .await?;
            self.streaming
                .update_table(streaming_definition(&changed))?;
            table.meta.write().name = changed.name;
        }
        let mut state = self.catalog.write();
        let id = state.by_name.remove(&old_key).expect("held by ddl_lock");
        state.by_name.insert(new_key, id);
        Ok(())
    }

    /// The names of a database's tables, sorted.
    pub fn table_names(&self, database: &str) -> Vec<String> {
        let state = self.catalog.read();
        let mut names: Vec<String> = state
            .by_name
            .keys()
            // A table a block is creating is the block's alone.
            .filter(|(db, name)| db == database && !is_pending_name(name))
            .map(|(_, name)| name.clone())
            .collect();
        names.sort();
        names
    }

    /// The options kept with a table.
    pub fn table_options(&self, database: &str, name: &str) -> Result<BTreeMap<String, String>> {
        Ok(self.table(database, name)?.meta.read().options.clone())
    }

    /// Sets (`Some`) or removes (`None`) options of a table, durably and
    /// all at once.
    pub async fn set_table_options(
        &self,
        database: &str,
        name: &str,
        changes: &[(String, Option<String>)],
    ) -> Result<()> {
        let _change = self.catalog_change();
        let table = self.table(database, name)?;
        let _records = table.lock_records().await?;
        let mut changed = table.meta.read().clone();
        for (key, value) in changes {
            match value {
                Some(value) => changed.options.insert(key.clone(), value.clone()),
                None => changed.options.remove(key),
            };
        }
        self.meta
            .put(&keys::table(changed.id), encode(&changed))
            .await?;
        table.meta.write().options = changed.options;
        Ok(())
    }

    /// Adds a nullable column.
    pub async fn add_column(
        &self,
        database: &str,
        name: &str,
        column: ColumnDef,
        if_not_exists: bool,
    ) -> Result<bool> {
        let _change = self.catalog_change();
        let table = self.table(database, name)?;
        let _records = table.lock_records().await?;
        let mut changed = table.meta.read().clone();
        if changed.schema.column_index(&column.name).is_some() {
            return if if_not_exists {
                Ok(false)
            } else {
                Err(EngineError::ColumnAlreadyExists {
                    table: name.to_string(),
                    column: column.name,
                })
            };
        }
        if !column.nullable && column.default_sql.is_none() {
            return Err(EngineError::InvalidDefinition(format!(
                "column \"{}\" contains null values; a new column must be nullable or have a default",
                column.name
            )));
        }
        let mut column = column;
        column.nullable = true;
        changed.schema.columns.push(column);
        self.meta
            .put(&keys::table(changed.id), encode(&changed))
            .await?;
        // The streaming node takes the new schema (between two writes)
        // before any plan can use it.
        self.streaming
            .update_table(streaming_definition(&changed))?;
        table.meta.write().schema = changed.schema;
        Ok(true)
    }

    /// The query node's API.
    pub fn query_node(&self) -> Arc<dyn Query> {
        self.query.clone()
    }

    /// A table by name, as execution reads it: its catalog record, its
    /// streaming node's part and the segments its query node serves.
    pub fn table_view(&self, database: &str, name: &str) -> Result<TableView> {
        let table = self.table(database, name)?;
        Ok(TableView::new(
            &table,
            self.streaming_reads.clone(),
            self.query_reads.clone(),
        ))
    }

    /// The streaming node in process (its checkpoints, for tests and
    /// inspection).
    pub fn streaming_node(&self) -> &Arc<StreamingNode> {
        &self.streaming_node
    }

    /// The whole of `database.name` at `read_ts` (now when `None`) in one
    /// snapshot, for tests and inspection: the segments the query node in
    /// this process serves, then the streaming node's not among them,
    /// under the streaming node's delete map (it holds every delete of the
    /// table). Searches and scans read [`TableView`]'s fragments instead.
    pub fn inspect_snapshot(
        &self,
        database: &str,
        name: &str,
        read_ts: Option<u64>,
    ) -> Result<TableSnapshot> {
        let table = self.table(database, name)?;
        let own = self.streaming_node.table(table.id())?.own_snapshot(read_ts);
        let served = self.query_node.snapshot(
            table.id(),
            &own.schema,
            &table.index_definitions(),
            own.read_ts,
        );
        let segments = served
            .segments
            .iter()
            .cloned()
            .chain(
                own.segments
                    .iter()
                    .filter(|s| !served.segments.iter().any(|x| x.id == s.id))
                    .cloned(),
            )
            .collect();
        Ok(TableSnapshot { segments, ..own })
    }

    /// A table in the catalog, by name.
    pub fn table(&self, database: &str, name: &str) -> Result<Arc<CatalogTable>> {
        let state = self.catalog.read();
        state
            .by_name
            .get(&(database.to_string(), name.to_string()))
            .and_then(|id| state.tables.get(id))
            .cloned()
            .ok_or_else(|| EngineError::TableNotFound {
                database: database.to_string(),
                table: name.to_string(),
            })
    }

    /// Inserts or upserts rows of `database.name`; returns once they are
    /// durable (see [`Engine::write_table`]).
    pub async fn write(
        &self,
        database: &str,
        name: &str,
        batch: RecordBatch,
        mode: WriteMode,
    ) -> Result<WriteOutcome> {
        let table = self.table(database, name)?;
        self.write_table(table.id(), batch, mode).await
    }

    /// Deletes rows of `database.name` by primary key (once durable);
    /// returns rows deleted.
    pub async fn delete(&self, database: &str, name: &str, keys: Vec<PkValue>) -> Result<usize> {
        let table = self.table(database, name)?;
        self.delete_table(&table, keys).await
    }

    fn tables(&self) -> Vec<Arc<CatalogTable>> {
        self.catalog.read().tables.values().cloned().collect()
    }

    /// Graceful shutdown: stop accepting writes, flush everything, close the WAL.
    pub async fn shutdown(&self) -> Result<()> {
        self.stopping.store(true, Ordering::Relaxed);
        self.wake.notify_one();
        let result = self.flush_all().await;
        self.streaming.close_wal()?;
        result
    }

    /// Row counts of a table: (visible rows now, sealed segments, growing rows).
    pub async fn table_stats(&self, database: &str, name: &str) -> Result<(usize, usize, usize)> {
        let table = self.table(database, name)?;
        // The streaming node's part first: a segment handed over meanwhile
        // is then in both, and counted once.
        let own = self.streaming.table_stats(table.id())?;
        let served = self.query.served_segments(table.id()).await?;
        let not_served = own
            .sealed
            .iter()
            .filter(|s| !served.iter().any(|x| x.id == s.segment))
            .count();
        let growing = own.growing.iter().map(|g| g.rows as usize).sum();
        Ok((own.live_rows as usize, not_served + served.len(), growing))
    }
}

impl Engine {
    /// Names of every relation (table or index) of a database.
    fn relation_taken(&self, database: &str, name: &str) -> bool {
        let state = self.catalog.read();
        state
            .by_name
            .contains_key(&(database.to_string(), name.to_string()))
            || state.tables.values().any(|t| {
                let meta = t.meta.read();
                meta.database == database && meta.indexes.iter().any(|ix| ix.name == name)
            })
    }

    /// Defines an index and seals the table's growing segment so existing
    /// rows get indexed. Returns the index name, or `None` when it existed
    /// and `if_not_exists`. Building happens in [`Engine::build_indexes`] or
    /// in the background maintenance.
    pub async fn create_index(
        &self,
        database: &str,
        table_name: &str,
        definition: IndexDefinition,
        if_not_exists: bool,
    ) -> Result<Option<String>> {
        let _ddl = self.ddl_lock.lock().await;
        let table = self.table(database, table_name)?;
        let name = match &definition.name {
            Some(name) => {
                if self.relation_taken(database, name) {
                    return if if_not_exists {
                        Ok(None)
                    } else {
                        Err(EngineError::IndexAlreadyExists(name.clone()))
                    };
                }
                name.clone()
            }
            None => {
                let base = format!(
                    "{}_{}_idx",
                    client_table_name(table_name),
                    definition.column
                );
                (0..)
                    .map(|i| {
                        if i == 0 {
                            base.clone()
                        } else {
                            format!("{base}{i}")
                        }
                    })
                    .find(|n| !self.relation_taken(database, n))
                    .expect("some name is free")
            }
        };
        {
            let _records = table.lock_records().await?;
            let mut changed = table.meta.read().clone();
            let index = IndexMeta {
                id: changed.next_index_id.max(1),
                name: name.clone(),
                column: definition.column.clone(),
                kind: definition.kind.to_ascii_lowercase(),
                metric: definition.metric.clone(),
                params: definition.params.clone(),
            };
            index.validate(&changed.schema).map_err(|e| match e {
                EngineError::ColumnNotFound { column, .. } => EngineError::ColumnNotFound {
                    table: table_name.to_string(),
                    column,
                },
                other => other,
            })?;
            changed.next_index_id = index.id + 1;
            changed.indexes.push(index);
            self.meta
                .put(&keys::table(changed.id), encode(&changed))
                .await?;
            let mut meta = table.meta.write();
            meta.next_index_id = changed.next_index_id;
            meta.indexes = changed.indexes;
        }
        self.streaming.seal(table.id())?;
        Ok(Some(name))
    }

    /// Flushes a table and builds its missing segment indexes now, calling
    /// `progress(done, total)` after each segment.
    pub async fn build_indexes(
        &self,
        database: &str,
        table_name: &str,
        progress: &(dyn Fn(usize, usize) + Send + Sync),
    ) -> Result<usize> {
        self.build_indexes_limited(database, table_name, usize::MAX, progress)
            .await
    }

    /// [`Engine::build_indexes`], stopping after `limit` (segment, index)
    /// pairs; returns how many were built. One segment at a time, each
    /// committed before the next starts, with a checkpoint between them: a
    /// crash keeps every finished segment's index (the next build resumes
    /// with the next segment), and the WAL does not grow while a long build
    /// runs.
    pub async fn build_indexes_limited(
        &self,
        database: &str,
        table_name: &str,
        limit: usize,
        progress: &(dyn Fn(usize, usize) + Send + Sync),
    ) -> Result<usize> {
        let table = self.table(database, table_name)?;
        let _pass = self.maintenance_lock.lock().await;
        self.flush_and_hand_over(&table).await?;
        let total = self.missing_index_count(&table).await?.min(limit);
        let mut done = 0;
        while done < total && !self.stopping.load(Ordering::Relaxed) {
            let step = self.build_next_index(&table).await?;
            if step == 0 {
                break;
            }
            done += step;
            progress(done, total);
            self.checkpoint().await?;
        }
        Ok(done)
    }

    /// Wakes the background maintenance (it builds missing indexes).
    pub fn wake_maintenance(&self) {
        self.wake.notify_one();
    }

    /// Drops an index by name; `Ok(false)` when absent and `if_exists`.
    pub async fn drop_index(&self, database: &str, name: &str, if_exists: bool) -> Result<bool> {
        let _ddl = self.ddl_lock.lock().await;
        let table = self.tables().into_iter().find(|t| {
            let meta = t.meta.read();
            meta.database == database && meta.indexes.iter().any(|ix| ix.name == name)
        });
        let Some(table) = table else {
            return if if_exists {
                Ok(false)
            } else {
                Err(EngineError::IndexNotFound(name.to_string()))
            };
        };
        let mut paths = Vec::new();
        {
            let _records = table.lock_records().await?;
            let mut changed = table.meta.read().clone();
            let Some(position) = changed.indexes.iter().position(|ix| ix.name == name) else {
                return Err(EngineError::IndexNotFound(name.to_string()));
            };
            let index_id = changed.indexes.remove(position).id;
            // Every segment record naming the index would have to change
            // too, more than one meta-store transaction may hold (128
            // writes). The drop commits with the table record alone: from
            // then on the index does not exist, and recovery ignores (and
            // its orphan sweep deletes) what a segment record still says
            // of it. Index ids are never reused (`next_index_id`).
            self.meta
                .put(&keys::table(changed.id), encode(&changed))
                .await?;
            table.meta.write().indexes = changed.indexes;
            self.query.detach_index(changed.id, index_id).await?;
            // Cleanup, in chunks: the segment records forget the index
            // (each rewrite conditional on the version read).
            let mut rewrites = Vec::new();
            for kv in self
                .meta
                .scan_prefix(&keys::segment_prefix(changed.id))
                .await?
            {
                let mut seg: SegmentMeta = decode(&kv.key, &kv.value)?;
                if seg.indexes.iter().any(|ix| ix.index_id == index_id) {
                    paths.extend(
                        seg.indexes
                            .iter()
                            .filter(|ix| ix.index_id == index_id)
                            .map(|ix| ix.path.clone()),
                    );
                    seg.indexes.retain(|ix| ix.index_id != index_id);
                    rewrites.push(
                        MetaBatch::new()
                            .if_version(kv.key.clone(), kv.version)
                            .put(kv.key, encode(&seg)),
                    );
                }
            }
            apply_in_chunks(self.meta.as_ref(), rewrites).await?;
        }
        for path in paths {
            let location = object_store::path::Path::from(path.as_str());
            if let Err(e) = self.objects.delete(&location).await {
                tracing::warn!("could not delete index object {path}: {e}");
            }
        }
        Ok(true)
    }

    /// Every index of every table, with its build progress.
    pub async fn index_statuses(&self) -> Result<Vec<IndexStatus>> {
        let mut out: Vec<IndexStatus> = Vec::new();
        for table in self.tables() {
            out.extend(self.indexes_of(&table).await?);
        }
        out.sort_by(|a, b| (&a.database, &a.table, &a.name).cmp(&(&b.database, &b.table, &b.name)));
        Ok(out)
    }

    /// The indexes of one table, with their build progress, by name.
    pub async fn table_index_statuses(
        &self,
        database: &str,
        name: &str,
    ) -> Result<Vec<IndexStatus>> {
        let table = self.table(database, name)?;
        let mut out = self.indexes_of(&table).await?;
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn indexes_of(&self, table: &CatalogTable) -> Result<Vec<IndexStatus>> {
        let mut out = Vec::new();
        let own = self.streaming.table_stats(table.id()).unwrap_or_default();
        let served = self.query.served_segments(table.id()).await?;
        let meta = table.meta.read();
        // Sealed segments still on the streaming node count as not indexed.
        let own_sealed = own
            .sealed
            .iter()
            .filter(|s| !served.iter().any(|x| x.id == s.segment));
        let sealed_rows = || {
            served
                .iter()
                .map(|s| s.rows)
                .chain(own_sealed.clone().map(|s| s.rows as usize))
        };
        let rows_total = sealed_rows().sum::<usize>()
            + own.growing.iter().map(|g| g.rows as usize).sum::<usize>();
        let segments_total = sealed_rows().filter(|rows| *rows > 0).count();
        for ix in &meta.indexes {
            let indexed: Vec<usize> = served
                .iter()
                .filter(|s| s.index_ids.contains(&ix.id))
                .map(|s| s.rows)
                .collect();
            let params: Vec<String> = ix.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push(IndexStatus {
                database: meta.database.clone(),
                table: meta.name.clone(),
                name: ix.name.clone(),
                column: ix.column.clone(),
                kind: ix.kind.clone(),
                metric: ix.metric.clone(),
                params: params.join(", "),
                state: if indexed.len() >= segments_total {
                    "ready"
                } else {
                    "building"
                }
                .to_string(),
                rows_indexed: indexed.iter().sum(),
                rows_total,
                segments_indexed: indexed.len(),
                segments_total,
            });
        }
        Ok(out)
    }
}

fn validate_schema(schema: &TableSchema) -> Result<()> {
    let pk = schema
        .columns
        .get(schema.primary_key)
        .ok_or_else(|| EngineError::InvalidDefinition("a primary key is required".into()))?;
    if !pk.column_type.can_be_primary_key() {
        return Err(EngineError::InvalidDefinition(format!(
            "primary key column \"{}\" must be BIGINT, INTEGER, SMALLINT, TEXT or VARCHAR, not {}",
            pk.name,
            pk.column_type.sql_name()
        )));
    }
    let mut names = HashSet::new();
    for c in &schema.columns {
        if !names.insert(c.name.as_str()) {
            return Err(EngineError::InvalidDefinition(format!(
                "column \"{}\" specified more than once",
                c.name
            )));
        }
        if let quiver_common::schema::ColumnType::Vector { dim } = c.column_type {
            if dim == 0 || dim as usize > quiver_common::limits::MAX_VECTOR_DIM {
                return Err(EngineError::InvalidDefinition(format!(
                    "dimensions for type vector must be between 1 and {}",
                    quiver_common::limits::MAX_VECTOR_DIM
                )));
            }
        }
    }
    Ok(())
}

impl CatalogSource for Engine {
    fn schema_names(&self) -> Vec<String> {
        self.databases()
    }

    fn table_names(&self, schema: &str) -> Vec<String> {
        let state = self.catalog.read();
        let mut names: Vec<String> = state
            .by_name
            .keys()
            .filter(|(db, name)| db == schema && !is_pending_name(name))
            .map(|(_, t)| t.clone())
            .collect();
        names.sort();
        names
    }

    fn table(&self, schema: &str, name: &str) -> Option<Arc<dyn TableSource>> {
        self.table_view(schema, name)
            .ok()
            .map(|t| Arc::new(t) as Arc<dyn TableSource>)
    }
}
