//! [`Instance`]: the [`QueryHandler`] over a Quiver [`Engine`].
//!
//! Statement text is first held to the expression limits of
//! [`crate::complexity`] (on its tokens, before any tree is built), then
//! parsed; statements are routed over the parsed AST: DDL to the catalog, DML and
//! COPY to the write path, session commands to the session, everything else
//! planned once by DataFusion (with Quiver's vector extensions) and executed
//! at one read timestamp per statement.

mod copy;
mod ddl;
mod dml;
mod functions;
mod identifiers;
mod index_ddl;
mod memory_setting;
mod pg_types;
mod session_cmds;
mod system_views;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, FieldRef, SchemaRef};
use async_trait::async_trait;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::ParamValues;
use datafusion::execution::context::SQLOptions;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Expr, ExprSchemable, LogicalPlan};
use datafusion::physical_plan::{execute_stream, ExecutionPlan};
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::{ObjectName, Statement};
use datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_pg_catalog::setup_pg_catalog;
use datafusion_pg_catalog::sql::PostgresCompatibilityParser;
use quiver_cluster::api::{Coordinator, SetTableOptions, TableRef};
use quiver_cluster::Engine;
use quiver_common::schema::vector_dim;
use quiver_common::status::StatusCode;
use quiver_exec::catalog::CatalogSource;
use quiver_exec::memory::{QueryMemoryPool, ServerMemory};
use quiver_exec::table::{session_search_settings, ReadTimestamp, SearchSettings};
use quiver_exec::vector_search::VectorSearchExec;
use quiver_planner::functions::metric_of_function;
use quiver_planner::session::{new_session_context, CATALOG_NAME};
use quiver_planner::vector_search::{bound_query_vector, single_search_node, VectorSearchNode};

use crate::complexity::{self, ComplexityLimits};
use crate::error::{Result, SqlError};
use crate::handler::{
    CommandTag, CopySpec, IndexInfo, Output, Prepared, QueryHandler, Session, SessionInfo,
    TransactionEffect, WriteKind, Written,
};

pub use functions::version_string;

/// The access layer over one engine.
pub struct Instance {
    engine: Arc<Engine>,
    /// The coordinator role: DDL and catalog changes go through its API
    /// (in process, the engine serves it).
    coordinator: Arc<dyn Coordinator>,
    /// The server-wide memory budget every session's statements draw from.
    server_memory: Arc<ServerMemory>,
    /// Each statement's memory limit (`memory.query_limit_bytes`).
    query_memory_limit: usize,
    parser: PostgresCompatibilityParser,
    /// Executions that reused a cached physical search plan.
    reused_search_plans: std::sync::atomic::AtomicU64,
}

impl Instance {
    /// A handler over `engine`.
    pub fn new(engine: Arc<Engine>) -> Self {
        let memory = &engine.config().memory;
        Self {
            server_memory: ServerMemory::new(memory.server_limit()),
            query_memory_limit: memory.query_limit(),
            coordinator: engine.clone(),
            engine,
            parser: PostgresCompatibilityParser::new(),
            reused_search_plans: Default::default(),
        }
    }

