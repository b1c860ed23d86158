//! Memory accounting of query execution.
//!
//! * [`ServerMemory`] — the server-wide budget (`memory.server_limit_bytes`)
//!   every running statement draws from.
//! * [`QueryMemoryPool`] — the DataFusion [`MemoryPool`] of one session: a
//!   limit on what the session's running statement holds
//!   (`memory.query_limit_bytes`, lowered per session with `SET
//!   quiver.query_memory_limit`), each byte also taken from the server
//!   budget. A session runs one statement at a time, so the session's pool
//!   is its statement's pool.
//!
//! DataFusion's operators (sorts, joins, aggregates) reserve through the
//! pool themselves; Quiver's operators and buffers reserve with
//! [`reserve`] in bulk (per segment, batch or statement, never per row).
//! Past a limit, `try_grow` fails with DataFusion's `ResourcesExhausted`
//! (which lets DataFusion's spilling operators spill), carrying
//! PostgreSQL's detail text and a hint naming the limit to raise
//! ([`out_of_memory_parts`] splits them again).
//!
//! Convention: an operator accounts for what it holds while it builds its
//! output; a batch handed downstream is the consumer's to account for if
//! it keeps it (so no batch is counted twice).

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use datafusion::common::{DataFusionError, Result};
use datafusion::execution::memory_pool::{
    MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation,
};

/// Separates the detail from the hint in an out-of-memory message.
const HINT_MARK: &str = "\nHINT: ";

/// The budget all running statements of the server share.
#[derive(Debug)]
pub struct ServerMemory {
    limit: usize,
    reserved: AtomicUsize,
}

impl ServerMemory {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit,
            reserved: AtomicUsize::new(0),
        })
    }

    /// The budget in bytes.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes held by all running statements.
    pub fn reserved(&self) -> usize {
        self.reserved.load(Ordering::Relaxed)
    }

    /// Takes `bytes` if they fit; otherwise returns what was held.
    fn try_take(&self, bytes: usize) -> std::result::Result<(), usize> {
        self.reserved
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|n| *n <= self.limit)
            })
            .map(|_| ())
    }

    fn take(&self, bytes: usize) {
        self.reserved.fetch_add(bytes, Ordering::AcqRel);
    }

    fn give_back(&self, bytes: usize) {
        self.reserved.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// The memory pool of one session (one running statement at a time).
#[derive(Debug)]
pub struct QueryMemoryPool {
    server: Arc<ServerMemory>,
    /// The session's current limit (at most `max_limit`).
    limit: AtomicUsize,
    /// `memory.query_limit_bytes`: the most a session may set.
    max_limit: usize,
    reserved: AtomicUsize,
}

/// A session limit outside what the server allows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{requested} bytes is outside the valid range for parameter \"quiver.query_memory_limit\" ({min} .. {max}, the server's memory.query_limit_bytes)")]
pub struct LimitOutOfRange {
    pub requested: usize,
    pub min: usize,
    pub max: usize,
}

impl QueryMemoryPool {
    /// A pool limited to `limit` bytes, drawing from `server`.
    pub fn new(server: Arc<ServerMemory>, limit: usize) -> Arc<Self> {
        let limit = limit.min(server.limit());
        Arc::new(Self {
            server,
            limit: AtomicUsize::new(limit),
            max_limit: limit,
            reserved: AtomicUsize::new(0),
        })
    }

    /// The session's current limit in bytes.
    pub fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    /// The most the session may set (`memory.query_limit_bytes`).
    pub fn max_limit(&self) -> usize {
        self.max_limit
    }

    /// Sets the session's limit (`SET quiver.query_memory_limit`): at least
    /// 64 KiB, at most the server's per-statement limit.
    pub fn set_limit(&self, bytes: usize) -> std::result::Result<(), LimitOutOfRange> {
        let min = quiver_common::config::MIN_MEMORY_LIMIT.min(self.max_limit);
        if bytes < min || bytes > self.max_limit {
            return Err(LimitOutOfRange {
                requested: bytes,
                min,
                max: self.max_limit,
            });
        }
        self.limit.store(bytes, Ordering::Relaxed);
        Ok(())
    }
}

impl fmt::Display for QueryMemoryPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "QueryMemoryPool(reserved: {}, limit: {}, server: {}/{})",
            self.reserved(),
            self.limit(),
            self.server.reserved(),
            self.server.limit()
        )
    }
}

impl MemoryPool for QueryMemoryPool {
    fn name(&self) -> &str {
        "quiver"
    }

    fn grow(&self, _reservation: &MemoryReservation, additional: usize) {
        self.reserved.fetch_add(additional, Ordering::AcqRel);
        self.server.take(additional);
    }

