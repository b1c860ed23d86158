//! Background and on-demand maintenance of the [`Engine`]: flush, compaction,
//! index builds and WAL truncation.
//!
//! A maintenance pass is a sequence of small steps, each committed to the
//! meta store as soon as it is done, so a crash loses at most the step in
//! flight and a restart never redoes finished work:
//!
//! 1. flush every sealed segment and the pending deletes, truncate the WAL
//!    (cheap, and it bounds the next replay) — repeated between the later
//!    steps, so the WAL stays short while long work runs;
//! 2. compaction, one bounded merge at a time (at most about twice
//!    `compaction_small_rows` rows, with the merged segment's indexes), each
//!    a leased data-node task (`compaction_tasks`), until no table has
//!    enough small segments;
//! 3. index builds, one (segment, index) at a time, each written to object
//!    storage and recorded in the segment's meta record before the next
//!    starts. They run after compaction so they do not index segments
//!    compaction is about to merge.
//!
//! All of it holds `maintenance_lock`, so compaction never runs while a
//! segment is being indexed. The first pass runs right after startup.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::Engine;
use crate::api::query::{LoadSegments, SegmentToLoad};
use crate::catalog_table::CatalogTable;
use crate::error::{EngineError, Result};

impl Engine {
    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    /// One maintenance pass (see the module documentation): flush and
    /// truncate the WAL, compact step by step, build missing indexes
    /// segment by segment.
    pub async fn maintain(&self) -> Result<()> {
        let _pass = self.maintenance_lock.lock().await;
        self.checkpoint().await?;
        let (min_segments, small_rows) = (
            self.config.segment.compaction_min_segments,
            self.config.segment.compaction_small_rows,
        );
        for table in self.tables() {
            while !self.stopping() {
                let ts = self.tso.next()?;
                let merged = self
                    .compact_step(&table, ts, min_segments, small_rows)
                    .await?;
                if merged == 0 {
                    break;
                }
                self.checkpoint().await?;
            }
        }
        for table in self.tables() {
            while !self.stopping() {
                let built = self.build_next_index(&table).await?;
                if built == 0 {
                    break;
                }
                self.checkpoint().await?;
            }
        }
        Ok(())
    }

    /// Flushes every table's sealed segments and deletes and truncates the
    /// WAL (the caller holds the maintenance lock).
    pub(super) async fn checkpoint(&self) -> Result<()> {
        for table in self.tables() {
            self.flush_and_hand_over(&table).await?;
        }
        self.truncate_wal().await
    }

    /// Flushes `table`'s sealed segments and deletes on its streaming node
    /// and hands the flushed segments over to its query node: the query
    /// node loads them, then the streaming node forgets them (a read in
    /// between keeps the query node's copy). Returns the segments flushed.
    /// The caller holds the maintenance lock (or runs recovery), so no two
    /// flushes of a table overlap.
    pub(super) async fn flush_and_hand_over(&self, table: &CatalogTable) -> Result<usize> {
        let flushed = match self.streaming.flush_table(table.id()).await {
            // Dropped meanwhile.
            Err(EngineError::TableIdNotFound(_)) => return Ok(0),
            other => other?,
        };
        if flushed.is_empty() {
            return Ok(0);
        }
        let ids: Vec<u64> = flushed.iter().map(|f| f.record.id).collect();
        // Under the records lock: a drop either comes first (nothing is
        // loaded) or waits and then releases what was.
        let records = table.records.lock().await;
        if records.dropped {
            return Ok(0);
        }
        let (table_id, schema, index_ids) = {
            let meta = table.meta.read();
            let index_ids = meta.indexes.iter().map(|ix| ix.id).collect();
            (meta.id, meta.schema.clone(), index_ids)
        };
        self.query
            .load_segments(LoadSegments {
                table_id,
                schema,
                index_ids,
                load: flushed
                    .into_iter()
                    .map(|f| SegmentToLoad {
                        record: f.record,
                        rows: f.rows,
                    })
                    .collect(),
                release: Vec::new(),
                deltalogs: Vec::new(),
            })
            .await?;
        self.streaming.forget_segments(table_id, &ids)?;
        drop(records);
        Ok(ids.len())
    }

