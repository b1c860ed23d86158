//! Per-connection state and the pgwire query handlers: simple query,
//! extended query (Parse/Bind/Describe/Execute) and COPY.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use datafusion::common::ParamValues;
use datafusion::sql::sqlparser::ast::{CopyTarget, Statement};
use futures::sink::{Sink, SinkExt};
use futures::stream;
use pgwire::api::copy::send_copy_in_response;
use pgwire::api::portal::{Format, Portal, PortalExecutionState};
use pgwire::api::query::{
    send_execution_response, send_query_response, send_ready_for_query, ExtendedQueryHandler,
    SimpleQueryHandler,
};
use pgwire::api::results::{CopyResponse, FieldInfo, Response, Tag};
use pgwire::api::stmt::QueryParser;
use pgwire::api::store::{Entry, PortalStore};
use pgwire::api::{
    ClientInfo, ClientPortalStore, ConnectionHandle, PgWireConnectionState, Type, DEFAULT_NAME,
    METADATA_DATABASE, METADATA_USER,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::extendedquery::{Bind, BindComplete, Execute};
use pgwire::messages::response::{EmptyQueryResponse, TransactionStatus};
use pgwire::messages::simplequery::Query;
use pgwire::messages::startup::ParameterStatus;
use pgwire::messages::PgWireBackendMessage;
use quiver_common::time_zone::SessionTimeZone;
use quiver_sql::handler::pg::{
    CommandTag, CopyFormat, CopySpec, PgHandlerRef, PgOutput, TransactionEffect, TransactionState,
};
use quiver_sql::handler::{Prepared, Session, SessionInfo};
use tokio::sync::{MappedMutexGuard, Mutex, MutexGuard};

use super::copy_in::{CopyDecoder, CopyError};
use super::copy_out::copy_out;
use super::encode::{
    cancel_signal, param_pg_type, pg_fields, query_response, reserve_statement_text, CancelSignal,
    Guard,
};
use super::errors::{pg_error, sql_err, sql_err_in, startup_refusal};
use super::params::decode_params;

/// A statement prepared with Parse: the AST and what `prepare` said about it.
#[derive(Debug, Clone)]
pub(crate) struct PgStatement {
    pub statement: Arc<Statement>,
    pub prepared: Arc<Prepared>,
}

/// Which idle timeout applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleKind {
    /// `idle_in_transaction_session_timeout`: inside a transaction block.
    InTransaction,
    /// `idle_session_timeout`: outside one.
    Session,
}

/// A `COPY FROM STDIN` in progress.
pub(super) struct CopyIn {
    pub spec: CopySpec,
    /// `None` once decoding failed; the error is reported at CopyDone.
    pub decoder: Option<CopyDecoder>,
    pub error: Option<CopyError>,
}

/// What one connection owns: its session (created on first use from the
/// startup user and database) and a COPY in progress.
pub(crate) struct ConnState {
    pub handler: PgHandlerRef,
    /// The settings a new session starts with (the server's configuration).
    initial_settings: Arc<Vec<(String, String)>>,
    session: Mutex<Option<Session>>,
    pub copy: parking_lot::Mutex<Option<CopyIn>>,
}

