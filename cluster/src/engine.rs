//! [`Engine`]: the standalone wiring of the four roles in one process — the
//! coordinator (catalog, TSO), a streaming node (WAL, growing segments), a
//! data node (flush, compaction) and a query node (sealed segments) — over
//! the embedded meta store, local object storage and local WAL. Recovery is
//! in `engine/recovery.rs`, flush, compaction and index builds in
//! `engine/maintenance.rs`.

mod maintenance;
mod recovery;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use arrow::array::RecordBatch;
use object_store::ObjectStoreExt;
use parking_lot::RwLock;
use quiver_common::config::{QuiverConfig, WalSync};
use quiver_common::schema::{ColumnDef, TableSchema};
use quiver_exec::catalog::CatalogSource;
use quiver_exec::pk::PkValue;
use quiver_exec::source::TableSource;
use quiver_storage::{
    local_object_store, LocalWal, MetaBatch, MetaStore, ObjectStoreRef, RedbMetaStore, SyncPolicy,
    Wal, WalOptions,
};
use tokio::sync::Notify;

use crate::coordinator::{
    decode, encode, keys, next_table_id, IdAllocator, SegmentMeta, TableMeta, Tso,
};
use crate::data_node::DataNode;
use crate::error::{EngineError, Result};
use crate::indexes::IndexMeta;
use crate::roles::{DataRole, LocalQueryNode, QueryRole, StreamingRole};
use crate::streaming::{StreamingNode, WriteMode, WriteOutcome};
use crate::table::{SealPolicy, TableRuntime};

/// The default database (Postgres schema `public`, Milvus database `default`).
pub const DEFAULT_DATABASE: &str = "public";

#[derive(Debug, Default)]
struct CatalogState {
    databases: BTreeSet<String>,
    tables: BTreeMap<u64, Arc<TableRuntime>>,
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
    streaming: Arc<dyn StreamingRole>,
    data_node: Arc<dyn DataRole>,
    query_node: Arc<dyn QueryRole>,
    tso: Arc<Tso>,
    catalog: RwLock<CatalogState>,
    wake: Notify,
    stopping: AtomicBool,
    /// Serializes maintenance passes (flush, compaction, WAL truncation).
    maintenance_lock: tokio::sync::Mutex<()>,
    /// Bumped by every change of databases, tables or columns; plans cached
    /// by the access layer are valid for one version.
    catalog_version: AtomicU64,
    /// The WAL replay start last persisted (`keys::WAL_REPLAY_FROM`).
    replay_from: AtomicU64,
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
    pub async fn open(config: QuiverConfig) -> Result<Arc<Self>> {
        let dir = config.data_dir.clone();
        // Created 0700 if missing (the server refuses an existing one that
        // group or others may use before it opens the engine).
        quiver_storage::create_private_dir_all(&dir).map_err(quiver_storage::StorageError::from)?;
        let meta: Arc<dyn MetaStore> = Arc::new(RedbMetaStore::open(&dir.join("meta.redb"))?);
        let objects = local_object_store(&dir.join("objects"))?;
        let wal: Arc<dyn Wal> = Arc::new(LocalWal::open(WalOptions {
            dir: dir.join("wal"),
            segment_bytes: config.wal.segment_bytes,
            sync: match config.wal.sync {
                WalSync::Always => SyncPolicy::Always,
                WalSync::Never => SyncPolicy::Never,
            },
        })?);
        let tso = Arc::new(Tso::open(meta.clone())?);
        let mut engine = Engine {
            data_node: Arc::new(DataNode {
                meta: meta.clone(),
                objects: objects.clone(),
            }),
            query_node: Arc::new(LocalQueryNode {
                objects: objects.clone(),
            }),
            streaming: Arc::new(StreamingNode::new(wal)),
            config,
            meta,
            objects,
            tso,
            catalog: RwLock::new(CatalogState::default()),
            wake: Notify::new(),
            stopping: AtomicBool::new(false),
            maintenance_lock: tokio::sync::Mutex::new(()),
            catalog_version: AtomicU64::new(1),
            replay_from: AtomicU64::new(0),
            recovery: RecoveryStats::default(),
        };
        engine.recover().await?;
        engine.checkpoint_after_recovery().await?;
        Ok(Arc::new(engine))
    }

