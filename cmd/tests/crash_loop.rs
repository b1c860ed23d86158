//! Background work under a crash loop: `quiver standalone` is SIGKILLed
//! over and over while an index is built over many sealed segments and a
//! client keeps writing. The kill period is a few segments' build time, so
//! the whole build cannot fit in one life, only a few segments of it.
//!
//! Checked at every restart (from the server's `recovered` log line and
//! `quiver_catalog.indexes`):
//! * the build makes progress and completes within a bounded number of
//!   restarts: finished segments' indexes are loaded, never rebuilt;
//! * the WAL replayed at startup is bounded by what was written since the
//!   previous start (the checkpoint after recovery truncates it);
//! * the segment count stays bounded (compaction keeps up with the small
//!   segments each restart seals);
//! * at the end every acknowledged row is there.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::SinkExt;
use rand::{Rng, SeedableRng};
use tokio_postgres::{Client, NoTls};

/// Rows per sealed segment.
const SEAL_ROWS: usize = 1_000;
/// Segments written before the index is defined.
const SEGMENTS: usize = 16;
const DIM: usize = 48;
/// A segment's build takes `1/PERIOD_SEGMENTS` of the kill period.
const PERIOD_SEGMENTS: u32 = 4;
/// The build must be complete after this many restarts.
const MAX_RESTARTS: usize = 16;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts the server with its log in `log`.
fn start(dir: &Path, port: u16, log: &Path) -> Child {
    let log = std::fs::File::create(log).expect("log file");
    Command::new(env!("CARGO_BIN_EXE_quiver"))
        .args(["standalone", "--data-dir"])
        .arg(dir)
        .args([
            "--pg-addr",
            &format!("127.0.0.1:{port}"),
            "--seal-rows",
            &SEAL_ROWS.to_string(),
            "--milvus-addr",
            "127.0.0.1:0",
        ])
        .env("QUIVER__SEGMENT__MAINTENANCE_INTERVAL_MS", "100")
        .env("QUIVER__SEGMENT__COMPACTION_MIN_SEGMENTS", "3")
        .env(
            "QUIVER__SEGMENT__COMPACTION_SMALL_ROWS",
            (SEAL_ROWS / 2).to_string(),
        )
        .env("QUIVER_LOG", "warn,quiver_cluster=info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("quiver starts")
}

/// Kills the server when the test ends, passing or failing.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sigkill(child: &mut Child) {
    unsafe {
        libc::kill(child.id() as i32, libc::SIGKILL);
    }
    let _ = child.wait();
}

async fn connect(port: u16) -> Client {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match tokio_postgres::connect(&format!("postgres://loop@127.0.0.1:{port}/quiver"), NoTls)
            .await
        {
            Ok((client, conn)) => {
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                return client;
            }
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("server did not come back: {e}"),
        }
    }
}

/// The counters of the server's `recovered` log line.
#[derive(Debug, Default, Clone, Copy)]
struct Recovered {
    wal_records_replayed: usize,
    indexes_loaded: usize,
    segments_loaded: usize,
}

fn recovered(log: &Path) -> Recovered {
    let text = std::fs::read_to_string(log).expect("server log");
    let line = text
        .lines()
        .find(|l| l.contains("recovered"))
        .unwrap_or_else(|| panic!("no `recovered` line in the log:\n{text}"));
    let field = |name: &str| -> usize {
        let start = line
            .find(&format!("{name}="))
            .unwrap_or_else(|| panic!("no {name} in {line}"))
            + name.len()
            + 1;
        line[start..]
            .chars()
            .take_while(|c| c.is_ascii_digit())
            .collect::<String>()
            .parse()
            .unwrap()
    };
    Recovered {
        wal_records_replayed: field("wal_records_replayed"),
        indexes_loaded: field("indexes_loaded"),
        segments_loaded: field("segments_loaded"),
    }
}

/// (state, segments indexed, segments total) of the index.
async fn index_state(client: &Client) -> Option<(String, i64, i64)> {
    let row = client
        .query_one(
            "SELECT state, segments_indexed, segments_total FROM quiver_catalog.indexes \
             WHERE index_name = 'items_v'",
            &[],
        )
        .await
        .ok()?;
    Some((row.get(0), row.get(1), row.get(2)))
}

fn vector(rng: &mut impl Rng) -> String {
    let v: Vec<String> = (0..DIM)
        .map(|_| format!("{:.3}", rng.gen_range(-1.0f32..1.0)))
        .collect();
    format!("[{}]", v.join(","))
}

