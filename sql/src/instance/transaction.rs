//! Transaction blocks: `BEGIN ... COMMIT`, `ROLLBACK`, savepoints, and the
//! state PostgreSQL keeps per session.
//!
//! A block reads at one snapshot (a TSO timestamp taken by its first
//! statement) and buffers its writes: rows are staged by the streaming node
//! (validated, auto ids assigned) and kept here, deletes as keys. Every
//! statement of the block sees the snapshot with the block's own writes
//! (a `TransactionView` in the session's DataFusion config: the stored
//! rows of the keys it wrote hidden, its rows added). `COMMIT` sends the net
//! changes to the streaming node, which commits them atomically at one
//! timestamp in one WAL entry, failing with `40001` when a key the block
//! changed was changed by a commit after its snapshot. `ROLLBACK` drops the
//! buffer; `ROLLBACK TO SAVEPOINT` cuts it back. An error aborts the block:
//! every statement then fails with `25P02` until it ends.
//!
//! `CREATE TABLE`, `DROP TABLE` and `CREATE INDEX` on a table the block
//! created are transactional: the coordinator keeps them pending for the
//! block (seen by its statements only, see [`super::block_catalog`]);
//! `COMMIT` appends the block's WAL entry marked with its id — the commit
//! point of its rows and its catalog changes alike — then has the
//! coordinator apply the changes; `ROLLBACK` discards them. Other
//! statements that change the catalog are refused inside a block with
//! `25001`.

use arrow::array::RecordBatch;
use datafusion::sql::sqlparser::ast::{
    Ident, ObjectType, Statement, TransactionAccessMode, TransactionMode,
};
use quiver_cluster::api::streaming::{
    CommitTransaction, StageRows, TableChanges, MAX_TRANSACTION_BYTES,
};
use quiver_cluster::segment_files::keys_batch;
use quiver_cluster::{EngineError, WriteMode};
use quiver_common::schema::TableSchema;
use quiver_common::status::StatusCode;
use quiver_exec::pk::{pk_values, PkValue};

use super::block_catalog::CatalogBlock;
use super::names::normalize_ident;
use super::session::SqlSession;
use super::state::{rows_with_keys, Instance};
use super::transaction_block::{BufferedWrite, Change, TransactionBlock};
use crate::error::{Result, SqlError};
use crate::handler::pg::{CommandTag, PgOutput, TransactionEffect};

fn txn_error(code: StatusCode, message: impl Into<String>) -> SqlError {
    SqlError::Query {
        code,
        message: message.into(),
    }
}

/// True for statements that change the catalog and are refused inside a
/// block (`CREATE TABLE` without `AS`, `DROP TABLE` and `CREATE INDEX`
/// are transactional).
fn changes_catalog(statement: &Statement) -> Option<&'static str> {
    Some(match statement {
        Statement::CreateTable(create) if create.query.is_some() => "CREATE TABLE AS",
        Statement::CreateTable(_) | Statement::CreateIndex(_) => return None,
        Statement::CreateSchema { .. } => "CREATE SCHEMA",
        Statement::CreateDatabase { .. } => "CREATE DATABASE",
        Statement::AlterTable(_) => "ALTER TABLE",
        Statement::Drop { object_type, .. } => match object_type {
            ObjectType::Table => return None,
            ObjectType::Index => "DROP INDEX",
            ObjectType::Schema => "DROP SCHEMA",
            ObjectType::Database => "DROP DATABASE",
            _ => "DROP",
        },
        _ => return None,
    })
}

/// Refuses a statement the session's block does not allow: any but
/// `COMMIT`/`ROLLBACK` in an aborted block (`25P02`), a catalog change in a
/// block (`25001`).
pub(crate) fn gate(session: &SqlSession, statement: &Statement) -> Result<()> {
    let Some(block) = &session.transaction else {
        return Ok(());
    };
    let ends = matches!(
        statement,
        Statement::Commit { .. } | Statement::Rollback { .. }
    );
    if block.failed && !ends {
        return Err(txn_error(
            StatusCode::InFailedSqlTransaction,
            "current transaction is aborted, commands ignored until end of transaction block",
        ));
    }
    if let Some(what) = changes_catalog(statement) {
        return Err(txn_error(
            StatusCode::ActiveSqlTransaction,
            format!("{what} cannot run inside a transaction block"),
        ));
    }
    Ok(())
}

/// Marks the session's block aborted (a statement in it failed).
pub(crate) fn fail(session: &mut SqlSession) {
    if let Some(block) = &mut session.transaction {
        block.failed = true;
    }
}

