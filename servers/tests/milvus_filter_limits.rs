//! The Milvus door's filter limits through a real `Instance`: the largest
//! filter of each shape the door's checks accept, lowered to a DataFusion
//! expression and wrapped in the door's own scope, is planned, optimized
//! and executed as a typed plan within the server's thread stack (8 MiB) in
//! well under a second of CPU, even in a debug build.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use datafusion::logical_expr::{col, lit, Expr};
use futures::StreamExt;
use quiver_cluster::Engine;
use quiver_common::config::QuiverConfig;
use quiver_common::limits::{MAX_EXPRESSION_OPERATORS, THREAD_STACK_BYTES};
use quiver_servers::milvus::filter::{filter_to_expr, FieldKind, FilterField};
use quiver_sql::handler::{Output, QueryHandler, Session, SessionInfo};
use quiver_sql::Instance;

mod support;
use support::SessionFunctions;

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
/// checks, by bisection, with its lowered expression.
fn largest_milvus_filter(
    instance: &Instance,
    session: &mut Session,
    shape: FilterShape,
) -> (usize, Expr) {
    let fields = [FilterField {
        name: "id",
        kind: FieldKind::Int,
    }];
    let functions = SessionFunctions {
        instance,
        session: Mutex::new(session),
    };
    let lower = |n: usize| filter_to_expr(&shape(n), &fields, &Default::default(), &functions).ok();
    let (mut ok, mut over) = (1, 4 * MAX_EXPRESSION_OPERATORS);
    assert!(lower(over).is_none());
    while over - ok > 1 {
        let mid = (ok + over) / 2;
        match lower(mid) {
            Some(_) => ok = mid,
            None => over = mid,
        }
    }
    (ok, lower(ok).unwrap())
}

/// Plans and runs a scan of `t` under `predicate`; the rows it returned.
async fn run_typed(
    instance: &Instance,
    session: &mut Session,
    predicate: Expr,
) -> quiver_sql::Result<usize> {
    let scan = instance.table_scan(session, "public", "t").await?;
    let plan = scan
        .filter(predicate)
        .and_then(|plan| plan.build())
        .map_err(|e| quiver_sql::SqlError::Internal(e.to_string()))?;
    let mut rows = 0;
    if let Output::Rows { mut stream, .. } = instance.execute_plan(session, plan).await? {
        while let Some(batch) = stream.next().await {
            rows += batch?.num_rows();
        }
    }
    Ok(rows)
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
            let (n, predicate) = largest_milvus_filter(&instance, &mut session, filter);
            // The door wraps the filter with its own scope.
            let scoped =
                predicate.and(col("id").in_list(vec![lit(1i64), lit(2i64), lit(3i64)], false));
            let start = cpu_time();
            let result = run_typed(&instance, &mut session, scoped).await;
            let spent = cpu_time() - start;
            eprintln!("milvus {shape} of {n} terms: {spent:?} of CPU");
            assert!(result.is_ok(), "{shape}: {result:?}");
            assert!(spent < Duration::from_secs(1), "{shape}: {spent:?} of CPU");
        }
    });
}
