//! The coordinator role: the timestamp oracle and the catalog records kept
//! in the meta store. Exactly one is active (in standalone, the process).
//!
//! Meta store keys:
//! * `db/<name>` — a database (Postgres schema);
//! * `table/<id>` — a [`TableMeta`];
//! * `segment/<table id>/<segment id>` — a flushed [`SegmentMeta`];
//! * `deltalog/<table id>/<n>` — a persisted delete log object path;
//! * `tso/limit`, `seq/table_id`, `seq/autoid/<table id>` — allocators' high-water marks;
//! * `wal/replay_from` — the first WAL LSN recovery reads (every earlier
//!   record is persisted in segments and delete logs).

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;
use quiver_common::schema::TableSchema;
use quiver_common::timestamp::{compose, decompose, now_ms, Timestamp, LOGICAL_MASK};
use quiver_storage::MetaStore;
use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result};
use crate::indexes::{IndexMeta, SegmentIndexMeta};

/// The persisted definition and checkpoints of a table.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TableMeta {
    pub id: u64,
    pub database: String,
    pub name: String,
    pub schema: TableSchema,
    /// Insert records with an LSN up to this one are in flushed segments.
    pub inserts_persisted_lsn: u64,
    /// Delete records with an LSN up to this one are in delete logs.
    pub deletes_persisted_lsn: u64,
    /// Next segment id to hand out.
    pub next_segment_id: u64,
    /// Vector indexes defined on the table.
    #[serde(default)]
    pub indexes: Vec<IndexMeta>,
    /// Next index id to hand out.
    #[serde(default)]
    pub next_index_id: u64,
    /// Named options an access-layer front end keeps with the table (the
    /// Milvus door's aliases, for one); the engine only stores them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
}

/// A flushed (sealed) segment recorded in the meta store.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SegmentMeta {
    pub id: u64,
    pub path: String,
    pub rows: usize,
    pub first_lsn: u64,
    pub last_lsn: u64,
    /// Indexes built over this segment.
    #[serde(default)]
    pub indexes: Vec<SegmentIndexMeta>,
}

/// Key helpers.
pub mod keys {
    pub fn db(name: &str) -> String {
        format!("db/{name}")
    }
    pub fn table(id: u64) -> String {
        format!("table/{id:020}")
    }
    pub fn segment(table: u64, segment: u64) -> String {
        format!("segment/{table:020}/{segment:020}")
    }
    pub fn segment_prefix(table: u64) -> String {
        format!("segment/{table:020}/")
    }
    pub fn deltalog(table: u64, n: u64) -> String {
        format!("deltalog/{table:020}/{n:020}")
    }
    pub fn deltalog_prefix(table: u64) -> String {
        format!("deltalog/{table:020}/")
    }
    pub fn autoid(table: u64) -> String {
        format!("seq/autoid/{table:020}")
    }
    pub const TSO_LIMIT: &str = "tso/limit";
    pub const TABLE_ID: &str = "seq/table_id";
    pub const WAL_REPLAY_FROM: &str = "wal/replay_from";
}

/// Encodes a meta value.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("meta values serialize")
}

/// Decodes a meta value.
pub fn decode<T: for<'de> Deserialize<'de>>(key: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| EngineError::CorruptMeta(format!("{key}: {e}")))
}

fn read_u64(meta: &dyn MetaStore, key: &str) -> Result<u64> {
    match meta.get(key)? {
        Some(bytes) => decode(key, &bytes),
        None => Ok(0),
    }
}

/// How far ahead of the clock the persisted TSO limit is kept (ms).
const TSO_WINDOW_MS: u64 = 3_000;

/// The timestamp oracle: strictly increasing hybrid timestamps that never go
/// back across restarts (the persisted limit is always ahead of every
/// timestamp handed out).
#[derive(Debug)]
pub struct Tso {
    meta: Arc<dyn MetaStore>,
    state: Mutex<TsoState>,
}

#[derive(Debug)]
struct TsoState {
    last: Timestamp,
    limit_ms: u64,
}

