//! The [`Instance`] struct and what every statement kind uses of it:
//! read timestamps, planning (with `avg(vector)` routed to `vector_avg`),
//! name resolution, parameter binding and typing. The statement modules
//! (`query`, `dml`, `ddl`, `copy`, ...) build on this; routing statements to
//! them is the parent's (`instance`). Of its siblings it imports only
//! `session_cmds` (the session's current schema, for name resolution).

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::ParamValues;
use datafusion::execution::context::SQLOptions;
use datafusion::logical_expr::{Expr, ExprSchemable, LogicalPlan};
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::{ObjectName, Statement};
use datafusion_pg_catalog::sql::PostgresCompatibilityParser;
use quiver_cluster::api::streaming::Streaming;
use quiver_cluster::api::{Coordinator, TableInfo, TableRef};
use quiver_cluster::{Engine, EngineError};
use quiver_common::config::MemoryConfig;
use quiver_common::schema::vector_dim;
use quiver_exec::catalog::CatalogSource;
use quiver_exec::memory::ServerMemory;
use quiver_exec::table::ReadTimestamp;
use quiver_exec::transaction_view::TransactionView;
use quiver_planner::functions::metric_of_function;

use super::block_catalog::BlockName;
use super::names::normalize_ident;
use super::session::SqlSession;
use super::session_cmds;
use crate::complexity::{self, ComplexityLimits};
use crate::error::{Result, SqlError};

/// The roles an access layer talks to, each through its API.
pub struct Roles {
    /// DDL, catalog reads, timestamps, index builds, compaction.
    pub coordinator: Arc<dyn Coordinator>,
    /// Writes, deletes and flushes.
    pub streaming: Arc<dyn Streaming>,
    /// The table sources searches and scans plan over (their fragments
    /// go to the nodes serving each part of a table).
    pub tables: Arc<dyn CatalogSource>,
}

/// The access layer: sessions, planning and the doors' handler, over the
/// roles' APIs.
pub struct Instance {
    /// The coordinator role: DDL and catalog changes go through its API
    /// (in process, the engine serves it).
    pub(super) coordinator: Arc<dyn Coordinator>,
    pub(super) streaming: Arc<dyn Streaming>,
    pub(super) tables: Arc<dyn CatalogSource>,
    /// The server-wide memory budget every session's statements draw from.
    pub(super) server_memory: Arc<ServerMemory>,
    /// Each statement's memory limit (`memory.query_limit_bytes`).
    pub(super) query_memory_limit: usize,
    pub(super) parser: PostgresCompatibilityParser,
    /// The compatibility parser's rules but the one dropping select-list
    /// subqueries.
    pub(super) projection_rules: super::projection_subqueries::ProjectionSafeRules,
    /// Executions that reused a cached physical search plan.
    pub(super) reused_search_plans: std::sync::atomic::AtomicU64,
    /// The databases sessions are connected to (`DROP DATABASE` refuses
    /// those in use).
    pub(super) database_uses: super::database_use::DatabaseUses,
}

impl Instance {
    /// Standalone: an access layer over the roles `engine` serves in
    /// process — through encoded messages when `cluster.serialize_seams`.
    pub fn new(engine: Arc<Engine>) -> Self {
        let serialize = engine.config().cluster.serialize_seams;
        let memory = engine.config().memory.clone();
        let roles = Roles {
            coordinator: if serialize {
                Arc::new(quiver_cluster::api::wire::WireCoordinator::new(
                    engine.clone(),
                ))
            } else {
                engine.clone()
            },
            streaming: if serialize {
                Arc::new(quiver_cluster::api::wire::WireStreaming::new(
                    engine.clone(),
                ))
            } else {
                engine.clone()
            },
            tables: engine,
        };
        Self::with_roles(roles, &memory)
    }

    /// An access layer over `roles`, its statements held to `memory`.
    pub fn with_roles(roles: Roles, memory: &MemoryConfig) -> Self {
        Self {
            server_memory: ServerMemory::new(memory.server_limit()),
            query_memory_limit: memory.query_limit(),
            coordinator: roles.coordinator,
            streaming: roles.streaming,
            tables: roles.tables,
            parser: PostgresCompatibilityParser::new(),
            projection_rules: Default::default(),
            reused_search_plans: Default::default(),
            database_uses: Default::default(),
        }
    }

