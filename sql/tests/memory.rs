//! Statement memory limits (`53200 out of memory`): what DataFusion's pool
//! does not see by itself — the vector search, growing-segment scans,
//! result encoding at the Postgres door, buffered writes (INSERT ...
//! SELECT, COPY FROM) — fails a statement over its limit while the same
//! statement passes under a larger one, and the server answers afterwards;
//! the server-wide budget bounds the sum over sessions.

mod support;

use support::{run, session};

use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch};
use bytes::Bytes;
use futures::SinkExt;
use quiver_cluster::Engine;
use quiver_common::config::QuiverConfig;
use quiver_common::status::StatusCode;
use quiver_sql::handler::Session;
use quiver_sql::{Instance, PgHandlerRef, SqlError};
use tokio_postgres::NoTls;

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
    let mut s = session(&instance);
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
    let mut s = session(&instance);
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
    let mut s = session(&instance);
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
    let mut a = session(&instance);
    let mut b = session(&instance);
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

/// COPY FROM STDIN of `data`, sent in 64 KiB messages.
async fn copy_in(
    client: &tokio_postgres::Client,
    data: &[u8],
) -> Result<u64, tokio_postgres::Error> {
    let sink = client.copy_in("COPY c FROM STDIN").await?;
    futures::pin_mut!(sink);
    for chunk in data.chunks(64 << 10) {
        sink.send(Bytes::copy_from_slice(chunk)).await?;
    }
    sink.finish().await
}

async fn pg_server(
    dir: &std::path::Path,
) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let handler: PgHandlerRef = instance(dir).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(quiver_sql::pg::serve(listener, handler, async move {
        let _ = rx.await;
    }));
    (addr, tx)
}

async fn pg_client(addr: std::net::SocketAddr) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&format!("postgres://test@{addr}/quiver"), NoTls)
        .await
        .unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

