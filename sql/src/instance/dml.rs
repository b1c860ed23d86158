//! DML: `INSERT` (multi-row, parameters, `RETURNING`, `ON CONFLICT (pk) DO
//! NOTHING / DO UPDATE`), `UPDATE`, `DELETE`, `TRUNCATE`.
//!
//! Rows to write are computed by DataFusion at the statement's read
//! timestamp (the `VALUES`/`SELECT` of an INSERT, the updated rows of an
//! UPDATE, the keys of a DELETE) and handed to the engine's write path,
//! which makes them durable in the WAL before the command completes.
//!
//! The rows a statement buffers before its WAL append (an INSERT's
//! `VALUES`/`SELECT`, an UPDATE's new rows, a DELETE's keys) are reserved
//! against the session's memory pool as they are collected, so a statement
//! buffering more than its memory limit fails with `53200` before it writes.

use std::ops::ControlFlow;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::compute::{cast, concat_batches};
use arrow::datatypes::SchemaRef;
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::execution::memory_pool::MemoryReservation;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::{
    visit_expressions_mut, Assignment, AssignmentTarget, Delete, Expr, FromTable, Ident, Insert,
    ObjectName, OnConflictAction, OnInsert, SelectItem, Statement, TableFactor, TableObject,
    TableWithJoins, Truncate, Update,
};
use futures::StreamExt;
use quiver_cluster::api::streaming::{DeleteKeys, WriteAck, WriteRows};
use quiver_cluster::WriteMode;
use quiver_common::schema::{TableSchema, ROW_ID_COLUMN};
use quiver_exec::catalog::WITH_HIDDEN_COLUMNS;
use quiver_exec::pk::{pk_values, PkValue};

use super::names::{normalize_ident, quote};
use super::session::SqlSession;
use super::state::{bind, parameter_types, rows_with_keys, Instance};
use super::transaction;
use crate::error::{Result, SqlError};
use crate::handler::pg::{CommandTag, PgOutput};
use crate::handler::{Prepared, WriteKind, Written};
use quiver_cluster::api::coordinator::client_table_name;

fn insert_target(insert: &Insert) -> Result<&datafusion::sql::sqlparser::ast::ObjectName> {
    match &insert.table {
        TableObject::TableName(name) => Ok(name),
        other => Err(SqlError::unsupported(format!("INSERT INTO {other}"))),
    }
}

/// Plans the rows an INSERT writes (DataFusion's INSERT planning: column
/// list, VALUES/SELECT, casts to the column types, parameter typing).
async fn plan_insert_rows(
    instance: &Instance,
    session: &SqlSession,
    insert: &Insert,
) -> Result<LogicalPlan> {
    let mut stripped = insert.clone();
    stripped.on = None;
    stripped.returning = None;
    wrap_vector_literals(instance, session, &mut stripped).await?;
    let statement = Statement::Insert(stripped);
    let statement = super::set_returning::expand_generate_series(
        super::search_path::qualify_relations(session, &statement),
    )
    .into_owned();
    let nested = match &statement {
        // Output names made unique, as a query's are (`SELECT x, x`).
        Statement::Insert(qualified) => {
            super::insert_source::nested_values_source(qualified).map(|source| {
                let query = Statement::Query(Box::new(source.clone()));
                super::output_names::unique_aliases(&query).into_owned()
            })
        }
        _ => None,
    };
    if let Some(query) = nested {
        return Box::pin(plan_nested_values_insert(instance, session, insert, query)).await;
    }
    let plan = session
        .ctx
        .state()
        .statement_to_plan(DFStatement::Statement(Box::new(statement)))
        .await?;
    match plan {
        LogicalPlan::Dml(dml) => Ok(Arc::unwrap_or_clone(dml.input)),
        other => Err(SqlError::Internal(format!(
            "INSERT planned as {}",
            other.display()
        ))),
    }
}

/// The rows of an INSERT whose source `query` holds a nested VALUES list
/// (see `insert_source`).
async fn plan_nested_values_insert(
    instance: &Instance,
    session: &SqlSession,
    insert: &Insert,
    query: Statement,
) -> Result<LogicalPlan> {
    let (database, name) = instance.resolve(session, insert_target(insert)?)?;
    let table = instance.describe_table(&database, &name).await?.schema;
    let targets = target_columns(insert, &table, &name)?;
    let named = !insert.columns.is_empty();
    super::insert_source::plan_rows(&session.ctx, query, &table, &targets, named).await
}

