//! [`Instance`]: the [`QueryHandler`] (and the Postgres door's
//! [`PgHandler`]) over a Quiver [`Engine`](quiver_cluster::Engine).
//!
//! Statement text is first held to the expression limits of
//! [`crate::complexity`] (on its tokens, before any tree is built), then
//! parsed; statements are routed over the parsed AST: DDL to the catalog, DML and
//! COPY to the write path, session commands to the session, everything else
//! planned once by DataFusion (with Quiver's vector extensions) and executed
//! at one read timestamp per statement.
//!
//! This file only wires: sessions are opened and statements routed here,
//! to `query` (SELECT, EXPLAIN), `dml`, `ddl`, `index_ddl`, `copy` and
//! `session_cmds`; the [`Instance`] struct and the planning helpers they all
//! share live in `state`, which imports none of them but `session_cmds`.
//! What the instance keeps per session (`session::SqlSession`: its
//! DataFusion context, settings and `plan_cache`) is private to it: front
//! ends hold the opaque [`Session`] and see only its
//! [`SessionState`](crate::handler::SessionState).

mod array_subquery;
mod block_catalog;
mod catalog_functions;
mod copy;
mod database_ddl;
mod database_use;
mod ddl;
mod dml;
mod extensions;
mod functions;
mod identifiers;
mod index_ddl;
mod insert_source;
mod limit_params;
mod memory_setting;
mod names;
mod output_names;
mod pg_catalog_rows;
mod pg_class_options;
mod pg_database;
mod pg_indexes;
mod pg_types;
mod plan_cache;
mod projection_subqueries;
mod query;
mod reflection_functions;
mod scalar_subquery;
mod search_path;
mod session;
mod session_cmds;
mod set_returning;
mod state;
mod syntax_position;
mod system_views;
mod token_fixes;
mod transaction;
mod transaction_block;

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::RecordBatch;
use async_trait::async_trait;
use datafusion::common::ParamValues;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::{LogicalPlan, LogicalPlanBuilder, ScalarUDF};
use datafusion::sql::sqlparser::ast::{ObjectType, Set, Statement};
use datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_pg_catalog::setup_pg_catalog;
use quiver_cluster::api::{SetTableOptions, TableRef};
use quiver_common::status::StatusCode;
use quiver_exec::catalog::CatalogSource;
use quiver_exec::memory::QueryMemoryPool;
use quiver_planner::json::JsonTypePlanner;
use quiver_planner::session::{new_session_context, CATALOG_NAME};

use crate::complexity::{self, ComplexityLimits};
use crate::error::{Result, SqlError};
use crate::handler::ddl::CatalogChange;
use crate::handler::pg::{CommandTag, CopySpec, PgHandler, PgOutput, TransactionState};
use crate::handler::{
    IndexInfo, Output, Prepared, QueryHandler, Session, SessionInfo, WriteKind, Written,
};
use plan_cache::PlanCache;
use session::SqlSession;
use state::{first_words, parameter_types};

pub use functions::version_string;
pub use state::{Instance, Roles};

