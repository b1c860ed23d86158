//! One connection's handler set ([`Handlers`]): startup (no authentication
//! yet, the parameters reported to clients), cancel registration, the query
//! and COPY handlers of `session`, and error logging ([`LogErrors`]). The
//! accept loop (`server`) builds a set per connection; `conn` drives it.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use futures::sink::Sink;
use pgwire::api::auth::{
    finish_authentication, protocol_negotiation, save_startup_parameters_to_metadata,
    ServerParameterProvider, StartupHandler,
};
use pgwire::api::cancel::DefaultCancelHandler;
use pgwire::api::{
    ClientInfo, ConnectionGuard, ConnectionHandle, ConnectionManager, ErrorHandler,
    PidSecretKeyGenerator, RandomPidSecretKeyGenerator, METADATA_APPLICATION_NAME, METADATA_USER,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};

use super::session::Connection;

/// The `server_version` reported to clients (psql prints it).
pub const SERVER_VERSION: &str = "16.0";

/// The handlers of one connection.
pub(crate) struct Handlers {
    pub connection: Arc<Connection>,
    pub startup: Arc<Startup>,
    pub cancel: Arc<DefaultCancelHandler>,
}

/// Accepts every user without a password and registers the connection for
/// cancel requests.
pub(crate) struct Startup {
    manager: Arc<ConnectionManager>,
    pids: RandomPidSecretKeyGenerator,
}

impl Startup {
    /// Registers connections with `manager` (shared with the cancel handler).
    pub fn new(manager: Arc<ConnectionManager>) -> Self {
        Self {
            manager,
            pids: RandomPidSecretKeyGenerator::default(),
        }
    }
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
pub(crate) struct LogErrors;

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
