//! The Postgres door over a stand-in [`PgHandler`], served on a real socket
//! and driven by tokio-postgres: a handler that records what it is asked and
//! answers from a fixed table (`items`: `id` bigint, `name` text; rows 1
//! `one` and 2 `two`) shows that the door needs nothing but the seam — the
//! neutral `QueryHandler` to parse, describe and execute, the Postgres
//! extension for command tags, transaction effects and COPY, and sessions
//! of the handler's own making, opaque to the door.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::execution::memory_pool::{MemoryPool, UnboundedMemoryPool};
use datafusion::physical_plan::memory::MemoryStream;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use parking_lot::Mutex;
use quiver_common::schema::TableSchema;
use quiver_sql::error::{Result, SqlError};
use quiver_sql::handler::pg::{
    CommandTag, CopySpec, PgHandler, PgHandlerRef, PgOutput, TransactionEffect,
};
use quiver_sql::handler::{
    IndexInfo, Output, Prepared, QueryHandler, SearchKnobs, Session, SessionInfo, SessionState,
    WriteKind, Written,
};
use tokio::net::TcpListener;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

use super::serve;

/// How long the stand-in's sessions let a transaction sit idle.
const IDLE_IN_TRANSACTION: Duration = Duration::from_millis(150);

/// The stand-in's session: only what the door may read of one.
struct StandInSession {
    user: String,
}

impl SessionState for StandInSession {
    fn user(&self) -> &str {
        &self.user
    }

    fn memory_pool(&self) -> Arc<dyn MemoryPool> {
        Arc::new(UnboundedMemoryPool::default())
    }

    fn idle_in_transaction_session_timeout(&self) -> Option<Duration> {
        Some(IDLE_IN_TRANSACTION)
    }
}

/// A handler that logs every call and knows one table, `items`; any
/// statement naming `missing` is a table that does not exist.
struct StandIn {
    calls: Mutex<Vec<String>>,
}

impl StandIn {
    fn log(&self, call: String) {
        self.calls.lock().push(call);
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().clone()
    }

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]))
    }

    /// The rows of `items`, those with `id` = `only` if given.
    fn rows(only: Option<i64>) -> Result<PgOutput> {
        let keep = |id: &i64| only.is_none_or(|only| only == *id);
        let ids: Vec<i64> = [1, 2].into_iter().filter(keep).collect();
        let names: Vec<&str> = ids
            .iter()
            .map(|id| if *id == 1 { "one" } else { "two" })
            .collect();
        let schema = Self::schema();
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(ids)),
                Arc::new(StringArray::from(names)),
            ],
        )?;
        let stream = MemoryStream::try_new(vec![batch], schema.clone(), None)?;
        Ok(PgOutput::Rows {
            schema,
            stream: Box::pin(stream),
            command: "SELECT".into(),
        })
    }

    /// The user of a session this handler opened (an error for any other).
    fn user(session: &Session) -> Result<String> {
        session
            .state::<StandInSession>()
            .map(|s| s.user.clone())
            .ok_or_else(|| SqlError::Internal("not a stand-in session".into()))
    }
}

#[async_trait]
impl QueryHandler for StandIn {
    async fn new_session(&self, info: SessionInfo) -> Result<Session> {
        self.log(format!("new_session {} {:?}", info.user, info.database));
        Ok(Session::new(StandInSession { user: info.user }))
    }

    fn parse(&self, sql: &str) -> Result<Vec<Statement>> {
        Ok(Parser::parse_sql(&PostgreSqlDialect {}, sql)?)
    }

    async fn prepare(&self, session: &mut Session, statement: &Statement) -> Result<Prepared> {
        let text = statement.to_string();
        self.log(format!("prepare {}: {text}", Self::user(session)?));
        if text.contains("missing") {
            return Err(SqlError::table_not_found("public", "missing"));
        }
        Ok(match text.as_str() {
            "SELECT * FROM items" => Prepared {
                param_types: Vec::new(),
                result_schema: Some(Self::schema()),
            },
            "SELECT * FROM items WHERE id = $1" => Prepared {
                param_types: vec![Some(Arc::new(Field::new("$1", DataType::Int64, true)))],
                result_schema: Some(Self::schema()),
            },
            _ => Prepared::default(),
        })
    }

