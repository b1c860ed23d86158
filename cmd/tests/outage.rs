//! Dependency outages while serving: a standalone on etcd + S3 + the
//! object-store WAL, under a steady write load, sees its etcd killed and
//! restarted, then its S3 server paused (SIGSTOP) and resumed (moto keeps
//! its objects in memory, so a pause is its outage; a restart would lose
//! the bucket).
//!
//! While a dependency is down, writes fail with a clear error within a
//! bounded time (etcd: SQLSTATE 57P03 once the timestamp oracle's
//! persisted window runs out; S3: 08007, the WAL object's outcome
//! unknown), the connection stays usable and reads of loaded data go on;
//! when the dependency returns, writes succeed again with no restart.
//! A Milvus client's insert during etcd's outage fails with Milvus' code 2
//! (service unavailable). Finally a SIGKILL and a restart: every
//! acknowledged row is there, and no write refused with 57P03 (which did
//! nothing) is.
//!
//! etcd and the S3 server are processes of this test (their binaries from
//! `QUIVER_TEST_ETCD_BIN` / `QUIVER_TEST_MOTO_BIN`, set by
//! `scripts/test.sh`), so pausing them disturbs no other test.

mod support;

use std::collections::BTreeSet;
use std::io::{Read, Write as _};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use milvus::proto::milvus::milvus_service_client::MilvusServiceClient;
use milvus::proto::milvus::{InsertRequest, QueryRequest};
use milvus::proto::schema::{
    field_data, scalar_field, DataType, FieldData, LongArray, ScalarField, StringArray,
};

use support::{
    connect, free_port, nanos, private_tempdir, service_binary, sigkill, signal,
    wait_for_child_port, KillOnDrop,
};

/// Deadline of one etcd request and of one S3 attempt (and the S3 retry
/// budget) the server under test runs with, so outages show in seconds.
const SERVICE_TIMEOUT_MS: u64 = 2_000;
/// The longest a write may take while a dependency is down: the S3 retry
/// budget plus one attempt (4 s), with room for a slow machine.
const WRITE_BOUND: Duration = Duration::from_secs(12);
/// How long each outage lasts: past the timestamp oracle's 3 s window, so
/// etcd's absence reaches the writes.
const OUTAGE: Duration = Duration::from_secs(7);

/// One write of the load: its id, how long it took, and its SQLSTATE when
/// it failed (`None` for an error without one: a broken connection).
#[derive(Debug, Clone)]
struct Write {
    id: i64,
    took: Duration,
    failed: Option<Option<String>>,
}

