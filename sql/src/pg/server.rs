//! The accept loop, startup (no authentication) and per-connection handler sets.

use std::collections::HashMap;
use std::fmt::Debug;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::sink::Sink;
use pgwire::api::auth::{
    finish_authentication, protocol_negotiation, save_startup_parameters_to_metadata,
    ServerParameterProvider, StartupHandler,
};
use pgwire::api::cancel::{CancelHandler, DefaultCancelHandler};
use pgwire::api::copy::CopyHandler;
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::{
    ClientInfo, ConnectionGuard, ConnectionHandle, ConnectionManager, ErrorHandler,
    PgWireServerHandlers, PidSecretKeyGenerator, RandomPidSecretKeyGenerator,
    METADATA_APPLICATION_NAME, METADATA_USER,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use tokio::net::{TcpListener, UnixListener, UnixStream};
use tokio::task::JoinSet;

use super::session::Connection;
use crate::handler::QueryHandlerRef;

/// The `server_version` reported to clients (psql prints it).
pub const SERVER_VERSION: &str = "16.0";

/// Serves the Postgres wire protocol on `listener` until `shutdown` resolves.
///
/// Every connection gets its own handler set and session; a failing or
/// misbehaving connection is logged and closed without affecting the others.
/// When `shutdown` resolves the listener stops accepting and open
/// connections are closed.
pub async fn serve(
    listener: TcpListener,
    handler: QueryHandlerRef,
    shutdown: impl Future<Output = ()>,
) {
    serve_on(listener, None, handler, shutdown).await
}

/// [`serve`] on a TCP listener and, when given, a Unix-domain socket as
/// well (see [`bind_unix_socket`]); both share one cancel-key registry, so
/// a cancel request may arrive on either.
pub async fn serve_on(
    listener: TcpListener,
    unix: Option<UnixListener>,
    handler: QueryHandlerRef,
    shutdown: impl Future<Output = ()>,
) {
    let manager = Arc::new(ConnectionManager::new());
    let startup = Arc::new(Startup {
        manager: manager.clone(),
        pids: RandomPidSecretKeyGenerator::default(),
    });
    let cancel = Arc::new(DefaultCancelHandler::new(manager));
    let handlers = || Handlers {
        connection: Arc::new(Connection::new(handler.clone())),
        startup: startup.clone(),
        cancel: cancel.clone(),
    };
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    let handlers = handlers();
                    connections.spawn(async move {
                        tracing::debug!(%peer, "postgres connection opened");
                        let result = pgwire::tokio::process_socket(socket, None, handlers).await;
                        log_end(&peer.to_string(), result);
                    });
                }
                Err(e) => accept_failed(e).await,
            },
            accepted = accept_unix(unix.as_ref()) => match accepted {
                Ok(socket) => {
                    let handlers = handlers();
                    connections.spawn(async move {
                        tracing::debug!("postgres connection opened on the Unix socket");
                        let result = pgwire::tokio::process_socket_unix(socket, handlers).await;
                        log_end("unix socket", result);
                    });
                }
                Err(e) => accept_failed(e).await,
            },
            Some(done) = connections.join_next(), if !connections.is_empty() => {
                if let Err(e) = done {
                    if e.is_panic() {
                        tracing::error!(error = %e, "a postgres connection task panicked");
                    }
                }
            }
        }
    }
    tracing::debug!(open = connections.len(), "postgres server stopping");
    connections.shutdown().await;
}

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

fn log_end(peer: &str, result: io::Result<()>) {
    match result {
        Ok(()) => tracing::debug!(peer, "postgres connection closed"),
        Err(e) => tracing::debug!(peer, error = %e, "postgres connection ended with an error"),
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

/// The handlers of one connection.
struct Handlers {
    connection: Arc<Connection>,
    startup: Arc<Startup>,
    cancel: Arc<DefaultCancelHandler>,
}

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.connection.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.connection.clone()
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        self.startup.clone()
    }

    fn copy_handler(&self) -> Arc<impl CopyHandler> {
        self.connection.clone()
    }

    fn error_handler(&self) -> Arc<impl ErrorHandler> {
        Arc::new(LogErrors)
    }

    fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        self.cancel.clone()
    }
}

/// Accepts every user without a password and registers the connection for
/// cancel requests.
struct Startup {
    manager: Arc<ConnectionManager>,
    pids: RandomPidSecretKeyGenerator,
}

#[async_trait]
impl StartupHandler for Startup {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let PgWireFrontendMessage::Startup(ref startup) = message else {
            return Ok(());
        };
        protocol_negotiation(client, startup).await?;
        save_startup_parameters_to_metadata(client, startup);
        let (pid, secret) = self.pids.generate(client);
        client.set_pid_and_secret_key(pid, secret.clone());
        let (handle, guard) = self.manager.register(pid, secret);
        client
            .session_extensions()
            .insert::<Arc<ConnectionHandle>>(handle);
        client.session_extensions().insert::<ConnectionGuard>(guard);
        finish_authentication(client, &ServerParameters).await
    }
}

/// The parameters reported at startup.
struct ServerParameters;

impl ServerParameterProvider for ServerParameters {
    fn server_parameters<C>(&self, client: &C) -> Option<HashMap<String, String>>
    where
        C: ClientInfo,
    {
        let mut params: HashMap<String, String> = [
            ("server_version", SERVER_VERSION),
            ("server_encoding", "UTF8"),
            ("client_encoding", "UTF8"),
            ("DateStyle", "ISO, MDY"),
            ("IntervalStyle", "postgres"),
            ("TimeZone", "UTC"),
            ("integer_datetimes", "on"),
            ("standard_conforming_strings", "on"),
            ("is_superuser", "on"),
            ("in_hot_standby", "off"),
            ("default_transaction_read_only", "off"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let metadata = client.metadata();
        if let Some(user) = metadata.get(METADATA_USER) {
            params.insert("session_authorization".into(), user.clone());
        }
        let application = metadata
            .get(METADATA_APPLICATION_NAME)
            .cloned()
            .unwrap_or_default();
        params.insert(METADATA_APPLICATION_NAME.into(), application);
        Some(params)
    }
}

/// Logs errors sent to clients: server-side failures loudly, the rest at debug.
struct LogErrors;

impl ErrorHandler for LogErrors {
    fn on_error<C>(&self, client: &C, error: &mut PgWireError)
    where
        C: ClientInfo,
    {
        let peer = client.socket_addr();
        match error {
            PgWireError::UserError(info) if is_server_fault(info) => {
                tracing::warn!(%peer, code = %info.code, message = %info.message, "query failed");
            }
            PgWireError::UserError(info) => {
                tracing::debug!(%peer, code = %info.code, message = %info.message, "query failed");
            }
            other => tracing::debug!(%peer, error = %other, "protocol error"),
        }
    }
}

fn is_server_fault(info: &ErrorInfo) -> bool {
    info.code.starts_with("XX") || info.code.starts_with("58")
}
