//! The coordinator role: the timestamp oracle and the catalog records kept
//! in the meta store. Exactly one is active (in standalone, the process).
//!
//! Meta store keys:
//! * `db/<name>` — a database (Postgres schema);
//! * `ext/<database>/<name>` — an extension installed in a database;
//! * `table/<id>` — a [`TableMeta`];
//! * `segment/<table id>/<segment id>` — a flushed [`SegmentMeta`];
//! * `deltalog/<table id>/<n>` — a persisted delete log object path;
//! * `tso/limit`, `seq/table_id`, `seq/autoid/<table id>` — allocators' high-water marks;
//! * `channel/<table id>` — the streaming node's checkpoints of a table's
//!   shards (`ShardCheckpoints`), written by its flushes;
//! * `wal/replay_from` — the first WAL LSN recovery reads (every earlier
//!   record is persisted in segments and delete logs);
//! * `gc/table/<id>` — a dropped table whose records and objects may still
//!   need deleting (recovery finishes the cleanup).
//!
//! Every batch written here fits one etcd transaction (at most 128 writes,
//! 1.5 MiB; the meta store refuses more). Changes that can touch any number
//! of records commit a small record first and leave the rest as idempotent
//! cleanup done in chunks ([`apply_in_chunks`]): dropping a table (a drop
//! intent), dropping an index (the table record); a compaction step merges
//! at most [`MAX_MERGE_SEGMENTS`](crate::data_node::MAX_MERGE_SEGMENTS)
//! segments, so its swap stays one atomic batch.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use quiver_common::schema::TableSchema;
use quiver_common::timestamp::{compose, decompose, now_ms, Timestamp, LOGICAL_MASK};
use quiver_storage::{MetaBatch, MetaStore, MAX_TXN_BYTES, MAX_TXN_OPS};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::error::{EngineError, Result};
use crate::indexes::{IndexMeta, SegmentIndexMeta};

/// A catalog change a transaction block made and has not ended: the
/// block's id (unique: a timestamp of the oracle) and what it did.
///
/// A table a block creates exists at once, under the name
/// [`pending_table_name`] (never a name a client can send, so only the
/// block names it: no other session sees it, no other block can create a
/// table of that name meanwhile); a table a block drops stays for every
/// other session. [`Coordinator::end_block`](crate::api::Coordinator::end_block) applies or discards every
/// change of the block in one meta-store transaction. The block's COMMIT
/// first appends its WAL entry marked with the block's id (with the
/// block's row changes, or none), then ends the block: recovery ends a
/// pending block as committed exactly when its marked WAL entry is
/// durable, so the catalog changes and the writes of a block are kept or
/// lost together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingChange {
    pub block: u64,
    pub kind: PendingKind,
}

/// What a block did to a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PendingKind {
    Create,
    Drop,
}

/// The name a table created by transaction block `block` has until the
/// block commits. It holds a NUL, which no client can send.
pub fn pending_table_name(name: &str, block: u64) -> String {
    format!("{name}\u{0}block{block}")
}

/// True for a name made by [`pending_table_name`].
pub fn is_pending_name(name: &str) -> bool {
    name.contains('\u{0}')
}

/// The name a client gave a table, without the pending suffix of
/// [`pending_table_name`].
pub fn client_table_name(name: &str) -> &str {
    name.split('\u{0}').next().unwrap_or(name)
}

/// The persisted definition and checkpoints of a table.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TableMeta {
    pub id: u64,
    pub database: String,
    pub name: String,
    pub schema: TableSchema,
    /// Insert records with an LSN up to this one are in flushed segments,
    /// in every shard (the smallest of [`TableMeta::shard_inserts_persisted_lsn`]).
    ///
    /// This field, `shard_inserts_persisted_lsn`, `deletes_persisted_lsn`
    /// and `next_segment_id` are what records written before streaming
    /// nodes kept their own checkpoints (`channel/<table id>`, see
    /// [`ShardCheckpoints`](crate::api::streaming::ShardCheckpoints)) hold;
    /// they are read only as the fallback of those
    /// ([`recorded_checkpoints`](crate::catalog_table::recorded_checkpoints))
    /// and no longer move.
    pub inserts_persisted_lsn: u64,
    /// Per shard: its rows of insert records with an LSN up to this one
    /// are in flushed segments. Empty in records written before tables had
    /// shards (every shard is then at `inserts_persisted_lsn`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shard_inserts_persisted_lsn: Vec<u64>,
    /// Number of shards (Milvus `shards_num`): a row lives in the shard its
    /// primary key hashes to ([`crate::shards::shard_of`]), each shard with
    /// its own growing segment. Records written before shards have one.
    #[serde(default = "one_shard")]
    pub shards: u32,
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
    /// A change of a transaction block that has not ended: the table is
    /// being created (named [`pending_table_name`])
    /// or dropped by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<PendingChange>,
}

