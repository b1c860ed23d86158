//! Where vector searches run, bounded to one search per core.
//!
//! Every search first takes permits from one process-wide semaphore holding
//! one permit per core ([`search_threads`]), so concurrent queries queue for
//! the cores instead of oversubscribing them. Then:
//! - a **small** search (at most one index search and little exact work, see
//!   `search::plan_search`) takes one permit and runs on the calling thread,
//!   which saves the two thread hand-offs a pool round trip costs (tens of
//!   microseconds each on a busy machine, as much as the search itself);
//! - a **large** search takes one permit per segment it searches in parallel
//!   (at most one per core) and runs on the search pool, a rayon pool of one
//!   thread per core, fanning its segments out over those threads while the
//!   async runtime's thread goes on serving other connections.

use std::future::Future;
use std::sync::OnceLock;

use datafusion::common::{DataFusionError, Result};
use tokio::sync::Semaphore;

static POOL: OnceLock<rayon::ThreadPool> = OnceLock::new();
static PERMITS: OnceLock<Semaphore> = OnceLock::new();

/// Number of worker threads and of search permits: the available
/// parallelism, overridable with the environment variable
/// `QUIVER_SEARCH_THREADS`.
pub fn search_threads() -> usize {
    std::env::var("QUIVER_SEARCH_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n: &usize| *n > 0)
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
}

/// The process-wide search pool.
pub fn search_pool() -> &'static rayon::ThreadPool {
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(search_threads())
            .thread_name(|i| format!("quiver-search-{i}"))
            .stack_size(quiver_common::limits::THREAD_STACK_BYTES)
            .build()
            .expect("search pool threads start")
    })
}

fn permits() -> &'static Semaphore {
    PERMITS.get_or_init(|| Semaphore::new(search_threads()))
}

/// Where a search runs (decided from its estimated work).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// On the calling thread, holding one permit.
    Inline,
    /// On the search pool, holding `workers` permits (clamped to 1..=cores).
    Pool { workers: usize },
}

/// Runs `work` where `placement` says, once the permits are free; a panic
/// in `work` becomes an error.
pub async fn run_search<T, F>(placement: Placement, work: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    let closed = |_| DataFusionError::Internal("the search permits were closed".into());
    let guarded = move || {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(work))
            .unwrap_or_else(|_| Err(DataFusionError::Internal("vector search panicked".into())))
    };
    match placement {
        Placement::Inline => {
            let _permit = permits().acquire().await.map_err(closed)?;
            guarded()
        }
        Placement::Pool { workers } => {
            let workers = workers.clamp(1, search_threads()) as u32;
            let permit = permits().acquire_many(workers).await.map_err(closed)?;
            pool_round_trip(move || {
                let result = guarded();
                drop(permit);
                result
            })
            .await
        }
    }
}

/// Runs `work` on the search pool and waits for it without blocking the
/// async runtime.
fn pool_round_trip<T, F>(work: F) -> impl Future<Output = Result<T>>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    search_pool().spawn(move || {
        let _ = tx.send(work());
    });
    async move {
        rx.await
            .map_err(|_| DataFusionError::Internal("search pool dropped a task".into()))?
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    fn thread_name() -> Result<String> {
        Ok(std::thread::current().name().unwrap_or("").to_string())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 8)]
    async fn large_searches_run_on_the_pool_small_ones_on_the_caller() {
        assert_eq!(search_pool().current_num_threads(), search_threads());
        let names = futures::future::join_all(
            (0..16).map(|_| run_search(Placement::Pool { workers: 8 }, thread_name)),
        )
        .await;
        for name in names {
            assert!(name.unwrap().starts_with("quiver-search-"));
        }
        let caller = std::thread::current().name().unwrap_or("").to_string();
        let inline = run_search(Placement::Inline, thread_name).await.unwrap();
        assert_eq!(inline, caller);
        for placement in [Placement::Inline, Placement::Pool { workers: 1 }] {
            let err = run_search::<(), _>(placement, || panic!("boom"))
                .await
                .unwrap_err();
            assert!(err.to_string().contains("vector search panicked"), "{err}");
        }
        // A panic gives its permits back.
        assert_eq!(permits().available_permits(), search_threads());
        concurrent_searches_never_exceed_the_cores().await;
    }

    /// However many queries arrive at once, inline or on the pool, no more
    /// searches run at a time than there are permits (cores). (Called by the
    /// test above: the permits are process-wide.)
    async fn concurrent_searches_never_exceed_the_cores() {
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..48)
            .map(|i| {
                let (running, most) = (running.clone(), most.clone());
                let placement = match i % 3 {
                    0 => Placement::Inline,
                    1 => Placement::Pool { workers: 1 },
                    _ => Placement::Pool { workers: 64 },
                };
                tokio::spawn(run_search(placement, move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(2));
                    running.fetch_sub(1, Ordering::SeqCst);
                    Ok(())
                }))
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        let most = most.load(Ordering::SeqCst);
        assert!(
            most >= 1 && most <= search_threads(),
            "{most} searches ran at once on {} cores",
            search_threads()
        );
        assert_eq!(permits().available_permits(), search_threads());
    }
}
