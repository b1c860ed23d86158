//! The one seam between protocol front ends and the engine: [`QueryHandler`].
//!
//! A front end parses nothing itself beyond its wire format: it asks the
//! handler to parse SQL, to describe a statement (parameter types and result
//! schema) and to execute it, and it streams back whatever [`Output`] it gets.
//! It holds its sessions as opaque [`Session`] handles. A front end that
//! speaks no SQL (the Milvus door) builds typed plans over
//! [`QueryHandler::table_scan`] and changes the catalog with the
//! coordinator's requests ([`ddl`]) instead.
//!
//! [`QueryHandler`] is protocol-neutral (both doors use it); what only the
//! Postgres door needs — command tags, transaction effects, COPY — is the
//! extension trait [`pg::PgHandler`].

pub mod ddl;
pub mod pg;

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::{FieldRef, SchemaRef};
use async_trait::async_trait;
use datafusion::common::ParamValues;
use datafusion::execution::memory_pool::MemoryPool;
use datafusion::execution::{FunctionRegistry, SendableRecordBatchStream};
use datafusion::logical_expr::expr::Placeholder;
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder, ScalarUDF};
use datafusion::sql::sqlparser::ast::Statement;

use quiver_common::schema::TableSchema;

use crate::error::Result;

/// The database (schema) a session starts in and unqualified names resolve
/// to (`public`).
pub const DEFAULT_DATABASE: &str = quiver_cluster::DEFAULT_DATABASE;

/// A vector index method, as `CREATE INDEX ... USING` and
/// [`IndexInfo::kind`] name it (`hnsw`, `ivfflat`, ...; [`IndexMethod::parse`]).
pub use quiver_index::IndexKind as IndexMethod;

/// Who is connecting, to what.
#[derive(Debug, Clone, Default)]
pub struct SessionInfo {
    pub user: String,
    /// Database name from the startup message (`quiver`, `postgres` and `default` all mean the default).
    pub database: Option<String>,
    /// Settings the session starts with, as `SET name = value` would set
    /// them (the server's configured defaults, like postgresql.conf).
    pub initial_settings: Vec<(String, String)>,
}

/// What a handler keeps per session, as its front ends may see it: the
/// protocol-neutral settings a front end applies (timeouts, memory pool)
/// and the NOTICE channel it listens on. Everything else (a planning
/// context, prepared plans) stays the handler's own, behind [`Session`].
pub trait SessionState: Any + Send + Sync {
    /// The connected user.
    fn user(&self) -> &str;

    /// The memory pool the session's statements reserve from (the front
    /// end reserves its result encoding and buffered input against it).
    fn memory_pool(&self) -> Arc<dyn MemoryPool>;

    /// A session setting (`SHOW`); none by default.
    fn setting(&self, _name: &str) -> Option<&str> {
        None
    }

    /// The statement timeout (`SET statement_timeout`); none by default.
    fn statement_timeout(&self) -> Option<Duration> {
        None
    }

    /// `idle_session_timeout` (`None`: off, the default).
    fn idle_session_timeout(&self) -> Option<Duration> {
        None
    }

    /// `idle_in_transaction_session_timeout` (`None`: off, the default).
    fn idle_in_transaction_session_timeout(&self) -> Option<Duration> {
        None
    }

    /// Routes the running statement's NOTICE messages to `sink` (`None`
    /// drops them); a handler that sends none ignores it (the default).
    fn set_notice_sink(&mut self, _sink: Option<NoticeSink>) {}
}

/// An open session as a front end holds it: created by
/// [`QueryHandler::new_session`], handed back to the handler with every
/// statement, and opaque in between — a front end reads what
/// [`SessionState`] exposes and nothing else. The handler that created it
/// gets its own state back with [`Session::state_mut`].
pub struct Session(Box<dyn SessionState>);

impl Session {
    /// A session holding a handler's state.
    pub fn new(state: impl SessionState) -> Self {
        Self(Box::new(state))
    }

    /// The handler's state, when it is a `T` (for the handler that made it).
    pub fn state<T: SessionState>(&self) -> Option<&T> {
        let state: &dyn Any = &*self.0;
        state.downcast_ref()
    }

    /// The handler's state, mutable, when it is a `T`.
    pub fn state_mut<T: SessionState>(&mut self) -> Option<&mut T> {
        let state: &mut dyn Any = &mut *self.0;
        state.downcast_mut()
    }

    /// The statement timeout set with `SET statement_timeout`.
    pub fn statement_timeout(&self) -> Option<Duration> {
        self.0.statement_timeout()
    }

    /// `idle_session_timeout` (`None`: off).
    pub fn idle_session_timeout(&self) -> Option<Duration> {
        self.0.idle_session_timeout()
    }

    /// `idle_in_transaction_session_timeout` (`None`: off).
    pub fn idle_in_transaction_session_timeout(&self) -> Option<Duration> {
        self.0.idle_in_transaction_session_timeout()
    }