    /// Seals every growing segment and flushes everything (Milvus `Flush`).
    pub async fn flush_all(&self) -> Result<()> {
        for table in self.tables() {
            match self.streaming.seal(table.id()) {
                // Dropped meanwhile.
                Err(EngineError::TableIdNotFound(_)) => {}
                other => {
                    other?;
                }
            }
        }
        let _pass = self.maintenance_lock.lock().await;
        self.checkpoint().await
    }

    /// Seals one table's growing segment and flushes its segments and
    /// deletes to object storage (Milvus `Flush` of a collection).
    pub async fn flush_table(&self, database: &str, name: &str) -> Result<()> {
        let table = self.table(database, name)?;
        self.flush_runtime(&table).await
    }

    /// [`Engine::flush_table`] of a table at hand.
    pub(super) async fn flush_runtime(&self, table: &CatalogTable) -> Result<()> {
        self.streaming.seal(table.id())?;
        let _pass = self.maintenance_lock.lock().await;
        self.flush_and_hand_over(table).await?;
        self.truncate_wal().await
    }

    /// Compacts one table now, regardless of thresholds (Milvus
    /// `ManualCompaction`): every flushed segment into one; returns the
    /// segments merged.
    pub async fn compact_table(&self, database: &str, name: &str) -> Result<usize> {
        let table = self.table(database, name)?;
        let _pass = self.maintenance_lock.lock().await;
        self.flush_and_hand_over(&table).await?;
        self.compact_fully(&table).await
    }

    /// Compacts every table now, regardless of thresholds (merging any two or more segments).
    pub async fn compact_all(&self) -> Result<usize> {
        let _pass = self.maintenance_lock.lock().await;
        let mut merged = 0;
        for table in self.tables() {
            merged += self.compact_fully(&table).await?;
        }
        Ok(merged)
    }

    /// Merges every flushed segment of `table` into one (the caller holds
    /// the maintenance lock); returns how many segments went into it. One
    /// step merges at most `MAX_MERGE_SEGMENTS` (its swap is one
    /// meta-store transaction), so more take several committed steps.
    async fn compact_fully(&self, table: &CatalogTable) -> Result<usize> {
        // Flushed segments per shard (a merge stays inside its shard).
        let flushed = || async {
            let mut per_shard = vec![0usize; table.shards() as usize];
            for segment in self.query.served_segments(table.id()).await? {
                if let Some(n) = per_shard.get_mut(segment.shard as usize) {
                    *n += 1;
                }
            }
            Result::Ok(per_shard)
        };
        let before = flushed().await?;
        let mut steps = 0;
        while !self.stopping() {
            let ts = self.tso.next()?;
            let merged = self.compact_step(table, ts, 2, usize::MAX).await?;
            if merged == 0 {
                break;
            }
            steps += 1;
        }
        // Every step's output is merged again by the next, so the segments
        // that went into a shard's last one are all those it had.
        if steps == 0 {
            return Ok(0);
        }
        let after = flushed().await?;
        Ok(before
            .iter()
            .zip(&after)
            .filter(|(b, a)| b > a)
            .map(|(b, a)| b - a + 1)
            .sum())
    }

    /// Has the streaming node truncate the WAL (what every table it
    /// carries has persisted).
    pub(super) async fn truncate_wal(&self) -> Result<()> {
        self.streaming.truncate_wal().await
    }

    /// Runs maintenance in the background until [`Engine::shutdown`]: a
    /// first pass at once (so work a crash interrupted resumes right after
    /// startup), then one every `maintenance_interval_ms` or when woken (a
    /// segment sealed, an index defined).
    pub fn spawn_maintenance(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let engine = self.clone();
        let period = Duration::from_millis(engine.config.segment.maintenance_interval_ms.max(10));
        tokio::spawn(async move {
            while !engine.stopping() {
                if let Err(e) = engine.maintain().await {
                    tracing::warn!("maintenance failed: {e}");
                }
                tokio::select! {
                    _ = tokio::time::sleep(period) => {}
                    _ = engine.wake.notified() => {}
                }
            }
        })
    }
}
