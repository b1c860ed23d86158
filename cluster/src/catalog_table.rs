//! One table in the coordinator's catalog: its record ([`TableMeta`]:
//! definition, indexes, options) and the lock that serializes the writers
//! of its meta-store records. The table's data lives on its streaming node
//! and its query node, each in a registry of its own keyed by the table id.

use parking_lot::RwLock;
use quiver_common::schema::TableSchema;
use quiver_exec::source::IndexDescription;

use crate::api::streaming::{ShardCheckpoints, StreamingTable};
use crate::coordinator::TableMeta;
use crate::error::{EngineError, Result};

/// A table as the coordinator knows it.
#[derive(Debug)]
pub struct CatalogTable {
    pub meta: RwLock<TableMeta>,
    /// Serializes the coordinator's writers of this table's meta-store
    /// records (the table record, its segment records) across their async
    /// meta-store writes: each reads the in-memory state, writes the
    /// records, then updates the in-memory state, holding this lock
    /// throughout, so no record write is lost to a concurrent one. A
    /// hand-over of flushed segments to the query node and a compaction's
    /// swap both hold it, so they never interleave.
    pub records: tokio::sync::Mutex<Records>,
}

/// State guarded by [`CatalogTable::records`].
#[derive(Debug, Default)]
pub struct Records {
    /// The table was dropped: its records are gone and must not be written
    /// again (a hand-over or build finishing late skips its commit).
    pub dropped: bool,
}

impl CatalogTable {
    /// The table with this record.
    pub fn new(meta: TableMeta) -> Self {
        Self {
            meta: RwLock::new(meta),
            records: tokio::sync::Mutex::new(Records::default()),
        }
    }

    /// Locks [`CatalogTable::records`] for a catalog change; fails with
    /// [`EngineError::TableNotFound`] once the table is dropped.
    pub async fn lock_records(&self) -> Result<tokio::sync::MutexGuard<'_, Records>> {
        let records = self.records.lock().await;
        if records.dropped {
            let meta = self.meta.read();
            return Err(EngineError::TableNotFound {
                database: meta.database.clone(),
                table: meta.name.clone(),
            });
        }
        Ok(records)
    }

    /// The table id.
    pub fn id(&self) -> u64 {
        self.meta.read().id
    }

    /// The current schema.
    pub fn schema(&self) -> TableSchema {
        self.meta.read().schema.clone()
    }

    /// The number of shards.
    pub fn shards(&self) -> u32 {
        self.meta.read().shards.max(1)
    }

    /// What the streaming node keeps of the definition.
    pub fn streaming_definition(&self) -> StreamingTable {
        streaming_definition(&self.meta.read())
    }

    /// The table's index definitions as execution describes them, by index
    /// id (an index no longer fitting the schema is left out).
    pub fn index_definitions(&self) -> Vec<(u64, IndexDescription)> {
        let meta = self.meta.read();
        meta.indexes
            .iter()
            .filter_map(|ix| Some((ix.id, ix.describe(&meta.schema)?)))
            .collect()
    }

    /// The vector indexes the table defines, as execution sees them.
    pub fn vector_indexes(&self) -> Vec<IndexDescription> {
        self.index_definitions()
            .into_iter()
            .map(|(_, d)| d)
            .collect()
    }
}

/// What the streaming node keeps of a table's record.
pub fn streaming_definition(meta: &TableMeta) -> StreamingTable {
    StreamingTable {
        id: meta.id,
        database: meta.database.clone(),
        name: meta.name.clone(),
        schema: meta.schema.clone(),
        shards: meta.shards.max(1),
    }
}

/// The streaming checkpoints a table record holds (written before
/// streaming nodes kept their own; see [`TableMeta::inserts_persisted_lsn`]).
pub fn recorded_checkpoints(meta: &TableMeta) -> ShardCheckpoints {
    let shards = meta.shards.max(1) as usize;
    ShardCheckpoints {
        inserts_persisted_lsn: (0..shards)
            .map(|shard| {
                meta.shard_inserts_persisted_lsn
                    .get(shard)
                    .copied()
                    .unwrap_or(meta.inserts_persisted_lsn)
            })
            .collect(),
        deletes_persisted_lsn: meta.deletes_persisted_lsn,
        next_segment_id: meta.next_segment_id,
    }
}
