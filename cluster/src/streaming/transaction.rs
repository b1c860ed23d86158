//! A transaction's commit on the streaming node: every table it wrote
//! locked (in table-id order, so two commits cannot deadlock), its writes
//! checked against what committed after its snapshot, then stamped with one
//! timestamp, appended to the WAL as one entry (all or nothing across a
//! crash) and applied to every table.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::RecordBatch;
use quiver_exec::pk::{pk_values, PkRef, PkValue};
use quiver_proto::WalRecord;

use super::{check_not_null, coerce_batch, keys_of, StreamingNode};
use crate::api::streaming::{CommitOutcome, TableChanges};
use crate::error::{EngineError, Result};
use crate::segment_files::keys_batch;
use crate::table::{with_timestamp, TableRuntime};

fn as_ref(key: &PkValue) -> PkRef<'_> {
    match key {
        PkValue::Int(v) => PkRef::Int(*v),
        PkValue::Str(s) => PkRef::Str(s),
    }
}

/// What a checked commit does to one table.
struct TablePlan {
    table: Arc<TableRuntime>,
    deletes: Vec<PkValue>,
    rows: Option<RecordBatch>,
}

impl StreamingNode {
    /// Commits a transaction that read at `snapshot_ts`: fails with a
    /// serialization failure when a key it saw changed after the snapshot,
    /// with a duplicate key when a key it added exists by now.
    /// `tables` pairs each part with the table it names. Blocks until the
    /// WAL fsync. A block that changed the catalog (`catalog_block`) always
    /// gets its marked WAL entry, rows or none.
    pub fn commit_transaction(
        &self,
        mut tables: Vec<(Arc<TableRuntime>, TableChanges)>,
        snapshot_ts: u64,
        catalog_block: Option<u64>,
    ) -> Result<CommitOutcome> {
        tables.sort_by_key(|(_, part)| part.table_id);
        if tables
            .windows(2)
            .any(|w| w[0].1.table_id == w[1].1.table_id)
        {
            return Err(EngineError::Internal(
                "a commit names one table twice".into(),
            ));
        }
        let locked: Vec<Arc<TableRuntime>> = tables.iter().map(|(t, _)| t.clone()).collect();
        let _guards: Vec<_> = locked.iter().map(|t| t.write_lock.lock()).collect();
        let mut plans = Vec::with_capacity(tables.len());
        for (table, part) in tables {
            plans.push(check(table, part, snapshot_ts)?);
        }
        if catalog_block.is_none()
            && plans
                .iter()
                .all(|p| p.deletes.is_empty() && p.rows.is_none())
        {
            return Ok(CommitOutcome {
                ts: 0,
                sealed: false,
            });
        }
        let write = self.begin_write()?;
        let ts = write.ts;
        let mut records = Vec::with_capacity(plans.len());
        for plan in &plans {
            let schema = plan.table.schema();
            let rows = plan
                .rows
                .as_ref()
                .map(|r| with_timestamp(r, &schema.storage_schema(), ts))
                .transpose()?;
            records.push(WalRecord {
                table_id: plan.table.id(),
                ts,
                deletes: keys_batch(&schema, &plan.deletes)?,
                inserts: rows,
            });
        }
        let payload = match catalog_block {
            Some(block) => WalRecord::encode_block_transaction(&records, block)?,
            None => WalRecord::encode_transaction(&records)?,
        };
        let lsn = self.wal.append(vec![payload])?[0];
        let mut sealed = false;
        for (plan, record) in plans.iter().zip(&records) {
            sealed |= plan.table.apply(
                lsn,
                ts,
                record.deletes.as_ref(),
                record.inserts.as_ref(),
                true,
                &|_| true,
            )?;
        }
        Ok(CommitOutcome { ts, sealed })
    }
}

/// Checks one table's part of a commit under its write lock.
fn check(table: Arc<TableRuntime>, part: TableChanges, snapshot_ts: u64) -> Result<TablePlan> {
    let seen: Vec<PkValue> = part.seen_keys.as_ref().map(keys_of).unwrap_or_default();
    let rows = part.rows;
    let (schema, name) = {
        let definition = table.definition.read();
        (definition.schema.clone(), definition.name.clone())
    };
    {
        let deletes = table.deletes.read();
        if let Some(key) = seen.iter().find(|key| {
            deletes
                .timestamps(as_ref(key))
                .iter()
                .any(|d| *d > snapshot_ts)
        }) {
            return Err(EngineError::SerializationFailure {
                table: name,
                key: key.to_string(),
            });
        }
    }
    let rows = match rows.filter(|r| r.num_rows() > 0) {
        Some(rows) => {
            let rows = coerce_batch(&rows, &schema, &schema.arrow_schema())?;
            check_not_null(&rows, &schema, &name)?;
            Some(rows)
        }
        None => None,
    };
    let data = table.data.read();
    if let Some(rows) = &rows {
        let seen: HashSet<&PkValue> = seen.iter().collect();
        let mut written = HashSet::with_capacity(rows.num_rows());
        for key in pk_values(rows.column(schema.primary_key))
            .into_iter()
            .flatten()
        {
            let exists = !seen.contains(&key) && data.live.contains(&key);
            if exists || !written.insert(key.clone()) {
                return Err(EngineError::DuplicateKey {
                    table: name,
                    column: schema.pk().name.clone(),
                    key: key.to_string(),
                });
            }
        }
    }
    let deletes = seen.into_iter().filter(|k| data.live.contains(k)).collect();
    drop(data);
    Ok(TablePlan {
        table,
        deletes,
        rows,
    })
}