    /// How many prepared-search executions reused a cached physical plan
    /// (only their query vector and read timestamp swapped in).
    pub fn reused_search_plans(&self) -> u64 {
        self.reused_search_plans
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The coordinator role's API.
    pub fn coordinator(&self) -> &Arc<dyn Coordinator> {
        &self.coordinator
    }

    /// One table's definition, asked of the coordinator.
    pub async fn describe_table(&self, database: &str, table: &str) -> Result<TableInfo> {
        Ok(self
            .coordinator
            .describe_table(TableRef::new(database, table))
            .await?)
    }

    /// The streaming node's API (writes and deletes).
    pub fn streaming(&self) -> &Arc<dyn Streaming> {
        &self.streaming
    }

    /// The server-wide memory budget (what all running statements hold).
    pub fn server_memory(&self) -> &Arc<ServerMemory> {
        &self.server_memory
    }
}

impl Instance {
    /// Sets the session's read timestamp (a strong read's, from the
    /// coordinator: see `Coordinator::read_timestamp`; in a transaction
    /// block, the block's snapshot and its own writes) and returns it.
    pub(crate) async fn set_read_ts(&self, session: &mut SqlSession) -> Result<u64> {
        let (ts, view) = match &mut session.transaction {
            // Outside a block: a view a block left behind is cleared (an
            // empty one stays, so no statement allocates one).
            None => (self.coordinator().read_timestamp().await?, None),
            Some(block) => {
                let snapshot = match block.snapshot {
                    Some(ts) => ts,
                    None => {
                        // A timestamp of its own, which no write carries:
                        // the view's rows and hidden keys are stamped with it.
                        let ts = self.coordinator().allocate_timestamps(1).await?.first;
                        self.await_applied(ts - 1).await?;
                        block.snapshot = Some(ts);
                        ts
                    }
                };
                (snapshot, Some(block.view(snapshot)?))
            }
        };
        let state = session.ctx.state_ref();
        let mut state = state.write();
        let config = state.config_mut();
        config.set_extension(Arc::new(ReadTimestamp(ts)));
        match view {
            Some(view) => config.set_extension(view),
            None => {
                let stale = config
                    .get_extension::<TransactionView>()
                    .is_some_and(|v| !v.tables.is_empty());
                if stale {
                    config.set_extension(Arc::new(TransactionView::default()));
                }
            }
        }
        Ok(ts)
    }