/// The table columns an INSERT writes, in its order: those it names, or
/// all of them.
fn target_columns(insert: &Insert, schema: &TableSchema, table: &str) -> Result<Vec<usize>> {
    if insert.columns.is_empty() {
        return Ok(schema.visible_positions());
    }
    insert
        .columns
        .iter()
        .map(|c| {
            let name =
                c.0.last()
                    .and_then(|p| p.as_ident())
                    .map(normalize_ident)
                    .unwrap_or_default();
            schema.column_index(&name).ok_or_else(|| SqlError::Query {
                code: quiver_common::status::StatusCode::ColumnNotFound,
                message: format!("column \"{name}\" of relation \"{table}\" does not exist"),
            })
        })
        .collect()
}

/// `VALUES` rows give text literals for vector columns; DataFusion cannot
/// cast text to a vector, so they become `to_vector('[..]', n)` calls (which
/// also report pgvector's dimension errors).
async fn wrap_vector_literals(
    instance: &Instance,
    session: &SqlSession,
    insert: &mut Insert,
) -> Result<()> {
    use datafusion::sql::sqlparser::ast::{
        Function, FunctionArg, FunctionArgExpr, FunctionArgumentList, FunctionArguments,
        ObjectName, SetExpr, Value,
    };
    let (database, name) = instance.resolve(session, insert_target(insert)?)?;
    let Ok(table) = instance.describe_table(&database, &name).await else {
        return Ok(());
    };
    let schema = table.schema;
    let targets: Vec<Option<usize>> = if insert.columns.is_empty() {
        (0..schema.columns.len()).map(Some).collect()
    } else {
        insert
            .columns
            .iter()
            .map(|c| {
                c.0.last()
                    .and_then(|p| p.as_ident())
                    .and_then(|i| schema.column_index(&normalize_ident(i)))
            })
            .collect()
    };
    let Some(source) = insert.source.as_mut() else {
        return Ok(());
    };
    // The rows' expressions by target position: each VALUES row, or the
    // select list of `INSERT ... SELECT` (a text literal there is of
    // unknown type too, and takes the column's type as in PostgreSQL).
    let mut rows: Vec<Vec<&mut Expr>> = match source.body.as_mut() {
        SetExpr::Values(values) => values
            .rows
            .iter_mut()
            .map(|row| row.iter_mut().collect())
            .collect(),
        SetExpr::Select(select) => vec![select
            .projection
            .iter_mut()
            .map_while(|item| match item {
                SelectItem::UnnamedExpr(expr) | SelectItem::ExprWithAlias { expr, .. } => {
                    Some(expr)
                }
                _ => None,
            })
            .collect()],
        _ => return Ok(()),
    };
    for row in &mut rows {
        for (position, expr) in row.iter_mut().enumerate() {
            let expr: &mut Expr = expr;
            let Some(Some(column)) = targets.get(position) else {
                continue;
            };
            let quiver_common::schema::ColumnType::Vector { dim } =
                schema.columns[*column].column_type
            else {
                continue;
            };
            let is_text =
                matches!(expr, Expr::Value(v) if matches!(v.value, Value::SingleQuotedString(_)));
            if !is_text {
                continue;
            }
            let arg = |e: Expr| FunctionArg::Unnamed(FunctionArgExpr::Expr(e));
            *expr = Expr::Function(Function {
                name: ObjectName::from(vec![Ident::new("to_vector")]),
                uses_odbc_syntax: false,
                parameters: FunctionArguments::None,
                args: FunctionArguments::List(FunctionArgumentList {
                    duplicate_treatment: None,
                    args: vec![
                        arg(expr.clone()),
                        arg(Expr::value(Value::Number(dim.to_string(), false))),
                    ],
                    clauses: vec![],
                }),
                filter: None,
                null_treatment: None,
                over: None,
                within_group: vec![],
            });
        }
    }
    Ok(())
}

