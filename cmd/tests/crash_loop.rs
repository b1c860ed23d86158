//! Background work under a crash loop: `quiver standalone` is SIGKILLed
//! over and over while a client keeps writing, with a kill period of a few
//! segments' build time, so long work cannot fit in one life, only a few
//! steps of it.
//!
//! * an index build over many sealed segments completes within a bounded
//!   number of restarts: finished segments' indexes are loaded, never
//!   rebuilt, and the build resumes with the next segment;
//! * a backlog of small segments is compacted within a bounded number of
//!   restarts: each merge is bounded and committed, so the segment count
//!   goes down instead of piling up.
//!
//! Checked at every restart (from the server's `recovered` log line and
//! `quiver_catalog.indexes`): the WAL replayed at startup is bounded by what
//! was written since the previous start (the checkpoint after recovery
//! truncates it), the segment count stays bounded; at the end every
//! acknowledged row is there.

mod support;

use support::{connect, free_port, private_tempdir, sigkill, KillOnDrop};

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::SinkExt;
use rand::{Rng, SeedableRng};
use tokio_postgres::Client;

const DIM: usize = 48;
/// One step (a segment's build, a merge) takes `1/PERIOD_STEPS` of the kill period.
const PERIOD_STEPS: u32 = 4;
/// The work must be complete after this many restarts.
const MAX_RESTARTS: usize = 16;
/// The server's HNSW parameters.
const HNSW: &str = "USING hnsw (v vector_l2_ops) WITH (m = 16, ef_construction = 400)";

/// The tests measure time: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Segment settings of a server.
#[derive(Debug, Clone, Copy)]
struct Settings {
    seal_rows: usize,
    compaction_min_segments: usize,
    compaction_small_rows: usize,
}

