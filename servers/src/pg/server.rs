//! The accept loop (connection limit, TCP and Unix socket): one handler set
//! (see `handlers`) and one `conn` loop per accepted connection.

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use pgwire::api::cancel::DefaultCancelHandler;
use pgwire::api::ConnectionManager;
use quiver_common::config::PgConfig;
use quiver_sql::handler::pg::PgHandlerRef;
use tokio::net::{TcpListener, UnixListener, UnixStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::conn::{serve_connection, ConnectionEnd, ConnectionLimits};
use super::frame::ReceiveBudget;
use super::handlers::{Handlers, Startup};
use super::session::Connection;

/// Connections over the limit that may wait for their startup packet at
/// once to be told `53300`; more are closed at accept.
const REFUSING_CONNECTIONS: usize = 64;
/// How long a connection over the limit has to send its startup packet.
const REFUSAL_STARTUP_TIMEOUT: Duration = Duration::from_secs(5);

/// The Postgres door's settings, from [`PgConfig`].
#[derive(Debug, Clone)]
pub struct PgServerOptions {
    /// Connections served at once (`pg.max_connections`).
    pub max_connections: usize,
    /// Per-connection limits.
    pub limits: ConnectionLimits,
    /// Settings every session starts with (`statement_timeout`, idle timeouts).
    pub session_defaults: Vec<(String, String)>,
}

impl PgServerOptions {
    /// The options `config` describes.
    pub fn from_config(config: &PgConfig) -> Self {
        let millis = |ms: u64| (ms > 0).then(|| Duration::from_millis(ms));
        Self {
            max_connections: config.max_connections,
            limits: ConnectionLimits {
                max_message_bytes: config.max_message_bytes,
                budget: ReceiveBudget::new(config.receive_budget_bytes),
                startup_timeout: Duration::from_millis(config.startup_timeout_ms.max(1)),
                stall_timeout: millis(config.stalled_message_timeout_ms),
            },
            session_defaults: [
                ("statement_timeout", config.statement_timeout_ms),
                ("idle_session_timeout", config.idle_session_timeout_ms),
                (
                    "idle_in_transaction_session_timeout",
                    config.idle_in_transaction_session_timeout_ms,
                ),
            ]
            .into_iter()
            .filter(|(_, ms)| *ms > 0)
            .map(|(name, ms)| (name.to_string(), format!("{ms}ms")))
            .collect(),
        }
    }
}

impl Default for PgServerOptions {
    fn default() -> Self {
        Self::from_config(&PgConfig::default())
    }
}

/// Serves the Postgres wire protocol on `listener` until `shutdown`
/// resolves, with the default [`PgServerOptions`].
///
/// Every connection gets its own handler set and session; a failing or
/// misbehaving connection is logged and closed without affecting the others.
/// When `shutdown` resolves the listener stops accepting and open
/// connections are closed.
pub async fn serve(
    listener: TcpListener,
    handler: PgHandlerRef,
    shutdown: impl Future<Output = ()>,
) {
    serve_on(
        listener,
        None,
        handler,
        PgServerOptions::default(),
        shutdown,
    )
    .await;
}

/// [`serve`] on a TCP listener and, when given, a Unix-domain socket as
/// well (see [`bind_unix_socket`]); both share one cancel-key registry and
/// one connection limit, so a cancel request may arrive on either.
pub async fn serve_on(
    listener: TcpListener,
    unix: Option<UnixListener>,
    handler: PgHandlerRef,
    options: PgServerOptions,
    shutdown: impl Future<Output = ()>,
) {
    let manager = Arc::new(ConnectionManager::new());
    let startup = Arc::new(Startup::new(manager.clone()));
    let cancel = Arc::new(DefaultCancelHandler::new(manager));
    let session_defaults = Arc::new(options.session_defaults.clone());
    let handlers = || Handlers {
        connection: Arc::new(Connection::new(handler.clone(), session_defaults.clone())),
        startup: startup.clone(),
        cancel: cancel.clone(),
    };
    let slots = Arc::new(Semaphore::new(options.max_connections));
    let refusals = Arc::new(Semaphore::new(REFUSING_CONNECTIONS));
    let limits = Arc::new(options.limits.clone());
    let refusal_limits = Arc::new(ConnectionLimits {
        startup_timeout: REFUSAL_STARTUP_TIMEOUT,
        ..options.limits.clone()
    });
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (reader, writer, peer): (BoxedRead, BoxedWrite, String) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    let _ = socket.set_nodelay(true);
                    let (reader, writer) = socket.into_split();
                    (Box::new(reader), Box::new(writer), peer.to_string())
                }
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            accepted = accept_unix(unix.as_ref()) => match accepted {
                Ok(socket) => {
                    let (reader, writer) = socket.into_split();
                    (Box::new(reader), Box::new(writer), "unix socket".to_string())
                }
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            Some(done) = connections.join_next(), if !connections.is_empty() => {
                if let Err(e) = done {
                    if e.is_panic() {
                        tracing::error!(error = %e, "a postgres connection task panicked");
                    }
                }
                continue;
            }
        };
        let (permit, limits) = match slots.clone().try_acquire_owned() {
            Ok(slot) => (Ok(slot), limits.clone()),
            Err(_) => match refusals.clone().try_acquire_owned() {
                Ok(refusal) => (Err(refusal), refusal_limits.clone()),
                Err(_) => {
                    tracing::warn!(%peer, "too many connections: closed at accept");
                    continue;
                }
            },
        };
        let handlers = handlers();
        connections.spawn(async move {
            let _permit = permit;
            let admitted = _permit.is_ok();
            tracing::debug!(%peer, "postgres connection opened");
            let address = peer.parse().unwrap_or(UNIX_PEER);
            let end = serve_connection(reader, writer, address, handlers, &limits, admitted).await;
            log_end(&peer, end);
        });
    }
    tracing::debug!(open = connections.len(), "postgres server stopping");
    connections.shutdown().await;
}