    fn seal_policy(&self) -> SealPolicy {
        SealPolicy {
            rows: self.config.segment.seal_rows,
            bytes: self.config.segment.seal_bytes,
        }
    }

    fn runtime(&self, meta: TableMeta) -> Result<TableRuntime> {
        let autoid = IdAllocator::open(self.meta.clone(), keys::autoid(meta.id))?;
        Ok(TableRuntime::new(
            meta,
            self.tso.clone(),
            autoid,
            self.seal_policy(),
        ))
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

    /// A fresh timestamp (the read timestamp of a strong read).
    pub fn now(&self) -> Result<u64> {
        self.tso.next()
    }

    /// Databases (schemas).
    pub fn databases(&self) -> Vec<String> {
        self.catalog.read().databases.iter().cloned().collect()
    }

    /// Creates a database; `Ok(false)` when it existed and `if_not_exists`.
    pub fn create_database(&self, name: &str, if_not_exists: bool) -> Result<bool> {
        let _change = self.catalog_change();
        let mut state = self.catalog.write();
        if state.databases.contains(name) {
            return if if_not_exists {
                Ok(false)
            } else {
                Err(EngineError::DatabaseAlreadyExists(name.to_string()))
            };
        }
        self.meta.put(&keys::db(name), encode(&true))?;
        state.databases.insert(name.to_string());
        Ok(true)
    }

    /// Drops a database; with `cascade` its tables too.
    pub async fn drop_database(&self, name: &str, if_exists: bool, cascade: bool) -> Result<bool> {
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
            self.drop_table(name, &table, true).await?;
        }
        self.meta.delete(&keys::db(name))?;
        self.catalog.write().databases.remove(name);
        Ok(true)
    }

    /// Creates a table; `Ok(false)` when it existed and `if_not_exists`.
    pub fn create_table(
        &self,
        database: &str,
        name: &str,
        schema: TableSchema,
        if_not_exists: bool,
    ) -> Result<bool> {
        let _change = self.catalog_change();
        validate_schema(&schema)?;
        let mut state = self.catalog.write();
        if !state.databases.contains(database) {
            return Err(EngineError::DatabaseNotFound(database.to_string()));
        }
        let key = (database.to_string(), name.to_string());
        if state.by_name.contains_key(&key) {
            return if if_not_exists {
                Ok(false)
            } else {
                Err(EngineError::TableAlreadyExists {
                    database: database.to_string(),
                    table: name.to_string(),
                })
            };
        }
        let id = next_table_id(self.meta.as_ref())?;
        let meta = TableMeta {
            id,
            database: database.to_string(),
            name: name.to_string(),
            schema,
            inserts_persisted_lsn: 0,
            deletes_persisted_lsn: 0,
            next_segment_id: 1,
            indexes: Vec::new(),
            next_index_id: 1,
            options: BTreeMap::new(),
        };
        self.meta.put(&keys::table(id), encode(&meta))?;
        let runtime = self.runtime(meta)?;
        state.by_name.insert(key, id);
        state.tables.insert(id, Arc::new(runtime));
        Ok(true)
    }

    /// Drops a table and deletes its objects.
    pub async fn drop_table(&self, database: &str, name: &str, if_exists: bool) -> Result<bool> {
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
        let mut batch = MetaBatch::new()
            .delete(keys::table(id))
            .delete(keys::autoid(id));
        for (key, _) in self.meta.scan_prefix(&keys::segment_prefix(id))? {
            batch = batch.delete(key);
        }
        for (key, _) in self.meta.scan_prefix(&keys::deltalog_prefix(id))? {
            batch = batch.delete(key);
        }
        self.meta.apply(batch)?;
        quiver_storage::delete_prefix(self.objects.as_ref(), &format!("tables/{id}/")).await?;
        Ok(true)
    }

