//! Crash recovery: a client inserts (INSERT and COPY), upserts and deletes
//! rows of a table with 4 shards in a loop while the server is SIGKILLed at random moments (segments seal every 50 rows and
//! flush/compaction run every 100 ms, so kills land during them too). After
//! every restart, every acknowledged row must be present exactly once with
//! its acknowledged value, every acknowledged delete must stay deleted, and
//! the write in flight at the kill must be all-or-nothing.

mod support;

use support::{connect, free_port, private_tempdir, sigkill, KillOnDrop};

use std::collections::BTreeMap;
use std::io::Cursor;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::SinkExt;
use rand::{Rng, SeedableRng};
use tokio_postgres::Client;

/// Starts the server with the extra environment `env` (its storage backends).
fn start(dir: &std::path::Path, port: u16, env: &[(String, String)]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_quiver"))
        .args(["standalone", "--data-dir"])
        .arg(dir)
        .args([
            "--pg-addr",
            &format!("127.0.0.1:{port}"),
            "--seal-rows",
            "50",
            "--milvus-addr",
            "127.0.0.1:0",
        ])
        .env("QUIVER__SEGMENT__MAINTENANCE_INTERVAL_MS", "100")
        .env("QUIVER__SEGMENT__COMPACTION_MIN_SEGMENTS", "3")
        .env("QUIVER__SEGMENT__COMPACTION_SMALL_ROWS", "100000")
        .env("QUIVER__WAL__SEGMENT_BYTES", "65536")
        .env("QUIVER_LOG", "warn")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("quiver starts")
}

/// The write in flight when the server died.
#[derive(Debug, Clone)]
enum Pending {
    Insert(Vec<(i64, String)>),
    Upsert(Vec<(i64, String)>),
    Delete(Vec<i64>),
}

async fn read_all(client: &Client) -> BTreeMap<i64, String> {
    let rows = client
        .query("SELECT id, payload FROM crash ORDER BY id", &[])
        .await
        .expect("read back");
    let mut out = BTreeMap::new();
    for row in rows {
        let id: i64 = row.get(0);
        let payload: String = row.get(1);
        assert!(
            out.insert(id, payload).is_none(),
            "row {id} is present twice"
        );
    }
    out
}

/// COPY text of `rows`.
fn copy_text(rows: &[(i64, String)]) -> String {
    rows.iter()
        .map(|(id, p)| format!("{id}\t{p}\t[{id},1,2,3]\n"))
        .collect()
}

/// Runs one write: SQL, or COPY FROM STDIN of the given text.
async fn run_write(client: &Client, sql: &str) -> Result<(), tokio_postgres::Error> {
    match sql.strip_prefix("COPY:") {
        Some(text) => {
            let mut sink = Box::pin(
                client
                    .copy_in("COPY crash (id, payload, v) FROM STDIN")
                    .await?,
            );
            // A failed send surfaces again as finish's error.
            let _ = sink.send(Cursor::new(text.as_bytes().to_vec())).await;
            sink.as_mut().finish().await.map(|_| ())
        }
        None => client.batch_execute(sql).await,
    }
}

