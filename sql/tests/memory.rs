//! Statement memory limits (`53200 out of memory`): what DataFusion's pool
//! does not see by itself — the vector search, growing-segment scans,
//! buffered writes (INSERT ... SELECT) — fails a statement over its limit
//! while the same statement passes under a larger one, and the server
//! answers afterwards; the server-wide budget bounds the sum over sessions.
//! (The doors' part — result encoding and COPY FROM at the Postgres door,
//! the Milvus door's code — is tested in `quiver-servers`.)

mod support;

use support::{run, session};

use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch};
use quiver_cluster::Engine;
use quiver_common::config::QuiverConfig;
use quiver_common::status::StatusCode;
use quiver_sql::handler::Session;
use quiver_sql::{Instance, SqlError};

/// A statement limit of 256 MiB, a server budget of 1 GiB.
async fn instance(dir: &std::path::Path) -> Arc<Instance> {
    let mut config = QuiverConfig {
        data_dir: dir.to_path_buf(),
        ..Default::default()
    };
    config.memory.query_limit_bytes = 256 << 20;
    config.memory.server_limit_bytes = 1 << 30;
    Arc::new(Instance::new(Engine::open(config).await.unwrap()))
}

fn rows(batches: &[RecordBatch]) -> usize {
    batches.iter().map(RecordBatch::num_rows).sum()
}

async fn count(instance: &Instance, session: &mut Session, table: &str) -> i64 {
    let batches = run(instance, session, &format!("SELECT count(*) FROM {table}"))
        .await
        .unwrap();
    batches[0]
        .column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap()
        .value(0)
}

/// The statement failed with 53200's status, in memory context `context`.
fn assert_out_of_memory(result: quiver_sql::Result<Vec<RecordBatch>>, context: &str) {
    match result {
        Err(err @ SqlError::OutOfMemory { .. }) => {
            assert_eq!(err.status_code(), StatusCode::OutOfMemory);
            let SqlError::OutOfMemory { detail, hint } = &err else {
                unreachable!()
            };
            assert!(
                detail.starts_with("Failed on request of size ")
                    && detail.contains(&format!("in memory context \"{context}\"")),
                "{detail}"
            );
            assert!(
                hint.as_deref()
                    .is_some_and(|h| h.contains("quiver.query_memory_limit")),
                "{hint:?}"
            );
        }
        Err(other) => panic!("expected out of memory in {context}, got {other:?}"),
        Ok(batches) => panic!(
            "expected out of memory in {context}, got {} rows",
            rows(&batches)
        ),
    }
}

/// `dim`-dimensional vectors, `rows` of them, inserted in one statement.
fn vector_rows(rows: usize, dim: usize) -> String {
    let values: Vec<String> = (0..rows)
        .map(|i| {
            let v: Vec<String> = (0..dim).map(|d| ((i * 7 + d) % 13).to_string()).collect();
            format!("({i}, '[{}]')", v.join(","))
        })
        .collect();
    values.join(",")
}

#[tokio::test]
async fn a_vector_search_over_the_limit_fails_and_passes_under_a_larger_one() {
    let dir = tempfile::tempdir().unwrap();
    let instance = instance(dir.path()).await;
    let mut s = session(&instance).await;
    run(
        &instance,
        &mut s,
        "CREATE TABLE s (id BIGINT PRIMARY KEY, v vector(256))",
    )
    .await
    .unwrap();
    let insert = format!("INSERT INTO s VALUES {}", vector_rows(3000, 256));
    run(&instance, &mut s, &insert).await.unwrap();
    let query: Vec<String> = (0..256).map(|d| (d % 5).to_string()).collect();
    // 3,000 results of 1 KiB vectors: about 3 MiB.
    let search = format!(
        "SELECT id, v FROM s ORDER BY v <-> '[{}]' LIMIT 3000",
        query.join(",")
    );
    run(&instance, &mut s, "SET quiver.query_memory_limit = '1MB'")
        .await
        .unwrap();
    assert_out_of_memory(run(&instance, &mut s, &search).await, "VectorSearchExec");
    assert_eq!(instance.server_memory().reserved(), 0, "all released");
    run(&instance, &mut s, "SET quiver.query_memory_limit = '64MB'")
        .await
        .unwrap();
    assert_eq!(rows(&run(&instance, &mut s, &search).await.unwrap()), 3000);
    // A small search still fits the small limit.
    run(&instance, &mut s, "SET quiver.query_memory_limit = '1MB'")
        .await
        .unwrap();
    let small = search.replace("LIMIT 3000", "LIMIT 10");
    assert_eq!(rows(&run(&instance, &mut s, &small).await.unwrap()), 10);
    assert_eq!(count(&instance, &mut s, "s").await, 3000);
}