    /// A session setting (`SHOW`).
    pub fn setting(&self, name: &str) -> Option<&str> {
        self.0.setting(name)
    }

    /// The connected user.
    pub fn user(&self) -> &str {
        self.0.user()
    }

    /// Routes the statement's NOTICE messages to `sink` (`None` drops them).
    pub fn set_notice_sink(&mut self, sink: Option<NoticeSink>) {
        self.0.set_notice_sink(sink);
    }

    /// The memory pool the session's statements reserve from (DataFusion's
    /// operators, the vector search and scans, and the front end's result
    /// encoding and buffered input).
    pub fn memory_pool(&self) -> Arc<dyn MemoryPool> {
        self.0.memory_pool()
    }
}

/// A channel of NOTICE messages the front end forwards to its client while
/// a statement runs (e.g. `CREATE INDEX` progress).
pub type NoticeSink = tokio::sync::mpsc::UnboundedSender<String>;

/// The result of executing a statement, as every front end sees it.
pub enum Output {
    /// Rows to stream.
    Rows {
        schema: SchemaRef,
        stream: SendableRecordBatchStream,
    },
    /// A statement without rows; `rows` is the count it affected, for the
    /// statements that report one (`INSERT`, `UPDATE`, `DELETE`).
    Done { rows: Option<usize> },
}

/// Parameter types and result schema of a prepared statement.
#[derive(Debug, Clone, Default)]
pub struct Prepared {
    /// `$1..$n` as inferred (type and metadata, such as a catalog column's
    /// `oid` alias), `None` where the type is unknown.
    pub param_types: Vec<Option<FieldRef>>,
    /// The result columns, for statements returning rows.
    pub result_schema: Option<SchemaRef>,
}

/// How [`QueryHandler::write`] treats rows whose primary key exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteKind {
    /// An existing key is an error (`23505`, Milvus' duplicate insert).
    Insert,
    /// A row with an existing key replaces it.
    Upsert,
    /// A row with an existing key updates only the `columns` sent; the
    /// other columns keep their stored values (Milvus' `partial_update`).
    Merge { columns: Vec<String> },
}

/// The acknowledged result of [`QueryHandler::write`].
#[derive(Debug, Clone)]
pub struct Written {
    /// The rows as stored (generated keys and defaults filled).
    pub rows: RecordBatch,
    /// The commit timestamp of the write (a session reading at or after it
    /// sees the rows).
    pub ts: u64,
}

/// A vector index as the catalog describes it (`quiver_catalog.indexes`).
#[derive(Debug, Clone)]
pub struct IndexInfo {
    pub name: String,
    pub column: String,
    /// `hnsw`, `ivfflat`, `ivf_sq8`, `flat`.
    pub kind: String,
    /// `l2`, `ip`, `cosine`, `l1`.
    pub metric: String,
    /// `m=16, ef_construction=200`.
    pub params: String,
    /// Every sealed segment is indexed.
    pub ready: bool,
    pub rows_indexed: usize,
    pub rows_total: usize,
}

/// A session's vector search knobs (`None`: the session's default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SearchKnobs {
    /// `hnsw.ef_search`.
    pub ef_search: Option<usize>,
    /// `ivfflat.probes`.
    pub probes: Option<usize>,
}

/// The `$position` parameter of a typed plan that carries a query vector
/// for a column of type `data_type` (what SQL's `v <-> $1` plans to, so
/// the vector search rule finds it).
pub fn vector_parameter(position: usize, data_type: arrow::datatypes::DataType) -> Expr {
    Expr::Placeholder(Placeholder {
        id: format!("${position}"),
        field: Some(Arc::new(quiver_planner::vector_field::vector_field(
            "param", data_type,
        ))),
    })
}

/// A typed plan a front end names by its shape, built only when the
/// session's plan cache lacks it.
pub struct KeyedPlan<'a> {
    /// Everything the plan depends on besides the catalog (which the
    /// handler adds): the same key must always build the same plan.
    pub key: &'a str,
    pub database: &'a str,
    pub table: &'a str,
    /// Builds the plan from the table's scan, calling the session's
    /// functions by name.
    pub build: &'a (dyn Fn(LogicalPlanBuilder, &dyn FunctionRegistry) -> Result<LogicalPlan>
             + Send
             + Sync),
}