/// Whether the session is in a block, and whether that block is aborted.
pub(crate) fn state(session: &SqlSession) -> Option<bool> {
    session.transaction.as_ref().map(|b| b.failed)
}

/// True when the session's block has buffered writes (plans made in it
/// hold them and must not be cached).
fn has_writes(session: &SqlSession) -> bool {
    session
        .transaction
        .as_ref()
        .is_some_and(|b| !b.writes.is_empty())
}

/// True when plans made in the session's block must not be cached: it
/// holds writes, or catalog changes only it sees.
pub(crate) fn holds_changes(session: &SqlSession) -> bool {
    has_writes(session) || session.block_tables.read().block.is_some()
}

/// The id of the session's block for a catalog change made in it
/// (allocated by its first one: a fresh timestamp, unique); `None` outside
/// a block. A `READ ONLY` block refuses the change (`25006`).
pub(crate) async fn catalog_block(
    instance: &Instance,
    session: &mut SqlSession,
    what: &str,
) -> Result<Option<u64>> {
    if session.transaction.is_none() {
        return Ok(None);
    }
    check_writable(session, what)?;
    let tables = session.block_tables.clone();
    let block = session.transaction.as_mut().expect("checked above");
    if let Some(catalog) = &block.catalog {
        return Ok(Some(catalog.id));
    }
    let id = instance.coordinator().allocate_timestamps(1).await?.first;
    block.catalog = Some(CatalogBlock::new(
        id,
        instance.coordinator().clone(),
        tables,
    ));
    Ok(Some(id))
}

/// Buffers rows written in a block; returns them as written (staged:
/// auto ids filled, the rows an insert-ignore skips left out). Fails as
/// the write would: a key visible to the block on INSERT, a key twice.
pub(crate) async fn write_rows(
    instance: &Instance,
    session: &mut SqlSession,
    (database, table): (&str, &str),
    rows: RecordBatch,
    mode: WriteMode,
) -> Result<RecordBatch> {
    check_writable(
        session,
        if mode == WriteMode::Upsert {
            "UPDATE"
        } else {
            "INSERT"
        },
    )?;
    // The block's snapshot and view are current (a COPY sets no read
    // timestamp of its own).
    instance.set_read_ts(session).await?;
    let info = instance.describe_table(database, table).await?;
    let rows = instance
        .streaming()
        .stage(StageRows {
            table_id: info.id,
            rows,
        })
        .await?;
    let schema = info.schema;
    let keys: Vec<PkValue> = pk_values(rows.column(schema.primary_key))
        .into_iter()
        .flatten()
        .collect();
    let visible = visible_keys(session, (database, table), &schema, &keys).await?;
    let mut seen = std::collections::HashSet::with_capacity(keys.len());
    let mut keep = Vec::with_capacity(keys.len());
    let mut existed = Vec::with_capacity(keys.len());
    for key in &keys {
        let exists = visible.contains(key);
        let duplicate = !seen.insert(key.clone()) || (exists && mode == WriteMode::Insert);
        if duplicate {
            return Err(EngineError::DuplicateKey {
                table: table.to_string(),
                column: schema.pk().name.clone(),
                key: key.to_string(),
            }
            .into());
        }
        let kept = !(exists && mode == WriteMode::InsertIgnore);
        keep.push(kept);
        if kept {
            existed.push(exists);
        }
    }
    let rows = if keep.iter().all(|k| *k) {
        rows
    } else {
        arrow::compute::filter_record_batch(&rows, &arrow::array::BooleanArray::from(keep))?
    };
    if rows.num_rows() > 0 {
        buffer(
            session,
            BufferedWrite {
                table_id: info.id,
                schema,
                change: Change::Rows {
                    rows: rows.clone(),
                    existed,
                },
            },
        )?;
    }
    Ok(rows)
}

/// Buffers a delete of keys visible to the block; returns how many.
pub(crate) async fn delete_keys(
    instance: &Instance,
    session: &mut SqlSession,
    (database, table): (&str, &str),
    keys: Vec<PkValue>,
) -> Result<usize> {
    check_writable(session, "DELETE")?;
    let info = instance.describe_table(database, table).await?;
    let mut unique = keys;
    unique.sort_unstable();
    unique.dedup();
    let count = unique.len();
    if count > 0 {
        buffer(
            session,
            BufferedWrite {
                table_id: info.id,
                schema: info.schema,
                change: Change::Delete(unique),
            },
        )?;
    }
    Ok(count)
}