#[async_trait]
impl QueryHandler for Instance {
    async fn new_session(&self, info: SessionInfo) -> Result<Session> {
        // A database named at startup: one of the default database's names,
        // or a database (schema) of its own, searched first.
        let mut database = None;
        if let Some(db) = info.database.as_deref() {
            let alias = names::database_schema(db) == quiver_cluster::DEFAULT_DATABASE;
            let own = !alias && self.databases().await?.iter().any(|s| s == db);
            if !(alias || own || db == info.user) {
                return Err(SqlError::Query {
                    code: StatusCode::UndefinedDatabase,
                    message: format!("database \"{db}\" does not exist"),
                });
            }
            database = own.then(|| db.to_string());
        }
        let memory = QueryMemoryPool::new(self.server_memory.clone(), self.query_memory_limit);
        let block_tables = block_catalog::SharedBlockTables::default();
        let catalog: Arc<dyn CatalogSource> = Arc::new(block_catalog::SessionCatalog {
            shared: self.tables.clone(),
            block: block_tables.clone(),
        });
        let ctx = new_session_context(catalog.clone(), memory.clone())
            .map_err(|e| SqlError::Internal(format!("session setup: {e}")))?;
        setup_pg_catalog(&ctx, CATALOG_NAME, EmptyContextProvider)
            .map_err(|e| SqlError::Internal(format!("pg_catalog setup: {e}")))?;
        {
            // The catalog's setup put its own type planner (`regclass`, ...)
            // in place of the session's: JSON types go first, then it.
            let state = ctx.state_ref();
            let existing = state.read().clone();
            let mut builder = SessionStateBuilder::new_from_existing(existing);
            let fallback = builder.type_planner().clone();
            let planner = JsonTypePlanner::over(fallback);
            *state.write() = builder.with_type_planner(Arc::new(planner)).build();
        }
        let index_mirror = Arc::new(pg_indexes::IndexMirror::default());
        ctx.register_udf(pg_indexes::pg_get_indexdef(index_mirror.clone()));
        if let Some(catalog) = ctx.catalog(CATALOG_NAME) {
            if let Some(inner) = catalog.schema("pg_catalog") {
                let overlay = pg_types::PgCatalogOverlay {
                    inner,
                    coordinator: self.coordinator().clone(),
                    indexes: index_mirror,
                    database: database
                        .clone()
                        .unwrap_or_else(|| quiver_cluster::DEFAULT_DATABASE.to_string()),
                };
                catalog
                    .register_schema("pg_catalog", Arc::new(overlay))
                    .map_err(|e| SqlError::Internal(format!("pg_catalog overlay: {e}")))?;
            }
        }
        if let Some(catalog) = ctx.catalog(CATALOG_NAME) {
            catalog
                .register_schema(
                    system_views::SYSTEM_SCHEMA,
                    system_views::system_schema(self.coordinator().clone()),
                )
                .map_err(|e| SqlError::Internal(format!("{}: {e}", system_views::SYSTEM_SCHEMA)))?;
        }
        if let Some(db) = database.as_deref() {
            // `current_database()` names the database connected to.
            ctx.register_udf(datafusion_pg_catalog::pg_catalog::create_current_database_udf(db));
        }
        ctx.register_udf(pg_types::format_type());
        for udf in functions::system_functions()
            .into_iter()
            .chain(catalog_functions::catalog_functions())
            .chain(reflection_functions::reflection_functions(catalog))
        {
            ctx.register_udf(udf);
        }
        let settings =
            session_cmds::default_settings(&info.user, database.as_deref(), memory.max_limit());
        ctx.register_udf(functions::current_setting_function(&settings));
        let database_use = database.as_deref().map(|db| self.database_uses.enter(db));
        let mut session = SqlSession {
            ctx,
            _database_use: database_use,
            settings,
            statement_timeout: None,
            idle_session_timeout: None,
            idle_in_transaction_session_timeout: None,
            user: info.user,
            database,
            notices: None,
            plans: PlanCache::default(),
            memory,
            transaction: None,
            block_tables,
        };
        session_cmds::sync_search_settings(&session);
        session_cmds::apply_initial_settings(&mut session, &info.initial_settings)?;
        session_cmds::apply_database_search_path(&mut session)?;
        Ok(Session::new(session))
    }

    fn parse(&self, sql: &str) -> Result<Vec<Statement>> {
        // Before any tree exists: a deep one overflows the stack even when
        // it is only dropped.
        complexity::check(sql, ComplexityLimits::SQL)?;
        self.parse_checked(sql)
            .map_err(|e| syntax_position::locate(sql, e))
    }