fn one_shard() -> u32 {
    1
}

impl TableMeta {
    /// A new table's record: nothing persisted yet.
    pub fn new(id: u64, database: &str, name: &str, schema: TableSchema, shards: u32) -> Self {
        Self {
            id,
            database: database.to_string(),
            name: name.to_string(),
            schema,
            inserts_persisted_lsn: 0,
            shard_inserts_persisted_lsn: vec![0; shards.max(1) as usize],
            shards: shards.max(1),
            deletes_persisted_lsn: 0,
            next_segment_id: 1,
            indexes: Vec::new(),
            next_index_id: 1,
            options: BTreeMap::new(),
            pending: None,
        }
    }
}

/// A flushed (sealed) segment recorded in the meta store.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SegmentMeta {
    pub id: u64,
    /// The shard whose rows it holds (0 in records written before shards).
    #[serde(default)]
    pub shard: u32,
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
    /// An extension installed in a database.
    pub fn extension(database: &str, name: &str) -> String {
        format!("ext/{database}/{name}")
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
    /// A streaming node's checkpoints of a table's shards.
    pub fn channel(table: u64) -> String {
        format!("channel/{table:020}")
    }
    pub const TSO_LIMIT: &str = "tso/limit";
    pub const TABLE_ID: &str = "seq/table_id";
    pub const WAL_REPLAY_FROM: &str = "wal/replay_from";
    /// The drop intent of a table whose cleanup may be unfinished.
    pub fn dropped_table(table: u64) -> String {
        format!("{DROPPED_TABLE_PREFIX}{table:020}")
    }
    pub const DROPPED_TABLE_PREFIX: &str = "gc/table/";
}

/// Encodes a meta value.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("meta values serialize")
}

/// Decodes a meta value.
pub fn decode<T: for<'de> Deserialize<'de>>(key: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| EngineError::CorruptMeta(format!("{key}: {e}")))
}

async fn read_u64(meta: &dyn MetaStore, key: &str) -> Result<u64> {
    match meta.get_value(key).await? {
        Some(bytes) => decode(key, &bytes),
        None => Ok(0),
    }
}

/// The timestamp oracle as a streaming node uses it: a fresh timestamp
/// for each write (taken under the table's write lock, so one table's
/// writes are ordered), the newest one handed out (the safe timestamp when
/// no write is in flight), a strong read's timestamp, and the newest one a
/// WAL replay found (the oracle never hands out one at or below it). The
/// node holds this interface, not the oracle: in process it is the
/// coordinator's [`Tso`]; a streaming node of a cluster leases batches of
/// timestamps from the coordinator
/// ([`Coordinator::allocate_timestamps`](crate::api::Coordinator::allocate_timestamps))
/// behind it.
pub trait TimestampSource: Send + Sync + std::fmt::Debug {
    fn next(&self) -> Result<Timestamp>;
    fn last(&self) -> Timestamp;
    fn read_timestamp(&self) -> Timestamp;
    fn observe(&self, ts: Timestamp);
}

impl TimestampSource for Tso {
    fn next(&self) -> Result<Timestamp> {
        Tso::next(self)
    }

    fn last(&self) -> Timestamp {
        Tso::last(self)
    }

    fn read_timestamp(&self) -> Timestamp {
        Tso::read_timestamp(self)
    }

    fn observe(&self, ts: Timestamp) {
        Tso::observe(self, ts);
    }
}

/// How far ahead of the clock the persisted TSO limit is kept (ms).
const TSO_WINDOW_MS: u64 = 3_000;