impl ConnState {
    /// The connection's session, opened on first use.
    pub async fn session<C: ClientInfo + ?Sized>(
        &self,
        client: &C,
    ) -> PgWireResult<MappedMutexGuard<'_, Session>> {
        let mut guard = self.session.lock().await;
        if guard.is_none() {
            let metadata = client.metadata();
            let info =
                self.session_info(metadata.get(METADATA_USER), metadata.get(METADATA_DATABASE));
            *guard = Some(self.handler.new_session(info).await.map_err(sql_err)?);
        }
        MutexGuard::try_map(guard, Option::as_mut).map_err(|_| pg_error("XX000", "session missing"))
    }

    /// What a session of this connection opens with: the startup's user
    /// (`postgres` when it names none) and database, the server's settings.
    fn session_info(&self, user: Option<&String>, database: Option<&String>) -> SessionInfo {
        SessionInfo {
            user: user.cloned().unwrap_or_else(|| "postgres".to_string()),
            database: database.cloned(),
            initial_settings: self.initial_settings.as_ref().clone(),
        }
    }

    /// Executes a statement under its statement timeout and cancel signal,
    /// forwarding the NOTICE messages it sends while it runs.
    async fn execute<C>(
        &self,
        client: &mut C,
        (statement, text): (&Statement, Option<&str>),
        params: Option<ParamValues>,
        cancel: Option<CancelSignal>,
    ) -> PgWireResult<(PgOutput, Guard)>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let mut session = self.session(&*client).await?;
        let mut guard =
            Guard::new(session.statement_timeout(), cancel).with_memory(session.memory_pool());
        let (sink, mut notices) = tokio::sync::mpsc::unbounded_channel();
        session.set_notice_sink(Some(sink));
        let result = forward_notices(
            client,
            &mut notices,
            guard.run(self.handler.execute_pg(&mut session, statement, params)),
        )
        .await;
        session.set_notice_sink(None);
        let output = match text {
            Some(text) => result?.map_err(sql_err_in(text))?,
            None => result?.map_err(sql_err)?,
        };
        guard.time_zone = session
            .setting("timezone")
            .and_then(SessionTimeZone::parse)
            .unwrap_or_default();
        Ok((output, guard))
    }

    /// A statement failed: the handler aborts the session's transaction
    /// block (if any).
    pub(super) async fn abort_transaction<C: ClientInfo + ?Sized>(&self, client: &C) {
        if let Ok(mut session) = self.session(client).await {
            self.handler.statement_failed(&mut session);
        }
    }

    /// A statement of the extended protocol failed with `error`: aborts the
    /// session's block and sets the status pgwire reports (it makes a
    /// block's status an error state), then hands the error back.
    async fn statement_failed<C: ClientInfo + ?Sized>(
        &self,
        client: &mut C,
        status: TransactionStatus,
        error: PgWireError,
    ) -> PgWireError {
        self.abort_transaction(&*client).await;
        let status = self.transaction_status(&*client, status).await;
        client.set_transaction_status(status);
        error
    }

    /// The transaction status to report: the handler's, when it keeps one,
    /// else `status` (what the command tags' effects made it).
    async fn transaction_status<C: ClientInfo + ?Sized>(
        &self,
        client: &C,
        status: TransactionStatus,
    ) -> TransactionStatus {
        let Ok(mut session) = self.session(client).await else {
            return status;
        };
        match self.handler.transaction_state(&mut session) {
            Some(TransactionState::Idle) => TransactionStatus::Idle,
            Some(TransactionState::InBlock) => TransactionStatus::Transaction,
            Some(TransactionState::Failed) => TransactionStatus::Error,
            None => status,
        }
    }

    /// Remembers a COPY FROM STDIN and builds its CopyInResponse.
    fn start_copy_in(&self, spec: CopySpec) -> CopyResponse {
        let columns = spec.schema.fields().len();
        let format = i8::from(spec.format == CopyFormat::Binary);
        *self.copy.lock() = Some(CopyIn {
            decoder: Some(CopyDecoder::new(&spec)),
            spec,
            error: None,
        });
        CopyResponse::new(format, columns, stream::empty())
    }
}

/// The query and COPY handlers of one connection.
pub(crate) struct Connection {
    pub(super) state: Arc<ConnState>,
    parser: Arc<Parser>,
}

impl Connection {
    pub fn new(handler: PgHandlerRef, initial_settings: Arc<Vec<(String, String)>>) -> Self {
        let state = Arc::new(ConnState {
            handler,
            initial_settings,
            session: Mutex::new(None),
            copy: parking_lot::Mutex::new(None),
        });
        Self {
            parser: Arc::new(Parser {
                state: state.clone(),
            }),
            state,
        }
    }
}

impl Connection {
    /// Opens the session of a connection's startup packet (its `user` and
    /// `database` parameters), before the client is told it may send
    /// queries, so its settings (the idle timeouts among them) apply from
    /// the start and a database that does not exist refuses the connection,
    /// as PostgreSQL does: the `FATAL` error to send.
    pub async fn open(&self, parameters: &BTreeMap<String, String>) -> Result<(), ErrorInfo> {
        let info = self
            .state
            .session_info(parameters.get("user"), parameters.get("database"));
        let session = self
            .state
            .handler
            .new_session(info)
            .await
            .map_err(|e| startup_refusal(&e))?;
        *self.state.session.lock().await = Some(session);
        Ok(())
    }

    /// The idle timeout that applies now, if any: the session's
    /// `idle_in_transaction_session_timeout` inside a transaction block,
    /// its `idle_session_timeout` outside one.
    pub fn idle_timeout(&self, in_transaction: bool) -> Option<(Duration, IdleKind)> {
        let guard = self.state.session.try_lock().ok()?;
        let session = guard.as_ref()?;
        if in_transaction {
            session
                .idle_in_transaction_session_timeout()
                .map(|after| (after, IdleKind::InTransaction))
        } else {
            session
                .idle_session_timeout()
                .map(|after| (after, IdleKind::Session))
        }
    }
}