impl Tso {
    /// Starts after everything handed out before the restart.
    pub fn open(meta: Arc<dyn MetaStore>) -> Result<Self> {
        let limit_ms = read_u64(meta.as_ref(), keys::TSO_LIMIT)?;
        Ok(Self {
            meta,
            state: Mutex::new(TsoState {
                last: compose(limit_ms, 0),
                limit_ms,
            }),
        })
    }

    /// A new timestamp, larger than every earlier one.
    pub fn next(&self) -> Result<Timestamp> {
        let mut state = self.state.lock();
        let (last_ms, last_logical) = decompose(state.last);
        let now = now_ms();
        let ts = if now > last_ms {
            compose(now, 0)
        } else if last_logical < LOGICAL_MASK {
            compose(last_ms, last_logical + 1)
        } else {
            compose(last_ms + 1, 0)
        };
        let (ts_ms, _) = decompose(ts);
        if ts_ms >= state.limit_ms {
            let limit = ts_ms + TSO_WINDOW_MS;
            self.meta.put(keys::TSO_LIMIT, encode(&limit))?;
            state.limit_ms = limit;
        }
        state.last = ts;
        Ok(ts)
    }

    /// Makes sure later timestamps exceed `ts` (used after WAL replay).
    pub fn observe(&self, ts: Timestamp) {
        let mut state = self.state.lock();
        if ts > state.last {
            state.last = ts;
        }
    }
}

/// Allocates ids from a persisted sequence in blocks.
#[derive(Debug)]
pub struct IdAllocator {
    meta: Arc<dyn MetaStore>,
    key: String,
    state: Mutex<(u64, u64)>,
}

const ID_BLOCK: u64 = 10_000;

impl IdAllocator {
    /// An allocator persisted under `key`; ids start at 1.
    pub fn open(meta: Arc<dyn MetaStore>, key: String) -> Result<Self> {
        let limit = read_u64(meta.as_ref(), &key)?;
        Ok(Self {
            meta,
            key,
            state: Mutex::new((limit + 1, limit)),
        })
    }

    /// Allocates `n` consecutive ids; returns the first.
    pub fn allocate(&self, n: u64) -> Result<u64> {
        let mut state = self.state.lock();
        let (next, limit) = *state;
        if next + n - 1 > limit {
            let new_limit = next + n - 1 + ID_BLOCK;
            self.meta.put(&self.key, encode(&new_limit))?;
            state.1 = new_limit;
        }
        state.0 = next + n;
        Ok(next)
    }

    /// Ensures later ids exceed `value`.
    pub fn observe(&self, value: u64) -> Result<()> {
        let mut state = self.state.lock();
        if value >= state.0 {
            state.0 = value + 1;
            if state.0 > state.1 {
                let new_limit = state.0 + ID_BLOCK;
                self.meta.put(&self.key, encode(&new_limit))?;
                state.1 = new_limit;
            }
        }
        Ok(())
    }
}

/// Allocates a new table id.
pub fn next_table_id(meta: &dyn MetaStore) -> Result<u64> {
    let id = read_u64(meta, keys::TABLE_ID)? + 1;
    meta.put(keys::TABLE_ID, encode(&id))?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use quiver_storage::MemoryMetaStore;

    use super::*;

    #[test]
    fn tso_is_monotonic_across_restarts() {
        let meta: Arc<dyn MetaStore> = Arc::new(MemoryMetaStore::new());
        let tso = Tso::open(meta.clone()).unwrap();
        let mut last = 0;
        for _ in 0..10_000 {
            let ts = tso.next().unwrap();
            assert!(ts > last);
            last = ts;
        }
        let reopened = Tso::open(meta).unwrap();
        assert!(reopened.next().unwrap() > last);
    }

    #[test]
    fn ids_survive_restart() {
        let meta: Arc<dyn MetaStore> = Arc::new(MemoryMetaStore::new());
        let ids = IdAllocator::open(meta.clone(), "seq/x".into()).unwrap();
        let a = ids.allocate(5).unwrap();
        assert_eq!(a, 1);
        assert_eq!(ids.allocate(1).unwrap(), 6);
        let reopened = IdAllocator::open(meta, "seq/x".into()).unwrap();
        assert!(reopened.allocate(1).unwrap() > 6);
    }
}
