//! End-to-end tests of the Postgres door's limits over TCP: malformed and
//! oversized messages, the connection limit, idle timeouts and the session
//! defaults that come from the configuration.

use std::sync::Arc;
use std::time::Duration;

use quiver_cluster::Engine;
use quiver_common::config::{PgConfig, QuiverConfig};
use quiver_sql::handler::pg::PgHandlerRef;
use quiver_sql::Instance;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_postgres::NoTls;

use super::{serve_on, PgServerOptions};

struct Server {
    port: u16,
    _stop: tokio::sync::oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

async fn start(pg: PgConfig) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let config = QuiverConfig {
        data_dir: dir.path().to_path_buf(),
        ..Default::default()
    };
    let engine = Engine::open(config).await.unwrap();
    let handler: PgHandlerRef = Arc::new(Instance::new(engine));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let options = PgServerOptions::from_config(&pg);
    tokio::spawn(serve_on(listener, None, handler, options, async move {
        let _ = stopped.await;
    }));
    Server {
        port,
        _stop: stop,
        _dir: dir,
    }
}

type Connected = (
    tokio_postgres::Client,
    tokio::task::JoinHandle<Result<(), tokio_postgres::Error>>,
);

async fn connect(port: u16) -> Result<Connected, tokio_postgres::Error> {
    let url = format!("host=127.0.0.1 port={port} user=tester dbname=quiver");
    let (client, connection) = tokio_postgres::connect(&url, NoTls).await?;
    Ok((client, tokio::spawn(connection)))
}

fn sqlstate(e: &tokio_postgres::Error) -> Option<String> {
    e.as_db_error().map(|d| d.code().code().to_string())
}

/// A raw protocol client past its startup (ReadyForQuery received).
async fn raw_client(port: u16) -> TcpStream {
    let mut socket = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let body = b"\x00\x03\x00\x00user\0tester\0database\0quiver\0\0";
    let mut startup = ((body.len() + 4) as i32).to_be_bytes().to_vec();
    startup.extend_from_slice(body);
    socket.write_all(&startup).await.unwrap();
    loop {
        let (tag, _) = read_message(&mut socket).await.expect("startup reply");
        if tag == b'Z' {
            return socket;
        }
    }
}

/// One backend message (type, body); `None` once the server closed.
async fn read_message(socket: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
    let mut header = [0u8; 5];
    socket.read_exact(&mut header).await.ok()?;
    let len = i32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
    let mut body = vec![0; len - 4];
    socket.read_exact(&mut body).await.ok()?;
    Some((header[0], body))
}

/// The SQLSTATE field of an ErrorResponse body.
fn error_code(body: &[u8]) -> String {
    body.split(|b| *b == 0)
        .find_map(|field| field.strip_prefix(b"C"))
        .map(|code| String::from_utf8_lossy(code).into_owned())
        .unwrap_or_default()
}