fn notice_message(message: String) -> PgWireBackendMessage {
    PgWireBackendMessage::NoticeResponse(
        ErrorInfo::new("NOTICE".to_string(), "00000".to_string(), message).into(),
    )
}

/// Awaits `work`, sending each NOTICE it queues to the client as it comes.
async fn forward_notices<C, T>(
    client: &mut C,
    notices: &mut tokio::sync::mpsc::UnboundedReceiver<String>,
    work: impl std::future::Future<Output = PgWireResult<T>>,
) -> PgWireResult<T>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    tokio::pin!(work);
    loop {
        tokio::select! {
            Some(message) = notices.recv() => {
                client.send(notice_message(message)).await?;
            }
            result = &mut work => {
                while let Ok(message) = notices.try_recv() {
                    client.feed(notice_message(message)).await?;
                }
                return result;
            }
        }
    }
}

/// A fresh cancel signal for the statement about to run (see `ConnectionHandle`).
async fn start_query<C: ClientInfo>(client: &C) -> Option<CancelSignal> {
    let handle = client.session_extensions().get::<Arc<ConnectionHandle>>()?;
    Some(cancel_signal(handle.start_query().await))
}

fn command_tag(tag: &CommandTag) -> Tag {
    let mut out = Tag::new(&tag.command);
    if let Some(oid) = tag.oid {
        out = out.with_oid(oid);
    }
    if let Some(rows) = tag.rows {
        out = out.with_rows(rows);
    }
    out
}

/// Sends ParameterStatus for the settings a command changed.
async fn send_parameter_status<C>(client: &mut C, tag: &CommandTag) -> PgWireResult<()>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    for (name, value) in &tag.parameter_status {
        client
            .feed(PgWireBackendMessage::ParameterStatus(ParameterStatus::new(
                name.clone(),
                value.clone(),
            )))
            .await?;
    }
    Ok(())
}

fn is_copy_from_stdin(statement: &Statement) -> bool {
    matches!(
        statement,
        Statement::Copy {
            to: false,
            target: CopyTarget::Stdin,
            ..
        }
    )
}

impl Connection {
    /// Runs every statement of a simple Query, sending each result as it comes.
    async fn run_simple<C>(
        &self,
        client: &mut C,
        sql: &str,
        status: &mut pgwire::messages::response::TransactionStatus,
        cancel: Option<CancelSignal>,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        // The text (and what parsing and planning make of it) counts
        // against the statement memory limit until the statements ran.
        let _text = {
            let session = self.state.session(&*client).await?;
            reserve_statement_text(&session.memory_pool(), sql)?
        };
        let statements = self.state.handler.parse(sql).map_err(sql_err)?;
        if statements.is_empty() {
            client
                .feed(PgWireBackendMessage::EmptyQueryResponse(
                    EmptyQueryResponse::new(),
                ))
                .await?;
            return Ok(());
        }
        if statements.iter().rev().skip(1).any(is_copy_from_stdin) {
            return Err(pg_error(
                "0A000",
                "COPY FROM STDIN must be the last statement of a query string",
            ));
        }
        for statement in &statements {
            let (output, guard) = self
                .state
                .execute(client, (statement, Some(sql)), None, cancel.clone())
                .await?;
            match output {
                PgOutput::Rows {
                    schema,
                    stream,
                    command,
                } => {
                    let response = query_response(
                        &schema,
                        guard.stream(stream),
                        &command,
                        &Format::UnifiedText,
                        guard.time_zone,
                    )?;
                    send_query_response(client, response, true).await?;
                }
                PgOutput::Command(tag) => {
                    send_parameter_status(client, &tag).await?;
                    send_execution_response(client, command_tag(&tag)).await?;
                    *status = match tag.transaction {
                        TransactionEffect::None => *status,
                        TransactionEffect::Begin => status.to_in_transaction_state(),
                        TransactionEffect::End => status.to_idle_state(),
                    };
                }
                PgOutput::CopyIn(spec) => {
                    let response = self.state.start_copy_in(spec);
                    send_copy_in_response(client, response).await?;
                    client.set_state(PgWireConnectionState::CopyInProgress(false));
                    return Ok(());
                }
                PgOutput::CopyOut { spec, stream } => {
                    let rows = copy_out(client, &spec, guard.stream(stream)).await?;
                    send_execution_response(client, Tag::new("COPY").with_rows(rows)).await?;
                }
            }
        }
        Ok(())
    }