/// The engine as the front ends see it.
#[async_trait]
pub trait QueryHandler: Send + Sync + 'static {
    /// Opens a session.
    async fn new_session(&self, info: SessionInfo) -> Result<Session>;

    /// Parses SQL text into statements (Postgres dialect, with the rewrites
    /// Postgres clients' catalog queries need).
    fn parse(&self, sql: &str) -> Result<Vec<Statement>>;

    /// Parameter types and result schema of a statement (Parse/Describe).
    async fn prepare(&self, session: &mut Session, statement: &Statement) -> Result<Prepared>;

    /// Executes a statement with bound parameters.
    async fn execute(
        &self,
        session: &mut Session,
        statement: &Statement,
        params: Option<ParamValues>,
    ) -> Result<Output>;

    /// The databases (schemas) of the catalog.
    async fn databases(&self) -> Result<Vec<String>>;

    /// The definition of a table (its columns, types and primary key).
    async fn table_schema(&self, database: &str, table: &str) -> Result<TableSchema>;

    /// The number of shards of a table (Milvus `shards_num`).
    async fn table_shards(&self, database: &str, table: &str) -> Result<u32>;

    /// A scan of a table in the session's catalog, the start of a typed
    /// plan: a front end that builds DataFusion plans itself (the Milvus
    /// door) adds its filter, projection, sort and limit and runs the plan
    /// with [`QueryHandler::execute_plan`].
    async fn table_scan(
        &self,
        session: &mut Session,
        database: &str,
        table: &str,
    ) -> Result<LogicalPlanBuilder>;

    /// A scalar function of the session's registry, by name (typed plans
    /// call the functions SQL text would name: `json_get_str`, `power`...).
    fn scalar_function(&self, session: &mut Session, name: &str) -> Result<Arc<ScalarUDF>>;

    /// Optimizes and runs a typed plan at a fresh read timestamp, as
    /// [`QueryHandler::execute`] runs a query.
    async fn execute_plan(&self, session: &mut Session, plan: LogicalPlan) -> Result<Output>;

    /// Runs a typed plan with bound parameters (`$1`...) at a fresh read
    /// timestamp, through the session's plan cache under `plan.key`, as a
    /// prepared statement runs: the plan is built, optimized and planned
    /// once per key, and a search's physical plan is reused with only its
    /// query vector swapped.
    async fn execute_keyed_plan(
        &self,
        session: &mut Session,
        plan: KeyedPlan<'_>,
        params: ParamValues,
    ) -> Result<Output>;

    /// Deletes the rows of a table that `filter` (an expression over its
    /// columns, as a typed plan's) selects, read at a fresh timestamp;
    /// durable when it returns. Returns how many rows it deleted.
    async fn delete_where(
        &self,
        session: &mut Session,
        database: &str,
        table: &str,
        filter: Expr,
    ) -> Result<usize>;

    /// Sets the session's vector search knobs, as typed values (`None`:
    /// back to the session's default), with the same checks as `SET
    /// hnsw.ef_search` / `SET ivfflat.probes`.
    fn set_search_knobs(&self, session: &mut Session, knobs: SearchKnobs) -> Result<()>;

    /// Makes one catalog change (see [`ddl`]), durably before it returns.
    /// `Ok(false)`: nothing changed, as the request allowed (`if_exists`,
    /// `if_not_exists`).
    async fn change_catalog(
        &self,
        session: &mut Session,
        change: ddl::CatalogChange,
    ) -> Result<bool>;

    /// The vector indexes of a table.
    async fn indexes(&self, database: &str, table: &str) -> Result<Vec<IndexInfo>>;

    /// The names of a database's tables, sorted.
    async fn tables(&self, database: &str) -> Result<Vec<String>>;

    /// The named options a front end keeps with a table (see
    /// [`QueryHandler::set_table_options`]).
    async fn table_options(&self, database: &str, table: &str) -> Result<BTreeMap<String, String>>;

    /// Sets (`Some`) or removes (`None`) named options of a table, durably
    /// and all at once. Quiver itself gives them no meaning.
    async fn set_table_options(
        &self,
        database: &str,
        table: &str,
        changes: &[(String, Option<String>)],
    ) -> Result<()>;

    /// A new timestamp from the coordinator's oracle (hybrid: physical
    /// milliseconds << 18 | logical), later than every acknowledged write.
    async fn allocate_timestamp(&self) -> Result<u64>;

    /// The timestamp a strong read reads at: a fresh one, or the newest
    /// handed out while none can be (the meta store is down). For "is this
    /// timestamp in the past" checks, which must keep answering then.
    async fn read_timestamp(&self) -> Result<u64>;

    /// Seals a table's growing data and persists it to object storage.
    async fn flush(&self, database: &str, table: &str) -> Result<()>;

    /// Merges a table's segments now; returns the segments merged.
    async fn compact(&self, database: &str, table: &str) -> Result<usize>;

    /// Writes a batch in the table's column order, durably (WAL) before it
    /// returns. Columns not in `sent` take their `DEFAULT` (or a generated
    /// key); `sent` empty means every column was sent.
    async fn write(
        &self,
        session: &mut Session,
        database: &str,
        table: &str,
        rows: RecordBatch,
        sent: &[String],
        kind: WriteKind,
    ) -> Result<Written>;
}

/// Shared handler.
pub type QueryHandlerRef = Arc<dyn QueryHandler>;