/// The error is PostgreSQL's `out of memory` (53200) with its detail, in
/// memory context `context`, and a hint naming the setting.
fn assert_pg_out_of_memory(err: &tokio_postgres::Error, context: &str) {
    let db = err
        .as_db_error()
        .unwrap_or_else(|| panic!("not a server error: {err}"));
    assert_eq!(db.code().code(), "53200", "{db:?}");
    assert_eq!(db.message(), "out of memory");
    assert!(
        db.detail()
            .is_some_and(|d| d.contains(&format!("in memory context \"{context}\""))),
        "{db:?}"
    );
    assert!(
        db.hint()
            .is_some_and(|h| h.contains("quiver.query_memory_limit")),
        "{db:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn result_encoding_over_the_limit_fails_at_the_postgres_door() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, _stop) = pg_server(dir.path()).await;
    let client = pg_client(addr).await;
    // Four 1 MB strings in one result batch: nothing below the door
    // buffers them, the encoder holds the batch while it sends it.
    let big = "SELECT repeat('z', 1000000) FROM generate_series(1, 4)";
    client
        .batch_execute("SET quiver.query_memory_limit = '2MB'")
        .await
        .unwrap();
    let err = client.simple_query(big).await.unwrap_err();
    assert_pg_out_of_memory(&err, "result encoding");
    // The extended protocol encodes through the same guard.
    let err = client.query(big, &[]).await.unwrap_err();
    assert_pg_out_of_memory(&err, "result encoding");
    let row = client.query_one("SELECT 1::BIGINT", &[]).await.unwrap();
    assert_eq!(row.get::<_, i64>(0), 1);
    client
        .batch_execute("SET quiver.query_memory_limit = '64MB'")
        .await
        .unwrap();
    assert_eq!(client.query(big, &[]).await.unwrap().len(), 4);
    let shown = client
        .query_one("SHOW quiver.query_memory_limit", &[])
        .await
        .unwrap();
    assert_eq!(shown.get::<_, String>(0), "64MB");
    client
        .batch_execute("RESET quiver.query_memory_limit")
        .await
        .unwrap();
    let shown = client
        .query_one("SHOW quiver.query_memory_limit", &[])
        .await
        .unwrap();
    assert_eq!(shown.get::<_, String>(0), "256MB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_from_buffering_more_than_the_limit_fails_and_passes_under_a_larger_one() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, _stop) = pg_server(dir.path()).await;
    let client = pg_client(addr).await;
    client
        .batch_execute("CREATE TABLE c (id BIGINT PRIMARY KEY, body TEXT)")
        .await
        .unwrap();
    // 4,000 rows of 1 KB: about 4 MB buffered before the insert.
    let mut data = Vec::new();
    for i in 0..4000 {
        data.extend_from_slice(format!("{i}\t{}\n", "b".repeat(1000)).as_bytes());
    }
    client
        .batch_execute("SET quiver.query_memory_limit = '1MB'")
        .await
        .unwrap();
    let err = copy_in(&client, &data).await.unwrap_err();
    assert_pg_out_of_memory(&err, "COPY FROM STDIN");
    let n = client
        .query_one("SELECT count(*) FROM c", &[])
        .await
        .unwrap();
    assert_eq!(n.get::<_, i64>(0), 0, "nothing inserted");
    client
        .batch_execute("SET quiver.query_memory_limit = '64MB'")
        .await
        .unwrap();
    assert_eq!(copy_in(&client, &data).await.unwrap(), 4000);
    let n = client
        .query_one("SELECT count(*) FROM c", &[])
        .await
        .unwrap();
    assert_eq!(n.get::<_, i64>(0), 4000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_50_mb_statement_is_refused_before_it_is_parsed() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, _stop) = pg_server(dir.path()).await;
    let client = pg_client(addr).await;
    // 50 MB of text counts as 17 times that: over the 256 MiB limit.
    let huge = format!("SELECT length('{}')", "q".repeat(50 << 20));
    let err = client.simple_query(&huge).await.unwrap_err();
    assert_pg_out_of_memory(&err, "statement text");
    let err = client.query(&huge, &[]).await.unwrap_err();
    assert_pg_out_of_memory(&err, "statement text");
    drop(huge);
    // 1 MB passes, and so does a normal query afterwards.
    let long = format!("SELECT length('{}')::BIGINT", "q".repeat(1 << 20));
    let row = client.query_one(&long, &[]).await.unwrap();
    assert_eq!(row.get::<_, i64>(0), 1 << 20);
    client
        .batch_execute("SET quiver.query_memory_limit = '16MB'")
        .await
        .unwrap();
    let err = client.simple_query(&long).await.unwrap_err();
    assert_pg_out_of_memory(&err, "statement text");
    let row = client.query_one("SELECT 1::BIGINT", &[]).await.unwrap();
    assert_eq!(row.get::<_, i64>(0), 1);
}

/// The Milvus door reports a statement over its limit with the code mapped
/// for out of memory, and answers the next request.
#[tokio::test]
async fn a_milvus_query_over_the_limit_gets_the_out_of_memory_code() {
    use arrow::array::StringArray;
    use milvus::proto::common::KeyValuePair;
    use milvus::proto::milvus::milvus_service_server::MilvusService;
    use milvus::proto::milvus::QueryRequest;

    let dir = tempfile::tempdir().unwrap();
    let mut config = QuiverConfig {
        data_dir: dir.path().to_path_buf(),
        ..Default::default()
    };
    config.memory.query_limit_bytes = 1 << 20;
    let instance = Arc::new(Instance::new(Engine::open(config).await.unwrap()));
    let mut s = session(&instance);
    run(
        &instance,
        &mut s,
        "CREATE TABLE g (id BIGINT PRIMARY KEY, body TEXT NOT NULL)",
    )
    .await
    .unwrap();
    // One growing batch of 4 MB (written past the session, which could
    // not buffer it), and a delete: a scan copies the visible rows.
    let ids: Vec<i64> = (0..4000).collect();
    let bodies: Vec<String> = ids.iter().map(|_| "m".repeat(1000)).collect();
    let batch = RecordBatch::try_new(
        instance
            .engine()
            .table("public", "g")
            .unwrap()
            .schema()
            .arrow_schema(),
        vec![
            Arc::new(Int64Array::from(ids)),
            Arc::new(StringArray::from(bodies)),
        ],
    )
    .unwrap();
    instance
        .engine()
        .write("public", "g", batch, quiver_cluster::WriteMode::Insert)
        .await
        .unwrap();
    run(&instance, &mut s, "DELETE FROM g WHERE id = 0")
        .await
        .unwrap();
    let door = quiver_sql::milvus::MilvusDoor::new(instance.clone());
    let query = |expr: &str| {
        tonic::Request::new(QueryRequest {
            collection_name: "g".into(),
            expr: expr.into(),
            output_fields: vec!["id".into(), "body".into()],
            query_params: vec![KeyValuePair {
                key: "limit".into(),
                value: "16384".into(),
            }],
            ..Default::default()
        })
    };
    let reply = door.query(query("id > 0")).await.unwrap().into_inner();
    let status = reply.status.unwrap();
    assert_eq!(status.code, 3, "{status:?}"); // merr ErrServiceMemoryLimitExceeded
    assert!(
        status
            .reason
            .starts_with("out of memory: Failed on request of size"),
        "{}",
        status.reason
    );
    assert_eq!(instance.server_memory().reserved(), 0, "all released");
    run(
        &instance,
        &mut s,
        "CREATE TABLE small (id BIGINT PRIMARY KEY)",
    )
    .await
    .unwrap();
    run(&instance, &mut s, "INSERT INTO small VALUES (1), (2)")
        .await
        .unwrap();
    let mut small = query("id > 0");
    small.get_mut().collection_name = "small".into();
    small.get_mut().output_fields = vec!["id".into()];
    let reply = door.query(small).await.unwrap().into_inner();
    assert_eq!(reply.status.unwrap().code, 0);
}