    async fn prepare(&self, session: &mut Session, statement: &Statement) -> Result<Prepared> {
        let session = SqlSession::of(session)?;
        match statement {
            Statement::Query(_) | Statement::Explain { .. } => {
                let plan = self.plan(session, statement).await?;
                let schema = Arc::new(plan.schema().as_arrow().clone());
                Ok(Prepared {
                    param_types: parameter_types(&plan)?,
                    result_schema: Some(output_names::rename_schema(statement, schema)),
                })
            }
            Statement::Insert(insert) => dml::prepare_insert(self, session, insert).await,
            Statement::Update(update) => dml::prepare_update(self, session, update).await,
            Statement::Delete(delete) => dml::prepare_delete(self, session, delete).await,
            Statement::ShowVariable { variable } => Ok(Prepared {
                param_types: vec![],
                result_schema: Some(session_cmds::show_schema(variable)),
            }),
            _ => Ok(Prepared::default()),
        }
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

    async fn write(
        &self,
        session: &mut Session,
        database: &str,
        table: &str,
        rows: RecordBatch,
        sent: &[String],
        kind: WriteKind,
    ) -> Result<Written> {
        let session = SqlSession::of(session)?;
        dml::write_batch(self, session, database, table, rows, sent, kind).await
    }

    async fn databases(&self) -> Result<Vec<String>> {
        Ok(self.coordinator().catalog().await?.databases)
    }

    async fn indexes(&self, database: &str, table: &str) -> Result<Vec<IndexInfo>> {
        // One table's indexes (a Milvus search asks on every request).
        let table = TableRef::new(database, table);
        Ok(self
            .coordinator()
            .table_index_statuses(table)
            .await?
            .into_iter()
            .map(|ix| IndexInfo {
                ready: ix.state == "ready",
                name: ix.name,
                column: ix.column,
                kind: ix.kind,
                metric: ix.metric,
                params: ix.params,
                rows_indexed: ix.rows_indexed,
                rows_total: ix.rows_total,
            })
            .collect())
    }

    async fn allocate_timestamp(&self) -> Result<u64> {
        Ok(self.coordinator().allocate_timestamps(1).await?.first)
    }

    async fn read_timestamp(&self) -> Result<u64> {
        Ok(self.coordinator().read_timestamp().await?)
    }

    async fn flush(&self, database: &str, table: &str) -> Result<()> {
        let table = self.describe_table(database, table).await?;
        Ok(self.streaming().flush(table.id).await?)
    }

    async fn compact(&self, database: &str, table: &str) -> Result<usize> {
        let table = TableRef::new(database, table);
        Ok(self.coordinator().compact(table).await?)
    }

    async fn table_schema(
        &self,
        database: &str,
        table: &str,
    ) -> Result<quiver_common::schema::TableSchema> {
        Ok(self.describe_table(database, table).await?.schema)
    }

    async fn table_shards(&self, database: &str, table: &str) -> Result<u32> {
        Ok(self.describe_table(database, table).await?.shards)
    }

    async fn table_scan(
        &self,
        session: &mut Session,
        database: &str,
        table: &str,
    ) -> Result<LogicalPlanBuilder> {
        let session = SqlSession::of(session)?;
        self.scan_builder(session, database, table).await
    }

    fn scalar_function(&self, session: &mut Session, name: &str) -> Result<Arc<ScalarUDF>> {
        let session = SqlSession::of(session)?;
        Ok(session.ctx.udf(name)?)
    }

    async fn execute_plan(&self, session: &mut Session, plan: LogicalPlan) -> Result<Output> {
        let session = SqlSession::of(session)?;
        self.set_read_ts(session).await?;
        let df = session.ctx.execute_logical_plan(plan).await?;
        let schema = Arc::new(df.schema().as_arrow().clone());
        let stream = df.execute_stream().await?;
        Ok(Output::Rows { schema, stream })
    }

    async fn execute_keyed_plan(
        &self,
        session: &mut Session,
        plan: crate::handler::KeyedPlan<'_>,
        params: ParamValues,
    ) -> Result<Output> {
        let session = SqlSession::of(session)?;
        self.keyed_plan(session, plan, &params).await?.into_output()
    }

    async fn delete_where(
        &self,
        session: &mut Session,
        database: &str,
        table: &str,
        filter: datafusion::logical_expr::Expr,
    ) -> Result<usize> {
        let session = SqlSession::of(session)?;
        dml::delete_where(self, session, (database, table), filter).await
    }

    fn set_search_knobs(
        &self,
        session: &mut Session,
        knobs: crate::handler::SearchKnobs,
    ) -> Result<()> {
        session_cmds::set_search_knobs(SqlSession::of(session)?, knobs)
    }

    async fn tables(&self, database: &str) -> Result<Vec<String>> {
        let catalog = self.coordinator().catalog().await?;
        let mut names: Vec<String> = catalog
            .tables
            .into_iter()
            .filter(|t| t.table.database == database)
            .map(|t| t.table.name)
            .collect();
        names.sort_unstable();
        Ok(names)
    }

    async fn table_options(&self, database: &str, table: &str) -> Result<BTreeMap<String, String>> {
        Ok(self.describe_table(database, table).await?.options)
    }

    async fn change_catalog(&self, _session: &mut Session, change: CatalogChange) -> Result<bool> {
        ddl::change_catalog(self, change).await
    }

    async fn set_table_options(
        &self,
        database: &str,
        table: &str,
        changes: &[(String, Option<String>)],
    ) -> Result<()> {
        Ok(self
            .coordinator
            .set_table_options(SetTableOptions {
                table: TableRef::new(database, table),
                changes: changes.to_vec(),
            })
            .await?)
    }
}

#[async_trait]
impl PgHandler for Instance {
    async fn execute_pg(
        &self,
        session: &mut Session,
        statement: &Statement,
        params: Option<ParamValues>,
    ) -> Result<PgOutput> {
        let session = SqlSession::of(session)?;
        transaction::gate(session, statement)?;
        let result = self.execute_statement(session, statement, params).await;
        if result.is_err() {
            transaction::fail(session);
        }
        result
    }