    /// Executes a bound portal into a pgwire response.
    async fn run_portal<C>(
        &self,
        client: &mut C,
        portal: &Portal<PgStatement>,
        cancel: Option<CancelSignal>,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let statement = &portal.statement.statement;
        let params = decode_params(portal, &statement.prepared.param_types)?;
        let (output, guard) = self
            .state
            .execute(client, (&statement.statement, None), params, cancel)
            .await?;
        Ok(match output {
            PgOutput::Rows {
                schema,
                stream,
                command,
            } => Response::Query(query_response(
                &schema,
                guard.stream(stream),
                &command,
                &portal.result_column_format,
                guard.time_zone,
            )?),
            PgOutput::Command(tag) => {
                send_parameter_status(client, &tag).await?;
                let pg_tag = command_tag(&tag);
                match tag.transaction {
                    TransactionEffect::None => Response::Execution(pg_tag),
                    TransactionEffect::Begin => Response::TransactionStart(pg_tag),
                    TransactionEffect::End => Response::TransactionEnd(pg_tag),
                }
            }
            PgOutput::CopyIn(spec) => Response::CopyIn(self.state.start_copy_in(spec)),
            PgOutput::CopyOut { spec, stream } => {
                let rows = copy_out(client, &spec, guard.stream(stream)).await?;
                Response::Execution(Tag::new("COPY").with_rows(rows))
            }
        })
    }
}

#[async_trait]
impl SimpleQueryHandler for Connection {
    async fn on_query<C>(&self, client: &mut C, query: Query) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if !matches!(client.state(), PgWireConnectionState::ReadyForQuery) {
            return Err(PgWireError::NotReadyForQuery);
        }
        client.set_state(PgWireConnectionState::QueryInProgress);
        let mut status = client.transaction_status();
        let cancel = start_query(client).await;
        let result = self
            .run_simple(client, &query.query, &mut status, cancel)
            .await;
        if result.is_err() {
            self.state.abort_transaction(&*client).await;
        }
        // On error pgwire sends ErrorResponse and ReadyForQuery with this
        // status (made an error state when it is a block).
        let status = self.state.transaction_status(&*client, status).await;
        client.set_transaction_status(status);
        result?;
        if !matches!(client.state(), PgWireConnectionState::CopyInProgress(_)) {
            client.set_state(PgWireConnectionState::ReadyForQuery);
            send_ready_for_query(client, status).await?;
        }
        Ok(())
    }

    async fn do_query<C>(&self, _client: &mut C, _query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        // `on_query` streams each statement's result itself.
        Err(pg_error("XX000", "simple queries are handled by on_query"))
    }
}

/// Parse-time work of the extended protocol: parsing and `prepare`.
pub(crate) struct Parser {
    state: Arc<ConnState>,
}

impl Parser {
    /// Parses and describes the one statement of a Parse message.
    async fn prepare_statement<C>(&self, client: &C, sql: &str) -> PgWireResult<Option<PgStatement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let mut statements = self.state.handler.parse(sql).map_err(sql_err)?;
        match statements.len() {
            0 => return Ok(None),
            1 => {}
            _ => {
                return Err(pg_error(
                    "42601",
                    "cannot insert multiple commands into a prepared statement",
                ))
            }
        }
        let statement = statements.remove(0);
        let prepared = {
            let mut session = self.state.session(client).await?;
            self.state
                .handler
                .prepare(&mut session, &statement)
                .await
                .map_err(sql_err_in(sql))?
        };
        Ok(Some(PgStatement {
            statement: Arc::new(statement),
            prepared: Arc::new(prepared),
        }))
    }
}

#[async_trait]
impl QueryParser for Parser {
    type Statement = PgStatement;

    async fn parse_sql<C>(
        &self,
        client: &C,
        sql: &str,
        _types: &[Option<Type>],
    ) -> PgWireResult<Option<PgStatement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let _text = {
            let session = self.state.session(client).await?;
            reserve_statement_text(&session.memory_pool(), sql)?
        };
        let parsed = self.prepare_statement(client, sql).await;
        if parsed.is_err() {
            // As any failed statement, a Parse that fails aborts the
            // session's transaction block.
            self.state.abort_transaction(client).await;
        }
        parsed
    }

    fn get_parameter_types(&self, stmt: &PgStatement) -> PgWireResult<Vec<Type>> {
        Ok(stmt
            .prepared
            .param_types
            .iter()
            .map(|t| param_pg_type(t.as_ref()))
            .collect())
    }

    fn get_result_schema(
        &self,
        stmt: &PgStatement,
        column_format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        match &stmt.prepared.result_schema {
            Some(schema) if !schema.fields().is_empty() => {
                let format = column_format.cloned().unwrap_or_default();
                Ok(pg_fields(schema, &format)?.as_ref().clone())
            }
            _ => Ok(Vec::new()),
        }
    }
}