/// Which of `keys` the session sees in a table (at its read timestamp,
/// with its transaction's writes).
async fn visible_keys(
    session: &SqlSession,
    (database, table): (&str, &str),
    schema: &TableSchema,
    keys: &[PkValue],
) -> Result<std::collections::HashSet<PkValue>> {
    if keys.is_empty() {
        return Ok(Default::default());
    }
    let found = rows_with_keys(session, (database, table), schema, keys, true).await?;
    Ok(found
        .iter()
        .flat_map(|b| pk_values(b.column(0)))
        .flatten()
        .collect())
}

/// Adds a write to the session's block, within the block's size limit
/// (its commit is one WAL entry).
fn buffer(session: &mut SqlSession, write: BufferedWrite) -> Result<()> {
    match &mut session.transaction {
        Some(block) => block.push(write, MAX_TRANSACTION_BYTES),
        None => Ok(()),
    }
}

/// True when writes go to the session's block rather than straight out.
pub(crate) fn in_block(session: &SqlSession) -> bool {
    session.transaction.is_some()
}

fn command(tag: &str, effect: TransactionEffect) -> PgOutput {
    PgOutput::Command(CommandTag::new(tag).with_transaction(effect))
}

/// The access mode `modes` ask for: `Some(true)` for `READ ONLY`. Every
/// isolation level runs as snapshot isolation (PostgreSQL's `REPEATABLE
/// READ`), which also gives `READ COMMITTED` and `SERIALIZABLE` programs
/// their guarantees against lost updates (a conflict fails with `40001`).
fn read_only(modes: &[TransactionMode]) -> Option<bool> {
    modes.iter().rev().find_map(|m| match m {
        TransactionMode::AccessMode(TransactionAccessMode::ReadOnly) => Some(true),
        TransactionMode::AccessMode(TransactionAccessMode::ReadWrite) => Some(false),
        TransactionMode::IsolationLevel(_) => None,
    })
}

/// `BEGIN` / `START TRANSACTION [modes]`.
pub(crate) fn begin(session: &mut SqlSession, modes: &[TransactionMode]) -> Result<PgOutput> {
    if session.transaction.is_some() {
        session.notice("there is already a transaction in progress");
    } else {
        session.transaction = Some(TransactionBlock {
            read_only: read_only(modes).unwrap_or(false),
            ..TransactionBlock::default()
        });
    }
    Ok(command("BEGIN", TransactionEffect::Begin))
}

/// Forgets the block's buffered writes of a table it created and then
/// dropped (nothing of them is left to commit).
pub(crate) fn forget_writes(session: &mut SqlSession, table_id: u64) {
    if let Some(block) = &mut session.transaction {
        block.writes.retain(|w| w.table_id != table_id);
        block.view = None;
    }
}

/// Opens a block for one statement that must write as a transaction (an
/// UPDATE of primary keys): the caller commits it or drops it.
pub(crate) fn begin_implicit(session: &mut SqlSession) {
    session.transaction = Some(TransactionBlock::default());
}

/// `SET TRANSACTION modes` (the block's, before its first query) and `SET
/// SESSION CHARACTERISTICS AS TRANSACTION modes` (later blocks': only the
/// isolation levels, which all run as snapshot isolation, are accepted).
pub(crate) fn set_transaction(
    session: &mut SqlSession,
    modes: &[TransactionMode],
    for_session: bool,
) -> Result<PgOutput> {
    let access = read_only(modes);
    if for_session {
        if access == Some(true) {
            return Err(SqlError::unsupported("read-only sessions"));
        }
    } else {
        let block = in_block_for(session, "SET TRANSACTION")?;
        if block.snapshot.is_some() && !modes.is_empty() {
            return Err(txn_error(
                StatusCode::ActiveSqlTransaction,
                "SET TRANSACTION ISOLATION LEVEL must be called before any query",
            ));
        }
        if let Some(read_only) = access {
            block.read_only = read_only;
        }
    }
    Ok(command("SET", TransactionEffect::None))
}

/// Refuses a write in a `READ ONLY` block.
fn check_writable(session: &SqlSession, what: &str) -> Result<()> {
    if session.transaction.as_ref().is_some_and(|b| b.read_only) {
        return Err(txn_error(
            StatusCode::ReadOnlySqlTransaction,
            format!("cannot execute {what} in a read-only transaction"),
        ));
    }
    Ok(())
}

