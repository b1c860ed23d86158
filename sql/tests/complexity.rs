//! The expression limits through `Instance`: the largest statement of each
//! shape the limits accept is parsed, planned and executed within the
//! server's thread stack (8 MiB) in well under a second of CPU, even in a
//! debug build; hostile ones (10^5 terms, 10^5 nesting, 50 MB) are refused
//! with 54001 just as quickly, and the process survives all of them.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use quiver_cluster::Engine;
use quiver_common::config::QuiverConfig;
use quiver_common::limits::{
    MAX_EXPRESSION_DEPTH, MAX_EXPRESSION_OPERATORS, MAX_FUNCTION_NESTING, MAX_LIST_ITEMS,
    THREAD_STACK_BYTES,
};
use quiver_common::status::StatusCode;
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

/// `first op first op ...` with `n` operators.
fn chain(first: &str, op: &str, n: usize) -> String {
    format!("{first}{}", format!(" {op} {first}").repeat(n))
}

/// The largest accepted statement of each shape.
fn largest_accepted() -> Vec<(&'static str, String, usize)> {
    let depth = MAX_EXPRESSION_DEPTH;
    // n operators in a chain make a tree n + 1 deep; a comparison on top
    // adds one.
    let terms = |n: usize, f: &dyn Fn(usize) -> String| (0..n).map(f).collect::<Vec<_>>();
    vec![
        (
            "+ chain",
            format!("SELECT {}", chain("1", "+", depth - 1)),
            1,
        ),
        (
            "+ chain in a filter",
            format!("SELECT * FROM t WHERE {} > 0", chain("id", "+", depth - 2)),
            3,
        ),
        (
            "AND chain",
            format!(
                "SELECT * FROM t WHERE {}",
                terms(depth - 1, &|i| format!("id <> {}", i + 100)).join(" AND ")
            ),
            3,
        ),
        (
            "OR chain",
            format!(
                "SELECT * FROM t WHERE {}",
                terms(depth - 1, &|i| format!("id = {i}")).join(" OR ")
            ),
            3,
        ),
        (
            "|| chain",
            format!("SELECT * FROM t WHERE {} <> s", chain("s", "||", depth - 2)),
            3,
        ),
        (
            "casts",
            format!("SELECT id{} FROM t", "::bigint".repeat(depth - 1)),
            3,
        ),
        (
            "UNION ALL chain",
            format!("SELECT 1{}", " UNION ALL SELECT 1".repeat(depth - 1)),
            depth,
        ),
        (
            "nested parentheses (the SQL parser's limit)",
            format!("SELECT {}id{} FROM t", "(".repeat(45), ")".repeat(45)),
            3,
        ),
        (
            "nested function calls",
            format!(
                "SELECT {}id{} FROM t",
                "abs(".repeat(MAX_FUNCTION_NESTING),
                ")".repeat(MAX_FUNCTION_NESTING)
            ),
            3,
        ),
        (
            "CASE with many WHENs",
            format!(
                "SELECT CASE {} ELSE 0 END FROM t",
                terms(MAX_EXPRESSION_OPERATORS, &|i| format!(
                    "WHEN id = {i} THEN {i}"
                ))
                .join(" ")
            ),
            3,
        ),
        (
            "many shallow expressions",
            format!(
                "SELECT {} FROM t",
                terms(MAX_EXPRESSION_OPERATORS, &|i| format!("id + {i} AS c{i}")).join(", ")
            ),
            3,
        ),
        (
            "IN list of 5,000 (lists are not operators)",
            format!(
                "SELECT * FROM t WHERE id IN ({})",
                terms(5_000, &|i| i.to_string()).join(", ")
            ),
            3,
        ),
        (
            "vector search under a deep filter",
            format!(
                "SELECT id FROM t WHERE {} ORDER BY v <-> '[0,0]' LIMIT 2",
                terms(depth / 2, &|i| format!("id <> {}", i + 100)).join(" AND ")
            ),
            2,
        ),
    ]
}

#[test]
fn largest_accepted_statements_plan_quickly_on_the_server_stack() {
    on_server_stack(|| async {
        let dir = tempfile::tempdir().unwrap();
        let (instance, mut session) = setup(dir.path()).await;
        for (shape, sql, rows) in largest_accepted() {
            let start = cpu_time();
            let result = run(&instance, &mut session, &sql).await;
            let spent = cpu_time() - start;
            // Measurements for docs/limits: `cargo test -- --nocapture`.
            eprintln!("{shape}: {spent:?} of CPU");
            assert_eq!(result.map_err(|e| e.to_string()), Ok(rows), "{shape}");
            // The bar guards against the quadratic blow-ups the limits
            // cut off (3.8 to 19.5 s before them). 1 s held on the machine
            // the limits were measured on; the CI machine of 2026-12-06
            // runs this debug build about 4x slower (the `+` chain 55 ms
            // there, 243 ms here; the chain in a filter 1.1 s), so 2 s.
            assert!(spent < Duration::from_secs(2), "{shape}: {spent:?} of CPU");
        }
    });
}