#[tokio::test]
async fn a_growing_segment_scan_over_the_limit_fails_and_passes_under_a_larger_one() {
    let dir = tempfile::tempdir().unwrap();
    let instance = instance(dir.path()).await;
    let mut s = session(&instance).await;
    run(
        &instance,
        &mut s,
        "CREATE TABLE g (id BIGINT PRIMARY KEY, body TEXT)",
    )
    .await
    .unwrap();
    // One growing batch of about 4 MB; a deleted row makes every scan
    // copy the batch's visible rows.
    run(
        &instance,
        &mut s,
        "INSERT INTO g SELECT i, repeat('x', 1000) FROM generate_series(1, 4000) AS t(i)",
    )
    .await
    .unwrap();
    run(&instance, &mut s, "DELETE FROM g WHERE id = 1")
        .await
        .unwrap();
    let scan = "SELECT count(*), sum(length(body)) FROM g";
    run(&instance, &mut s, "SET quiver.query_memory_limit = '1MB'")
        .await
        .unwrap();
    assert_out_of_memory(run(&instance, &mut s, scan).await, "SegmentScanExec");
    run(&instance, &mut s, "SET quiver.query_memory_limit = '64MB'")
        .await
        .unwrap();
    let out = run(&instance, &mut s, scan).await.unwrap();
    let total = out[0]
        .column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap()
        .value(0);
    assert_eq!(total, 3999);
    run(&instance, &mut s, "RESET quiver.query_memory_limit")
        .await
        .unwrap();
    assert_eq!(count(&instance, &mut s, "g").await, 3999);
}

#[tokio::test]
async fn an_insert_buffering_more_than_the_limit_fails_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let instance = instance(dir.path()).await;
    let mut s = session(&instance).await;
    run(
        &instance,
        &mut s,
        "CREATE TABLE w (id BIGINT PRIMARY KEY, body TEXT)",
    )
    .await
    .unwrap();
    let insert = "INSERT INTO w SELECT i, repeat('y', 1000) FROM generate_series(1, 4000) AS t(i)";
    run(&instance, &mut s, "SET quiver.query_memory_limit = '1MB'")
        .await
        .unwrap();
    assert_out_of_memory(run(&instance, &mut s, insert).await, "INSERT rows");
    assert_eq!(count(&instance, &mut s, "w").await, 0, "nothing written");
    run(&instance, &mut s, "SET quiver.query_memory_limit = '64MB'")
        .await
        .unwrap();
    run(&instance, &mut s, insert).await.unwrap();
    assert_eq!(count(&instance, &mut s, "w").await, 4000);
    assert_eq!(instance.server_memory().reserved(), 0, "all released");
}

#[tokio::test]
async fn the_server_budget_bounds_all_sessions_together() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = QuiverConfig {
        data_dir: dir.path().to_path_buf(),
        ..Default::default()
    };
    config.memory.query_limit_bytes = 8 << 20;
    config.memory.server_limit_bytes = 10 << 20;
    let instance = Instance::new(Engine::open(config).await.unwrap());
    let mut a = session(&instance).await;
    let mut b = session(&instance).await;
    run(
        &instance,
        &mut a,
        "CREATE TABLE w (id BIGINT PRIMARY KEY, body TEXT)",
    )
    .await
    .unwrap();
    // Session `a` holds 7 MiB, as a running statement would.
    let held = quiver_exec::memory::reserve(&a.memory_pool(), "held by a");
    held.try_grow(7 << 20).unwrap();
    let insert = "INSERT INTO w SELECT i, repeat('y', 1000) FROM generate_series(1, 4000) AS t(i)";
    match run(&instance, &mut b, insert).await {
        Err(SqlError::OutOfMemory { hint, .. }) => {
            assert!(hint.unwrap().contains("memory.server_limit_bytes"));
        }
        other => panic!("expected the server budget to refuse, got {other:?}"),
    }
    drop(held);
    run(&instance, &mut b, insert).await.unwrap();
    assert_eq!(count(&instance, &mut a, "w").await, 4000);
    // A session never raises its limit past the server's setting.
    let err = run(&instance, &mut a, "SET quiver.query_memory_limit = '9MB'")
        .await
        .unwrap_err();
    assert_eq!(err.status_code(), StatusCode::InvalidParameter);
    let err = run(
        &instance,
        &mut a,
        "SET datafusion.runtime.memory_limit = '10G'",
    )
    .await
    .unwrap_err();
    assert_eq!(err.status_code(), StatusCode::InvalidParameter);
}