    /// Renames a table.
    pub fn rename_table(&self, database: &str, name: &str, new_name: &str) -> Result<()> {
        let _change = self.catalog_change();
        let mut state = self.catalog.write();
        let new_key = (database.to_string(), new_name.to_string());
        if state.by_name.contains_key(&new_key) {
            return Err(EngineError::TableAlreadyExists {
                database: database.to_string(),
                table: new_name.to_string(),
            });
        }
        let id = state
            .by_name
            .remove(&(database.to_string(), name.to_string()))
            .ok_or_else(|| EngineError::TableNotFound {
                database: database.to_string(),
                table: name.to_string(),
            })?;
        let table = state.tables.get(&id).cloned().expect("catalog consistent");
        let mut meta = table.meta.write();
        meta.name = new_name.to_string();
        self.meta.put(&keys::table(id), encode(&*meta))?;
        state.by_name.insert(new_key, id);
        Ok(())
    }

    /// The names of a database's tables, sorted.
    pub fn table_names(&self, database: &str) -> Vec<String> {
        let state = self.catalog.read();
        let mut names: Vec<String> = state
            .by_name
            .keys()
            .filter(|(db, _)| db == database)
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
    pub fn set_table_options(
        &self,
        database: &str,
        name: &str,
        changes: &[(String, Option<String>)],
    ) -> Result<()> {
        let _change = self.catalog_change();
        let table = self.table(database, name)?;
        let mut meta = table.meta.write();
        let mut changed = meta.clone();
        for (key, value) in changes {
            match value {
                Some(value) => changed.options.insert(key.clone(), value.clone()),
                None => changed.options.remove(key),
            };
        }
        self.meta.put(&keys::table(meta.id), encode(&changed))?;
        *meta = changed;
        Ok(())
    }

    /// Adds a nullable column.
    pub fn add_column(
        &self,
        database: &str,
        name: &str,
        column: ColumnDef,
        if_not_exists: bool,
    ) -> Result<bool> {
        let _change = self.catalog_change();
        let table = self.table(database, name)?;
        let _guard = table.write_lock.lock();
        let mut meta = table.meta.write();
        if meta.schema.column_index(&column.name).is_some() {
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
        meta.schema.columns.push(column);
        self.meta.put(&keys::table(meta.id), encode(&*meta))?;
        Ok(true)
    }

    /// A table by name.
    pub fn table(&self, database: &str, name: &str) -> Result<Arc<TableRuntime>> {
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

    /// Inserts or upserts rows (blocking until durable).
    pub fn write(
        &self,
        database: &str,
        name: &str,
        batch: RecordBatch,
        mode: WriteMode,
    ) -> Result<WriteOutcome> {
        if self.stopping.load(Ordering::Relaxed) {
            return Err(EngineError::ShuttingDown);
        }
        let table = self.table(database, name)?;
        let outcome = self.streaming.write(&table, batch, mode)?;
        if outcome.sealed {
            self.wake.notify_one();
        }
        Ok(outcome)
    }

    /// Deletes rows by primary key (blocking until durable); returns rows deleted.
    pub fn delete(&self, database: &str, name: &str, keys: Vec<PkValue>) -> Result<usize> {
        if self.stopping.load(Ordering::Relaxed) {
            return Err(EngineError::ShuttingDown);
        }
        let table = self.table(database, name)?;
        self.streaming.delete(&table, keys)
    }

    fn tables(&self) -> Vec<Arc<TableRuntime>> {
        self.catalog.read().tables.values().cloned().collect()
    }

    /// Graceful shutdown: stop accepting writes, flush everything, close the WAL.
    pub async fn shutdown(&self) -> Result<()> {
        self.stopping.store(true, Ordering::Relaxed);
        self.wake.notify_one();
        let result = self.flush_all().await;
        self.streaming.wal().close()?;
        result
    }

    /// Row counts of a table: (visible rows now, sealed segments, growing rows).
    pub fn table_stats(&self, database: &str, name: &str) -> Result<(usize, usize, usize)> {
        let table = self.table(database, name)?;
        let data = table.data.read();
        Ok((data.live.len(), data.sealed.len(), data.growing.rows))
    }
}

/// A `CREATE INDEX` as the engine takes it.
#[derive(Debug, Clone)]
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

/// One index as the `quiver_catalog.indexes` view shows it.
#[derive(Debug, Clone, PartialEq)]
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
    pub fn create_index(
        &self,
        database: &str,
        table_name: &str,
        definition: IndexDefinition,
        if_not_exists: bool,
    ) -> Result<Option<String>> {
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
                let base = format!("{table_name}_{}_idx", definition.column);
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
            let _guard = table.write_lock.lock();
            let mut meta = table.meta.write();
            let index = IndexMeta {
                id: meta.next_index_id.max(1),
                name: name.clone(),
                column: definition.column.clone(),
                kind: definition.kind.to_ascii_lowercase(),
                metric: definition.metric.clone(),
                params: definition.params.clone(),
            };
            index.validate(&meta.schema).map_err(|e| match e {
                EngineError::ColumnNotFound { column, .. } => EngineError::ColumnNotFound {
                    table: table_name.to_string(),
                    column,
                },
                other => other,
            })?;
            meta.next_index_id = index.id + 1;
            meta.indexes.push(index);
            self.meta.put(&keys::table(meta.id), encode(&*meta))?;
        }
        {
            let _guard = table.write_lock.lock();
            table.seal_now();
        }
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
        self.data_node.flush_table(&table).await?;
        let total = crate::data_node::missing_indexes(&table).len().min(limit);
        let mut done = 0;
        while done < total && !self.stopping.load(Ordering::Relaxed) {
            let step = self.data_node.build_indexes(&table, 1, &|_, _| {}).await?;
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
            let mut data = table.data.write();
            let mut meta = table.meta.write();
            let Some(position) = meta.indexes.iter().position(|ix| ix.name == name) else {
                return Err(EngineError::IndexNotFound(name.to_string()));
            };
            let index_id = meta.indexes.remove(position).id;
            let mut batch = MetaBatch::new().put(keys::table(meta.id), encode(&*meta));
            for (key, value) in self.meta.scan_prefix(&keys::segment_prefix(meta.id))? {
                let mut seg: SegmentMeta = decode(&key, &value)?;
                if seg.indexes.iter().any(|ix| ix.index_id == index_id) {
                    paths.extend(
                        seg.indexes
                            .iter()
                            .filter(|ix| ix.index_id == index_id)
                            .map(|ix| ix.path.clone()),
                    );
                    seg.indexes.retain(|ix| ix.index_id != index_id);
                    batch = batch.put(key, encode(&seg));
                }
            }
            self.meta.apply(batch)?;
            for segment in data.sealed.iter_mut() {
                segment.indexes.retain(|ix| ix.index_id != index_id);
            }
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
    pub fn index_statuses(&self) -> Vec<IndexStatus> {
        let mut out: Vec<IndexStatus> = self
            .tables()
            .iter()
            .flat_map(|table| Self::indexes_of(table))
            .collect();
        out.sort_by(|a, b| (&a.database, &a.table, &a.name).cmp(&(&b.database, &b.table, &b.name)));
        out
    }

    /// The indexes of one table, with their build progress, by name.
    pub fn table_index_statuses(&self, database: &str, name: &str) -> Result<Vec<IndexStatus>> {
        let table = self.table(database, name)?;
        let mut out = Self::indexes_of(&table);
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn indexes_of(table: &TableRuntime) -> Vec<IndexStatus> {
        let mut out = Vec::new();
        let data = table.data.read();
        let meta = table.meta.read();
        let rows_total = data.sealed.iter().map(|s| s.rows).sum::<usize>() + data.growing.rows;
        let segments_total = data.sealed.iter().filter(|s| s.rows > 0).count();
        for ix in &meta.indexes {
            let indexed: Vec<usize> = data
                .sealed
                .iter()
                .filter(|s| s.indexes.iter().any(|l| l.index_id == ix.id))
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
        out
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
            .filter(|(db, _)| db == schema)
            .map(|(_, t)| t.clone())
            .collect();
        names.sort();
        names
    }

    fn table(&self, schema: &str, name: &str) -> Option<Arc<dyn TableSource>> {
        Engine::table(self, schema, name)
            .ok()
            .map(|t| t as Arc<dyn TableSource>)
    }
}