/// The timestamp oracle: strictly increasing hybrid timestamps that never go
/// back across restarts (the persisted limit is always ahead of every
/// timestamp handed out).
///
/// [`Tso::next`] is synchronous and never touches the meta store: the limit
/// is **pre-reserved**. Opening persists a limit a window
/// (`TSO_WINDOW_MS`) ahead of the clock; once half the window is used, `next`
/// wakes a background task that persists a new limit a window ahead (an
/// async meta-store write on the runtime, never a blocking call from
/// `next`). If the clock overtakes the persisted limit before the refill
/// lands (an idle spell, a slow meta store), `next` keeps handing out
/// logical timestamps in the limit's last millisecond and, once those run
/// out or a refill failed (a meta store that is down), fails with
/// [`EngineError::TimestampUnavailable`] until a refill lands: writes fail
/// at most a window (3 s) plus one meta-store deadline after the meta store
/// stopped answering, and succeed again at its first answer.
#[derive(Debug)]
pub struct Tso {
    shared: Arc<TsoShared>,
    /// Wakes the refill task (shared with it, so it can wait without
    /// keeping `shared` alive).
    wake: Arc<Notify>,
}

#[derive(Debug)]
struct TsoShared {
    meta: Arc<dyn MetaStore>,
    state: Mutex<TsoState>,
    window_ms: u64,
}

#[derive(Debug)]
struct TsoState {
    last: Timestamp,
    /// Every timestamp handed out is below `compose(limit_ms, 0)`; this
    /// limit is persisted.
    limit_ms: u64,
    /// A refill is requested or running.
    refilling: bool,
    /// The last refill failed (the meta store did not take the new limit).
    refill_failed: bool,
}

impl Tso {
    /// Starts after everything handed out before the restart: persists a
    /// new limit before the first timestamp, and starts the refill task
    /// (needs a tokio runtime).
    pub async fn open(meta: Arc<dyn MetaStore>) -> Result<Self> {
        Self::open_with_window(meta, TSO_WINDOW_MS).await
    }

    /// [`Tso::open`] with the limit kept `window_ms` ahead (tests use short
    /// windows).
    pub async fn open_with_window(meta: Arc<dyn MetaStore>, window_ms: u64) -> Result<Self> {
        let persisted = read_u64(meta.as_ref(), keys::TSO_LIMIT).await?;
        let limit_ms = now_ms().max(persisted) + window_ms;
        meta.put(keys::TSO_LIMIT, encode(&limit_ms)).await?;
        let shared = Arc::new(TsoShared {
            meta,
            state: Mutex::new(TsoState {
                last: compose(persisted, 0),
                limit_ms,
                refilling: false,
                refill_failed: false,
            }),
            window_ms: window_ms.max(2),
        });
        let wake = Arc::new(Notify::new());
        tokio::spawn(refill_task(Arc::downgrade(&shared), wake.clone()));
        Ok(Self { shared, wake })
    }

    /// The newest timestamp handed out (before the first: a value below
    /// every timestamp to come).
    pub fn last(&self) -> Timestamp {
        self.shared.state.lock().last
    }

    /// A fresh timestamp to read at, or the newest one handed out while
    /// none can be (every acknowledged write is at or below it).
    pub fn read_timestamp(&self) -> Timestamp {
        let mut state = self.shared.state.lock();
        self.next_locked(&mut state).unwrap_or(state.last)
    }

    /// A new timestamp, larger than every earlier one. Never blocks on the
    /// meta store (see the type's documentation).
    pub fn next(&self) -> Result<Timestamp> {
        let mut state = self.shared.state.lock();
        self.next_locked(&mut state)
    }

    /// [`Tso::next`] under the held state lock.
    fn next_locked(&self, state: &mut TsoState) -> Result<Timestamp> {
        let (last_ms, last_logical) = decompose(state.last);
        let now = now_ms();
        let mut ts = if now > last_ms {
            compose(now, 0)
        } else if last_logical < LOGICAL_MASK {
            compose(last_ms, last_logical + 1)
        } else {
            compose(last_ms + 1, 0)
        };
        if decompose(ts).0 >= state.limit_ms {
            // The clock overtook the persisted limit: stay in its last
            // millisecond while logical steps are left and the refill may
            // still land (after an idle spell, or a slow meta store). Once a
            // refill failed the meta store is down: fail rather than carry
            // timestamps that stopped following the clock.
            let cap = state.limit_ms - 1;
            if state.refill_failed {
                self.request_refill(state);
                return Err(EngineError::TimestampUnavailable);
            }
            ts = if last_ms < cap {
                compose(cap, 0)
            } else if last_ms == cap && last_logical < LOGICAL_MASK {
                compose(cap, last_logical + 1)
            } else {
                self.request_refill(state);
                return Err(EngineError::TimestampUnavailable);
            };
        }
        if decompose(ts).0 + self.shared.window_ms / 2 >= state.limit_ms {
            self.request_refill(state);
        }
        state.last = ts;
        Ok(ts)
    }