    /// Waits until every write stamped at or before `ts` is applied (the
    /// streaming node's safe timestamp reaches it): a transaction's
    /// snapshot then holds every write before it, so a write in flight
    /// when the snapshot was taken cannot slip under its conflict check.
    async fn await_applied(&self, ts: u64) -> Result<()> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while self.streaming.safe_timestamp().await? < ts {
            if std::time::Instant::now() > deadline {
                return Err(SqlError::Engine(
                    quiver_cluster::EngineError::TimestampUnavailable,
                ));
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        Ok(())
    }

    /// The scan of a table in the session's catalog, the start of a typed
    /// plan (named `database.table` in the plan).
    pub(crate) async fn scan_builder(
        &self,
        session: &SqlSession,
        database: &str,
        table: &str,
    ) -> Result<datafusion::logical_expr::LogicalPlanBuilder> {
        use datafusion::common::TableReference;
        // Every column, a hidden row id included: the Milvus door's
        // collection has it as its primary key.
        let provider = session
            .ctx
            .table_provider(TableReference::full(
                quiver_planner::session::CATALOG_NAME,
                database,
                format!("{table}{}", quiver_exec::catalog::WITH_HIDDEN_COLUMNS),
            ))
            .await?;
        Ok(datafusion::logical_expr::LogicalPlanBuilder::scan(
            TableReference::partial(database, table),
            datafusion::datasource::provider_as_source(provider),
            None,
        )?)
    }

    /// Plans a statement with DataFusion (queries only: DDL/DML are routed before).
    ///
    /// A subquery of a select list DataFusion cannot decorrelate (psql's
    /// `\d` asks `(SELECT ... WHERE d.adrelid = a.attrelid AND a.atthasdef)`)
    /// is NULL in a query of the system catalogs only, as the compatibility
    /// parser reads it ([`super::projection_subqueries`]); in any other
    /// query it is refused (`0A000`), never answered NULL.
    pub(crate) async fn plan(
        &self,
        session: &SqlSession,
        statement: &Statement,
    ) -> Result<LogicalPlan> {
        let plan = self.plan_as_written(session, statement).await?;
        if !super::projection_subqueries::has_projection_subquery(statement) {
            return Ok(plan);
        }
        let decorrelated =
            session.ctx.state().optimize(&plan).is_ok_and(|optimized| {
                !super::projection_subqueries::has_scalar_subquery(&optimized)
            });
        if decorrelated {
            return Ok(plan);
        }
        if super::projection_subqueries::reads_system_catalogs_only(statement) {
            let lossy = super::projection_subqueries::without_projection_subqueries(statement);
            return self.plan_as_written(session, &lossy).await;
        }
        Err(SqlError::unsupported(
            "a correlated subquery in the select list of this shape",
        ))
    }

    async fn plan_as_written(
        &self,
        session: &SqlSession,
        statement: &Statement,
    ) -> Result<LogicalPlan> {
        let state = session.ctx.state();
        // Boxed: a statement held across the awaits below would make every
        // caller's future larger by its size.
        let rewritten: Option<Box<Statement>> = {
            let qualified = super::scalar_subquery::rewrite_scalar_subqueries(
                super::array_subquery::rewrite_array_subqueries(
                    super::set_returning::expand_generate_series(
                        super::search_path::qualify_relations(session, statement),
                    ),
                ),
            );
            match super::output_names::unique_aliases(&qualified) {
                std::borrow::Cow::Owned(aliased) => Some(Box::new(aliased)),
                std::borrow::Cow::Borrowed(_) => match qualified {
                    std::borrow::Cow::Owned(qualified) => Some(Box::new(qualified)),
                    std::borrow::Cow::Borrowed(_) => None,
                },
            }
        };
        let statement = self
            .route_vector_avg(session, rewritten.as_deref().unwrap_or(statement))
            .await;
        let plan = state
            .statement_to_plan(DFStatement::Statement(Box::new(statement.clone())))
            .await?;
        let plan = quiver_planner::vector_cast::retype_casts_from_vectors(plan)?;
        let plan = quiver_planner::integer_literals::type_integer_literals(plan)?;
        SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false)
            .verify_plan(&plan)
            .map_err(|_| {
                SqlError::unsupported(format!("statement \"{}\"", first_words(&statement)))
            })?;
        Ok(plan)
    }