    fn statement_failed(&self, session: &mut Session) {
        if let Ok(session) = SqlSession::of(session) {
            transaction::fail(session);
        }
    }

    fn transaction_state(&self, session: &mut Session) -> Option<TransactionState> {
        let session = SqlSession::of(session).ok()?;
        Some(match transaction::state(session) {
            None => TransactionState::Idle,
            Some(false) => TransactionState::InBlock,
            Some(true) => TransactionState::Failed,
        })
    }

    async fn copy_in(
        &self,
        session: &mut Session,
        spec: &CopySpec,
        rows: RecordBatch,
    ) -> Result<usize> {
        copy::copy_in(self, SqlSession::of(session)?, spec, rows).await
    }
}

impl Instance {
    /// Parses `sql` (checked for complexity by the caller) and checks its names.
    fn parse_checked(&self, sql: &str) -> Result<Vec<Statement>> {
        let statements = match token_fixes::fix_tokens(sql)? {
            // `<+>` needs a token-level parse; the client-catalog query
            // substitutions of the compatibility parser never involve it.
            Some(tokens) => {
                use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
                use datafusion::sql::sqlparser::parser::Parser;
                let statements = Parser::new(&PostgreSqlDialect {})
                    .with_tokens(tokens)
                    .parse_statements()?;
                statements
                    .into_iter()
                    .map(|s| {
                        if projection_subqueries::has_projection_subquery(&s) {
                            self.projection_rules.rewrite_without_projection_rule(s)
                        } else {
                            self.parser.rewrite(s)
                        }
                    })
                    .collect()
            }
            None => self
                .projection_rules
                .keep_projection_subqueries(sql, self.parser.parse(sql)?),
        };
        // Names are checked once per statement text, not per execution of
        // a prepared statement.
        for statement in &statements {
            identifiers::check(statement)?;
        }
        Ok(statements)
    }

    /// Runs one statement of the Postgres door.
    async fn execute_statement(
        &self,
        session: &mut SqlSession,
        statement: &Statement,
        params: Option<ParamValues>,
    ) -> Result<PgOutput> {
        match statement {
            Statement::Query(_) | Statement::Explain { .. } => {
                self.query(session, statement, params).await
            }
            Statement::Insert(insert) => dml::insert(self, session, insert, params.as_ref()).await,
            Statement::Update(update) => dml::update(self, session, update, params.as_ref()).await,
            Statement::Delete(delete) => dml::delete(self, session, delete, params.as_ref()).await,
            Statement::Truncate(truncate) => dml::truncate(self, session, truncate).await,
            Statement::CreateTable(create) => ddl::create_table(self, session, create).await,
            Statement::CreateSchema { .. } => ddl::create_schema(self, statement).await,
            Statement::CreateDatabase { .. } => {
                database_ddl::create_database(self, session, statement).await
            }
            Statement::Drop {
                object_type: ObjectType::Database,
                ..
            } => database_ddl::drop_database(self, session, statement).await,
            Statement::Drop { .. } => ddl::drop(self, session, statement).await,
            Statement::AlterTable(alter) => ddl::alter_table(self, session, alter).await,
            Statement::CreateExtension(ext) => {
                extensions::create_extension(self, session, ext).await
            }
            Statement::DropExtension(drop) => extensions::drop_extension(self, session, drop).await,
            Statement::CreateIndex(create) => index_ddl::create_index(self, session, create).await,
            Statement::Copy { .. } => copy::copy(self, session, statement).await,
            Statement::StartTransaction { modes, .. } => transaction::begin(session, modes),
            Statement::Set(Set::SetTransaction {
                modes,
                snapshot: None,
                session: for_session,
            }) => transaction::set_transaction(session, modes, *for_session),
            Statement::Commit { .. } => transaction::commit(self, session).await,
            Statement::Rollback { savepoint, .. } => {
                transaction::rollback(session, savepoint.as_ref()).await
            }
            Statement::Savepoint { name } => transaction::savepoint(session, name),
            Statement::ReleaseSavepoint { name } => transaction::release(session, name),
            Statement::Set(set) => session_cmds::set(session, set).await,
            Statement::ShowVariable { variable } => session_cmds::show(session, variable),
            Statement::Reset(reset) => session_cmds::reset(session, reset),
            Statement::Discard { .. } => Ok(PgOutput::Command(CommandTag::new("DISCARD ALL"))),
            Statement::Deallocate { .. } => Ok(PgOutput::Command(CommandTag::new("DEALLOCATE"))),
            other => Err(SqlError::unsupported(format!(
                "statement \"{}\"",
                first_words(other)
            ))),
        }
    }
}
