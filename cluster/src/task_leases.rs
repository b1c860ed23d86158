//! Leases of the tasks the coordinator hands to data nodes.
//!
//! A task (one `(table, segment, index)` build, or one compaction step of
//! a table's shard) is leased before it is sent: while its lease holds, no other node gets it; the result is
//! committed only if the lease it was issued under is still the task's and
//! has not expired when the result arrives, so a node that was presumed
//! dead (its lease expired and the task went to another node) can never
//! commit over the newer result. Leases live in the coordinator's memory:
//! after a restart the tasks are derived again from the catalog (the
//! segments still missing an index), and every old lease is gone with the
//! old process.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// What a task works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskKey {
    /// Building index `index` over segment `segment` of table `table`.
    IndexBuild {
        table: u64,
        segment: u64,
        index: u64,
    },
    /// A compaction step over segments of one shard of a table (one at a
    /// time per shard, so two steps never merge the same segment).
    Compaction { table: u64, shard: u32 },
}

/// How long an index build may run before its task can go to another node.
pub const INDEX_BUILD_LEASE: Duration = Duration::from_secs(30 * 60);

/// How long a compaction step (its merged segment's index builds included)
/// may run before its task can go to another node.
pub const COMPACTION_LEASE: Duration = Duration::from_secs(30 * 60);

#[derive(Debug, Clone, Copy)]
struct Lease {
    task_id: u64,
    expires: Instant,
}

/// The leases held, by task.
#[derive(Debug, Default)]
pub struct TaskLeases {
    state: Mutex<LeaseState>,
}

#[derive(Debug, Default)]
struct LeaseState {
    next_task_id: u64,
    held: HashMap<TaskKey, Lease>,
}

impl TaskLeases {
    /// Leases `key` for `duration`: the new task id, or `None` while
    /// another lease of it holds.
    pub fn lease(&self, key: TaskKey, duration: Duration) -> Option<u64> {
        let mut state = self.state.lock();
        let now = Instant::now();
        if state.held.get(&key).is_some_and(|l| l.expires > now) {
            return None;
        }
        state.next_task_id += 1;
        let task_id = state.next_task_id;
        state.held.insert(
            key,
            Lease {
                task_id,
                expires: now + duration,
            },
        );
        Some(task_id)
    }

    /// Whether `task_id` still holds the lease of `key` (issued for it and
    /// not expired): a result may be committed only then.
    pub fn holds(&self, key: TaskKey, task_id: u64) -> bool {
        self.state
            .lock()
            .held
            .get(&key)
            .is_some_and(|l| l.task_id == task_id && l.expires > Instant::now())
    }

    /// Ends `task_id`'s lease of `key` (done, failed or refused); a newer
    /// lease of the key is left alone.
    pub fn release(&self, key: TaskKey, task_id: u64) {
        let mut state = self.state.lock();
        if state.held.get(&key).is_some_and(|l| l.task_id == task_id) {
            state.held.remove(&key);
        }
    }

    /// Tasks whose lease holds now.
    #[cfg(test)]
    fn held(&self) -> usize {
        let now = Instant::now();
        self.state
            .lock()
            .held
            .values()
            .filter(|l| l.expires > now)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index_build(index: u64) -> TaskKey {
        TaskKey::IndexBuild {
            table: 1,
            segment: 2,
            index,
        }
    }

    #[test]
    fn a_task_is_leased_once_until_its_lease_ends() {
        let leases = TaskLeases::default();
        let key = index_build(3);
        let first = leases.lease(key, INDEX_BUILD_LEASE).unwrap();
        assert_eq!(leases.lease(key, INDEX_BUILD_LEASE), None, "held");
        assert!(leases.holds(key, first));
        assert!(leases.lease(index_build(4), INDEX_BUILD_LEASE).is_some());
        let compaction = TaskKey::Compaction { table: 1, shard: 0 };
        assert!(leases.lease(compaction, COMPACTION_LEASE).is_some());
        assert_eq!(leases.lease(compaction, COMPACTION_LEASE), None, "held");
        assert_eq!(leases.held(), 3);
        leases.release(key, first);
        assert!(!leases.holds(key, first));
        let second = leases.lease(key, INDEX_BUILD_LEASE).unwrap();
        assert_ne!(first, second);
    }

    /// A lease that expired can be given to another node; the first
    /// holder's late result no longer holds it, and its release leaves the
    /// new lease alone.
    #[test]
    fn an_expired_lease_goes_to_the_next_node() {
        let leases = TaskLeases::default();
        let key = index_build(3);
        let stale = leases.lease(key, Duration::ZERO).unwrap();
        assert!(!leases.holds(key, stale), "expired at once");
        let fresh = leases.lease(key, INDEX_BUILD_LEASE).unwrap();
        assert!(!leases.holds(key, stale));
        leases.release(key, stale);
        assert!(leases.holds(key, fresh), "the stale release did not end it");
    }
}