/// The address reported for Unix-socket clients, as PostgreSQL's clients
/// see no address there either.
const UNIX_PEER: std::net::SocketAddr = std::net::SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::LOCALHOST,
    0,
));

type BoxedRead = Box<dyn tokio::io::AsyncRead + Unpin + Send>;
type BoxedWrite = Box<dyn tokio::io::AsyncWrite + Unpin + Send + Sync>;

/// The next connection on the Unix socket; never resolves without one.
async fn accept_unix(unix: Option<&UnixListener>) -> io::Result<UnixStream> {
    match unix {
        Some(listener) => listener.accept().await.map(|(socket, _)| socket),
        None => std::future::pending().await,
    }
}

/// Out of file descriptors and the like: back off, keep serving.
async fn accept_failed(e: io::Error) {
    tracing::warn!(error = %e, "accepting a postgres connection failed");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// One line per connection end; a protocol violation is a warning
/// (without a backtrace), the rest debug.
fn log_end(peer: &str, end: ConnectionEnd) {
    match end {
        ConnectionEnd::Closed => tracing::debug!(peer, "postgres connection closed"),
        ConnectionEnd::ProtocolViolation(message) => {
            tracing::warn!(peer, %message, "postgres connection closed: protocol violation");
        }
        ConnectionEnd::TimedOut(what) => {
            tracing::info!(
                peer,
                timeout = what,
                "postgres connection closed on timeout"
            );
        }
        ConnectionEnd::TooManyConnections => {
            tracing::warn!(peer, "postgres connection refused: too many connections");
        }
        ConnectionEnd::Refused(code) => {
            tracing::debug!(peer, %code, "postgres connection refused at startup");
        }
        ConnectionEnd::Io(e) => {
            tracing::debug!(peer, error = %e, "postgres connection ended with an error");
        }
    }
}

/// The socket file PostgreSQL clients look for in `dir` for `port`
/// (`psql -h DIR -p PORT`): `DIR/.s.PGSQL.PORT`.
pub fn unix_socket_path(dir: &Path, port: u16) -> PathBuf {
    dir.join(format!(".s.PGSQL.{port}"))
}

/// Listens on [`unix_socket_path`]. A socket file left by a server that
/// died (nothing accepts on it) is replaced; one a live server answers on
/// is an `AddrInUse` error. The caller removes the file at shutdown.
pub fn bind_unix_socket(dir: &Path, port: u16) -> io::Result<(UnixListener, PathBuf)> {
    let path = unix_socket_path(dir, port);
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(&path).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("another server is listening on {}", path.display()),
            ));
        }
        std::fs::remove_file(&path)?;
    }
    Ok((UnixListener::bind(&path)?, path))
}