#[async_trait]
impl ExtendedQueryHandler for Connection {
    type Statement = PgStatement;
    type QueryParser = Parser;

    fn query_parser(&self) -> Arc<Parser> {
        self.parser.clone()
    }

    /// Binds like pgwire's default but queues BindComplete without flushing
    /// it, as PostgreSQL does: the client gets it with the Execute results at
    /// Sync (or at an explicit Flush), in one write instead of two.
    async fn on_bind<C>(&self, client: &mut C, message: Bind) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let statement_name = message.statement_name.as_deref().unwrap_or(DEFAULT_NAME);
        match client.portal_store().get_statement(statement_name) {
            Some(Entry::Value(statement)) => {
                let portal = Portal::try_new(&message, statement)?;
                client.portal_store().put_portal(Arc::new(portal));
            }
            Some(Entry::Empty) => {
                if !message.parameters.is_empty() {
                    return Err(pg_error(
                        "08P01",
                        format!(
                            "bind message supplies {} parameters, but prepared statement \"{statement_name}\" requires 0",
                            message.parameters.len()
                        ),
                    ));
                }
                let portal_name = message.portal_name.as_deref().unwrap_or(DEFAULT_NAME);
                client.portal_store().put_empty_portal(portal_name);
            }
            None => return Err(PgWireError::StatementNotFound(statement_name.to_owned())),
        }
        client
            .feed(PgWireBackendMessage::BindComplete(BindComplete::new()))
            .await?;
        Ok(())
    }

    /// Streams the rows of a portal run to completion (`max_rows` 0) instead
    /// of buffering them; partial fetches go through pgwire's portal logic.
    async fn on_execute<C>(&self, client: &mut C, message: Execute) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let name = message.name.as_deref().unwrap_or(DEFAULT_NAME);
        let Some(Entry::Value(portal)) = client.portal_store().get_portal(name) else {
            return self._on_execute(client, message).await;
        };
        let initial = matches!(*portal.state().lock().await, PortalExecutionState::Initial);
        if message.max_rows > 0
            || !initial
            || !matches!(client.state(), PgWireConnectionState::ReadyForQuery)
        {
            return self._on_execute(client, message).await;
        }
        client.set_state(PgWireConnectionState::QueryInProgress);
        let mut status = client.transaction_status();
        let cancel = start_query(client).await;
        let response = match self.run_portal(client, &portal, cancel).await {
            Ok(response) => response,
            Err(e) => return Err(self.state.statement_failed(client, status, e).await),
        };
        *portal.state().lock().await = PortalExecutionState::Finished;
        match response {
            Response::Query(rows) => {
                if let Err(e) = send_query_response(client, rows, false).await {
                    return Err(self.state.statement_failed(client, status, e).await);
                }
            }
            Response::EmptyQuery => {
                client
                    .feed(PgWireBackendMessage::EmptyQueryResponse(
                        EmptyQueryResponse::new(),
                    ))
                    .await?;
            }
            Response::Execution(tag) => send_execution_response(client, tag).await?,
            Response::TransactionStart(tag) => {
                send_execution_response(client, tag).await?;
                status = status.to_in_transaction_state();
            }
            Response::TransactionEnd(tag) => {
                send_execution_response(client, tag).await?;
                status = status.to_idle_state();
                client.portal_store().rm_portal(DEFAULT_NAME);
            }
            Response::CopyIn(copy) => {
                client.set_state(PgWireConnectionState::CopyInProgress(true));
                send_copy_in_response(client, copy).await?;
            }
            Response::Error(info) => {
                client
                    .feed(PgWireBackendMessage::ErrorResponse((*info).into()))
                    .await?;
                status = status.to_error_state();
            }
            Response::CopyOut(_) | Response::CopyBoth(_) => {
                return Err(pg_error("XX000", "unexpected copy response"));
            }
        }
        if !matches!(client.state(), PgWireConnectionState::CopyInProgress(_)) {
            client.set_state(PgWireConnectionState::ReadyForQuery);
            let status = self.state.transaction_status(&*client, status).await;
            client.set_transaction_status(status);
        }
        Ok(())
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<PgStatement>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        // pgwire races this against the cancel request itself.
        self.run_portal(client, portal, None).await
    }
}
