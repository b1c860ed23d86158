//! [`MilvusDoor`] and its plumbing: the pooled sessions the door runs its
//! typed plans and catalog changes in, and the table lookup every RPC
//! starts with.

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use datafusion::functions_aggregate::count::count_all;
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder};
use futures::TryStreamExt;
use quiver_common::schema::TableSchema;
use quiver_common::status::StatusCode;
use quiver_sql::error::SqlError;
use quiver_sql::handler::ddl::CatalogChange;
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

    pub(super) async fn session(&self) -> Result<DoorSession, DoorError> {
        if let Some(session) = self.sessions.lock().pop() {
            return Ok(session);
        }
        let session = self
            .handler
            .new_session(SessionInfo {
                user: "milvus".into(),
                ..Default::default()
            })
            .await?;
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
        let mut door = self.session().await?;
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

    /// Makes a catalog change in a pooled session.
    pub(super) async fn change_catalog(&self, change: CatalogChange) -> Result<bool, DoorError> {
        let mut door = self.session().await?;
        let result = self.handler.change_catalog(&mut door.session, change).await;
        self.give_back(door);
        Ok(result?)
    }

    /// A collection's table. A collection of a database that does not
    /// exist is the database's error, as Milvus reports it.
    pub(super) async fn table(
        &self,
        database: &str,
        collection: &str,
    ) -> Result<TableSchema, DoorError> {
        validate::collection_name(collection)?;
        match self.handler.table_schema(database, collection).await {
            Ok(table) => Ok(table),
            Err(e) if e.status_code() == StatusCode::TableNotFound => {
                let databases = self.handler.databases().await?;
                if databases.iter().any(|d| d == database) {
                    Err(e.into())
                } else {
                    Err(DoorError::database_not_found(&database_name(database)))
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The rows of a table that `filter` selects (all of them without
    /// one), counted by a typed plan.
    pub(super) async fn count_rows(
        &self,
        database: &str,
        table: &str,
        filter: Option<Expr>,
    ) -> Result<i64, DoorError> {
        let batches = self
            .typed_plan(database, table, |_, scan| {
                let scan = match filter {
                    Some(filter) => scan.filter(filter)?,
                    None => scan,
                };
                Ok(scan
                    .aggregate(Vec::<Expr>::new(), vec![count_all()])?
                    .build()?)
            })
            .await?;
        Ok(first_count(&batches))
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
