//! Startup recovery of the [`Engine`]: the catalog and flushed segments (with
//! their indexes and delete logs, loaded by the query node) from the meta
//! store and object storage, every table opened on the streaming node,
//! which replays the WAL tail from its persisted replay start, orphan
//! objects removed, then a checkpoint that persists what was replayed and
//! truncates the WAL, so the next start (after a crash as much as after a
//! clean stop) replays little.

use std::collections::HashSet;
use std::sync::Arc;

use object_store::ObjectStoreExt;
use quiver_storage::list_paths;

use super::{CatalogState, Engine, RecoveryStats, DEFAULT_DATABASE};
use crate::api::query::{LoadSegments, SegmentToLoad};
use crate::catalog_table::{recorded_checkpoints, CatalogTable};
use crate::coordinator::{decode, encode, keys, SegmentMeta, TableMeta};
use crate::error::Result;

impl Engine {
    /// Loads the catalog, segments, indexes and delete logs, has the
    /// streaming node replay the WAL from its persisted replay start and
    /// removes orphan objects.
    pub(super) async fn recover(&mut self) -> Result<()> {
        let mut stats = RecoveryStats::default();
        let mut state = CatalogState::default();
        for kv in self.meta.scan_prefix("db/").await? {
            state.databases.insert(kv.key["db/".len()..].to_string());
        }
        for kv in self.meta.scan_prefix("ext/").await? {
            if let Some((database, name)) = kv.key["ext/".len()..].split_once('/') {
                state
                    .extensions
                    .insert((database.to_string(), name.to_string()));
            }
        }
        if !state.databases.contains(DEFAULT_DATABASE) {
            self.meta
                .put(&keys::db(DEFAULT_DATABASE), encode(&true))
                .await?;
            state.databases.insert(DEFAULT_DATABASE.to_string());
        }
        let mut referenced: HashSet<String> = HashSet::new();
        for kv in self.meta.scan_prefix("table/").await? {
            let meta: TableMeta = decode(&kv.key, &kv.value)?;
            let mut recorded = recorded_checkpoints(&meta);
            let index_ids: Vec<u64> = meta.indexes.iter().map(|d| d.id).collect();
            let mut load = Vec::new();
            for seg_kv in self
                .meta
                .scan_prefix(&keys::segment_prefix(meta.id))
                .await?
            {
                let seg: SegmentMeta = decode(&seg_kv.key, &seg_kv.value)?;
                referenced.insert(seg.path.clone());
                recorded.next_segment_id = recorded.next_segment_id.max(seg.id + 1);
                // An index dropped since is not loaded: its object is an
                // orphan now.
                referenced.extend(
                    seg.indexes
                        .iter()
                        .filter(|ix| index_ids.contains(&ix.index_id))
                        .map(|ix| ix.path.clone()),
                );
                load.push(SegmentToLoad {
                    record: seg,
                    rows: None,
                });
            }
            let mut deltalogs = Vec::new();
            for dl_kv in self
                .meta
                .scan_prefix(&keys::deltalog_prefix(meta.id))
                .await?
            {
                let path: String = decode(&dl_kv.key, &dl_kv.value)?;
                referenced.insert(path.clone());
                deltalogs.push(path);
            }
            let loaded = self
                .query
                .load_segments(LoadSegments {
                    table_id: meta.id,
                    schema: meta.schema.clone(),
                    index_ids,
                    load,
                    release: Vec::new(),
                    deltalogs: deltalogs.clone(),
                })
                .await?;
            stats.segments_loaded += loaded.segments;
            stats.indexes_loaded += loaded.indexes;
            self.open_on_streaming(&meta, recorded, deltalogs).await?;
            // A table a block is creating is found under its pending name.
            state
                .by_name
                .insert((meta.database.clone(), meta.name.clone()), meta.id);
            state
                .tables
                .insert(meta.id, Arc::new(CatalogTable::new(meta)));
            stats.tables += 1;
        }
        let replay = self.streaming.replay_wal().await?;
        stats.wal_replay_from = replay.from;
        stats.wal_records_replayed = replay.records;
        for &table_id in state.tables.keys() {
            let served_keys = self.query.live_keys(table_id).await?;
            self.streaming.rebuild_live_keys(table_id, served_keys)?;
        }
        // Finish the cleanup of tables whose drop committed but whose
        // records and objects a crash left behind (see `drop_table`).
        for kv in self.meta.scan_prefix(keys::DROPPED_TABLE_PREFIX).await? {
            let id: u64 = kv.key[keys::DROPPED_TABLE_PREFIX.len()..]
                .parse()
                .map_err(|e| crate::error::EngineError::CorruptMeta(format!("{}: {e}", kv.key)))?;
            self.streaming.close_table(id).await?;
            self.finish_table_drop(id).await?;
            stats.dropped_tables_cleaned += 1;
        }
        // Remove objects no meta record points at (a crash between writing
        // an object and recording it, e.g. an index build or a compaction
        // cut short).
        for path in list_paths(self.objects.as_ref(), "tables/").await? {
            if !referenced.contains(&path) {
                let location = object_store::path::Path::from(path.as_str());
                if self.objects.delete(&location).await.is_ok() {
                    stats.orphan_objects_removed += 1;
                }
            }
        }
        *self.catalog.write() = state;
        // Blocks a crash left with pending catalog changes: committed when
        // their marked WAL entry was replayed, else aborted (before the
        // checkpoint truncates the WAL).
        let committed: HashSet<u64> = replay.committed_blocks.iter().copied().collect();
        stats.pending_blocks_ended = self.end_pending_blocks(&committed).await?;
        self.recovery = stats;
        Ok(())
    }

    /// The checkpoint right after recovery: seals the growing segments the
    /// replay rebuilt, flushes them and the replayed deletes, and truncates
    /// the WAL (persisting the new replay start). Each flush is committed on
    /// its own, so a crash during the checkpoint keeps what was done; the
    /// WAL a crash loop replays stays bounded by what is written between
    /// two starts.
    pub(super) async fn checkpoint_after_recovery(&mut self) -> Result<()> {
        let mut sealed = 0;
        let mut flushed = 0;
        for table in self.tables() {
            if self.streaming.seal(table.id())? {
                sealed += 1;
            }
            flushed += self.flush_and_hand_over(&table).await?;
        }
        self.truncate_wal().await?;
        self.recovery.segments_sealed = sealed;
        self.recovery.segments_flushed = flushed;
        let stats = &self.recovery;
        tracing::info!(
            tables = stats.tables,
            segments_loaded = stats.segments_loaded,
            indexes_loaded = stats.indexes_loaded,
            wal_replay_from = stats.wal_replay_from,
            wal_records_replayed = stats.wal_records_replayed,
            orphan_objects_removed = stats.orphan_objects_removed,
            segments_sealed = stats.segments_sealed,
            segments_flushed = stats.segments_flushed,
            wal_replay_from_next = self.streaming_node.replay_from(),
            "recovered"
        );
        Ok(())
    }
}