/// Executes a plan and buffers its rows as one batch, each collected batch
/// (and the concatenated copy) reserved as `consumer` against the
/// session's memory pool; the reservation is held until the rows are written.
async fn collect_rows(
    session: &SqlSession,
    plan: LogicalPlan,
    params: Option<&ParamValues>,
    consumer: &str,
) -> Result<(RecordBatch, MemoryReservation)> {
    let plan = bind(plan, params)?;
    let df = session.ctx.execute_logical_plan(plan).await?;
    let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    let mut stream = df.execute_stream().await?;
    let reservation = quiver_exec::memory::reserve(&session.memory_pool(), consumer);
    let mut batches = Vec::new();
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        reservation.try_grow(batch.get_array_memory_size())?;
        batches.push(batch);
    }
    drop(stream);
    if batches.len() > 1 {
        // Concatenating copies: both are held until the parts are dropped.
        reservation.try_grow(reservation.size())?;
    }
    let rows = concat_batches(&schema, &batches)?;
    drop(batches);
    reservation.resize(rows.get_array_memory_size());
    Ok((rows, reservation))
}

async fn returning_schema(table: &TableSchema, items: &[SelectItem]) -> Result<SchemaRef> {
    let ctx = with_vector_functions(SessionContext::new());
    let empty = RecordBatch::new_empty(table.visible_arrow_schema());
    ctx.register_batch("returning_rows", empty)?;
    let sql = format!("SELECT {} FROM returning_rows", join_items(items));
    Ok(Arc::new(ctx.sql(&sql).await?.schema().as_arrow().clone()))
}

