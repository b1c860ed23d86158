//! The search pool: one bounded set of worker threads (one per core) that
//! every vector search runs on. A query fans its segments out over the pool;
//! concurrent queries queue for the same workers, so the cores are shared
//! without oversubscription (the async runtime's threads never run a
//! search themselves).

use std::sync::OnceLock;

use datafusion::common::{DataFusionError, Result};

static POOL: OnceLock<rayon::ThreadPool> = OnceLock::new();

/// Number of worker threads: the available parallelism, overridable with
/// the environment variable `QUIVER_SEARCH_THREADS`.
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
            .build()
            .expect("search pool threads start")
    })
}

/// Runs `work` on the search pool and waits for it without blocking the
/// async runtime.
pub async fn run_search<T, F>(work: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    search_pool().spawn(move || {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work))
            .unwrap_or_else(|_| Err(DataFusionError::Internal("vector search panicked".into())));
        let _ = tx.send(result);
    });
    rx.await
        .map_err(|_| DataFusionError::Internal("search pool dropped a task".into()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn searches_run_on_the_bounded_pool() {
        assert_eq!(search_pool().current_num_threads(), search_threads());
        let names =
            futures::future::join_all((0..16).map(|_| {
                run_search(|| Ok(std::thread::current().name().unwrap_or("").to_string()))
            }))
            .await;
        for name in names {
            assert!(name.unwrap().starts_with("quiver-search-"));
        }
        let err = run_search::<(), _>(|| panic!("boom")).await.unwrap_err();
        assert!(err.to_string().contains("vector search panicked"), "{err}");
    }
}
