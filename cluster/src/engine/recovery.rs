//! Startup recovery of the [`Engine`]: the catalog and flushed segments (with
//! their indexes and delete logs) from the meta store and object storage, the
//! WAL tail from the persisted replay start, orphan objects removed, then a
//! checkpoint that persists what was replayed and truncates the WAL, so the
//! next start (after a crash as much as after a clean stop) replays little.

use std::collections::HashSet;
use std::sync::Arc;

use object_store::ObjectStoreExt;
use quiver_proto::WalRecord;
use quiver_storage::list_paths;

use super::{CatalogState, Engine, RecoveryStats, DEFAULT_DATABASE};
use crate::api::query::{LoadSegments, SegmentToLoad};
use crate::coordinator::{decode, encode, keys, SegmentMeta, TableMeta};
use crate::error::Result;

impl Engine {
    /// Loads the catalog, segments, indexes and delete logs, replays the WAL
    /// from the persisted replay start and removes orphan objects.
    pub(super) async fn recover(&mut self) -> Result<()> {
        let mut stats = RecoveryStats::default();
        let mut state = CatalogState::default();
        for kv in self.meta.scan_prefix("db/").await? {
            state.databases.insert(kv.key["db/".len()..].to_string());
        }
        if !state.databases.contains(DEFAULT_DATABASE) {
            self.meta
                .put(&keys::db(DEFAULT_DATABASE), encode(&true))
                .await?;
            state.databases.insert(DEFAULT_DATABASE.to_string());
        }
        let mut referenced: HashSet<String> = HashSet::new();
        for kv in self.meta.scan_prefix("table/").await? {
            let mut meta: TableMeta = decode(&kv.key, &kv.value)?;
            let index_ids: Vec<u64> = meta.indexes.iter().map(|d| d.id).collect();
            let mut load = Vec::new();
            for seg_kv in self
                .meta
                .scan_prefix(&keys::segment_prefix(meta.id))
                .await?
            {
                let seg: SegmentMeta = decode(&seg_kv.key, &seg_kv.value)?;
                referenced.insert(seg.path.clone());
                meta.next_segment_id = meta.next_segment_id.max(seg.id + 1);
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
            let runtime = self.runtime(meta.clone()).await?;
            // The streaming node's own copy of the persisted deletes (its
            // growing rows replayed from the WAL may be older than them).
            for path in &deltalogs {
                let entries = crate::query_node::read_deltalog(&self.objects, path).await?;
                let mut deletes = runtime.deletes.write();
                for (pk, ts) in entries {
                    deletes.insert(&pk, ts);
                }
            }
            state
                .by_name
                .insert((meta.database.clone(), meta.name.clone()), meta.id);
            state.tables.insert(meta.id, Arc::new(runtime));
            stats.tables += 1;
        }
        // Replay the WAL tail: records before the persisted replay start are
        // persisted everywhere (see `Engine::truncate_wal`), so they are not
        // even read.
        let from = self.read_replay_start().await?;
        self.replay_from
            .store(from, std::sync::atomic::Ordering::Release);
        stats.wal_replay_from = from;
        let mut max_ts = 0;
        let records = self
            .streaming
            .wal()
            .read_from(from)?
            .into_iter()
            .map(|(lsn, payload)| Ok((lsn, WalRecord::decode_all(&payload)?)))
            .collect::<Result<Vec<_>>>()?;
        for (lsn, record) in records
            .into_iter()
            .flat_map(|(lsn, records)| records.into_iter().map(move |r| (lsn, r)))
        {
            let Some(table) = state.tables.get(&record.table_id) else {
                continue;
            };
            let (persisted, dpl) = {
                let meta = table.meta.read();
                let persisted: Vec<u64> = (0..meta.shards.max(1))
                    .map(|shard| meta.shard_persisted_lsn(shard))
                    .collect();
                (persisted, meta.deletes_persisted_lsn)
            };
            // Deletes at or before the delete logs' checkpoint are in them.
            let deletes = record.deletes.as_ref().filter(|_| lsn > dpl);
            table.apply(
                lsn,
                record.ts,
                deletes,
                record.inserts.as_ref(),
                true,
                &|shard| lsn > persisted.get(shard as usize).copied().unwrap_or(0),
            )?;
            max_ts = max_ts.max(record.ts);
            stats.wal_records_replayed += 1;
        }
        self.tso.observe(max_ts);
        for table in state.tables.values() {
            let table_id = table.id();
            let served_keys = self.query.live_keys(table_id).await?;
            table.rebuild_live_keys(served_keys.as_ref())?;
        }
        // Finish the cleanup of tables whose drop committed but whose
        // records and objects a crash left behind (see `drop_table`).
        for kv in self.meta.scan_prefix(keys::DROPPED_TABLE_PREFIX).await? {
            let id: u64 = kv.key[keys::DROPPED_TABLE_PREFIX.len()..]
                .parse()
                .map_err(|e| crate::error::EngineError::CorruptMeta(format!("{}: {e}", kv.key)))?;
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
        self.recovery = stats;
        *self.catalog.write() = state;
        Ok(())
    }

    /// The first LSN recovery has to read (1 when none was persisted).
    async fn read_replay_start(&self) -> Result<u64> {
        Ok(match self.meta.get_value(keys::WAL_REPLAY_FROM).await? {
            Some(bytes) => decode::<u64>(keys::WAL_REPLAY_FROM, &bytes)?.max(1),
            None => 1,
        })
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
            let sealed_now = {
                let _guard = table.write_lock.lock();
                table.seal_now()
            };
            if sealed_now {
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
            wal_replay_from_next = self.replay_from.load(std::sync::atomic::Ordering::Acquire),
            "recovered"
        );
        Ok(())
    }
}