    /// `avg(<vector column>)` is pgvector's element-wise mean: route it to
    /// `vector_avg`. The tables' columns are asked of the coordinator only
    /// when the statement calls `avg` at all.
    async fn route_vector_avg(&self, session: &SqlSession, statement: &Statement) -> Statement {
        use std::ops::ControlFlow;

        use datafusion::sql::sqlparser::ast::{
            visit_expressions, visit_expressions_mut, visit_relations, Expr, FunctionArg,
            FunctionArgExpr, FunctionArguments, Ident,
        };
        // The column `avg(column)` averages, if `expr` is such a call.
        fn averaged_column(expr: &Expr) -> Option<String> {
            let Expr::Function(f) = expr else {
                return None;
            };
            if f.name.0.len() != 1 || !f.name.to_string().eq_ignore_ascii_case("avg") {
                return None;
            }
            let FunctionArguments::List(list) = &f.args else {
                return None;
            };
            match list.args.as_slice() {
                [FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Identifier(i)))] => {
                    Some(normalize_ident(i))
                }
                [FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::CompoundIdentifier(parts)))] => {
                    parts.last().map(normalize_ident)
                }
                _ => None,
            }
        }
        let calls_avg = visit_expressions(statement, |expr| match averaged_column(expr) {
            Some(_) => ControlFlow::Break(()),
            None => ControlFlow::Continue(()),
        });
        if calls_avg.is_continue() {
            return statement.clone();
        }
        let mut relations = Vec::new();
        let _ = visit_relations(statement, |name| {
            if let Ok(relation) = self.resolve(session, name) {
                relations.push(relation);
            }
            ControlFlow::<()>::Continue(())
        });
        let mut vector_columns: Vec<String> = Vec::new();
        for (db, table) in relations {
            if let Ok(info) = self.describe_table(&db, &table).await {
                vector_columns.extend(
                    info.schema
                        .columns
                        .into_iter()
                        .filter(|c| {
                            matches!(
                                c.column_type,
                                quiver_common::schema::ColumnType::Vector { .. }
                            )
                        })
                        .map(|c| c.name),
                );
            }
        }
        if vector_columns.is_empty() {
            return statement.clone();
        }
        let mut statement = statement.clone();
        let _ = visit_expressions_mut(&mut statement, |expr| {
            if averaged_column(expr).is_some_and(|c| vector_columns.contains(&c)) {
                if let Expr::Function(f) = expr {
                    f.name = ObjectName::from(vec![Ident::new("vector_avg")]);
                }
            }
            ControlFlow::<()>::Continue(())
        });
        statement
    }

    /// Plans SQL text (used for generated queries such as UPDATE's row selection).
    pub(crate) async fn plan_sql(&self, session: &SqlSession, sql: &str) -> Result<LogicalPlan> {
        complexity::check(sql, ComplexityLimits::SQL)?;
        let mut statements = self.parser.parse(sql)?;
        if statements.len() != 1 {
            return Err(SqlError::Internal(format!(
                "generated SQL is not one statement: {sql}"
            )));
        }
        let statement = statements.remove(0);
        self.plan(session, &statement).await
    }

    /// The (database, table) an object name refers to in this session: an
    /// unqualified name is the first on `search_path` holding it. A table
    /// the session's transaction block created is named by its pending
    /// name (as the coordinator knows it); one the block dropped does not
    /// exist.
    pub(crate) fn resolve(
        &self,
        session: &SqlSession,
        name: &ObjectName,
    ) -> Result<(String, String)> {
        let (database, table) = self.resolve_client_name(session, name)?;
        let lookup = session.block_tables.read().lookup(&database, &table);
        match lookup {
            BlockName::Unchanged => Ok((database, table)),
            BlockName::Created(pending) => Ok((database, pending)),
            BlockName::Dropped => Err(SqlError::Engine(EngineError::TableNotFound {
                database,
                table,
            })),
        }
    }

    /// [`Instance::resolve`] without the block's view: the names as the
    /// client wrote them.
    pub(crate) fn resolve_client_name(
        &self,
        session: &SqlSession,
        name: &ObjectName,
    ) -> Result<(String, String)> {
        Self::resolve_with(name, |table| super::search_path::schema_of(session, table))
    }

    /// The (database, table) a new relation's name makes: an unqualified
    /// one goes to the current schema (the first on `search_path` that
    /// exists).
    pub(crate) fn resolve_new(
        &self,
        session: &SqlSession,
        name: &ObjectName,
    ) -> Result<(String, String)> {
        Self::resolve_with(name, |_| session_cmds::current_schema(session))
    }

    /// (schema, table) of a relation name; `unqualified` gives the schema
    /// of a name without one.
    fn resolve_with(
        name: &ObjectName,
        unqualified: impl FnOnce(&str) -> String,
    ) -> Result<(String, String)> {
        let (database, table, qualified) = Self::name_parts(name)?;
        if qualified {
            return Ok((database, table));
        }
        Ok((unqualified(&table), table))
    }

    /// (schema, table, whether the schema was named) of a relation name.
    fn name_parts(name: &ObjectName) -> Result<(String, String, bool)> {
        let parts: Vec<String> = name
            .0
            .iter()
            .filter_map(|p| p.as_ident())
            .map(normalize_ident)
            .collect();
        match parts.as_slice() {
            [table] => Ok((String::new(), table.clone(), false)),
            [schema, table] => Ok((schema.clone(), table.clone(), true)),
            [_catalog, schema, table] => Ok((schema.clone(), table.clone(), true)),
            _ => Err(SqlError::Syntax(format!("invalid name {name}"))),
        }
    }
}

/// Substitutes bound parameters.
pub(crate) fn bind(plan: LogicalPlan, params: Option<&ParamValues>) -> Result<LogicalPlan> {
    match params {
        Some(params) => {
            super::limit_params::fold_limit_params(plan.replace_params_with_values(params)?)
        }
        None => Ok(plan),
    }
}