fn join_items(items: &[SelectItem]) -> String {
    items
        .iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A context for computing over batches outside the catalog (RETURNING, ON
/// CONFLICT), reserving from the session's memory pool.
fn scratch_context(session: &SqlSession) -> Result<SessionContext> {
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(session.memory_pool())
        .build_arc()?;
    Ok(with_vector_functions(SessionContext::new_with_config_rt(
        SessionConfig::new(),
        runtime,
    )))
}

fn with_vector_functions(ctx: SessionContext) -> SessionContext {
    for udf in quiver_planner::functions::vector_functions() {
        ctx.register_udf(udf);
    }
    ctx
}

/// Evaluates `RETURNING` items over the written rows. Table-qualified
/// references (`t.col`) are rewritten to the scratch table.
async fn returning(
    session: &SqlSession,
    items: &[SelectItem],
    table: &str,
    rows: RecordBatch,
    command: &str,
) -> Result<PgOutput> {
    let ctx = scratch_context(session)?;
    // The written rows as the table's declared columns: a hidden row id
    // is not the statement's to return (`RETURNING *`).
    let declared: Vec<usize> = (0..rows.num_columns())
        .filter(|&i| rows.schema().field(i).name() != ROW_ID_COLUMN)
        .collect();
    ctx.register_batch("returning_rows", rows.project(&declared)?)?;
    // Qualified by the name the client gave (not a pending table's).
    let table = client_table_name(table);
    let mut items = items.to_vec();
    for item in &mut items {
        let _ = visit_expressions_mut(item, |expr| {
            if let Expr::CompoundIdentifier(parts) = expr {
                if parts.len() == 2 && normalize_ident(&parts[0]) == table {
                    *expr = Expr::Identifier(parts[1].clone());
                }
            }
            ControlFlow::<()>::Continue(())
        });
    }
    let df = ctx
        .sql(&format!(
            "SELECT {} FROM returning_rows",
            join_items(&items)
        ))
        .await?;
    let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    let stream = df.execute_stream().await?;
    Ok(PgOutput::Rows {
        schema,
        stream,
        command: command.to_string(),
    })
}

pub async fn prepare_insert(
    instance: &Instance,
    session: &mut SqlSession,
    insert: &Insert,
) -> Result<Prepared> {
    let plan = plan_insert_rows(instance, session, insert).await?;
    let (db, name) = instance.resolve(session, insert_target(insert)?)?;
    let returning = insert.returning.as_deref();
    prepared(instance, &plan, (&db, &name), returning).await
}

/// Writes rows through the streaming node's API (durable and applied when
/// it returns); inside a transaction block, into the block's buffer.
pub async fn write_rows(
    instance: &Instance,
    session: &mut SqlSession,
    (database, table): (&str, &str),
    rows: RecordBatch,
    mode: WriteMode,
) -> Result<WriteAck> {
    if transaction::in_block(session) {
        let rows =
            transaction::write_rows(instance, session, (database, table), rows, mode).await?;
        return Ok(WriteAck { rows, ts: 0 });
    }
    let table_id = instance.describe_table(database, table).await?.id;
    Ok(instance
        .streaming()
        .write(WriteRows {
            table_id,
            rows,
            mode,
        })
        .await?)
}

/// Deletes rows by key through the streaming node's API (inside a
/// transaction block, into its buffer); returns how many visible rows it
/// deleted.
async fn delete_keys(
    instance: &Instance,
    session: &mut SqlSession,
    (database, table): (&str, &str),
    keys: Vec<PkValue>,
) -> Result<usize> {
    if transaction::in_block(session) {
        return transaction::delete_keys(instance, session, (database, table), keys).await;
    }
    let info = instance.describe_table(database, table).await?;
    let Some(keys) = quiver_cluster::segment_files::keys_batch(&info.schema, &keys)? else {
        return Ok(0);
    };
    let ack = instance
        .streaming()
        .delete(DeleteKeys {
            table_id: info.id,
            keys,
        })
        .await?;
    Ok(ack.deleted as usize)
}

/// Fills columns the INSERT did not name with their `DEFAULT` expressions.
async fn apply_defaults(
    session: &SqlSession,
    insert: &Insert,
    schema: &TableSchema,
    rows: RecordBatch,
) -> Result<RecordBatch> {
    if insert.columns.is_empty() {
        return Ok(rows);
    }
    let named: Vec<String> = insert
        .columns
        .iter()
        .filter_map(|c| c.0.last().and_then(|p| p.as_ident()).map(normalize_ident))
        .collect();
    fill_defaults(session, &named, schema, rows).await
}

/// Fills the columns not in `named` that have a `DEFAULT` with its value.
pub async fn fill_defaults(
    session: &SqlSession,
    named: &[String],
    schema: &TableSchema,
    rows: RecordBatch,
) -> Result<RecordBatch> {
    let mut columns = rows.columns().to_vec();
    let mut changed = false;
    for (i, def) in schema.columns.iter().enumerate() {
        let Some(default_sql) = &def.default_sql else {
            continue;
        };
        if named.contains(&def.name) || i >= columns.len() {
            continue;
        }
        let batches = session
            .ctx
            .sql(&format!("SELECT {default_sql}"))
            .await?
            .collect()
            .await?;
        let value = batches
            .first()
            .filter(|b| b.num_rows() == 1)
            .map(|b| ScalarValue::try_from_array(b.column(0), 0))
            .transpose()?
            .unwrap_or(ScalarValue::Null);
        let array = value.to_array_of_size(rows.num_rows())?;
        columns[i] = cast(&array, &def.column_type.arrow_type())?;
        changed = true;
    }
    if !changed {
        return Ok(rows);
    }
    Ok(RecordBatch::try_new_with_options(
        rows.schema(),
        columns,
        &arrow::array::RecordBatchOptions::new().with_row_count(Some(rows.num_rows())),
    )
    .or_else(|_| {
        RecordBatch::try_new(
            Arc::new(arrow::datatypes::Schema::new(
                rows.schema()
                    .fields()
                    .iter()
                    .map(|f| f.as_ref().clone().with_nullable(true))
                    .collect::<Vec<_>>(),
            )),
            rows.columns().to_vec(),
        )
    })?)
}

pub async fn insert(
    instance: &Instance,
    session: &mut SqlSession,
    insert: &Insert,
    params: Option<&ParamValues>,
) -> Result<PgOutput> {
    let (database, name) = instance.resolve(session, insert_target(insert)?)?;
    let schema = instance.describe_table(&database, &name).await?.schema;
    instance.set_read_ts(session).await?;
    let plan = plan_insert_rows(instance, session, insert).await?;
    let (rows, _buffered) = collect_rows(session, plan, params, "INSERT rows").await?;
    let rows = apply_defaults(session, insert, &schema, rows).await?;
    let (mode, rows) = match &insert.on {
        None => (WriteMode::Insert, rows),
        Some(OnInsert::OnConflict(on_conflict)) => match &on_conflict.action {
            OnConflictAction::DoNothing => (WriteMode::InsertIgnore, rows),
            OnConflictAction::DoUpdate(update) => {
                if update.selection.is_some() {
                    return Err(SqlError::unsupported("ON CONFLICT DO UPDATE ... WHERE"));
                }
                let merged = merge_conflicts(
                    session,
                    &database,
                    &name,
                    &schema,
                    rows,
                    &update.assignments,
                )
                .await?;
                (WriteMode::Upsert, merged)
            }
        },
        Some(OnInsert::DuplicateKeyUpdate(_)) => {
            return Err(SqlError::unsupported("ON DUPLICATE KEY UPDATE"))
        }
        Some(other) => return Err(SqlError::unsupported(format!("{other}"))),
    };
    let outcome = write_rows(instance, session, (&database, &name), rows, mode).await?;
    match &insert.returning {
        Some(items) => returning(session, items, &name, outcome.rows, "INSERT").await,
        None => Ok(PgOutput::Command(CommandTag::insert(
            outcome.rows.num_rows(),
        ))),
    }
}

/// [`QueryHandler::write`](crate::handler::QueryHandler::write): a batch
/// from a front end that builds rows itself (the Milvus door).
pub async fn write_batch(
    instance: &Instance,
    session: &mut SqlSession,
    database: &str,
    table: &str,
    rows: RecordBatch,
    sent: &[String],
    kind: WriteKind,
) -> Result<Written> {
    let schema = instance.describe_table(database, table).await?.schema;
    let rows = if sent.is_empty() {
        rows
    } else {
        fill_defaults(session, sent, &schema, rows).await?
    };
    let (mode, rows) = match kind {
        WriteKind::Insert => (WriteMode::Insert, rows),
        WriteKind::Upsert => (WriteMode::Upsert, rows),
        WriteKind::Merge { columns } => {
            instance.set_read_ts(session).await?;
            let assignments: Vec<Assignment> = columns
                .iter()
                .filter(|c| **c != schema.pk().name)
                .map(|c| Assignment {
                    target: AssignmentTarget::ColumnName(ObjectName::from(vec![
                        Ident::with_quote('"', c.as_str()),
                    ])),
                    value: Expr::CompoundIdentifier(vec![
                        Ident::new("excluded"),
                        Ident::with_quote('"', c.as_str()),
                    ]),
                })
                .collect();
            let merged =
                merge_conflicts(session, database, table, &schema, rows, &assignments).await?;
            (WriteMode::Upsert, merged)
        }
    };
    let outcome = write_rows(instance, session, (database, table), rows, mode).await?;
    Ok(Written {
        rows: outcome.rows,
        ts: outcome.ts,
    })
}

/// `ON CONFLICT (pk) DO UPDATE SET ...`: for rows whose key exists, the
/// existing row with the assignments applied (`EXCLUDED.col` is the proposed row).
async fn merge_conflicts(
    session: &SqlSession,
    database: &str,
    table: &str,
    schema: &TableSchema,
    proposed: RecordBatch,
    assignments: &[Assignment],
) -> Result<RecordBatch> {
    let pk = schema.pk().name.clone();
    let keys: Vec<PkValue> = pk_values(proposed.column(schema.primary_key))
        .into_iter()
        .flatten()
        .collect();
    let existing = rows_with_keys(session, (database, table), schema, &keys, false).await?;
    let existing = concat_batches(&schema.arrow_schema(), &existing)?;
    let ctx = scratch_context(session)?;
    ctx.register_batch("excluded", proposed)?;
    ctx.register_batch("existing", existing)?;
    let mut select = Vec::new();
    for def in &schema.columns {
        let c = quote(&def.name);
        let assigned = assignments.iter().find(|a| match &a.target {
            AssignmentTarget::ColumnName(n) => {
                n.0.last()
                    .and_then(|p| p.as_ident())
                    .map(normalize_ident)
                    .as_deref()
                    == Some(def.name.as_str())
            }
            AssignmentTarget::Tuple(_) => false,
        });
        let on_conflict = match assigned {
            Some(a) => {
                if def.name == pk {
                    return Err(SqlError::unsupported(
                        "updating the primary key in ON CONFLICT DO UPDATE",
                    ));
                }
                format!("({})", qualify_existing(&a.value, table))
            }
            None => format!("existing.{c}"),
        };
        select.push(format!(
            "CASE WHEN existing.{pkq} IS NULL THEN excluded.{c} ELSE {on_conflict} END AS {c}",
            pkq = quote(&pk)
        ));
    }
    let sql = format!(
        "SELECT {} FROM excluded LEFT JOIN existing ON excluded.{pk} = existing.{pk}",
        select.join(", "),
        pk = quote(&pk)
    );
    let batches = ctx.sql(&sql).await?.collect().await?;
    let out_schema = batches
        .first()
        .map(|b| b.schema())
        .unwrap_or_else(|| schema.arrow_schema());
    Ok(concat_batches(&out_schema, &batches)?)
}

/// Rewrites an assignment so bare and table-qualified columns read the existing row.
fn qualify_existing(expr: &Expr, table: &str) -> Expr {
    let mut expr = expr.clone();
    let _ = visit_expressions_mut(&mut expr, |e| {
        match e {
            Expr::Identifier(ident) => {
                *e = Expr::CompoundIdentifier(vec![Ident::new("existing"), ident.clone()]);
            }
            Expr::CompoundIdentifier(parts) if parts.len() == 2 => {
                let qualifier = normalize_ident(&parts[0]);
                if qualifier == table {
                    parts[0] = Ident::new("existing");
                } else if qualifier == "excluded" {
                    parts[0] = Ident::new("excluded");
                }
            }
            _ => {}
        }
        ControlFlow::<()>::Continue(())
    });
    expr
}

fn single_table(
    table: &TableWithJoins,
) -> Result<(&datafusion::sql::sqlparser::ast::ObjectName, Option<String>)> {
    if !table.joins.is_empty() {
        return Err(SqlError::unsupported("joins in UPDATE/DELETE"));
    }
    match &table.relation {
        TableFactor::Table { name, alias, .. } => {
            Ok((name, alias.as_ref().map(|a| a.name.to_string())))
        }
        other => Err(SqlError::unsupported(format!("UPDATE/DELETE of {other}"))),
    }
}

/// The `FROM` of the statement that reads the rows an `UPDATE`/`DELETE`
/// changes: the table with its hidden columns (the key of a table declared
/// without one), under the statement's alias or the table's own name.
fn from_clause(
    (database, table): (&str, &str),
    alias: &Option<String>,
    selection: &Option<Expr>,
) -> String {
    let mut sql = format!(
        " FROM {}.{} AS {}",
        quote(database),
        quote(&format!("{table}{WITH_HIDDEN_COLUMNS}")),
        // Qualified by the name the client gave (not a pending table's).
        alias
            .clone()
            .unwrap_or_else(|| quote(client_table_name(table)))
    );
    if let Some(selection) = selection {
        sql.push_str(&format!(" WHERE {selection}"));
    }
    sql
}

/// The name the rows an UPDATE of the primary key selects give their old
/// key (a NUL: no column of a client's can have it).
const OLD_KEY: &str = "\u{0}old_key";

/// The query selecting an UPDATE's new rows, its table, and whether it
/// assigns the primary key (the rows then end with their old key, named
/// [`OLD_KEY`]).
async fn update_sql(
    instance: &Instance,
    session: &SqlSession,
    update: &Update,
) -> Result<(String, String, String, bool)> {
    if update.from.is_some() {
        return Err(SqlError::unsupported("UPDATE ... FROM"));
    }
    let (name, alias) = single_table(&update.table)?;
    let (database, table) = instance.resolve(session, name)?;
    let schema = instance.describe_table(&database, &table).await?.schema;
    let mut select = Vec::new();
    let mut assigns_key = false;
    for def in &schema.columns {
        let assigned = update.assignments.iter().find(|a| match &a.target {
            AssignmentTarget::ColumnName(n) => {
                n.0.last()
                    .and_then(|p| p.as_ident())
                    .map(normalize_ident)
                    .as_deref()
                    == Some(def.name.as_str())
            }
            AssignmentTarget::Tuple(_) => false,
        });
        match assigned {
            Some(a) => {
                assigns_key |= def.name == schema.pk().name;
                select.push(format!("({}) AS {}", a.value, quote(&def.name)));
            }
            None => select.push(quote(&def.name)),
        }
    }
    for a in &update.assignments {
        if let AssignmentTarget::ColumnName(n) = &a.target {
            let column =
                n.0.last()
                    .and_then(|p| p.as_ident())
                    .map(normalize_ident)
                    .unwrap_or_default();
            if schema.column_index(&column).is_none() {
                return Err(SqlError::Query {
                    code: quiver_common::status::StatusCode::ColumnNotFound,
                    message: format!("column \"{column}\" of relation \"{table}\" does not exist"),
                });
            }
        } else {
            return Err(SqlError::unsupported("UPDATE SET (a, b) = (...)"));
        }
    }
    if assigns_key {
        select.push(format!(
            "{} AS {}",
            quote(&schema.pk().name),
            quote(OLD_KEY)
        ));
    }
    let sql = format!(
        "SELECT {}{}",
        select.join(", "),
        from_clause((&database, &table), &alias, &update.selection)
    );
    Ok((sql, database, table, assigns_key))
}

/// Writes the rows of an UPDATE that assigns the primary key (each ending
/// with its old key): the old keys deleted and the rows inserted, as one
/// transaction — the session's block, or one of the statement's own — so
/// a new key that another row holds fails the whole statement (`23505`),
/// and keys may trade places. Returns the rows written.
async fn update_keys(
    instance: &Instance,
    session: &mut SqlSession,
    target: (&str, &str),
    rows: RecordBatch,
) -> Result<RecordBatch> {
    let old_at = rows.num_columns() - 1;
    let old_keys: Vec<PkValue> = pk_values(rows.column(old_at))
        .into_iter()
        .flatten()
        .collect();
    let rows = rows.project(&(0..old_at).collect::<Vec<_>>())?;
    let own_block = !transaction::in_block(session);
    if own_block {
        transaction::begin_implicit(session);
    }
    let written = async {
        transaction::delete_keys(instance, session, target, old_keys).await?;
        transaction::write_rows(instance, session, target, rows, WriteMode::Insert).await
    }
    .await;
    if !own_block {
        return written;
    }
    match written {
        Ok(written) => {
            transaction::commit(instance, session).await?;
            Ok(written)
        }
        Err(e) => {
            session.transaction = None;
            Err(e)
        }
    }
}

pub async fn prepare_update(
    instance: &Instance,
    session: &mut SqlSession,
    update: &Update,
) -> Result<Prepared> {
    let (sql, database, table, _) = update_sql(instance, session, update).await?;
    let returning = update.returning.as_deref();
    prepare_selected(instance, session, &sql, (&database, &table), returning).await
}

/// Parameter types and RETURNING schema of an UPDATE/DELETE whose rows come from `sql`.
async fn prepare_selected(
    instance: &Instance,
    session: &mut SqlSession,
    sql: &str,
    (database, table): (&str, &str),
    returning: Option<&[SelectItem]>,
) -> Result<Prepared> {
    let plan = instance.plan_sql(session, sql).await?;
    prepared(instance, &plan, (database, table), returning).await
}

/// A statement's parameter types (from the plan of its rows) and its RETURNING schema.
async fn prepared(
    instance: &Instance,
    plan: &LogicalPlan,
    (database, table): (&str, &str),
    returning: Option<&[SelectItem]>,
) -> Result<Prepared> {
    let result_schema = match returning {
        Some(items) => {
            let schema = instance.describe_table(database, table).await?.schema;
            Some(returning_schema(&schema, items).await?)
        }
        None => None,
    };
    Ok(Prepared {
        param_types: parameter_types(plan)?,
        result_schema,
    })
}

pub async fn update(
    instance: &Instance,
    session: &mut SqlSession,
    update: &Update,
    params: Option<&ParamValues>,
) -> Result<PgOutput> {
    let (sql, database, table, assigns_key) = update_sql(instance, session, update).await?;
    instance.set_read_ts(session).await?;
    let plan = instance.plan_sql(session, &sql).await?;
    let (rows, _buffered) = collect_rows(session, plan, params, "UPDATE rows").await?;
    let count = rows.num_rows();
    let written = if assigns_key && count > 0 {
        update_keys(instance, session, (&database, &table), rows).await?
    } else if assigns_key {
        rows.project(&(0..rows.num_columns() - 1).collect::<Vec<_>>())?
    } else if count > 0 {
        write_rows(
            instance,
            session,
            (&database, &table),
            rows,
            WriteMode::Upsert,
        )
        .await?
        .rows
    } else {
        rows
    };
    match &update.returning {
        Some(items) => returning(session, items, &table, written, "UPDATE").await,
        None => Ok(PgOutput::Command(
            CommandTag::new("UPDATE").with_rows(count),
        )),
    }
}

async fn delete_sql(
    instance: &Instance,
    session: &SqlSession,
    delete: &Delete,
) -> Result<(String, String, String, usize)> {
    if delete.using.is_some() {
        return Err(SqlError::unsupported("DELETE ... USING"));
    }
    let tables = match &delete.from {
        FromTable::WithFromKeyword(t) | FromTable::WithoutKeyword(t) => t,
    };
    let [table] = tables.as_slice() else {
        return Err(SqlError::unsupported("DELETE from several tables"));
    };
    let (name, alias) = single_table(table)?;
    let (database, table) = instance.resolve(session, name)?;
    let schema = instance.describe_table(&database, &table).await?.schema;
    let columns = if delete.returning.is_some() {
        "*".to_string()
    } else {
        quote(&schema.pk().name)
    };
    let pk_index = if delete.returning.is_some() {
        schema.primary_key
    } else {
        0
    };
    let sql = format!(
        "SELECT {columns}{}",
        from_clause((&database, &table), &alias, &delete.selection)
    );
    Ok((sql, database, table, pk_index))
}

pub async fn prepare_delete(
    instance: &Instance,
    session: &mut SqlSession,
    delete: &Delete,
) -> Result<Prepared> {
    let (sql, database, table, _) = delete_sql(instance, session, delete).await?;
    let returning = delete.returning.as_deref();
    prepare_selected(instance, session, &sql, (&database, &table), returning).await
}

pub async fn delete(
    instance: &Instance,
    session: &mut SqlSession,
    delete: &Delete,
    params: Option<&ParamValues>,
) -> Result<PgOutput> {
    let (sql, database, table, pk_index) = delete_sql(instance, session, delete).await?;
    instance.set_read_ts(session).await?;
    let plan = instance.plan_sql(session, &sql).await?;
    let (rows, _buffered) = collect_rows(session, plan, params, "DELETE keys").await?;
    let keys: Vec<PkValue> = pk_values(rows.column(pk_index))
        .into_iter()
        .flatten()
        .collect();
    let deleted = delete_keys(instance, session, (&database, &table), keys).await?;
    match &delete.returning {
        Some(items) => returning(session, items, &table, rows, "DELETE").await,
        None => Ok(PgOutput::Command(
            CommandTag::new("DELETE").with_rows(deleted),
        )),
    }
}

/// Deletes the rows of a table `filter` (over its columns) selects, read
/// at a fresh timestamp: a typed `DELETE` (the Milvus door's delete by
/// expression). Returns how many rows it deleted.
pub async fn delete_where(
    instance: &Instance,
    session: &mut SqlSession,
    (database, table): (&str, &str),
    filter: datafusion::logical_expr::Expr,
) -> Result<usize> {
    let schema = instance.describe_table(database, table).await?.schema;
    instance.set_read_ts(session).await?;
    let plan = instance
        .scan_builder(session, database, table)
        .await?
        .filter(filter)?
        .project(vec![datafusion::logical_expr::Expr::Column(
            datafusion::common::Column::new_unqualified(&schema.pk().name),
        )])?
        .build()?;
    let (rows, _buffered) = collect_rows(session, plan, None, "DELETE keys").await?;
    let keys: Vec<PkValue> = pk_values(rows.column(0)).into_iter().flatten().collect();
    delete_keys(instance, session, (database, table), keys).await
}

pub async fn truncate(
    instance: &Instance,
    session: &mut SqlSession,
    truncate: &Truncate,
) -> Result<PgOutput> {
    for target in &truncate.table_names {
        let (database, table) = instance.resolve(session, &target.name)?;
        let schema = instance.describe_table(&database, &table).await?.schema;
        instance.set_read_ts(session).await?;
        let sql = format!(
            "SELECT {}{}",
            quote(&schema.pk().name),
            from_clause((&database, &table), &None, &None)
        );
        let plan = instance.plan_sql(session, &sql).await?;
        let (rows, _buffered) = collect_rows(session, plan, None, "TRUNCATE keys").await?;
        let keys: Vec<PkValue> = pk_values(rows.column(0)).into_iter().flatten().collect();
        delete_keys(instance, session, (&database, &table), keys).await?;
    }
    Ok(PgOutput::Command(CommandTag::new("TRUNCATE TABLE")))
}
