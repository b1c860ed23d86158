//! Statement memory limits at the doors (`53200 out of memory`): the
//! Postgres door's result encoding, COPY FROM buffering and statement text
//! fail a statement over its limit while the same statement passes under a
//! larger one, and the server answers afterwards; the Milvus door reports
//! a statement over its limit with Milvus' code. (What the instance
//! accounts itself is tested in `quiver-sql`.)

mod support;

use support::{run, session};

use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch};
use bytes::Bytes;
use futures::SinkExt;
use quiver_cluster::Engine;
use quiver_common::config::QuiverConfig;
use quiver_sql::{Instance, PgHandlerRef};
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
    tokio::spawn(quiver_servers::pg::serve(listener, handler, async move {
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
    let engine = Engine::open(config).await.unwrap();
    let instance = Arc::new(Instance::new(engine.clone()));
    let mut s = session(&instance).await;
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
        engine.table("public", "g").unwrap().schema().arrow_schema(),
        vec![
            Arc::new(Int64Array::from(ids)),
            Arc::new(StringArray::from(bodies)),
        ],
    )
    .unwrap();
    engine
        .write("public", "g", batch, quiver_cluster::WriteMode::Insert)
        .await
        .unwrap();
    run(&instance, &mut s, "DELETE FROM g WHERE id = 0")
        .await
        .unwrap();
    let door = quiver_servers::milvus::MilvusDoor::new(instance.clone());
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