/// Starts the server with its log in `log`.
fn start(dir: &Path, port: u16, log: &Path, settings: Settings) -> Child {
    let log = std::fs::File::create(log).expect("log file");
    Command::new(env!("CARGO_BIN_EXE_quiver"))
        .args(["standalone", "--data-dir"])
        .arg(dir)
        .args([
            "--pg-addr",
            &format!("127.0.0.1:{port}"),
            "--seal-rows",
            &settings.seal_rows.to_string(),
            "--milvus-addr",
            "127.0.0.1:0",
        ])
        .env("QUIVER__SEGMENT__MAINTENANCE_INTERVAL_MS", "100")
        .env(
            "QUIVER__SEGMENT__COMPACTION_MIN_SEGMENTS",
            settings.compaction_min_segments.to_string(),
        )
        .env(
            "QUIVER__SEGMENT__COMPACTION_SMALL_ROWS",
            settings.compaction_small_rows.to_string(),
        )
        .env("QUIVER_LOG", "warn,quiver_cluster=info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("quiver starts")
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
    // `name=3` (a tracing field) or `name: 3` (a Debug-printed struct).
    let field = |name: &str| -> usize {
        let (start, sep) = [format!("{name}="), format!("{name}: ")]
            .into_iter()
            .find_map(|pattern| Some((line.find(&pattern)?, pattern.len())))
            .unwrap_or_else(|| panic!("no {name} in {line}"));
        line[start + sep..]
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

/// Creates `items` and writes `segments` segments of `rows` rows by COPY
/// (one COPY per segment); returns the ids written.
async fn load(client: &Client, segments: usize, rows: usize, rng: &mut impl Rng) -> Vec<i64> {
    client
        .batch_execute(&format!(
            "CREATE TABLE items (id BIGINT PRIMARY KEY, v vector({DIM}))"
        ))
        .await
        .unwrap();
    let mut ids = Vec::new();
    for segment in 0..segments {
        let mut text = String::new();
        for i in 0..rows {
            let id = (segment * rows + i + 1) as i64;
            text.push_str(&format!("{id}\t{}\n", vector(rng)));
            ids.push(id);
        }
        let mut sink = Box::pin(
            client
                .copy_in("COPY items (id, v) FROM STDIN")
                .await
                .unwrap(),
        );
        sink.send(Cursor::new(text.into_bytes())).await.unwrap();
        assert_eq!(sink.as_mut().finish().await.unwrap(), rows as u64);
    }
    ids
}

/// What one life of the crash loop saw.
#[derive(Debug)]
struct Life {
    /// The `recovered` line of its start.
    stats: Recovered,
    /// (state, segments indexed, segments total) just before the kill.
    state: String,
    indexed: i64,
    total: i64,
}

/// The crash loop's state across lives.
struct Loop {
    data: tempfile::TempDir,
    logs: tempfile::TempDir,
    port: u16,
    lives: usize,
    next_id: i64,
    acked: Vec<i64>,
    previous_statements: usize,
}

impl Loop {
    fn new() -> Self {
        Self {
            // The server demands a private (0700) data directory.
            data: private_tempdir(),
            logs: tempfile::tempdir().unwrap(),
            port: free_port(),
            lives: 0,
            next_id: 1,
            acked: Vec::new(),
            previous_statements: 0,
        }
    }

    /// Starts the next life and connects.
    async fn start(&mut self, settings: Settings) -> (KillOnDrop, Client, Recovered) {
        let log = log_path(self.logs.path(), self.lives);
        self.lives += 1;
        let child = KillOnDrop(start(self.data.path(), self.port, &log, settings));
        let client = connect(self.port).await;
        let stats = recovered(&log);
        assert!(
            stats.wal_records_replayed <= self.previous_statements + 1,
            "life {}: WAL replay {} is bounded by the {} writes since the previous start",
            self.lives - 1,
            stats.wal_records_replayed,
            self.previous_statements
        );
        (child, client, stats)
    }

    /// One life of the loop: start, write for `period` after the server is
    /// ready, read the index state, SIGKILL.
    async fn life(&mut self, settings: Settings, period: Duration) -> Life {
        let (mut child, client, stats) = self.start(settings).await;
        let ready = Instant::now();
        let writer = tokio::spawn(write_until_killed(
            connect(self.port).await,
            self.next_id,
            self.lives as u64,
        ));
        tokio::time::sleep(period.saturating_sub(ready.elapsed())).await;
        let state = index_state(&client).await;
        sigkill(&mut child.0);
        let (ids, statements) = writer.await.unwrap();
        // The insert in flight may or may not have landed.
        self.next_id += ids.len() as i64 + 5;
        self.acked.extend(ids);
        self.previous_statements = statements;
        let (state, indexed, total) = state.expect("the index view answers");
        let life = Life {
            stats,
            state,
            indexed,
            total,
        };
        eprintln!("life {}: {life:?}, {statements} writes", self.lives - 1);
        life
    }

    /// A last start: every acknowledged row is there and a search answers.
    async fn verify(&mut self, settings: Settings) -> Recovered {
        let (mut child, client, stats) = self.start(settings).await;
        let present: std::collections::HashSet<i64> = client
            .query("SELECT id FROM items", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        let missing: Vec<&i64> = self
            .acked
            .iter()
            .filter(|id| !present.contains(id))
            .collect();
        assert!(missing.is_empty(), "acknowledged rows lost: {missing:?}");
        let q = vector(&mut rand::rngs::StdRng::seed_from_u64(7));
        let rows = client
            .query(
                &format!("SELECT id FROM items ORDER BY v <-> '{q}' LIMIT 10"),
                &[],
            )
            .await
            .unwrap();
        assert_eq!(rows.len(), 10);
        sigkill(&mut child.0);
        stats
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_build_completes_under_a_crash_loop() {
    let _serial = SERIAL.lock().await;
    const SEGMENTS: usize = 16;
    let settings = Settings {
        seal_rows: 1_000,
        compaction_min_segments: 3,
        compaction_small_rows: 500,
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x100b);
    let mut run = Loop::new();

    // Life 0: SEGMENTS full segments, then CREATE INDEX CONCURRENTLY; the
    // first segments' build time sets the kill period.
    let (mut child, client, _) = run.start(settings).await;
    run.acked = load(&client, SEGMENTS, settings.seal_rows, &mut rng).await;
    run.next_id = run.acked.len() as i64 + 1;
    client
        .batch_execute(&format!(
            "CREATE INDEX CONCURRENTLY items_v ON items {HNSW}"
        ))
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
    let period = (segment_build * PERIOD_STEPS).max(Duration::from_millis(300));
    eprintln!("one segment's build: {segment_build:?}; kill period after ready: {period:?}");
    let (_, mut last_indexed, _) = index_state(&client).await.unwrap();
    assert!(
        last_indexed < SEGMENTS as i64 - 2,
        "the whole build must not fit in a few segments' time"
    );
    sigkill(&mut child.0);

    // The crash loop, with a client writing during every life. A life fits
    // PERIOD_STEPS segments' builds, fewer than SEGMENTS: the build spans
    // lives, each resuming where the previous one was killed.
    let mut done_after = None;
    for restart in 1..=MAX_RESTARTS {
        let life = run.life(settings, period).await;
        // A later compaction may merge small indexed segments (3 into 1).
        let slack = if restart == 1 { 0 } else { 2 };
        assert!(
            life.stats.indexes_loaded + slack >= last_indexed as usize,
            "restart {restart}: {} indexes loaded, {last_indexed} were done before the kill",
            life.stats.indexes_loaded
        );
        let rows_written = run.next_id as usize;
        let segment_bound = rows_written / settings.compaction_small_rows + 3;
        assert!(
            life.stats.segments_loaded <= segment_bound,
            "restart {restart}: {} segments for {rows_written} rows (bound {segment_bound})",
            life.stats.segments_loaded
        );
        if life.state == "ready" {
            done_after = Some(restart);
            break;
        }
        last_indexed = life.indexed;
    }
    let restarts = done_after
        .unwrap_or_else(|| panic!("the build did not complete within {MAX_RESTARTS} restarts"));
    let stats = run.verify(settings).await;
    assert!(
        stats.indexes_loaded + 1 >= stats.segments_loaded,
        "every segment's index is loaded, not rebuilt, but the one sealed at this start: {stats:?}"
    );
    eprintln!(
        "index build complete after {restarts} restarts, {} acknowledged rows kept",
        run.acked.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_of_small_segments_is_compacted_under_a_crash_loop() {
    let _serial = SERIAL.lock().await;
    const SEGMENTS: usize = 60;
    const MERGED_ROWS: usize = 1_000;
    // Life 0 piles up SEGMENTS small indexed segments (no compaction) ...
    let piling = Settings {
        seal_rows: 200,
        compaction_min_segments: 1_000_000,
        compaction_small_rows: MERGED_ROWS,
    };
    // ... which the crash loop then compacts five at a time.
    let settings = Settings {
        compaction_min_segments: 3,
        ..piling
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(0xc0c0);
    let mut run = Loop::new();
    let (mut child, client, _) = run.start(piling).await;
    run.acked = load(&client, SEGMENTS, piling.seal_rows, &mut rng).await;
    run.next_id = run.acked.len() as i64 + 1;
    client
        .batch_execute(&format!("CREATE INDEX items_v ON items {HNSW}"))
        .await
        .unwrap();
    let (state, indexed, total) = index_state(&client).await.unwrap();
    assert_eq!(
        (state.as_str(), indexed, total),
        ("ready", SEGMENTS as i64, SEGMENTS as i64)
    );
    sigkill(&mut child.0);

    // Life 1, with compaction: the first two merges set the kill period.
    // Each merge takes five segments (1,000 rows) and leaves one.
    let (mut child, client, _) = run.start(settings).await;
    let (mut first, mut second) = (None, None);
    let deadline = Instant::now() + Duration::from_secs(60);
    while second.is_none() {
        assert!(Instant::now() < deadline, "compaction does not start");
        let (_, _, total) = index_state(&client).await.unwrap();
        assert!(
            first.is_some() || total == SEGMENTS as i64 || total == SEGMENTS as i64 - 4,
            "a compaction step merges five small segments, not {}",
            SEGMENTS as i64 - total + 1
        );
        if total <= SEGMENTS as i64 - 4 && first.is_none() {
            first = Some(Instant::now());
        }
        if total <= SEGMENTS as i64 - 8 {
            second = Some(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    sigkill(&mut child.0);
    let merge = second.unwrap() - first.unwrap();
    let period = (merge * PERIOD_STEPS).max(Duration::from_millis(300));
    eprintln!("one merge: {merge:?}; kill period after ready: {period:?}");

    let merged = SEGMENTS * piling.seal_rows / MERGED_ROWS;
    let mut done_after = None;
    let mut previous_segments = SEGMENTS - 8;
    for restart in 1..=MAX_RESTARTS {
        let life = run.life(settings, period).await;
        // Each start seals one small segment and a life's writes at most one
        // more: the count never grows by more than that.
        assert!(
            life.stats.segments_loaded <= previous_segments + 2,
            "restart {restart}: segments pile up: {} after {previous_segments}",
            life.stats.segments_loaded
        );
        previous_segments = life.total as usize;
        if life.state == "ready" && life.total as usize <= merged + 3 {
            done_after = Some(restart);
            break;
        }
    }
    let restarts = done_after
        .unwrap_or_else(|| panic!("the backlog was not compacted within {MAX_RESTARTS} restarts"));
    let stats = run.verify(settings).await;
    assert!(stats.segments_loaded <= merged + 3, "{stats:?}");
    eprintln!(
        "backlog of {SEGMENTS} segments compacted to {} after {restarts} restarts",
        stats.segments_loaded
    );
}