/// Sends `bytes` and expects a FATAL with `code`, then the close.
async fn expect_fatal(port: u16, bytes: &[u8], code: &str) -> String {
    let mut socket = raw_client(port).await;
    socket.write_all(bytes).await.unwrap();
    let (tag, body) = tokio::time::timeout(Duration::from_secs(10), read_message(&mut socket))
        .await
        .expect("answered in time")
        .expect("an error before the close");
    assert_eq!(tag, b'E');
    assert_eq!(
        error_code(&body),
        code,
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert!(String::from_utf8_lossy(&body).contains("FATAL"));
    assert!(
        read_message(&mut socket).await.is_none(),
        "closed after the error"
    );
    String::from_utf8_lossy(&body).into_owned()
}

async fn still_serves(port: u16) {
    let (client, _) = connect(port).await.unwrap();
    let row = client.query_one("SELECT 40 + 2", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 42);
}

#[tokio::test]
async fn malformed_messages_close_only_their_connection() {
    let server = start(PgConfig::default()).await;
    for (bytes, expected) in [
        (
            &b"B\x00\x00\x00\x08\x00\x00\x00\x01"[..],
            "insufficient data",
        ),
        (
            &b"P\x00\x00\x00\x08\x00\x00\x00\x01"[..],
            "insufficient data",
        ),
        (&b"p\x00\x00\x00\x03"[..], "invalid message length"),
        (&b"Y\x00\x00\x00\x04"[..], "invalid frontend message type"),
    ] {
        let message = expect_fatal(server.port, bytes, "08P01").await;
        assert!(message.contains(expected), "{message}");
    }
    still_serves(server.port).await;
}

#[tokio::test]
async fn a_message_over_the_limit_is_refused_at_its_header() {
    let server = start(PgConfig::default()).await;
    // 300 MB declared, none of it sent: refused without waiting for the body.
    let mut header = vec![b'Q'];
    header.extend_from_slice(&(300_000_000i32 + 4).to_be_bytes());
    let message = expect_fatal(server.port, &header, "08P01").await;
    assert!(
        message.contains("exceeds the limit of 268435456 bytes (pg.max_message_bytes)"),
        "{message}"
    );
    // A smaller configured limit is the one enforced.
    let small = start(PgConfig {
        max_message_bytes: 1024,
        ..Default::default()
    })
    .await;
    let (client, _) = connect(small.port).await.unwrap();
    let long = format!("SELECT '{}'", "x".repeat(2000));
    assert!(client.simple_query(&long).await.is_err());
    still_serves(small.port).await;
}

#[tokio::test]
async fn connections_past_the_limit_get_53300() {
    let server = start(PgConfig {
        max_connections: 2,
        ..Default::default()
    })
    .await;
    let first = connect(server.port).await.unwrap();
    let _second = connect(server.port).await.unwrap();
    let Err(refused) = connect(server.port).await else {
        panic!("the third connection was accepted");
    };
    assert_eq!(sqlstate(&refused).as_deref(), Some("53300"), "{refused}");
    assert_eq!(
        refused.as_db_error().map(|d| d.message()),
        Some("sorry, too many clients already")
    );
    // A slot frees when a client leaves.
    drop(first.0);
    let _ = first.1.await;
    let mut third = None;
    for _ in 0..50 {
        match connect(server.port).await {
            Ok(client) => {
                third = Some(client);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    let (client, _) = third.expect("a freed slot is reused");
    client.simple_query("SELECT 1").await.unwrap();
}

#[tokio::test]
async fn idle_timeouts_close_the_connection_as_postgres_does() {
    let server = start(PgConfig::default()).await;
    let (client, connection) = connect(server.port).await.unwrap();
    client
        .batch_execute("SET idle_in_transaction_session_timeout = 100; BEGIN")
        .await
        .unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(10), connection)
        .await
        .expect("closed by the server")
        .unwrap();
    let err = ended.expect_err("a FATAL error");
    assert_eq!(sqlstate(&err).as_deref(), Some("25P03"), "{err}");

    // Outside a transaction the in-transaction timeout does not apply...
    let (client, connection) = connect(server.port).await.unwrap();
    client
        .batch_execute("SET idle_in_transaction_session_timeout = 50")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    client.simple_query("SELECT 1").await.unwrap();
    // ...idle_session_timeout does.
    client
        .batch_execute("SET idle_session_timeout = '100ms'")
        .await
        .unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(10), connection)
        .await
        .expect("closed by the server")
        .unwrap();
    let err = ended.expect_err("a FATAL error");
    assert_eq!(sqlstate(&err).as_deref(), Some("57P05"), "{err}");
    still_serves(server.port).await;
}

#[tokio::test]
async fn session_defaults_come_from_the_configuration() {
    let server = start(PgConfig {
        statement_timeout_ms: 5000,
        idle_session_timeout_ms: 200,
        ..Default::default()
    })
    .await;
    let (client, connection) = connect(server.port).await.unwrap();
    let row = client
        .query_one("SHOW statement_timeout", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "5000ms");
    // Never used again: the configured idle_session_timeout closes it.
    let ended = tokio::time::timeout(Duration::from_secs(10), connection)
        .await
        .expect("closed by the server")
        .unwrap();
    assert_eq!(sqlstate(&ended.unwrap_err()).as_deref(), Some("57P05"));
    // A session may turn its own timeout off.
    let (client, connection) = connect(server.port).await.unwrap();
    client
        .batch_execute("SET idle_session_timeout = 0")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!connection.is_finished());
    client.simple_query("SELECT 1").await.unwrap();
}

#[tokio::test]
async fn a_stalled_message_closes_its_connection() {
    let server = start(PgConfig {
        stalled_message_timeout_ms: 200,
        ..Default::default()
    })
    .await;
    let mut socket = raw_client(server.port).await;
    socket.write_all(b"Q\x00\x00\x00\x20SELECT").await.unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(10), read_message(&mut socket))
        .await
        .expect("closed in time");
    assert!(closed.is_none());
    still_serves(server.port).await;
}