    /// `count` (at least 1) consecutive timestamps, returned as the first:
    /// hybrid timestamps are integers, and the one after a millisecond's
    /// last logical value is the next millisecond's first, so
    /// `first .. first + count` are all valid and larger than every earlier
    /// one. Fails like [`Tso::next`] when the batch would pass the
    /// persisted limit.
    pub fn next_batch(&self, count: u32) -> Result<Timestamp> {
        let mut state = self.shared.state.lock();
        let first = self.next_locked(&mut state)?;
        let extra = u64::from(count.max(1) - 1);
        if extra == 0 {
            return Ok(first);
        }
        let last = first + extra;
        if decompose(last).0 >= state.limit_ms {
            self.request_refill(&mut state);
            return Err(EngineError::TimestampUnavailable);
        }
        if decompose(last).0 + self.shared.window_ms / 2 >= state.limit_ms {
            self.request_refill(&mut state);
        }
        state.last = last;
        Ok(first)
    }

    fn request_refill(&self, state: &mut TsoState) {
        if !state.refilling {
            state.refilling = true;
            self.wake.notify_one();
        }
    }

    /// Makes sure later timestamps exceed `ts` (used after WAL replay).
    pub fn observe(&self, ts: Timestamp) {
        let mut state = self.shared.state.lock();
        if ts > state.last {
            state.last = ts;
        }
        if decompose(ts).0 + self.shared.window_ms / 2 >= state.limit_ms {
            self.request_refill(&mut state);
        }
    }

    /// The persisted limit (milliseconds), for tests.
    pub fn limit_ms(&self) -> u64 {
        self.shared.state.lock().limit_ms
    }
}

impl Drop for Tso {
    fn drop(&mut self) {
        // The refill task holds only a weak reference: wake it so it sees
        // the oracle is gone and ends.
        self.wake.notify_one();
    }
}

