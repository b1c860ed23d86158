//! The server under attack: a `quiver standalone` process on free ports
//! with its log in a file, and the checks every phase ends with (alive,
//! no panic in the log, a normal query answered).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio_postgres::{Client, NoTls};

use super::support::free_port;

pub struct Server {
    child: Mutex<Child>,
    pub pg_port: u16,
    pub milvus_port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Server {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let pg_port = free_port();
        let milvus_port = free_port();
        let log = dir.path().join("quiver.log");
        let child = Command::new(env!("CARGO_BIN_EXE_quiver"))
            .args(["standalone", "--data-dir"])
            .arg(dir.path().join("data"))
            .args([
                "--pg-addr",
                &format!("127.0.0.1:{pg_port}"),
                "--milvus-addr",
                &format!("127.0.0.1:{milvus_port}"),
            ])
            // A stalled message is given up quickly, so truncated frames
            // are closed within the fuzzer's answer timeout.
            .env("QUIVER__PG__STALLED_MESSAGE_TIMEOUT_MS", "1000")
            .env("QUIVER__PG__STARTUP_TIMEOUT_MS", "5000")
            .env("QUIVER__PG__MAX_CONNECTIONS", "64")
            .env("QUIVER_LOG", "warn")
            .env("RUST_BACKTRACE", "1")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("quiver starts");
        let server = Self {
            child: Mutex::new(child),
            pg_port,
            milvus_port,
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        while server.client().await.is_err() {
            assert!(Instant::now() < deadline, "the server did not start");
            server.assert_running("starting");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        server
    }

    pub async fn client(&self) -> Result<Client, tokio_postgres::Error> {
        let url = format!("postgres://fuzz@127.0.0.1:{}/quiver", self.pg_port);
        let (client, connection) = tokio_postgres::connect(&url, NoTls).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(client)
    }

    /// Resident memory of the server process (KiB).
    pub fn rss_kib(&self) -> u64 {
        let pid = self.child.lock().unwrap().id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    fn assert_running(&self, when: &str) {
        let exited = self.child.lock().unwrap().try_wait().unwrap();
        assert!(
            exited.is_none(),
            "the server exited {when}: {exited:?}\n{}",
            self.log_tail()
        );
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let start = log.len().saturating_sub(8000);
        let start = (start..log.len())
            .find(|i| log.is_char_boundary(*i))
            .unwrap_or(log.len());
        log[start..].to_string()
    }

    /// The process runs and its log holds no panic, caught or not.
    pub fn assert_healthy(&self, when: &str) {
        self.assert_running(when);
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        assert!(
            !log.contains("panicked") && !log.contains("stack overflow"),
            "a panic in the server log {when}:\n{}",
            self.log_tail()
        );
    }

    /// A normal query is answered.
    pub async fn check_alive(&self) {
        let client = tokio::time::timeout(Duration::from_secs(30), self.client())
            .await
            .expect("connected in time")
            .expect("a normal client connects");
        let row = tokio::time::timeout(
            Duration::from_secs(30),
            client.query_one("SELECT 40 + 2", &[]),
        )
        .await
        .expect("answered in time")
        .expect("a normal query is answered");
        assert_eq!(row.get::<_, i32>(0), 42);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let mut child = self.child.lock().unwrap();
        let _ = child.kill();
        let _ = child.wait();
    }
}