/// Inserts rows one at a time on its own connection until stopped,
/// recording every outcome.
struct Load {
    writes: Arc<Mutex<Vec<Write>>>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Load {
    async fn start(port: u16) -> Self {
        let client = connect(port).await;
        let writes = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn({
            let (writes, stop) = (writes.clone(), stop.clone());
            async move {
                let mut id = 0i64;
                while !stop.load(Ordering::Relaxed) {
                    id += 1;
                    let started = Instant::now();
                    let result = client
                        .execute("INSERT INTO t VALUES ($1, 'row')", &[&id])
                        .await;
                    let failed = result
                        .err()
                        .map(|e| e.as_db_error().map(|db| db.code().code().to_string()));
                    let pause = if failed.is_some() { 100 } else { 5 };
                    writes.lock().unwrap().push(Write {
                        id,
                        took: started.elapsed(),
                        failed,
                    });
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                }
            }
        });
        Self { writes, stop, task }
    }

    fn len(&self) -> usize {
        self.writes.lock().unwrap().len()
    }

    /// The writes recorded from index `from` on.
    fn since(&self, from: usize) -> Vec<Write> {
        self.writes.lock().unwrap()[from..].to_vec()
    }

    /// Waits up to `timeout` for a write recorded from `from` on that
    /// `matches`.
    async fn wait_for(&self, from: usize, timeout: Duration, matches: impl Fn(&Write) -> bool) {
        let deadline = Instant::now() + timeout;
        while !self.since(from).iter().any(&matches) {
            assert!(
                Instant::now() < deadline,
                "no such write within {timeout:?}: {:?}",
                self.since(from).last()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(self) -> Vec<Write> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap();
        Arc::try_unwrap(self.writes).unwrap().into_inner().unwrap()
    }
}

/// An etcd of this test, killed and restarted on the same data directory.
struct Etcd {
    binary: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    peer_port: u16,
    process: Option<KillOnDrop>,
}

impl Etcd {
    fn start(binary: PathBuf) -> Self {
        let mut etcd = Self {
            binary,
            dir: tempfile::tempdir().unwrap(),
            port: free_port(),
            peer_port: free_port(),
            process: None,
        };
        etcd.restart();
        etcd
    }

    fn restart(&mut self) {
        let client = format!("http://127.0.0.1:{}", self.port);
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let child = Command::new(&self.binary)
            .args(["--name", "outage", "--data-dir"])
            .arg(self.dir.path())
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("outage={peer}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("etcd starts");
        let mut process = KillOnDrop(child);
        wait_for_child_port(&mut process.0, self.port, Duration::from_secs(30));
        self.process = Some(process);
    }

    fn kill(&mut self) {
        let mut process = self.process.take().expect("etcd runs");
        sigkill(&mut process.0);
    }
}

/// moto's S3 server with one bucket, `quiver`.
fn start_moto(binary: &PathBuf, port: u16) -> KillOnDrop {
    let child = Command::new(binary)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("moto starts");
    let mut moto = KillOnDrop(child);
    wait_for_child_port(&mut moto.0, port, Duration::from_secs(60));
    let mut http = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        http,
        "PUT /quiver HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    http.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    moto
}

/// A client of the Milvus door on `port`.
async fn milvus_client(port: u16) -> MilvusServiceClient<tonic::transport::Channel> {
    let channel = tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect()
        .await
        .expect("the Milvus door answers");
    MilvusServiceClient::new(channel)
}

/// Queries `t` through the Milvus door on `port` with the guarantee
/// timestamp pymilvus sends for a consistency level (2: Bounded); the
/// reply's status code and reason.
async fn milvus_query(port: u16, guarantee: u64) -> (i32, String) {
    let request = QueryRequest {
        collection_name: "t".into(),
        expr: "id > 0".into(),
        output_fields: vec!["id".into()],
        guarantee_timestamp: guarantee,
        ..Default::default()
    };
    let reply = milvus_client(port)
        .await
        .query(request)
        .await
        .expect("an answer");
    let status = reply.into_inner().status.unwrap_or_default();
    (status.code, status.reason)
}

/// Inserts row `id` of `t` through the Milvus door on `port`; the reply's
/// status code and reason.
async fn milvus_insert(port: u16, id: i64) -> (i32, String) {
    let mut client = milvus_client(port).await;
    let scalar = |name: &str, r#type: DataType, data: scalar_field::Data| FieldData {
        r#type: r#type as i32,
        field_name: name.into(),
        field: Some(field_data::Field::Scalars(ScalarField {
            data: Some(data),
            ..Default::default()
        })),
        ..Default::default()
    };
    let request = InsertRequest {
        collection_name: "t".into(),
        num_rows: 1,
        fields_data: vec![
            scalar(
                "id",
                DataType::Int64,
                scalar_field::Data::LongData(LongArray { data: vec![id] }),
            ),
            scalar(
                "v",
                DataType::VarChar,
                scalar_field::Data::StringData(StringArray {
                    data: vec!["milvus".into()],
                }),
            ),
        ],
        ..Default::default()
    };
    let status = client
        .insert(request)
        .await
        .expect("an answer")
        .into_inner()
        .status
        .unwrap_or_default();
    (status.code, status.reason)
}

/// `quiver standalone` on the etcd and S3 server given, with short
/// service deadlines; small segments, so flushes run during the outages;
/// the Postgres door on `doors.pg`, the Milvus door on `doors.milvus`.
fn start_quiver(
    data: &std::path::Path,
    doors: Doors,
    etcd: u16,
    s3: u16,
    root: &str,
) -> KillOnDrop {
    let timeout = SERVICE_TIMEOUT_MS.to_string();
    let child = Command::new(env!("CARGO_BIN_EXE_quiver"))
        .args(["standalone", "--data-dir"])
        .arg(data)
        .args([
            "--pg-addr",
            &format!("127.0.0.1:{}", doors.pg),
            "--milvus-addr",
            &format!("127.0.0.1:{}", doors.milvus),
        ])
        .args(["--seal-rows", "200"])
        .env("QUIVER__META__BACKEND", "etcd")
        .env(
            "QUIVER__META__ETCD_ENDPOINTS",
            format!("http://127.0.0.1:{etcd}"),
        )
        .env("QUIVER__META__ROOT", root)
        .env("QUIVER__META__ETCD_REQUEST_TIMEOUT_MS", &timeout)
        .env("QUIVER__META__ETCD_CONNECT_TIMEOUT_MS", &timeout)
        .env("QUIVER__OBJECTS__BACKEND", "s3")
        .env(
            "QUIVER__OBJECTS__S3_ENDPOINT",
            format!("http://127.0.0.1:{s3}"),
        )
        .env("QUIVER__OBJECTS__S3_BUCKET", "quiver")
        .env("QUIVER__OBJECTS__S3_REQUEST_TIMEOUT_MS", &timeout)
        .env("QUIVER__OBJECTS__S3_RETRY_TIMEOUT_MS", &timeout)
        .env("QUIVER__WAL__BACKEND", "object_store")
        .env("AWS_ACCESS_KEY_ID", "quiver-test")
        .env("AWS_SECRET_ACCESS_KEY", "quiver-test")
        .env("QUIVER_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("quiver starts");
    KillOnDrop(child)
}

/// The ports of the two doors.
#[derive(Debug, Clone, Copy)]
struct Doors {
    pg: u16,
    milvus: u16,
}

impl Doors {
    /// Two distinct free ports, each from `bind(0)` (Linux hands those out
    /// odd, while outgoing connections take even local ports: a port next
    /// to a free one may be an outgoing connection's when the server binds).
    fn free() -> Self {
        let pg = free_port();
        loop {
            let milvus = free_port();
            if milvus != pg {
                return Self { pg, milvus };
            }
        }
    }
}

/// Every write recorded during an outage took at most [`WRITE_BOUND`] and
/// failed, if it did, with one of `codes` (never a broken connection).
fn check_bounded(writes: &[Write], codes: &[&str], outage: &str) {
    for write in writes {
        assert!(
            write.took <= WRITE_BOUND,
            "{outage}: write {} took {:?}",
            write.id,
            write.took
        );
        if let Some(code) = &write.failed {
            let code = code
                .as_deref()
                .unwrap_or("no SQLSTATE: the connection broke");
            assert!(
                codes.contains(&code),
                "{outage}: write {} failed with {code}",
                write.id
            );
        }
    }
}

/// `SELECT count(*)` answers within 5 s and counts at least `at_least`.
async fn reads_go_on(reader: &tokio_postgres::Client, at_least: usize, outage: &str) {
    let started = Instant::now();
    let count: i64 = tokio::time::timeout(
        Duration::from_secs(5),
        reader.query_one("SELECT count(*) FROM t WHERE v = 'row'", &[]),
    )
    .await
    .unwrap_or_else(|_| panic!("{outage}: a read hung"))
    .unwrap_or_else(|e| panic!("{outage}: a read failed: {:?}", e.as_db_error()))
    .get(0);
    assert!(
        count as usize >= at_least,
        "{outage}: {count} < {at_least} rows"
    );
    eprintln!("{outage}: count(*) = {count} in {:?}", started.elapsed());
}

fn acknowledged(writes: &[Write]) -> usize {
    writes.iter().filter(|w| w.failed.is_none()).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_fail_in_bounded_time_and_resume_when_etcd_or_s3_return() {
    let (Some(etcd_bin), Some(moto_bin)) = (
        service_binary("QUIVER_TEST_ETCD_BIN"),
        service_binary("QUIVER_TEST_MOTO_BIN"),
    ) else {
        return;
    };
    let mut etcd = Etcd::start(etcd_bin);
    let s3_port = free_port();
    let moto = start_moto(&moto_bin, s3_port);
    let data = private_tempdir();
    let doors = Doors::free();
    let port = doors.pg;
    let root = format!("/quiver/outage-{}", nanos());
    let mut server = start_quiver(data.path(), doors, etcd.port, s3_port, &root);
    let reader = connect(port).await;
    reader
        .batch_execute("CREATE TABLE t (id BIGINT PRIMARY KEY, v TEXT)")
        .await
        .unwrap();
    let load = Load::start(port).await;
    load.wait_for(0, Duration::from_secs(30), |w| {
        w.id >= 300 && w.failed.is_none()
    })
    .await;

    // etcd killed: writes go on while the timestamp window lasts, then fail
    // with 57P03; reads go on; etcd back, writes succeed again.
    let before = load.len();
    let acked_before = acknowledged(&load.since(0));
    let killed = Instant::now();
    etcd.kill();
    load.wait_for(before, OUTAGE, |w| w.failed.is_some()).await;
    eprintln!(
        "etcd down: the first write failed after {:?}",
        killed.elapsed()
    );
    reads_go_on(&reader, acked_before, "etcd down").await;
    let (code, reason) = milvus_insert(doors.milvus, -1).await;
    assert_eq!(code, 2, "a Milvus insert while etcd is down: {reason}");
    assert!(reason.contains("no timestamp available"), "{reason}");
    for (level, guarantee) in [("Strong", 0), ("Eventually", 1), ("Bounded", 2)] {
        let (code, reason) = milvus_query(doors.milvus, guarantee).await;
        assert_eq!(
            code, 0,
            "a {level} Milvus query while etcd is down: {reason}"
        );
    }
    tokio::time::sleep(OUTAGE.saturating_sub(killed.elapsed())).await;
    let restart = load.len();
    let restarted = Instant::now();
    etcd.restart();
    load.wait_for(restart, Duration::from_secs(30), |w| w.failed.is_none())
        .await;
    eprintln!(
        "etcd back: writes succeed again after {:?}",
        restarted.elapsed()
    );
    check_bounded(&load.since(before), &["57P03"], "etcd down");

    // The S3 server paused: the WAL append's outcome is unknown (08007)
    // within the S3 deadlines; reads go on; resumed, writes succeed again.
    load.wait_for(restart, Duration::from_secs(30), |w| w.id > 0)
        .await;
    let before = load.len();
    let acked_before = acknowledged(&load.since(0));
    let paused = Instant::now();
    signal(&moto.0, libc::SIGSTOP);
    load.wait_for(before, WRITE_BOUND, |w| w.failed.is_some())
        .await;
    eprintln!(
        "S3 paused: the first write failed after {:?}",
        paused.elapsed()
    );
    reads_go_on(&reader, acked_before, "S3 paused").await;
    tokio::time::sleep(OUTAGE.saturating_sub(paused.elapsed())).await;
    let resume = load.len();
    let resumed = Instant::now();
    signal(&moto.0, libc::SIGCONT);
    load.wait_for(resume, Duration::from_secs(30), |w| w.failed.is_none())
        .await;
    eprintln!(
        "S3 back: writes succeed again after {:?}",
        resumed.elapsed()
    );
    check_bounded(&load.since(before), &["08007", "57P03"], "S3 paused");

    // Nothing acknowledged is lost; nothing refused with 57P03 appears.
    let writes = load.stop().await;
    sigkill(&mut server.0);
    let _server = start_quiver(data.path(), doors, etcd.port, s3_port, &root);
    let client = connect(port).await;
    let present: BTreeSet<i64> = client
        .query("SELECT id FROM t", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    let mut refused = 0;
    for write in &writes {
        match write.failed.as_ref().map(|code| code.as_deref()) {
            None => assert!(
                present.contains(&write.id),
                "acknowledged row {} lost",
                write.id
            ),
            Some(Some("57P03")) => {
                refused += 1;
                assert!(
                    !present.contains(&write.id),
                    "refused row {} appeared",
                    write.id
                );
            }
            Some(_) => {}
        }
    }
    eprintln!(
        "{} writes: {} acknowledged (all present), {refused} refused with 57P03 (none present), {} of unknown outcome",
        writes.len(),
        acknowledged(&writes),
        writes.len() - acknowledged(&writes) - refused
    );
    assert!(refused > 0, "etcd's outage refused writes");
    assert!(
        !present.contains(&-1),
        "the refused Milvus insert did nothing"
    );
}
