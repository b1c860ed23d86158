//! [`MilvusDoor`] and its plumbing: the pooled sessions the door runs SQL
//! in, and the table lookup every RPC starts with.

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use datafusion::common::ParamValues;
use datafusion::logical_expr::{LogicalPlan, LogicalPlanBuilder};
use futures::TryStreamExt;
use quiver_common::schema::TableSchema;
use quiver_common::status::StatusCode;
use quiver_sql::error::SqlError;
use quiver_sql::handler::{Output, QueryHandlerRef, Session, SessionInfo};

use super::request::database_name;
use super::status::DoorError;
use super::validate;

/// The Milvus service over a handler.
pub struct MilvusDoor {
    pub(super) handler: QueryHandlerRef,
    /// Idle sessions, reused across RPCs (a session owns a planning context
    /// and its plan cache).
    sessions: parking_lot::Mutex<Vec<DoorSession>>,
    /// Serializes alias changes (each reads and rewrites alias lists).
    pub(super) alias_changes: tokio::sync::Mutex<()>,
    /// Partition and load-state changes hold it to write (each reads and
    /// rewrites a table's partition options; dropping a partition deletes
    /// its rows); inserts and deletes hold it to read, so none of them
    /// writes rows of a partition being dropped.
    pub(super) partition_changes: tokio::sync::RwLock<()>,
}

/// A pooled session and the search knobs it has `SET`.
pub(super) struct DoorSession {
    pub(super) session: Session,
    /// `hnsw.ef_search` as set in the session (`None`: the default).
    pub(super) ef: Option<u64>,
    /// `ivfflat.probes` as set in the session (`None`: the default).
    pub(super) nprobe: Option<u64>,
}

impl MilvusDoor {
    /// A door over `handler`.
    pub fn new(handler: QueryHandlerRef) -> Self {
        Self {
            handler,
            sessions: parking_lot::Mutex::new(Vec::new()),
            alias_changes: tokio::sync::Mutex::new(()),
            partition_changes: tokio::sync::RwLock::new(()),
        }
    }

    pub(super) fn session(&self) -> Result<DoorSession, DoorError> {
        if let Some(session) = self.sessions.lock().pop() {
            return Ok(session);
        }
        let session = self.handler.new_session(SessionInfo {
            user: "milvus".into(),
            ..Default::default()
        })?;
        Ok(DoorSession {
            session,
            ef: None,
            nprobe: None,
        })
    }

    pub(super) fn give_back(&self, session: DoorSession) {
        let mut idle = self.sessions.lock();
        if idle.len() < 16 {
            idle.push(session);
        }
    }

    /// Builds a typed plan in a pooled session (`build` gets the session
    /// and the scan of the table) and runs it; its rows are collected.
    pub(super) async fn typed_plan<F>(
        &self,
        database: &str,
        table: &str,
        build: F,
    ) -> Result<Vec<RecordBatch>, DoorError>
    where
        F: FnOnce(&mut Session, LogicalPlanBuilder) -> Result<LogicalPlan, DoorError>,
    {
        let mut door = self.session()?;
        let result = async {
            let scan = self
                .handler
                .table_scan(&mut door.session, database, table)
                .await?;
            let plan = build(&mut door.session, scan)?;
            match self.handler.execute_plan(&mut door.session, plan).await? {
                Output::Rows { stream, .. } => Ok(stream
                    .try_collect::<Vec<_>>()
                    .await
                    .map_err(|e| DoorError::from(SqlError::from(e)))?),
                Output::Done { .. } => Ok(Vec::new()),
            }
        }
        .await;
        self.give_back(door);
        result
    }

    /// Runs one SQL statement; rows (if any) are collected.
    pub(super) async fn sql(
        &self,
        text: &str,
        params: Option<ParamValues>,
    ) -> Result<Vec<RecordBatch>, DoorError> {
        let mut session = self.session()?;
        let result = self.sql_in(&mut session.session, text, params).await;
        self.give_back(session);
        result
    }

    pub(super) async fn sql_in(
        &self,
        session: &mut Session,
        text: &str,
        params: Option<ParamValues>,
    ) -> Result<Vec<RecordBatch>, DoorError> {
        let statements = self.handler.parse(text)?;
        let [statement] = statements.as_slice() else {
            return Err(DoorError::internal(format!("not one statement: {text}")));
        };
        match self.handler.execute(session, statement, params).await? {
            Output::Rows { stream, .. } => Ok(stream
                .try_collect::<Vec<_>>()
                .await
                .map_err(|e| DoorError::from(SqlError::from(e)))?),
            Output::Done { .. } => Ok(Vec::new()),
        }
    }

    /// A collection's table. A collection of a database that does not
    /// exist is the database's error, as Milvus reports it.
    pub(super) fn table(&self, database: &str, collection: &str) -> Result<TableSchema, DoorError> {
        validate::collection_name(collection)?;
        self.handler
            .table_schema(database, collection)
            .map_err(|e| match e.status_code() {
                StatusCode::TableNotFound
                    if !self.handler.databases().iter().any(|d| d == database) =>
                {
                    DoorError::database_not_found(&database_name(database))
                }
                _ => e.into(),
            })
    }

    /// The one count a `SELECT count(*) ...` statement returns.
    pub(super) async fn count(&self, sql: &str) -> Result<i64, DoorError> {
        Ok(first_count(&self.sql(sql, None).await?))
    }
}

/// The count a `count(*)` plan answered (0 without rows).
pub(super) fn first_count(batches: &[RecordBatch]) -> i64 {
    batches
        .first()
        .and_then(|b| {
            b.column(0)
                .as_primitive_opt::<Int64Type>()
                .map(|a| a.value(0))
        })
        .unwrap_or(0)
}