    fn shrink(&self, _reservation: &MemoryReservation, shrink: usize) {
        self.reserved.fetch_sub(shrink, Ordering::AcqRel);
        self.server.give_back(shrink);
    }

    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> Result<()> {
        let limit = self.limit();
        let consumer = reservation.consumer().name();
        self.reserved
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(additional).filter(|n| *n <= limit)
            })
            .map_err(|used| {
                out_of_memory(
                    additional,
                    consumer,
                    &format!(
                        "The statement holds {used} bytes of its limit of {limit} bytes. \
                         Lower its memory use, or raise the limit with SET \
                         quiver.query_memory_limit (up to {}, the server's \
                         memory.query_limit_bytes) or in the server configuration.",
                        self.max_limit
                    ),
                )
            })?;
        if let Err(used) = self.server.try_take(additional) {
            self.reserved.fetch_sub(additional, Ordering::AcqRel);
            return Err(out_of_memory(
                additional,
                consumer,
                &format!(
                    "All running statements hold {used} bytes of the server's limit of {} \
                     bytes. Retry when fewer statements run, or raise \
                     memory.server_limit_bytes in the server configuration.",
                    self.server.limit()
                ),
            ));
        }
        Ok(())
    }

    fn reserved(&self) -> usize {
        self.reserved.load(Ordering::Relaxed)
    }

    fn memory_limit(&self) -> MemoryLimit {
        MemoryLimit::Finite(self.limit())
    }
}

/// The error of a reservation that does not fit: PostgreSQL's detail
/// (`Failed on request of size N in memory context "X".`) and a hint.
fn out_of_memory(size: usize, context: &str, hint: &str) -> DataFusionError {
    DataFusionError::ResourcesExhausted(format!(
        "Failed on request of size {size} in memory context \"{context}\".{HINT_MARK}{hint}"
    ))
}

/// Splits the message of a `ResourcesExhausted` error into its detail and
/// hint (a message from elsewhere has no hint).
pub fn out_of_memory_parts(message: &str) -> (String, Option<String>) {
    match message.split_once(HINT_MARK) {
        Some((detail, hint)) => (detail.to_string(), Some(hint.to_string())),
        None => (message.to_string(), None),
    }
}

/// A reservation of `consumer` against `pool`, for memory DataFusion's
/// own operators do not see (sized with `try_grow`/`try_resize`).
pub fn reserve(pool: &Arc<dyn MemoryPool>, consumer: &str) -> MemoryReservation {
    MemoryConsumer::new(consumer).register(pool)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(server: &Arc<ServerMemory>, limit: usize) -> Arc<dyn MemoryPool> {
        QueryMemoryPool::new(server.clone(), limit)
    }

    fn message(err: DataFusionError) -> String {
        match err {
            DataFusionError::ResourcesExhausted(m) => m,
            other => panic!("not an out-of-memory error: {other}"),
        }
    }

    #[test]
    fn a_statement_over_its_limit_fails_and_others_keep_their_share() {
        let server = ServerMemory::new(10 << 20);
        let a = pool(&server, 4 << 20);
        let b = pool(&server, 4 << 20);
        let ra = reserve(&a, "sort");
        let rb = reserve(&b, "search");
        ra.try_grow(3 << 20).unwrap();
        let err = message(ra.try_grow(2 << 20).unwrap_err());
        let (detail, hint) = out_of_memory_parts(&err);
        assert_eq!(
            detail,
            "Failed on request of size 2097152 in memory context \"sort\"."
        );
        assert!(hint.unwrap().contains("quiver.query_memory_limit"));
        assert_eq!(a.reserved(), 3 << 20, "a failed request takes nothing");
        rb.try_grow(4 << 20).unwrap();
        assert_eq!(server.reserved(), 7 << 20);
        drop(ra);
        drop(rb);
        assert_eq!(server.reserved(), 0, "dropped reservations give back");
    }

    #[test]
    fn the_server_budget_bounds_the_sum() {
        let server = ServerMemory::new(5 << 20);
        let a = pool(&server, 4 << 20);
        let b = pool(&server, 4 << 20);
        let ra = reserve(&a, "a");
        let rb = reserve(&b, "b");
        ra.try_grow(3 << 20).unwrap();
        let err = message(rb.try_grow(3 << 20).unwrap_err());
        let (_, hint) = out_of_memory_parts(&err);
        assert!(hint.unwrap().contains("memory.server_limit_bytes"));
        assert_eq!(b.reserved(), 0, "the session's share is rolled back");
        rb.try_grow(2 << 20).unwrap();
        assert_eq!(server.reserved(), 5 << 20);
    }

    #[test]
    fn a_session_lowers_its_limit_but_never_past_the_server_value() {
        let server = ServerMemory::new(1 << 30);
        let pool = QueryMemoryPool::new(server, 8 << 20);
        pool.set_limit(1 << 20).unwrap();
        assert_eq!(pool.limit(), 1 << 20);
        let dyn_pool: Arc<dyn MemoryPool> = pool.clone();
        let r = reserve(&dyn_pool, "x");
        assert!(r.try_grow(2 << 20).is_err());
        pool.set_limit(8 << 20).unwrap();
        r.try_grow(2 << 20).unwrap();
        assert!(pool.set_limit(9 << 20).is_err());
        assert!(pool.set_limit(1000).is_err());
    }

    #[test]
    fn the_query_limit_never_exceeds_the_server_budget() {
        let server = ServerMemory::new(2 << 20);
        let pool = QueryMemoryPool::new(server, 8 << 20);
        assert_eq!(pool.limit(), 2 << 20);
        assert_eq!(pool.max_limit(), 2 << 20);
    }
}