/// Parameter types of a plan, ordered `$1..$n`.
pub(crate) fn parameter_types(plan: &LogicalPlan) -> Result<Vec<Option<FieldRef>>> {
    let fields = plan.get_parameter_fields()?;
    let vector_types = vector_placeholder_types(plan);
    let counts = super::limit_params::count_parameters(plan);
    let mut ordered: Vec<(usize, Option<FieldRef>)> = fields
        .into_iter()
        .filter_map(|(id, field)| {
            let n = id.trim_start_matches('$').parse::<usize>().ok()?;
            let typed = match vector_types.get(&id) {
                Some(vector)
                    if field
                        .as_ref()
                        .is_none_or(|f| vector_dim(f.data_type()).is_none()) =>
                {
                    Some(Arc::new(Field::new(id.as_str(), vector.clone(), true)))
                }
                _ if field.is_none() && counts.contains(&id) => {
                    Some(Arc::new(Field::new(id.as_str(), DataType::Int64, true)))
                }
                _ => field,
            };
            Some((n, typed))
        })
        .collect();
    ordered.sort_by_key(|(n, _)| *n);
    let count = ordered.last().map(|(n, _)| *n).unwrap_or(0);
    let mut out = vec![None; count];
    for (n, t) in ordered {
        out[n - 1] = t;
    }
    Ok(out)
}

/// Parameters a distance function compares with a vector column:
/// `col <-> $1` and `col <-> $1::vector` give `$1` the column's type, as
/// Postgres infers it from the operator, so that drivers send a vector.
fn vector_placeholder_types(plan: &LogicalPlan) -> HashMap<String, DataType> {
    let mut out = HashMap::new();
    let _ = plan.apply_with_subqueries(|node| {
        let inputs = node.inputs();
        node.apply_expressions(|e| {
            e.apply(|sub| {
                let Expr::ScalarFunction(f) = sub else {
                    return Ok(TreeNodeRecursion::Continue);
                };
                if metric_of_function(f.func.name()).is_none() || f.args.len() != 2 {
                    return Ok(TreeNodeRecursion::Continue);
                }
                for (vector, other) in [(0, 1), (1, 0)] {
                    let Some(id) = placeholder_under_cast(&f.args[other]) else {
                        continue;
                    };
                    let typed = inputs
                        .iter()
                        .filter_map(|input| f.args[vector].get_type(input.schema()).ok())
                        .find(|t| vector_dim(t).is_some());
                    if let Some(t) = typed {
                        out.insert(id, t);
                    }
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    });
    out
}

/// The id of `$n`, also under a cast (`$1::vector`).
fn placeholder_under_cast(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Placeholder(p) => Some(p.id.clone()),
        Expr::Cast(c) => placeholder_under_cast(&c.expr),
        Expr::TryCast(c) => placeholder_under_cast(&c.expr),
        Expr::ScalarFunction(f) if f.func.name() == "to_vector" => {
            f.args.first().and_then(placeholder_under_cast)
        }
        _ => None,
    }
}

/// The first words of a statement, naming it in errors.
pub(crate) fn first_words(statement: &Statement) -> String {
    statement
        .to_string()
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The rows of a table the session sees (at its read timestamp, with its
/// transaction's writes) whose primary key is one of `keys`: whole rows, or
/// only the key column with `key_only`.
pub(crate) async fn rows_with_keys(
    session: &SqlSession,
    (database, table): (&str, &str),
    schema: &quiver_common::schema::TableSchema,
    keys: &[quiver_exec::pk::PkValue],
    key_only: bool,
) -> Result<Vec<arrow::array::RecordBatch>> {
    use datafusion::prelude::{col, lit};
    use quiver_exec::pk::PkValue;
    let pk = col(super::names::quote(&schema.pk().name));
    let list = keys
        .iter()
        .map(|k| match k {
            PkValue::Int(v) => lit(*v),
            PkValue::Str(s) => lit(s.clone()),
        })
        .collect();
    let mut rows = session
        .ctx
        // Every column: the key may be a hidden row id, and whole rows
        // are the table's rows as written.
        .table(datafusion::common::TableReference::full(
            quiver_planner::session::CATALOG_NAME,
            database,
            format!("{table}{}", quiver_exec::catalog::WITH_HIDDEN_COLUMNS),
        ))
        .await?
        .filter(pk.clone().in_list(list, false))?;
    if key_only {
        rows = rows.select(vec![pk])?;
    }
    Ok(rows.collect().await?)
}