fn values_sql(rows: &[(i64, String)]) -> String {
    rows.iter()
        .map(|(id, p)| format!("({id}, '{p}', '[{id},1,2,3]')"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_acknowledged_write_is_lost_across_sigkill() {
    let kills: usize = std::env::var("QUIVER_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    crash_loop(kills, &[]).await;
}

/// The same on real services: the catalog, segment and delete-log records
/// in etcd (`meta.backend = "etcd"`), the segment, index and delete-log
/// objects in S3 (`objects.backend = "s3"`), the WAL in S3 too
/// (`wal.backend = "object_store"`): nothing acknowledged is on local disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_acknowledged_write_is_lost_across_sigkill_on_etcd_s3_and_an_object_store_wal() {
    let (Some(endpoints), Some((s3_endpoint, bucket))) = (support::live_etcd(), support::live_s3())
    else {
        return;
    };
    let kills: usize = std::env::var("QUIVER_CRASH_KILLS_SERVICES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let run = format!(
        "crash-{}-{}",
        std::process::id(),
        support::nanos() % 1_000_000_000
    );
    let env = [
        ("QUIVER__META__BACKEND", "etcd".to_string()),
        ("QUIVER__META__ETCD_ENDPOINTS", endpoints),
        ("QUIVER__META__ROOT", format!("/qt/{run}")),
        ("QUIVER__OBJECTS__BACKEND", "s3".to_string()),
        ("QUIVER__OBJECTS__S3_ENDPOINT", s3_endpoint),
        ("QUIVER__OBJECTS__S3_BUCKET", bucket),
        ("QUIVER__OBJECTS__S3_PREFIX", run),
        ("QUIVER__WAL__BACKEND", "object_store".to_string()),
    ]
    .map(|(k, v)| (k.to_string(), v));
    crash_loop(kills, &env).await;
}

async fn crash_loop(kills: usize, env: &[(String, String)]) {
    // The server demands a private (0700) data directory.
    let dir = private_tempdir();
    let port = free_port();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    let mut model: BTreeMap<i64, String> = BTreeMap::new();
    let mut next_id: i64 = 1;
    let mut version: u64 = 0;
    let mut child = KillOnDrop(start(dir.path(), port, env));
    let client = connect(port).await;
    client
        .batch_execute(
            "CREATE TABLE crash (id BIGINT PRIMARY KEY, payload TEXT NOT NULL, v vector(4)) \
             WITH (shards = 4); \
             CREATE INDEX CONCURRENTLY crash_v ON crash USING hnsw (v vector_l2_ops) \
             WITH (m = 8, ef_construction = 32)",
        )
        .await
        .unwrap();
    let mut total_checked = 0usize;
    let mut client = client;
    for round in 0..kills {
        let kill_after = Duration::from_millis(rng.gen_range(150..700));
        let started = Instant::now();
        let mut pending: Option<Pending> = None;
        // Write until the kill moment; the kill happens while a write may be in flight.
        let killer = {
            let pid = child.0.id() as i32;
            std::thread::spawn(move || {
                std::thread::sleep(kill_after);
                // SAFETY: kill(2) on a child's pid touches no memory of this process.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            })
        };
        while started.elapsed() < kill_after + Duration::from_millis(200) {
            version += 1;
            let op = rng.gen_range(0..10);
            let (sql, op_pending) = if op < 6 || model.is_empty() {
                let n = rng.gen_range(1..20);
                let rows: Vec<(i64, String)> = (0..n)
                    .map(|i| (next_id + i, format!("r{version}")))
                    .collect();
                next_id += n;
                let sql = if op < 2 {
                    format!("COPY:{}", copy_text(&rows))
                } else {
                    format!(
                        "INSERT INTO crash (id, payload, v) VALUES {}",
                        values_sql(&rows)
                    )
                };
                (sql, Pending::Insert(rows))
            } else if op < 8 {
                let keys: Vec<i64> = model.keys().copied().collect();
                let mut rows: Vec<(i64, String)> = (0..rng.gen_range(1..5))
                    .map(|_| (keys[rng.gen_range(0..keys.len())], format!("u{version}")))
                    .collect();
                rows.sort();
                rows.dedup_by_key(|r| r.0);
                (
                    format!(
                        "INSERT INTO crash (id, payload, v) VALUES {} ON CONFLICT (id) DO UPDATE SET payload = EXCLUDED.payload",
                        values_sql(&rows)
                    ),
                    Pending::Upsert(rows),
                )
            } else {
                let keys: Vec<i64> = model.keys().copied().collect();
                let mut ids: Vec<i64> = (0..rng.gen_range(1..4))
                    .map(|_| keys[rng.gen_range(0..keys.len())])
                    .collect();
                ids.sort();
                ids.dedup();
                let list = ids
                    .iter()
                    .map(|i| i.to_string())
                    .collect::<Vec<_>>()
                    .join(", ");
                (
                    format!("DELETE FROM crash WHERE id IN ({list})"),
                    Pending::Delete(ids),
                )
            };
            pending = Some(op_pending.clone());
            match run_write(&client, &sql).await {
                Ok(()) => {
                    match op_pending {
                        Pending::Insert(rows) | Pending::Upsert(rows) => model.extend(rows),
                        Pending::Delete(ids) => {
                            for id in ids {
                                model.remove(&id);
                            }
                        }
                    }
                    pending = None;
                }
                Err(_) => break,
            }
        }
        killer.join().unwrap();
        let _ = child.0.wait();
        child = KillOnDrop(start(dir.path(), port, env));
        client = connect(port).await;
        let actual = read_all(&client).await;
        // Resolve the in-flight write: all of it or none of it.
        if let Some(p) = pending {
            match p {
                Pending::Insert(rows) | Pending::Upsert(rows) => {
                    let applied = rows
                        .iter()
                        .filter(|(id, p)| actual.get(id) == Some(p))
                        .count();
                    assert!(
                        applied == 0 || applied == rows.len(),
                        "round {round}: half-applied write {rows:?}"
                    );
                    if applied == rows.len() {
                        model.extend(rows);
                    }
                }
                Pending::Delete(ids) => {
                    let gone = ids.iter().filter(|id| !actual.contains_key(id)).count();
                    let expected_gone = ids.iter().filter(|id| !model.contains_key(id)).count();
                    assert!(
                        gone == expected_gone || gone == ids.len(),
                        "round {round}: half-applied delete {ids:?}"
                    );
                    if gone == ids.len() {
                        for id in ids {
                            model.remove(&id);
                        }
                    }
                }
            }
        }
        assert_eq!(
            actual, model,
            "round {round}: acknowledged state differs after restart"
        );
        total_checked += model.len();
        // Searches (index files loaded at restart, growing rows exact) see every live row.
        let limit = model.len().clamp(1, 16_384);
        let found: std::collections::BTreeSet<i64> = client
            .query(
                &format!("SELECT id FROM crash ORDER BY v <-> '[1,1,2,3]' LIMIT {limit}"),
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<_, i64>(0))
            .collect();
        let live: std::collections::BTreeSet<i64> = model.keys().copied().take(16_384).collect();
        if model.len() <= 16_384 {
            assert_eq!(found, live, "round {round}: search misses live rows");
        }
        eprintln!("round {round}: {} rows verified after SIGKILL", model.len());
    }
    // The background maintenance indexes every sealed segment (after all the kills).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let row = client
            .query_one(
                "SELECT state, segments_indexed FROM quiver_catalog.indexes WHERE index_name = 'crash_v'",
                &[],
            )
            .await
            .unwrap();
        let (state, indexed): (String, i64) = (row.get(0), row.get::<_, i64>(1));
        if state == "ready" && indexed > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "index never became ready ({state}, {indexed})"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A vector search still sees exactly the live rows.
    let rows = client
        .query(
            "SELECT id FROM crash ORDER BY v <-> '[1,1,2,3]' LIMIT 5",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), model.len().min(5));
    sigkill(&mut child.0);
    eprintln!("crash test: {kills} kills, {total_checked} row checks, 0 rows lost");
}

/// A transaction block that creates and drops tables: killed before its
/// COMMIT, none of it is there after the restart (the name it took is free
/// again); committed before the kill, all of it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_with_catalog_changes_is_all_or_nothing_across_sigkill() {
    let dir = private_tempdir();
    let port = free_port();
    let mut child = KillOnDrop(start(dir.path(), port, &[]));
    let client = connect(port).await;
    client
        .batch_execute(
            "CREATE TABLE kept (id BIGINT PRIMARY KEY); INSERT INTO kept VALUES (1); \
             CREATE TABLE committed_drop (id BIGINT PRIMARY KEY); \
             BEGIN; CREATE TABLE made (id BIGINT PRIMARY KEY, v vector(2)); \
             INSERT INTO made VALUES (1, '[1,2]'), (2, '[3,4]'); DROP TABLE committed_drop; \
             INSERT INTO kept VALUES (2); COMMIT; \
             BEGIN; CREATE TABLE unfinished (id BIGINT PRIMARY KEY); \
             INSERT INTO unfinished VALUES (1); DROP TABLE kept; INSERT INTO made VALUES (3, '[5,6]');",
        )
        .await
        .unwrap();
    sigkill(&mut child.0);
    child.0 = start(dir.path(), port, &[]);
    let client = connect(port).await;
    let tables: Vec<String> = client
        .query(
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = 'public' ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(tables, ["kept", "made"]);
    let ids = |table: &'static str| {
        let client = &client;
        async move {
            client
                .query(&format!("SELECT id FROM {table} ORDER BY id"), &[])
                .await
                .unwrap()
                .iter()
                .map(|r| r.get::<_, i64>(0))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(ids("kept").await, [1, 2]);
    assert_eq!(ids("made").await, [1, 2]);
    client
        .batch_execute("CREATE TABLE unfinished (id BIGINT PRIMARY KEY)")
        .await
        .unwrap();
}