/// Persists a new TSO limit a window ahead each time one is requested;
/// ends once the oracle is dropped (it wakes the task; the timeout makes
/// sure the task notices even if that wake-up was consumed by a refill).
async fn refill_task(shared: Weak<TsoShared>, wake: Arc<Notify>) {
    loop {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), wake.notified()).await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        if !shared.state.lock().refilling {
            continue;
        }
        let target = {
            let state = shared.state.lock();
            now_ms().max(decompose(state.last).0 + 1) + shared.window_ms
        };
        let result = shared.meta.put(keys::TSO_LIMIT, encode(&target)).await;
        let failed = {
            let mut state = shared.state.lock();
            state.refilling = false;
            state.refill_failed = result.is_err();
            match result {
                Ok(_) => {
                    state.limit_ms = state.limit_ms.max(target);
                    false
                }
                Err(e) => {
                    tracing::warn!("could not persist the TSO limit: {e}");
                    true
                }
            }
        };
        drop(shared);
        if failed {
            // Retried at the next request, not faster than this.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

/// Allocates ids from a persisted sequence in blocks. Async: a block is
/// persisted (awaiting the meta store) before ids from it are handed out;
/// callers allocate before taking any synchronous lock (the engine assigns
/// auto ids before the streaming role's write lock, as Milvus' proxy does).
#[derive(Debug)]
pub struct IdAllocator {
    meta: Arc<dyn MetaStore>,
    key: String,
    /// (next id, persisted limit); held across the persisting write.
    state: tokio::sync::Mutex<(u64, u64)>,
}

const ID_BLOCK: u64 = 10_000;

impl IdAllocator {
    /// An allocator persisted under `key`; ids start at 1.
    pub async fn open(meta: Arc<dyn MetaStore>, key: String) -> Result<Self> {
        let limit = read_u64(meta.as_ref(), &key).await?;
        Ok(Self {
            meta,
            key,
            state: tokio::sync::Mutex::new((limit + 1, limit)),
        })
    }

    /// Allocates `n` consecutive ids; returns the first.
    pub async fn allocate(&self, n: u64) -> Result<u64> {
        let mut state = self.state.lock().await;
        let (next, limit) = *state;
        if next + n - 1 > limit {
            let new_limit = next + n - 1 + ID_BLOCK;
            self.meta.put(&self.key, encode(&new_limit)).await?;
            state.1 = new_limit;
        }
        state.0 = next + n;
        Ok(next)
    }

    /// Ensures later ids exceed `value`.
    pub async fn observe(&self, value: u64) -> Result<()> {
        let mut state = self.state.lock().await;
        if value >= state.0 {
            state.0 = value + 1;
            if state.0 > state.1 {
                let new_limit = state.0 + ID_BLOCK;
                self.meta.put(&self.key, encode(&new_limit)).await?;
                state.1 = new_limit;
            }
        }
        Ok(())
    }
}

/// Applies `units` — small batches, each meant to be atomic — merged into
/// as few meta-store transactions as the store's limits allow
/// ([`MAX_TXN_OPS`] writes and conditions, [`MAX_TXN_BYTES`]). The units of
/// one transaction land together, but a crash can leave some transactions
/// applied and the rest not: for idempotent work only (cleanup after a
/// change already committed on its own).
pub async fn apply_in_chunks(
    meta: &dyn MetaStore,
    units: impl IntoIterator<Item = MetaBatch>,
) -> Result<()> {
    let mut chunk = MetaBatch::new();
    let mut chunk_bytes = 0;
    for unit in units {
        let unit_bytes = unit.size_bytes();
        let fits = chunk.op_count() + unit.op_count() <= MAX_TXN_OPS
            && chunk.conditions.len() + unit.conditions.len() <= MAX_TXN_OPS
            && chunk_bytes + unit_bytes <= MAX_TXN_BYTES;
        if !fits && !chunk.is_empty() {
            meta.apply(std::mem::take(&mut chunk)).await?;
            chunk_bytes = 0;
        }
        chunk.conditions.extend(unit.conditions);
        chunk.puts.extend(unit.puts);
        chunk.deletes.extend(unit.deletes);
        chunk_bytes += unit_bytes;
    }
    if !chunk.is_empty() {
        meta.apply(chunk).await?;
    }
    Ok(())
}

/// Allocates a new table id.
pub async fn next_table_id(meta: &dyn MetaStore) -> Result<u64> {
    let id = read_u64(meta, keys::TABLE_ID).await? + 1;
    meta.put(keys::TABLE_ID, encode(&id)).await?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use quiver_storage::MemoryMetaStore;

    use super::*;

    #[tokio::test]
    async fn tso_is_monotonic_across_restarts() {
        let meta: Arc<dyn MetaStore> = Arc::new(MemoryMetaStore::new());
        let tso = Tso::open(meta.clone()).await.unwrap();
        let mut last = 0;
        for _ in 0..10_000 {
            let ts = tso.next().unwrap();
            assert!(ts > last);
            last = ts;
        }
        let reopened = Tso::open(meta).await.unwrap();
        assert!(reopened.next().unwrap() > last);
    }

    async fn persisted_limit(meta: &dyn MetaStore) -> u64 {
        read_u64(meta, keys::TSO_LIMIT).await.unwrap()
    }

    /// The background refill keeps the persisted limit ahead of the clock;
    /// every timestamp stays below the limit persisted when it was handed
    /// out.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tso_refills_its_limit_in_the_background() {
        let meta: Arc<dyn MetaStore> = Arc::new(MemoryMetaStore::new());
        let tso = Tso::open_with_window(meta.clone(), 20).await.unwrap();
        let first_limit = persisted_limit(meta.as_ref()).await;
        let mut last = 0;
        let start = std::time::Instant::now();
        while start.elapsed() < std::time::Duration::from_millis(200) {
            let ts = tso.next().unwrap();
            assert!(ts > last);
            assert!(decompose(ts).0 < persisted_limit(meta.as_ref()).await);
            last = ts;
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        assert!(persisted_limit(meta.as_ref()).await > first_limit + 100);
        assert_eq!(tso.limit_ms(), persisted_limit(meta.as_ref()).await);
    }

    /// When the refill cannot run (here: the only runtime thread is busy),
    /// `next` never passes the persisted limit: it hands out logical steps
    /// of the limit's last millisecond, then fails until the refill lands.
    #[tokio::test(flavor = "current_thread")]
    async fn tso_never_passes_the_persisted_limit() {
        let meta: Arc<dyn MetaStore> = Arc::new(MemoryMetaStore::new());
        let tso = Tso::open_with_window(meta.clone(), 4).await.unwrap();
        let limit = persisted_limit(meta.as_ref()).await;
        let mut last = 0;
        let mut exhausted = false;
        let start = std::time::Instant::now();
        // Busy, without yielding: the refill task cannot run. Until the
        // limit's last millisecond is reached (a loaded machine can take
        // the thread away for longer than the window lasts).
        while decompose(last).0 + 1 < limit && start.elapsed() < std::time::Duration::from_secs(5) {
            match tso.next() {
                Ok(ts) => {
                    assert!(ts > last);
                    assert!(decompose(ts).0 < limit);
                    last = ts;
                }
                Err(EngineError::TimestampUnavailable) => {
                    exhausted = true;
                    break;
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert!(decompose(last).0 == limit - 1 || exhausted);
        // Yield: the refill lands and timestamps follow the clock again.
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        assert!(persisted_limit(meta.as_ref()).await > limit);
        let ts = tso.next().unwrap();
        assert!(ts > last);
    }

    /// A meta store whose writes fail while `down` is set, as an etcd
    /// that stopped answering.
    #[derive(Debug)]
    struct Outage {
        inner: MemoryMetaStore,
        down: std::sync::atomic::AtomicBool,
    }

    #[async_trait::async_trait]
    impl MetaStore for Outage {
        async fn get(
            &self,
            key: &str,
        ) -> quiver_storage::Result<Option<quiver_storage::Versioned>> {
            self.inner.get(key).await
        }
        async fn scan_prefix(
            &self,
            prefix: &str,
        ) -> quiver_storage::Result<Vec<quiver_storage::KeyValue>> {
            self.inner.scan_prefix(prefix).await
        }
        async fn txn(
            &self,
            batch: MetaBatch,
        ) -> quiver_storage::Result<quiver_storage::TxnOutcome> {
            if self.down.load(std::sync::atomic::Ordering::Relaxed) {
                return Err(quiver_storage::StorageError::ServiceUnavailable {
                    service: "etcd",
                    endpoints: "test".into(),
                    detail: "down".into(),
                });
            }
            self.inner.txn(batch).await
        }
        async fn revision(&self) -> quiver_storage::Result<u64> {
            self.inner.revision().await
        }
        async fn watch_prefix(
            &self,
            prefix: &str,
        ) -> quiver_storage::Result<quiver_storage::WatchStream> {
            self.inner.watch_prefix(prefix).await
        }
    }

    /// A meta store that is down: timestamps run out once the clock passes
    /// the persisted limit (not after 2^18 logical steps), and come back
    /// once it answers again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tso_fails_while_the_meta_store_is_down_and_resumes() {
        let meta = Arc::new(Outage {
            inner: MemoryMetaStore::new(),
            down: false.into(),
        });
        let tso = Tso::open_with_window(meta.clone(), 40).await.unwrap();
        meta.down.store(true, std::sync::atomic::Ordering::Relaxed);
        let down = std::time::Instant::now();
        let mut handed_out = 0;
        loop {
            match tso.next() {
                Ok(_) => handed_out += 1,
                Err(EngineError::TimestampUnavailable) => break,
                Err(e) => panic!("{e}"),
            }
            assert!(
                down.elapsed() < std::time::Duration::from_secs(2),
                "never failed"
            );
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        assert!(handed_out > 0, "the window covered the first requests");
        assert!(now_ms() >= persisted_limit(meta.as_ref()).await);
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        assert!(matches!(tso.next(), Err(EngineError::TimestampUnavailable)));
        meta.down.store(false, std::sync::atomic::Ordering::Relaxed);
        let back = std::time::Instant::now();
        while tso.next().is_err() {
            assert!(
                back.elapsed() < std::time::Duration::from_secs(2),
                "never resumed"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn ids_survive_restart() {
        let meta: Arc<dyn MetaStore> = Arc::new(MemoryMetaStore::new());
        let ids = IdAllocator::open(meta.clone(), "seq/x".into())
            .await
            .unwrap();
        let a = ids.allocate(5).await.unwrap();
        assert_eq!(a, 1);
        assert_eq!(ids.allocate(1).await.unwrap(), 6);
        let reopened = IdAllocator::open(meta, "seq/x".into()).await.unwrap();
        assert!(reopened.allocate(1).await.unwrap() > 6);
    }
}