/// Writes small inserts until the server goes away; returns (ids
/// acknowledged, statements acknowledged).
async fn write_until_killed(client: Client, first_id: i64, seed: u64) -> (Vec<i64>, usize) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut acked = Vec::new();
    let mut statements = 0;
    let mut next = first_id;
    loop {
        let values: Vec<String> = (next..next + 5)
            .map(|id| format!("({id}, '{}')", vector(&mut rng)))
            .collect();
        let sql = format!("INSERT INTO items (id, v) VALUES {}", values.join(", "));
        if client.batch_execute(&sql).await.is_err() {
            return (acked, statements);
        }
        acked.extend(next..next + 5);
        statements += 1;
        next += 5;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn log_path(dir: &Path, life: usize) -> PathBuf {
    dir.join(format!("life-{life}.log"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_build_completes_under_a_crash_loop_with_bounded_wal_and_segments() {
    let data = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x100b);
    let mut acked: Vec<i64> = Vec::new();

    // Life 0: SEGMENTS full segments, then CREATE INDEX CONCURRENTLY; the
    // first segments' build time sets the kill period.
    let mut child = KillOnDrop(start(data.path(), port, &log_path(logs.path(), 0)));
    let client = connect(port).await;
    client
        .batch_execute(&format!(
            "CREATE TABLE items (id BIGINT PRIMARY KEY, v vector({DIM}))"
        ))
        .await
        .unwrap();
    for segment in 0..SEGMENTS {
        let mut text = String::new();
        for i in 0..SEAL_ROWS {
            let id = (segment * SEAL_ROWS + i + 1) as i64;
            text.push_str(&format!("{id}\t{}\n", vector(&mut rng)));
            acked.push(id);
        }
        let mut sink = Box::pin(
            client
                .copy_in("COPY items (id, v) FROM STDIN")
                .await
                .unwrap(),
        );
        sink.send(Cursor::new(text.into_bytes())).await.unwrap();
        assert_eq!(sink.as_mut().finish().await.unwrap(), SEAL_ROWS as u64);
    }
    client
        .batch_execute(
            "CREATE INDEX CONCURRENTLY items_v ON items USING hnsw (v vector_l2_ops) \
             WITH (m = 16, ef_construction = 400)",
        )
        .await
        .unwrap();
    let (mut first, mut third) = (None, None);
    let deadline = Instant::now() + Duration::from_secs(60);
    while third.is_none() {
        assert!(Instant::now() < deadline, "the build does not start");
        let (_, indexed, total) = index_state(&client).await.unwrap();
        assert_eq!(total, SEGMENTS as i64);
        if indexed >= 1 && first.is_none() {
            first = Some(Instant::now());
        }
        if indexed >= 3 {
            third = Some(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let segment_build = (third.unwrap() - first.unwrap()) / 2;
    let period = (segment_build * PERIOD_SEGMENTS).max(Duration::from_millis(300));
    eprintln!("one segment's build: {segment_build:?}; kill period after ready: {period:?}");
    let (_, indexed, _) = index_state(&client).await.unwrap();
    assert!(
        indexed < SEGMENTS as i64 - 2,
        "the whole build must not fit in a few segments' time"
    );
    sigkill(&mut child.0);

    // The crash loop, with a client writing during every life.
    let mut previous_statements = 0usize;
    let mut next_id = (SEGMENTS * SEAL_ROWS + 1) as i64;
    let mut partial_kills = 0;
    let mut last_indexed_at_kill = indexed;
    let mut done_after = None;
    for life in 1..=MAX_RESTARTS {
        let log = log_path(logs.path(), life);
        child = KillOnDrop(start(data.path(), port, &log));
        let client = connect(port).await;
        let ready = Instant::now();
        let stats = recovered(&log);
        eprintln!("life {life}: {stats:?}");
        assert!(
            stats.wal_records_replayed <= previous_statements + 1,
            "life {life}: WAL replay {} is bounded by the {previous_statements} writes since the previous start",
            stats.wal_records_replayed
        );
        assert!(
            stats.indexes_loaded + 2 >= last_indexed_at_kill as usize,
            "life {life}: {} indexes loaded, {last_indexed_at_kill} were done before the kill",
            stats.indexes_loaded
        );
        let rows_written = next_id as usize - 1;
        let segment_bound = rows_written / (SEAL_ROWS / 2) + 3;
        assert!(
            stats.segments_loaded <= segment_bound,
            "life {life}: {} segments for {rows_written} rows (bound {segment_bound})",
            stats.segments_loaded
        );
        let writer = tokio::spawn(write_until_killed(
            connect(port).await,
            next_id,
            life as u64,
        ));
        tokio::time::sleep(period.saturating_sub(ready.elapsed())).await;
        let state = index_state(&client).await;
        sigkill(&mut child.0);
        let (ids, statements) = writer.await.unwrap();
        next_id += ids.len() as i64 + 5; // the insert in flight may or may not have landed
        acked.extend(ids);
        previous_statements = statements;
        let (state, indexed, total) = state.expect("the index view answers");
        eprintln!("life {life}: {indexed} of {total} segments indexed at the kill ({state}), {statements} writes");
        if state == "ready" {
            done_after = Some(life);
            break;
        }
        if indexed > 0 {
            partial_kills += 1;
        }
        last_indexed_at_kill = indexed;
    }
    let restarts = done_after
        .unwrap_or_else(|| panic!("the build did not complete within {MAX_RESTARTS} restarts"));
    assert!(
        partial_kills >= 1,
        "a kill should land in the middle of the build (period {period:?})"
    );

    // A last start: every acknowledged row is there, searchable with the
    // index loaded (not rebuilt) on every segment.
    let log = log_path(logs.path(), restarts + 1);
    child = KillOnDrop(start(data.path(), port, &log));
    let client = connect(port).await;
    let stats = recovered(&log);
    assert!(stats.wal_records_replayed <= previous_statements + 1);
    let present: std::collections::HashSet<i64> = client
        .query("SELECT id FROM items", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let missing: Vec<&i64> = acked.iter().filter(|id| !present.contains(id)).collect();
    assert!(missing.is_empty(), "acknowledged rows lost: {missing:?}");
    let (_, indexed, total) = index_state(&client).await.unwrap();
    assert!(
        stats.indexes_loaded as i64 >= total - 1,
        "{} indexes loaded for {total} segments ({indexed} indexed now)",
        stats.indexes_loaded
    );
    let q = vector(&mut rng);
    let rows = client
        .query(
            &format!("SELECT id FROM items ORDER BY v <-> '{q}' LIMIT 10"),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 10);
    sigkill(&mut child.0);
    eprintln!(
        "crash loop: build complete after {restarts} restarts, {} acknowledged rows kept",
        acked.len()
    );
}