    /// How many prepared-search executions reused a cached physical plan
    /// (only their query vector and read timestamp swapped in).
    pub fn reused_search_plans(&self) -> u64 {
        self.reused_search_plans
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The engine.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The coordinator role's API.
    pub fn coordinator(&self) -> &Arc<dyn Coordinator> {
        &self.coordinator
    }

    /// The server-wide memory budget (what all running statements hold).
    pub fn server_memory(&self) -> &Arc<ServerMemory> {
        &self.server_memory
    }
}

/// Database names that open the default database.
const DEFAULT_DATABASE_ALIASES: [&str; 3] = ["quiver", "postgres", "default"];

/// `max_identifier_length` as `SHOW` reports it: the limit enforced
/// ([`quiver_common::limits::MAX_IDENTIFIER_LEN`]), not PostgreSQL's 63.
const MAX_IDENTIFIER_LENGTH_SETTING: &str = "255";

fn default_settings(user: &str, query_memory_limit: usize) -> BTreeMap<String, String> {
    [
        ("server_version", "16.0"),
        ("server_version_num", "160000"),
        ("server_encoding", "UTF8"),
        ("client_encoding", "UTF8"),
        ("datestyle", "ISO, MDY"),
        ("intervalstyle", "postgres"),
        ("timezone", "UTC"),
        ("search_path", "\"$user\", public"),
        ("standard_conforming_strings", "on"),
        ("integer_datetimes", "on"),
        ("application_name", ""),
        ("statement_timeout", "0"),
        ("idle_session_timeout", "0"),
        ("idle_in_transaction_session_timeout", "0"),
        ("transaction_isolation", "read committed"),
        ("default_transaction_isolation", "read committed"),
        ("transaction_read_only", "off"),
        ("max_identifier_length", MAX_IDENTIFIER_LENGTH_SETTING),
        ("is_superuser", "on"),
        ("extra_float_digits", "1"),
        ("bytea_output", "hex"),
        ("lc_messages", "C"),
        ("jit", "off"),
        ("hnsw.ef_search", "40"),
        ("ivfflat.probes", "1"),
        ("quiver.rerank", "4"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .chain([
        ("session_authorization".to_string(), user.to_string()),
        (
            memory_setting::NAME.to_string(),
            memory_setting::format_bytes(query_memory_limit),
        ),
    ])
    .collect()
}

impl Instance {
    pub(crate) fn set_read_ts(&self, session: &Session) -> Result<u64> {
        let ts = self.engine.now()?;
        session
            .ctx
            .state_ref()
            .write()
            .config_mut()
            .set_extension(Arc::new(ReadTimestamp(ts)));
        Ok(ts)
    }

    /// Plans a statement with DataFusion (queries only: DDL/DML are routed before).
    pub(crate) async fn plan(
        &self,
        session: &Session,
        statement: &Statement,
    ) -> Result<LogicalPlan> {
        let state = session.ctx.state();
        let statement = self.route_vector_avg(session, statement);
        let plan = state
            .statement_to_plan(DFStatement::Statement(Box::new(statement.clone())))
            .await?;
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

    /// `avg(<vector column>)` is pgvector's element-wise mean: route it to `vector_avg`.
    fn route_vector_avg(&self, session: &Session, statement: &Statement) -> Statement {
        use std::ops::ControlFlow;

        use datafusion::sql::sqlparser::ast::{
            visit_expressions_mut, visit_relations, Expr, FunctionArg, FunctionArgExpr,
            FunctionArguments, Ident,
        };
        let mut vector_columns: Vec<String> = Vec::new();
        let _ = visit_relations(statement, |name| {
            if let Ok((db, table)) = self.resolve(session, name) {
                if let Ok(t) = self.engine.table(&db, &table) {
                    for c in t.schema().columns {
                        if matches!(
                            c.column_type,
                            quiver_common::schema::ColumnType::Vector { .. }
                        ) {
                            vector_columns.push(c.name);
                        }
                    }
                }
            }
            ControlFlow::<()>::Continue(())
        });
        if vector_columns.is_empty() {
            return statement.clone();
        }
        let mut statement = statement.clone();
        let _ = visit_expressions_mut(&mut statement, |expr| {
            if let Expr::Function(f) = expr {
                let is_avg = f.name.0.len() == 1 && f.name.to_string().eq_ignore_ascii_case("avg");
                if let (true, FunctionArguments::List(list)) = (is_avg, &f.args) {
                    if let [FunctionArg::Unnamed(FunctionArgExpr::Expr(arg))] = list.args.as_slice()
                    {
                        let column = match arg {
                            Expr::Identifier(i) => Some(normalize_ident(i)),
                            Expr::CompoundIdentifier(parts) => parts.last().map(normalize_ident),
                            _ => None,
                        };
                        if column.is_some_and(|c| vector_columns.contains(&c)) {
                            f.name = ObjectName::from(vec![Ident::new("vector_avg")]);
                        }
                    }
                }
            }
            ControlFlow::<()>::Continue(())
        });
        statement
    }

    /// Plans SQL text (used for generated queries such as UPDATE's row selection).
    pub(crate) async fn plan_sql(&self, session: &Session, sql: &str) -> Result<LogicalPlan> {
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

    async fn query(
        &self,
        session: &mut Session,
        statement: &Statement,
        params: Option<ParamValues>,
    ) -> Result<Output> {
        let read_ts = self.set_read_ts(session)?;
        if let (Statement::Query(_), Some(params)) = (statement, params.as_ref()) {
            return self
                .prepared_query(session, statement, params, read_ts)
                .await;
        }
        let plan = self.plan(session, statement).await?;
        let plan = bind(plan, params.as_ref())?;
        let df = session.ctx.execute_logical_plan(plan).await?;
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let stream = df.execute_stream().await?;
        let command = match statement {
            Statement::Explain { .. } => "EXPLAIN",
            _ => "SELECT",
        };
        Ok(Output::Rows {
            schema,
            stream,
            command: command.to_string(),
        })
    }

    /// A query with bound parameters (extended protocol): its optimized plan
    /// is made once per statement, catalog version and search path, and
    /// reused with each execution's parameters (the vector-search rewrite
    /// works on the `$n` placeholder, so it is part of the cached plan).
    /// A search whose only parameter is its query vector keeps its physical
    /// plan too: later executions only swap the vector and read timestamp.
    async fn prepared_query(
        &self,
        session: &mut Session,
        statement: &Statement,
        params: &ParamValues,
        read_ts: u64,
    ) -> Result<Output> {
        let key = PlanKey {
            sql: statement.to_string(),
            schema: session_cmds::current_schema(session),
            catalog_version: self.engine.catalog_version(),
        };
        let settings = session_search_settings(&*session.ctx.state_ref().read());
        if let Some(search) = session.plans.search(&key, settings) {
            let vector = bound_query_vector(&search.node, params)?;
            let physical = rebind_search(&search.physical, vector, read_ts)?;
            let stream = execute_stream(physical, search.task_ctx.clone())?;
            self.reused_search_plans
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Ok(Output::Rows {
                schema: search.schema.clone(),
                stream,
                command: "SELECT".to_string(),
            });
        }
        let plan = match session.plans.get(&key) {
            Some(plan) => plan,
            None => {
                let plan = self.plan(session, statement).await?;
                let optimized = session.ctx.state().optimize(&plan)?;
                session.plans.insert(key.clone(), optimized.clone());
                optimized
            }
        };
        let search_node = single_search_node(&plan);
        let bound = quiver_planner::vector_search::bind_search_vectors(plan, params)?;
        let only_vector_params = bound.get_parameter_types()?.is_empty();
        let bound = bound.with_param_values(params.clone())?;
        let state = session.ctx.state();
        let physical = state
            .query_planner()
            .create_physical_plan(&bound, &state)
            .await?;
        let schema: SchemaRef = Arc::new(bound.schema().as_arrow().clone());
        let task_ctx = state.task_ctx();
        if let Some(node) = search_node.filter(|_| only_vector_params) {
            if searches_only(&physical) {
                session.plans.set_search(
                    &key,
                    CachedSearch {
                        node,
                        physical: physical.clone(),
                        settings,
                        task_ctx: task_ctx.clone(),
                        schema: schema.clone(),
                    },
                );
            }
        }
        let stream = execute_stream(physical, task_ctx)?;
        Ok(Output::Rows {
            schema,
            stream,
            command: "SELECT".to_string(),
        })
    }

    /// The (database, table) an object name refers to in this session.
    pub(crate) fn resolve(&self, session: &Session, name: &ObjectName) -> Result<(String, String)> {
        let parts: Vec<String> = name
            .0
            .iter()
            .filter_map(|p| p.as_ident())
            .map(normalize_ident)
            .collect();
        match parts.as_slice() {
            [table] => Ok((session_cmds::current_schema(session), table.clone())),
            [schema, table] => Ok((schema.clone(), table.clone())),
            [_catalog, schema, table] => Ok((schema.clone(), table.clone())),
            _ => Err(SqlError::Syntax(format!("invalid name {name}"))),
        }
    }
}

/// What a cached plan is valid for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct PlanKey {
    sql: String,
    schema: String,
    catalog_version: u64,
}

/// A session's optimized plans of prepared queries (bounded; cleared when full).
#[derive(Default)]
pub struct PlanCache {
    plans: HashMap<PlanKey, CachedPlan>,
}

/// What a session keeps of one prepared query.
struct CachedPlan {
    logical: LogicalPlan,
    /// Its reusable physical plan, when it is a search that has one.
    search: Option<CachedSearch>,
}

/// A prepared search whose physical plan is reused: between executions
/// only its query vector and read timestamp change.
struct CachedSearch {
    /// The logical search node: its query expression (with the `$n`
    /// placeholder) and the searched column.
    node: VectorSearchNode,
    physical: Arc<dyn ExecutionPlan>,
    /// The session's search knobs the plan was made with.
    settings: SearchSettings,
    task_ctx: Arc<TaskContext>,
    schema: SchemaRef,
}

/// Plans a session keeps.
const PLAN_CACHE_ENTRIES: usize = 64;

impl PlanCache {
    fn get(&self, key: &PlanKey) -> Option<LogicalPlan> {
        self.plans.get(key).map(|cached| cached.logical.clone())
    }

    fn insert(&mut self, key: PlanKey, logical: LogicalPlan) {
        if self.plans.len() >= PLAN_CACHE_ENTRIES {
            self.plans.clear();
        }
        self.plans.insert(
            key,
            CachedPlan {
                logical,
                search: None,
            },
        );
    }

    /// The reusable search of `key`, when it was made with `settings`.
    fn search(&self, key: &PlanKey, settings: SearchSettings) -> Option<&CachedSearch> {
        self.plans
            .get(key)?
            .search
            .as_ref()
            .filter(|search| search.settings == settings)
    }

    /// Keeps the physical plan of the cached query `key`.
    fn set_search(&mut self, key: &PlanKey, search: CachedSearch) {
        if let Some(cached) = self.plans.get_mut(key) {
            cached.search = Some(search);
        }
    }
}

/// True when every leaf of `plan` is a search, and there is one: such a plan
/// reads nothing fixed at planning time (a table scan holds its snapshot).
fn searches_only(plan: &Arc<dyn ExecutionPlan>) -> bool {
    let mut searches = 0;
    let mut other_leaves = 0;
    let _ = plan.apply(|node| {
        if node.is::<VectorSearchExec>() {
            searches += 1;
        } else if node.children().is_empty() {
            other_leaves += 1;
        }
        Ok(TreeNodeRecursion::Continue)
    });
    searches == 1 && other_leaves == 0
}

/// `plan` with its search's query vector and read timestamp replaced, and
/// every other operator's execution state reset (a top-k sort keeps a
/// dynamic filter per execution). `plan` holds one search
/// ([`searches_only`]).
fn rebind_search(
    plan: &Arc<dyn ExecutionPlan>,
    vector: Vec<f32>,
    read_ts: u64,
) -> Result<Arc<dyn ExecutionPlan>> {
    let mut vector = Some(vector);
    let rebound = plan.clone().transform_up(|node| {
        let node: Arc<dyn ExecutionPlan> = match node.downcast_ref::<VectorSearchExec>() {
            Some(search) => {
                let vector = vector.take().ok_or_else(|| {
                    datafusion::common::DataFusionError::Internal(
                        "a cached search plan holds more than one search".into(),
                    )
                })?;
                Arc::new(search.rebound(vector, Some(read_ts)))
            }
            None => node.reset_state()?,
        };
        Ok(Transformed::yes(node))
    })?;
    Ok(rebound.data)
}

/// Postgres identifier rules: unquoted names fold to lower case.
pub(crate) fn normalize_ident(ident: &datafusion::sql::sqlparser::ast::Ident) -> String {
    if ident.quote_style.is_some() {
        ident.value.clone()
    } else {
        ident.value.to_lowercase()
    }
}

/// The tokenizer splits pgvector's `<+>` into `<`, `+`, `>`; join them back
/// into one operator token (token-level, so strings and comments are untouched).
fn join_vector_operators(
    sql: &str,
) -> Result<Option<Vec<datafusion::sql::sqlparser::tokenizer::Token>>> {
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
    if !sql.contains('<') || !sql.contains('+') {
        return Ok(None);
    }
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql)
        .tokenize()
        .map_err(|e| SqlError::Syntax(e.to_string()))?;
    let mut out: Vec<Token> = Vec::with_capacity(tokens.len());
    let mut i = 0;
    let mut changed = false;
    while i < tokens.len() {
        let mut joined = None;
        for k in 2..=3 {
            if i + k <= tokens.len() {
                let text: String = tokens[i..i + k].iter().map(|t| t.to_string()).collect();
                let operator_parts = tokens[i..i + k].iter().all(|t| {
                    !matches!(
                        t,
                        Token::Whitespace(_) | Token::Word(_) | Token::SingleQuotedString(_)
                    )
                });
                if operator_parts && text == "<+>" {
                    joined = Some(k);
                    break;
                }
            }
        }
        match joined {
            Some(k) => {
                out.push(Token::CustomBinaryOperator("<+>".into()));
                i += k;
                changed = true;
            }
            None => {
                out.push(tokens[i].clone());
                i += 1;
            }
        }
    }
    Ok(changed.then_some(out))
}

/// Substitutes bound parameters.
pub(crate) fn bind(plan: LogicalPlan, params: Option<&ParamValues>) -> Result<LogicalPlan> {
    match params {
        Some(params) => Ok(plan.replace_params_with_values(params)?),
        None => Ok(plan),
    }
}

/// Parameter types of a plan, ordered `$1..$n`.
pub(crate) fn parameter_types(plan: &LogicalPlan) -> Result<Vec<Option<FieldRef>>> {
    let fields = plan.get_parameter_fields()?;
    let vector_types = vector_placeholder_types(plan);
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

#[async_trait]
impl QueryHandler for Instance {
    fn new_session(&self, info: SessionInfo) -> Result<Session> {
        if let Some(db) = info.database.as_deref() {
            let known = DEFAULT_DATABASE_ALIASES.contains(&db)
                || db == info.user
                || self.engine.schema_names().iter().any(|s| s == db);
            if !known {
                return Err(SqlError::Query {
                    code: StatusCode::DatabaseNotFound,
                    message: format!("database \"{db}\" does not exist"),
                });
            }
        }
        let memory = QueryMemoryPool::new(self.server_memory.clone(), self.query_memory_limit);
        let ctx = new_session_context(
            self.engine.clone() as Arc<dyn CatalogSource>,
            memory.clone(),
        )
        .map_err(|e| SqlError::Internal(format!("session setup: {e}")))?;
        setup_pg_catalog(&ctx, CATALOG_NAME, EmptyContextProvider)
            .map_err(|e| SqlError::Internal(format!("pg_catalog setup: {e}")))?;
        if let Some(catalog) = ctx.catalog(CATALOG_NAME) {
            if let Some(inner) = catalog.schema("pg_catalog") {
                let overlay = pg_types::PgCatalogOverlay {
                    inner,
                    engine: self.engine.clone(),
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
                    system_views::system_schema(self.engine.clone()),
                )
                .map_err(|e| SqlError::Internal(format!("{}: {e}", system_views::SYSTEM_SCHEMA)))?;
        }
        ctx.register_udf(pg_types::format_type());
        for udf in functions::system_functions() {
            ctx.register_udf(udf);
        }
        let settings = default_settings(&info.user, memory.max_limit());
        ctx.register_udf(functions::current_setting_function(&settings));
        let mut session = Session {
            ctx,
            settings,
            statement_timeout: None,
            idle_session_timeout: None,
            idle_in_transaction_session_timeout: None,
            user: info.user,
            notices: None,
            plans: PlanCache::default(),
            memory,
        };
        session_cmds::sync_search_settings(&session);
        session_cmds::apply_initial_settings(&mut session, &info.initial_settings)?;
        Ok(session)
    }

    fn parse(&self, sql: &str) -> Result<Vec<Statement>> {
        // Before any tree exists: a deep one overflows the stack even when
        // it is only dropped.
        complexity::check(sql, ComplexityLimits::SQL)?;
        let statements = match join_vector_operators(sql)? {
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
                    .map(|s| self.parser.rewrite(s))
                    .collect()
            }
            None => self.parser.parse(sql)?,
        };
        // Names are checked once per statement text, not per execution of
        // a prepared statement.
        for statement in &statements {
            identifiers::check(statement)?;
        }
        Ok(statements)
    }

    async fn prepare(&self, session: &mut Session, statement: &Statement) -> Result<Prepared> {
        match statement {
            Statement::Query(_) | Statement::Explain { .. } => {
                let plan = self.plan(session, statement).await?;
                Ok(Prepared {
                    param_types: parameter_types(&plan)?,
                    result_schema: Some(Arc::new(plan.schema().as_arrow().clone())),
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
            Statement::Drop { .. } => ddl::drop(self, session, statement).await,
            Statement::AlterTable(alter) => ddl::alter_table(self, session, alter).await,
            Statement::CreateExtension(ext) => ddl::create_extension(ext),
            Statement::CreateIndex(create) => index_ddl::create_index(self, session, create).await,
            Statement::Copy { .. } => copy::copy(self, session, statement).await,
            Statement::StartTransaction { .. } => Ok(Output::Command(
                CommandTag::new("BEGIN").with_transaction(TransactionEffect::Begin),
            )),
            Statement::Commit { .. } => Ok(Output::Command(
                CommandTag::new("COMMIT").with_transaction(TransactionEffect::End),
            )),
            Statement::Rollback { savepoint, .. } => Ok(Output::Command(match savepoint {
                Some(_) => CommandTag::new("ROLLBACK"),
                None => CommandTag::new("ROLLBACK").with_transaction(TransactionEffect::End),
            })),
            Statement::Savepoint { .. } => Ok(Output::Command(CommandTag::new("SAVEPOINT"))),
            Statement::ReleaseSavepoint { .. } => Ok(Output::Command(CommandTag::new("RELEASE"))),
            Statement::Set(set) => session_cmds::set(session, set).await,
            Statement::ShowVariable { variable } => session_cmds::show(session, variable),
            Statement::Reset(reset) => session_cmds::reset(session, reset),
            Statement::Discard { .. } => Ok(Output::Command(CommandTag::new("DISCARD ALL"))),
            Statement::Deallocate { .. } => Ok(Output::Command(CommandTag::new("DEALLOCATE"))),
            other => Err(SqlError::unsupported(format!(
                "statement \"{}\"",
                first_words(other)
            ))),
        }
    }

    async fn copy_in(
        &self,
        session: &mut Session,
        spec: &CopySpec,
        rows: RecordBatch,
    ) -> Result<usize> {
        copy::copy_in(self, session, spec, rows).await
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
        dml::write_batch(self, session, database, table, rows, sent, kind).await
    }

    fn databases(&self) -> Vec<String> {
        self.engine.databases()
    }

    fn indexes(&self, database: &str, table: &str) -> Vec<IndexInfo> {
        // One table's indexes (a Milvus search asks on every request).
        self.engine
            .table_index_statuses(database, table)
            .unwrap_or_default()
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
            .collect()
    }

    fn allocate_timestamp(&self) -> Result<u64> {
        Ok(self.engine.now()?)
    }

    async fn flush(&self, database: &str, table: &str) -> Result<()> {
        Ok(self.engine.flush_table(database, table).await?)
    }

    async fn compact(&self, database: &str, table: &str) -> Result<usize> {
        Ok(self.engine.compact_table(database, table).await?)
    }

    fn table_schema(
        &self,
        database: &str,
        table: &str,
    ) -> Result<quiver_common::schema::TableSchema> {
        Ok(self.engine.table(database, table)?.schema())
    }

    fn tables(&self, database: &str) -> Vec<String> {
        self.engine.table_names(database)
    }

    fn table_options(&self, database: &str, table: &str) -> Result<BTreeMap<String, String>> {
        Ok(self.engine.table_options(database, table)?)
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
