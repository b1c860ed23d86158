//! The Milvus door's filter limits through a real `Instance`: the largest
//! filter of each shape the door's checks accept, translated to SQL and
//! wrapped in the door's own scope, is parsed, planned and executed within
//! the server's thread stack (8 MiB) in well under a second of CPU, even in
//! a debug build.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use quiver_cluster::Engine;
use quiver_common::config::QuiverConfig;
use quiver_common::limits::{MAX_EXPRESSION_OPERATORS, THREAD_STACK_BYTES};
use quiver_sql::handler::{Output, QueryHandler, Session, SessionInfo};
use quiver_sql::Instance;

/// CPU time of the calling thread (the statement is parsed, planned and
/// run on it), wall time where the platform does not say.
fn cpu_time() -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .map(Duration::from_nanos)
        .unwrap_or_else(|| {
            static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
            START.get_or_init(std::time::Instant::now).elapsed()
        })
}

/// Runs `test` on a thread and runtime with the server's stack.
fn on_server_stack<F: std::future::Future<Output = ()> + 'static>(test: fn() -> F) {
    let thread = std::thread::Builder::new()
        .stack_size(THREAD_STACK_BYTES)
        .spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .thread_stack_size(THREAD_STACK_BYTES)
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(test());
        })
        .expect("thread");
    if let Err(panic) = thread.join() {
        std::panic::resume_unwind(panic);
    }
}

async fn setup(dir: &std::path::Path) -> (Arc<Instance>, Session) {
    let config = QuiverConfig {
        data_dir: dir.to_path_buf(),
        ..Default::default()
    };
    let instance = Arc::new(Instance::new(Engine::open(config).await.unwrap()));
    let mut session = instance
        .new_session(SessionInfo {
            user: "t".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    run(
        &instance,
        &mut session,
        "CREATE TABLE t (id BIGINT PRIMARY KEY, s TEXT, v vector(2)); \
         INSERT INTO t VALUES (1, 'a', '[1,2]'), (2, 'b', '[3,4]'), (3, 'c', '[5,6]')",
    )
    .await
    .unwrap();
    (instance, session)
}

/// Parses, plans and executes `sql`; the rows it returned.
async fn run(instance: &Instance, session: &mut Session, sql: &str) -> quiver_sql::Result<usize> {
    let mut rows = 0;
    for statement in instance.parse(sql)? {
        if let Output::Rows { mut stream, .. } = instance.execute(session, &statement, None).await?
        {
            while let Some(batch) = stream.next().await {
                rows += batch?.num_rows();
            }
        }
    }
    Ok(rows)
}

/// A Milvus filter of `n` terms.
type FilterShape = fn(usize) -> String;

/// The largest `n` for which `shape(n)` passes the Milvus door's filter
/// checks, by bisection, with its SQL translation.
fn largest_milvus_filter(shape: FilterShape) -> (usize, String) {
    use quiver_servers::milvus::filter::{check_translated, filter_to_sql, FieldKind, FilterField};
    let fields = [FilterField {
        name: "id",
        kind: FieldKind::Int,
    }];
    let translate = |n: usize| {
        let sql = filter_to_sql(&shape(n), &fields, &Default::default()).ok()?;
        check_translated(&sql).ok().map(|_| sql)
    };
    let (mut ok, mut over) = (1, 4 * MAX_EXPRESSION_OPERATORS);
    assert!(translate(over).is_none());
    while over - ok > 1 {
        let mid = (ok + over) / 2;
        match translate(mid) {
            Some(_) => ok = mid,
            None => over = mid,
        }
    }
    (ok, translate(ok).unwrap())
}

#[test]
fn largest_accepted_milvus_filters_plan_quickly_on_the_server_stack() {
    on_server_stack(|| async {
        let dir = tempfile::tempdir().unwrap();
        let (instance, mut session) = setup(dir.path()).await;
        let shapes: [(&str, FilterShape); 4] = [
            ("or chain", |n| vec!["id == 1"; n].join(" or ")),
            ("and chain", |n| vec!["id > 0"; n].join(" and ")),
            ("+ chain", |n| format!("id{} > 0", " + 1".repeat(n))),
            ("in lists under or", |n| {
                vec!["id in [1, 2]"; n].join(" or ")
            }),
        ];
        for (shape, filter) in shapes {
            let (n, predicate) = largest_milvus_filter(filter);
            // The door wraps the filter with its own scope.
            let sql = format!("SELECT * FROM t WHERE ({predicate}) AND (id IN (1, 2, 3))");
            let start = cpu_time();
            let result = run(&instance, &mut session, &sql).await;
            let spent = cpu_time() - start;
            eprintln!("milvus {shape} of {n} terms: {spent:?} of CPU");
            assert!(result.is_ok(), "{shape}: {result:?}");
            assert!(spent < Duration::from_secs(1), "{shape}: {spent:?} of CPU");
        }
    });
}
