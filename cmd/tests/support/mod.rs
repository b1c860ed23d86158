//! What the `quiver`-process tests share: free ports, private data
//! directories, killing the server (on drop, or with SIGKILL) and a
//! Postgres client that waits for the server to come up.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::process::Child;
use std::time::{Duration, Instant};

use tokio_postgres::{Client, NoTls};

/// A port nothing listens on right now, below the kernel's ephemeral range
/// (32768 and up) so that no outgoing connection takes it before the
/// process it is meant for binds it, or binds it again after a restart;
/// never the same port twice in one test process.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const FIRST: u32 = 10_000;
    const SPAN: u32 = 22_000;
    let start = (std::process::id().wrapping_mul(7_919)) % SPAN;
    loop {
        let step = NEXT.fetch_add(1, Ordering::Relaxed);
        assert!(step < SPAN, "no free port left below 32000");
        let port = (FIRST + (start + step * 13) % SPAN) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A temporary directory only its owner may use (0700), as the server
/// demands of its data directory.
pub fn private_tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .tempdir()
        .unwrap()
}

/// The endpoints of the live etcd `scripts/test.sh` starts
/// (`QUIVER_TEST_ETCD_ENDPOINTS`), or `None`: the test is skipped, unless
/// `QUIVER_TEST_REQUIRE_SERVICES=1` (CI), where it fails.
pub fn live_etcd() -> Option<String> {
    match std::env::var("QUIVER_TEST_ETCD_ENDPOINTS") {
        Ok(endpoints) if !endpoints.trim().is_empty() => Some(endpoints),
        _ if std::env::var("QUIVER_TEST_REQUIRE_SERVICES").as_deref() == Ok("1") => {
            panic!("QUIVER_TEST_ETCD_ENDPOINTS is not set but QUIVER_TEST_REQUIRE_SERVICES=1")
        }
        _ => {
            eprintln!("skipped: no etcd (set QUIVER_TEST_ETCD_ENDPOINTS)");
            None
        }
    }
}

/// The live S3-compatible server `scripts/test.sh` starts
/// (`QUIVER_TEST_S3_ENDPOINT`) and its bucket (`QUIVER_TEST_S3_BUCKET`;
/// credentials in the `AWS_*` variables), or `None` as [`live_etcd`].
pub fn live_s3() -> Option<(String, String)> {
    match (
        std::env::var("QUIVER_TEST_S3_ENDPOINT"),
        std::env::var("QUIVER_TEST_S3_BUCKET"),
    ) {
        (Ok(endpoint), Ok(bucket)) if !endpoint.is_empty() && !bucket.is_empty() => {
            Some((endpoint, bucket))
        }
        _ if std::env::var("QUIVER_TEST_REQUIRE_SERVICES").as_deref() == Ok("1") => {
            panic!("QUIVER_TEST_S3_ENDPOINT / QUIVER_TEST_S3_BUCKET are not set but QUIVER_TEST_REQUIRE_SERVICES=1")
        }
        _ => {
            eprintln!("skipped: no S3 (set QUIVER_TEST_S3_ENDPOINT and QUIVER_TEST_S3_BUCKET)");
            None
        }
    }
}

/// Nanoseconds since the epoch (unique names).
pub fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// Kills the server when the test ends, passing or failing.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// SIGKILLs `child` and reaps it.
pub fn sigkill(child: &mut Child) {
    // SAFETY: kill(2) on a child's pid touches no memory of this process.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGKILL);
    }
    let _ = child.wait();
}

/// A Postgres client of the server on `port`, retrying for up to a minute
/// while it starts (or recovers).
pub async fn connect(port: u16) -> Client {
    let deadline = Instant::now() + Duration::from_secs(60);
    let url = format!("postgres://quiver@127.0.0.1:{port}/quiver");
    loop {
        match tokio_postgres::connect(&url, NoTls).await {
            Ok((client, connection)) => {
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                return client;
            }
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("the server did not come up: {e}"),
        }
    }
}

/// The path of a service's binary a test starts processes of itself
/// (`QUIVER_TEST_ETCD_BIN`, `QUIVER_TEST_MOTO_BIN`), or `None` as
/// [`live_etcd`].
pub fn service_binary(variable: &str) -> Option<std::path::PathBuf> {
    match std::env::var(variable) {
        Ok(path) if !path.trim().is_empty() => Some(path.into()),
        _ if std::env::var("QUIVER_TEST_REQUIRE_SERVICES").as_deref() == Ok("1") => {
            panic!("{variable} is not set but QUIVER_TEST_REQUIRE_SERVICES=1")
        }
        _ => {
            eprintln!("skipped: no {variable}");
            None
        }
    }
}

/// Waits up to `timeout` for `child` to listen on `port`; fails at once,
/// naming its exit status, if it exits first.
pub fn wait_for_child_port(child: &mut Child, port: u16, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the process meant to listen on {port} exited: {status}");
        }
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends `signal` to `child` (SIGSTOP / SIGCONT to pause a service).
pub fn signal(child: &Child, signal: i32) {
    // SAFETY: kill(2) on a child's pid touches no memory of this process.
    unsafe {
        libc::kill(child.id() as i32, signal);
    }
}