/// `SELECT * FROM t WHERE id IN (0, 1, ..., n - 1)`.
fn in_list(n: usize) -> String {
    let items: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    format!("SELECT * FROM t WHERE id IN ({})", items.join(","))
}

/// The longest accepted list is planned and answered correctly (it is the
/// one shape the 1 s bar does not hold for: docs/limits.md).
#[test]
fn largest_accepted_list_is_answered() {
    on_server_stack(|| async {
        let dir = tempfile::tempdir().unwrap();
        let (instance, mut session) = setup(dir.path()).await;
        let start = cpu_time();
        let rows = run(&instance, &mut session, &in_list(MAX_LIST_ITEMS + 1))
            .await
            .unwrap();
        eprintln!(
            "IN list of {} items: {:?} of CPU",
            MAX_LIST_ITEMS + 1,
            cpu_time() - start
        );
        assert_eq!(rows, 3);
    });
}

#[test]
fn one_step_over_each_limit_is_refused_with_54001() {
    on_server_stack(|| async {
        let dir = tempfile::tempdir().unwrap();
        let (instance, mut session) = setup(dir.path()).await;
        let depth = MAX_EXPRESSION_DEPTH;
        let ids = |n: usize| (0..n).map(|i| format!("id = {i}")).collect::<Vec<_>>();
        for (sql, limit) in [
            (
                format!("SELECT {}", chain("1", "+", depth)),
                "max_expression_depth = 128",
            ),
            (
                format!("SELECT * FROM t WHERE {}", ids(depth).join(" OR ")),
                "max_expression_depth = 128",
            ),
            (
                format!(
                    "SELECT {} FROM t",
                    (0..=MAX_EXPRESSION_OPERATORS)
                        .map(|i| format!("id + {i} AS c{i}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                "max_expression_operators = 512",
            ),
            (
                format!("SELECT {}1{}", "abs(".repeat(11), ")".repeat(11)),
                "max_function_nesting = 10",
            ),
            (in_list(MAX_LIST_ITEMS + 2), "max_list_items = 100000"),
        ] {
            let err = run(&instance, &mut session, &sql).await.unwrap_err();
            assert_eq!(err.status_code(), StatusCode::StatementTooComplex, "{err}");
            assert!(err.to_string().contains(limit), "{err}");
        }
        // The session still works.
        assert_eq!(
            run(&instance, &mut session, "SELECT * FROM t")
                .await
                .unwrap(),
            3
        );
    });
}

#[test]
fn hostile_statements_are_refused_quickly_and_the_server_survives() {
    on_server_stack(|| async {
        let dir = tempfile::tempdir().unwrap();
        let (instance, mut session) = setup(dir.path()).await;
        let mut hostile: Vec<String> = ["+", "-", "*", "/", "||", "AND", "OR", "=", "<->", "::int"]
            .iter()
            .map(|op| format!("SELECT * FROM t WHERE {}", chain("id", op, 100_000)))
            .collect();
        hostile.push(format!(
            "SELECT {}1{}",
            "(".repeat(100_000),
            ")".repeat(100_000)
        ));
        hostile.push(format!(
            "SELECT {}1{}",
            "abs(".repeat(100_000),
            ")".repeat(100_000)
        ));
        hostile.push(format!("SELECT 1{}", " UNION SELECT 1".repeat(100_000)));
        // 50 MB statements.
        hostile.push(format!("SELECT 1{}", "+1".repeat(25_000_000)));
        hostile.push(format!("SELECT {}", "NOT ".repeat(12_500_000)));
        hostile.push(format!(
            "SELECT * FROM t WHERE id IN (1{})",
            ",1".repeat(25_000_000)
        ));
        for sql in &hostile {
            let start = cpu_time();
            let err = run(&instance, &mut session, sql).await.unwrap_err();
            let spent = cpu_time() - start;
            eprintln!("refused {}...: {spent:?} of CPU", &sql[..30]);
            assert_eq!(
                err.status_code(),
                StatusCode::StatementTooComplex,
                "{}: {err}",
                &sql[..40]
            );
            assert!(spent < Duration::from_secs(1), "{}: {spent:?}", &sql[..40]);
        }
        assert_eq!(
            run(&instance, &mut session, "SELECT * FROM t")
                .await
                .unwrap(),
            3
        );
    });
}