    async fn execute(
        &self,
        session: &mut Session,
        statement: &Statement,
        params: Option<ParamValues>,
    ) -> Result<Output> {
        self.execute_pg(session, statement, params)
            .await?
            .into_output()
    }

    async fn table_scan(
        &self,
        _session: &mut Session,
        _database: &str,
        _table: &str,
    ) -> Result<datafusion::logical_expr::LogicalPlanBuilder> {
        Err(SqlError::unsupported("typed plans in the stand-in"))
    }

    fn scalar_function(
        &self,
        _session: &mut Session,
        name: &str,
    ) -> Result<Arc<datafusion::logical_expr::ScalarUDF>> {
        Err(SqlError::unsupported(format!(
            "function {name} in the stand-in"
        )))
    }

    async fn execute_plan(
        &self,
        _session: &mut Session,
        _plan: datafusion::logical_expr::LogicalPlan,
    ) -> Result<Output> {
        Err(SqlError::unsupported("typed plans in the stand-in"))
    }

    async fn execute_keyed_plan(
        &self,
        _session: &mut Session,
        _plan: quiver_sql::handler::KeyedPlan<'_>,
        _params: ParamValues,
    ) -> Result<Output> {
        Err(SqlError::unsupported("typed plans in the stand-in"))
    }

    async fn delete_where(
        &self,
        _session: &mut Session,
        _database: &str,
        _table: &str,
        _filter: datafusion::logical_expr::Expr,
    ) -> Result<usize> {
        Err(SqlError::unsupported("typed deletes in the stand-in"))
    }

    async fn change_catalog(
        &self,
        _session: &mut Session,
        change: quiver_sql::handler::ddl::CatalogChange,
    ) -> Result<bool> {
        Err(SqlError::unsupported(format!(
            "{} in the stand-in",
            change.kind()
        )))
    }

    async fn databases(&self) -> Result<Vec<String>> {
        Ok(vec!["public".into()])
    }

    async fn table_schema(&self, database: &str, table: &str) -> Result<TableSchema> {
        Err(SqlError::table_not_found(database, table))
    }

    async fn table_shards(&self, database: &str, table: &str) -> Result<u32> {
        Err(SqlError::table_not_found(database, table))
    }

    fn set_search_knobs(&self, _session: &mut Session, _knobs: SearchKnobs) -> Result<()> {
        Err(SqlError::unsupported(
            "search knobs in the stand-in handler",
        ))
    }

    async fn indexes(&self, _database: &str, _table: &str) -> Result<Vec<IndexInfo>> {
        Ok(Vec::new())
    }

    async fn tables(&self, _database: &str) -> Result<Vec<String>> {
        Ok(vec!["items".into()])
    }

    async fn table_options(
        &self,
        _database: &str,
        _table: &str,
    ) -> Result<std::collections::BTreeMap<String, String>> {
        Ok(Default::default())
    }

    async fn set_table_options(
        &self,
        _database: &str,
        _table: &str,
        _changes: &[(String, Option<String>)],
    ) -> Result<()> {
        Err(SqlError::unsupported("table options"))
    }

    async fn allocate_timestamp(&self) -> Result<u64> {
        Ok(1)
    }

    async fn read_timestamp(&self) -> Result<u64> {
        Ok(1)
    }

    async fn flush(&self, _database: &str, _table: &str) -> Result<()> {
        Err(SqlError::unsupported("flush"))
    }

    async fn compact(&self, _database: &str, _table: &str) -> Result<usize> {
        Err(SqlError::unsupported("compact"))
    }

    async fn write(
        &self,
        _session: &mut Session,
        _database: &str,
        _table: &str,
        _rows: RecordBatch,
        _sent: &[String],
        _kind: WriteKind,
    ) -> Result<Written> {
        Err(SqlError::unsupported("write"))
    }
}