/// `COMMIT` / `END`: commits the block's writes atomically (an aborted
/// block rolls back, as PostgreSQL does, answering `ROLLBACK`).
pub(crate) async fn commit(instance: &Instance, session: &mut SqlSession) -> Result<PgOutput> {
    let Some(block) = session.transaction.take() else {
        session.notice("there is no transaction in progress");
        return Ok(command("COMMIT", TransactionEffect::End));
    };
    let mut block = block;
    let catalog = block.catalog.take();
    if block.failed {
        if let Some(catalog) = catalog {
            catalog.end(false).await?;
        }
        return Ok(command("ROLLBACK", TransactionEffect::End));
    }
    let snapshot = match (block.snapshot, block.writes.is_empty(), &catalog) {
        (Some(snapshot), false, _) => snapshot,
        // No rows: the block's catalog changes still commit through its
        // WAL entry (its snapshot does not matter: no key to check).
        (snapshot, true, Some(_)) => snapshot.unwrap_or(0),
        _ => return Ok(command("COMMIT", TransactionEffect::End)),
    };
    let mut tables = Vec::new();
    for (table_id, net) in block.net() {
        let rows = block.rows_of(&net)?;
        let seen: Vec<PkValue> = net
            .keys
            .iter()
            .filter(|(_, k)| k.seen)
            .map(|(key, _)| key.clone())
            .collect();
        tables.push(TableChanges {
            table_id,
            seen_keys: keys_batch(&net.schema, &seen)?,
            rows,
        });
    }
    let committed = instance
        .streaming()
        .commit(CommitTransaction {
            snapshot_ts: snapshot,
            tables,
            catalog_block: catalog.as_ref().map(|c| c.id),
        })
        .await;
    if let Some(catalog) = catalog {
        match &committed {
            // The entry's durability is unknown: the restart's recovery
            // reads the WAL and ends the block as it finds it.
            Err(e) if e.status_code() == StatusCode::OutcomeUnknown => catalog.leave_to_recovery(),
            // The WAL entry decided: the coordinator follows.
            _ => catalog.end(committed.is_ok()).await?,
        }
    }
    committed?;
    Ok(command("COMMIT", TransactionEffect::End))
}

/// `ROLLBACK` (drops the block, its catalog changes discarded) and
/// `ROLLBACK TO SAVEPOINT` (cuts its writes back to the savepoint, which
/// stays, and clears the abort).
pub(crate) async fn rollback(
    session: &mut SqlSession,
    savepoint: Option<&Ident>,
) -> Result<PgOutput> {
    let Some(name) = savepoint else {
        match session.transaction.take() {
            None => session.notice("there is no transaction in progress"),
            Some(mut block) => {
                if let Some(catalog) = block.catalog.take() {
                    catalog.end(false).await?;
                }
            }
        }
        return Ok(command("ROLLBACK", TransactionEffect::End));
    };
    let changes = session.block_tables.read().changes;
    let block = in_block_for(session, "ROLLBACK TO SAVEPOINT")?;
    let at = find_savepoint(block, name)?;
    let (_, writes, changes_before) = block.savepoints[at];
    if changes > changes_before {
        return Err(SqlError::unsupported(
            "ROLLBACK TO SAVEPOINT past a catalog change (CREATE TABLE, DROP TABLE, CREATE INDEX)",
        ));
    }
    block.savepoints.truncate(at + 1);
    block.writes.truncate(writes);
    block.view = None;
    block.failed = false;
    Ok(command("ROLLBACK", TransactionEffect::None))
}

/// `SAVEPOINT name`.
pub(crate) fn savepoint(session: &mut SqlSession, name: &Ident) -> Result<PgOutput> {
    let changes = session.block_tables.read().changes;
    let block = in_block_for(session, "SAVEPOINT")?;
    let writes = block.writes.len();
    block
        .savepoints
        .push((normalize_ident(name), writes, changes));
    Ok(command("SAVEPOINT", TransactionEffect::None))
}

/// `RELEASE [SAVEPOINT] name`: forgets it and every later one.
pub(crate) fn release(session: &mut SqlSession, name: &Ident) -> Result<PgOutput> {
    let block = in_block_for(session, "RELEASE SAVEPOINT")?;
    let at = find_savepoint(block, name)?;
    block.savepoints.truncate(at);
    Ok(command("RELEASE", TransactionEffect::None))
}

fn in_block_for<'a>(session: &'a mut SqlSession, what: &str) -> Result<&'a mut TransactionBlock> {
    session.transaction.as_mut().ok_or_else(|| {
        txn_error(
            StatusCode::NoActiveSqlTransaction,
            format!("{what} can only be used in transaction blocks"),
        )
    })
}

fn find_savepoint(block: &TransactionBlock, name: &Ident) -> Result<usize> {
    block
        .savepoints
        .iter()
        .rposition(|(n, _, _)| *n == normalize_ident(name))
        .ok_or_else(|| {
            txn_error(
                StatusCode::InvalidSavepoint,
                format!("savepoint \"{}\" does not exist", normalize_ident(name)),
            )
        })
}