#[async_trait]
impl PgHandler for StandIn {
    async fn execute_pg(
        &self,
        session: &mut Session,
        statement: &Statement,
        params: Option<ParamValues>,
    ) -> Result<PgOutput> {
        let text = statement.to_string();
        let bound: Vec<ScalarValue> = match &params {
            Some(ParamValues::List(values)) => values.iter().map(|v| v.value().clone()).collect(),
            _ => Vec::new(),
        };
        self.log(format!(
            "execute {}: {text} {bound:?}",
            Self::user(session)?
        ));
        if text.contains("missing") {
            return Err(SqlError::table_not_found("public", "missing"));
        }
        match statement {
            Statement::Query(_) if text == "SELECT * FROM items" => Self::rows(None),
            Statement::Query(_) if text == "SELECT * FROM items WHERE id = $1" => {
                match bound.as_slice() {
                    [ScalarValue::Int64(Some(id))] => Self::rows(Some(*id)),
                    other => Err(SqlError::InvalidParameter(format!("bound {other:?}"))),
                }
            }
            Statement::Insert(_) => Ok(PgOutput::Command(CommandTag::insert(1))),
            Statement::Delete(_) => Ok(PgOutput::Command(CommandTag::new("DELETE").with_rows(2))),
            Statement::StartTransaction { .. } => Ok(PgOutput::Command(
                CommandTag::new("BEGIN").with_transaction(TransactionEffect::Begin),
            )),
            Statement::Commit { .. } => Ok(PgOutput::Command(
                CommandTag::new("COMMIT").with_transaction(TransactionEffect::End),
            )),
            _ => Err(SqlError::unsupported(format!("statement \"{text}\""))),
        }
    }

    async fn copy_in(
        &self,
        _session: &mut Session,
        _spec: &CopySpec,
        _rows: RecordBatch,
    ) -> Result<usize> {
        Err(SqlError::unsupported("COPY"))
    }
}

/// The door over a fresh stand-in, on an ephemeral port.
async fn start() -> (Arc<StandIn>, u16, tokio::sync::oneshot::Sender<()>) {
    let stand_in = Arc::new(StandIn {
        calls: Mutex::new(Vec::new()),
    });
    let handler: PgHandlerRef = stand_in.clone();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve(listener, handler, async move {
        let _ = stopped.await;
    }));
    (stand_in, port, stop)
}

type Connection = tokio::task::JoinHandle<std::result::Result<(), tokio_postgres::Error>>;

async fn connect(port: u16) -> (Client, Connection) {
    let url = format!("host=127.0.0.1 port={port} user=tester dbname=quiver");
    let (client, connection) = tokio_postgres::connect(&url, NoTls).await.unwrap();
    (client, tokio::spawn(connection))
}

/// The SQLSTATE and message of a server error.
fn db_error(err: &tokio_postgres::Error) -> (String, String) {
    let db = err
        .as_db_error()
        .unwrap_or_else(|| panic!("not a server error: {err}"));
    (db.code().code().to_string(), db.message().to_string())
}

/// The text rows and the command-complete counts of a simple query.
fn simple(messages: &[SimpleQueryMessage]) -> (Vec<Vec<String>>, Vec<u64>) {
    let mut rows = Vec::new();
    let mut completed = Vec::new();
    for message in messages {
        match message {
            SimpleQueryMessage::Row(row) => rows.push(
                (0..row.len())
                    .map(|i| row.get(i).unwrap_or("NULL").to_string())
                    .collect(),
            ),
            SimpleQueryMessage::CommandComplete(n) => completed.push(*n),
            _ => {}
        }
    }
    (rows, completed)
}

#[tokio::test]
async fn the_simple_query_protocol_runs_through_the_stand_in() {
    let (stand_in, port, _stop) = start().await;
    let (client, _connection) = connect(port).await;
    let messages = client
        .simple_query("SELECT * FROM items; DELETE FROM items WHERE id > 0")
        .await
        .unwrap();
    let (rows, completed) = simple(&messages);
    assert_eq!(rows, [["1", "one"], ["2", "two"]]);
    // SELECT 2 from the rows streamed, DELETE 2 from the command tag.
    assert_eq!(completed, [2, 2]);
    // The session is opened once, at startup, with the startup packet's
    // user and database, and comes back to the handler with each statement.
    assert_eq!(
        stand_in.calls(),
        [
            "new_session tester Some(\"quiver\")",
            "execute tester: SELECT * FROM items []",
            "execute tester: DELETE FROM items WHERE id > 0 []",
        ]
    );
}

#[tokio::test]
async fn the_extended_protocol_describes_binds_and_tags_through_the_stand_in() {
    let (stand_in, port, _stop) = start().await;
    let (client, _connection) = connect(port).await;
    let statement = client
        .prepare("SELECT * FROM items WHERE id = $1")
        .await
        .unwrap();
    // Parameter and result types are the handler's description.
    assert_eq!(statement.params(), [Type::INT8]);
    let columns: Vec<_> = statement.columns().iter().map(|c| c.name()).collect();
    assert_eq!(columns, ["id", "name"]);
    assert_eq!(statement.columns()[0].type_(), &Type::INT8);
    // The parameter arrives decoded, as the prepared type says.
    let rows = client.query(&statement, &[&2i64]).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, i64>(0), 2);
    assert_eq!(rows[0].get::<_, String>(1), "two");
    // Command tags: `INSERT 0 1` and `DELETE 2` as affected rows.
    let inserted = client
        .execute("INSERT INTO items VALUES (3, 'three')", &[])
        .await
        .unwrap();
    assert_eq!(inserted, 1);
    let deleted = client.execute("DELETE FROM items", &[]).await.unwrap();
    assert_eq!(deleted, 2);
    let calls = stand_in.calls();
    assert!(
        calls.contains(&"execute tester: SELECT * FROM items WHERE id = $1 [Int64(2)]".into()),
        "{calls:?}"
    );
    assert!(
        calls.contains(&"prepare tester: SELECT * FROM items WHERE id = $1".into()),
        "{calls:?}"
    );
}

#[tokio::test]
async fn handler_errors_reach_the_client_with_their_sqlstate() {
    let (_, port, _stop) = start().await;
    let (client, _connection) = connect(port).await;
    // From execute (simple query) and from prepare (extended protocol).
    let err = client
        .simple_query("SELECT * FROM missing")
        .await
        .unwrap_err();
    assert_eq!(
        db_error(&err),
        ("42P01".into(), "relation \"missing\" does not exist".into())
    );
    let err = client
        .query("SELECT * FROM missing", &[])
        .await
        .unwrap_err();
    assert_eq!(db_error(&err).0, "42P01");
    // From parse: a syntax error.
    let err = client.simple_query("SELEKT 1").await.unwrap_err();
    assert_eq!(db_error(&err).0, "42601");
    // A statement the handler does not support: 0A000.
    let err = client
        .simple_query("UPDATE items SET name = 'x'")
        .await
        .unwrap_err();
    assert_eq!(db_error(&err).0, "0A000");
    // The connection keeps serving.
    let (rows, _) = simple(&client.simple_query("SELECT * FROM items").await.unwrap());
    assert_eq!(rows.len(), 2);
}

#[tokio::test]
async fn transaction_effects_decide_the_idle_timeout_that_applies() {
    let (stand_in, port, _stop) = start().await;
    // BEGIN then COMMIT: the door is back outside a transaction block, so
    // the session's idle-in-transaction timeout does not apply.
    let (client, _connection) = connect(port).await;
    client.batch_execute("BEGIN").await.unwrap();
    client.batch_execute("COMMIT").await.unwrap();
    tokio::time::sleep(IDLE_IN_TRANSACTION * 3).await;
    let (rows, _) = simple(&client.simple_query("SELECT * FROM items").await.unwrap());
    assert_eq!(rows.len(), 2);
    // BEGIN alone: inside one, and the connection idle past the timeout is
    // closed with 25P03.
    let (client, connection) = connect(port).await;
    client.batch_execute("BEGIN").await.unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(10), connection)
        .await
        .expect("closed by the server")
        .unwrap();
    let err = ended.expect_err("a FATAL error");
    assert_eq!(db_error(&err).0, "25P03", "{err}");
    let begun = stand_in
        .calls()
        .iter()
        .filter(|c| c.starts_with("execute tester: BEGIN"))
        .count();
    assert_eq!(begun, 2);
}
