//! The state of a transaction block (a leaf of the instance): its
//! snapshot, its buffered writes in order, its savepoints; their net
//! effect by table (what `COMMIT` sends) and the [`TransactionView`] its
//! statements read through. The statements that drive it are in
//! [`super::transaction`].

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::compute::interleave_record_batch;
use quiver_cluster::segment_files::keys_batch;
use quiver_cluster::table::with_timestamp;
use quiver_common::schema::TableSchema;
use quiver_exec::pk::{pk_values, PkValue};
use quiver_exec::transaction_view::{PendingTable, TransactionView};

use crate::error::{Result, SqlError};

/// An open transaction block of a session.
#[derive(Default)]
pub(crate) struct TransactionBlock {
    /// The snapshot timestamp, taken by the block's first statement.
    pub(crate) snapshot: Option<u64>,
    /// The buffered writes, in order.
    pub(crate) writes: Vec<BufferedWrite>,
    /// Savepoints: name and how many writes preceded it.
    pub(crate) savepoints: Vec<(String, usize)>,
    /// An error aborted the block: only `ROLLBACK` (to a savepoint) helps.
    pub(crate) failed: bool,
    /// `READ ONLY`: writes are refused (`25006`).
    pub(crate) read_only: bool,
    /// The view of the writes, built when a statement first needs it.
    pub(crate) view: Option<Arc<TransactionView>>,
}

/// One buffered write.
pub(crate) struct BufferedWrite {
    pub(crate) table_id: u64,
    pub(crate) schema: TableSchema,
    pub(crate) change: Change,
}

pub(crate) enum Change {
    /// Rows in the table's user schema (staged), and for each whether its
    /// key was visible to the block when it wrote it.
    Rows {
        rows: RecordBatch,
        existed: Vec<bool>,
    },
    /// Keys deleted (each visible to the block).
    Delete(Vec<PkValue>),
}

/// What the block's writes leave of one table's keys.
pub(crate) struct KeyState {
    /// The key's row was stored at the snapshot (the block replaces or
    /// deletes it).
    pub(crate) seen: bool,
    /// The block's row for the key: (write, row), or none (deleted).
    row: Option<(usize, usize)>,
}

/// The net effect of the block on one table.
pub(crate) struct TableNet {
    pub(crate) schema: TableSchema,
    pub(crate) keys: HashMap<PkValue, KeyState>,
}

impl TransactionBlock {
    /// The net effect of the buffered writes, by table.
    pub(crate) fn net(&self) -> HashMap<u64, TableNet> {
        let mut tables: HashMap<u64, TableNet> = HashMap::new();
        for (at, write) in self.writes.iter().enumerate() {
            let net = tables.entry(write.table_id).or_insert_with(|| TableNet {
                schema: write.schema.clone(),
                keys: HashMap::new(),
            });
            match &write.change {
                Change::Rows { rows, existed } => {
                    let keys = pk_values(rows.column(write.schema.primary_key));
                    for (row, (key, existed)) in keys.into_iter().zip(existed).enumerate() {
                        let Some(key) = key else { continue };
                        net.keys
                            .entry(key)
                            .or_insert(KeyState {
                                seen: *existed,
                                row: None,
                            })
                            .row = Some((at, row));
                    }
                }
                Change::Delete(keys) => {
                    for key in keys {
                        net.keys
                            .entry(key.clone())
                            .or_insert(KeyState {
                                seen: true,
                                row: None,
                            })
                            .row = None;
                    }
                }
            }
        }
        tables
    }

    /// The rows the block leaves in a table (user schema).
    pub(crate) fn rows_of(&self, net: &TableNet) -> Result<Option<RecordBatch>> {
        let mut picks: Vec<(usize, usize)> = net.keys.values().filter_map(|k| k.row).collect();
        if picks.is_empty() {
            return Ok(None);
        }
        picks.sort_unstable();
        let mut sources: Vec<usize> = picks.iter().map(|(w, _)| *w).collect();
        sources.dedup();
        let batches = sources
            .iter()
            .map(|w| match &self.writes[*w].change {
                Change::Rows { rows, .. } => Ok(rows),
                Change::Delete(_) => Err(SqlError::Internal(
                    "a transaction's row points at a delete".into(),
                )),
            })
            .collect::<Result<Vec<&RecordBatch>>>()?;
        let indices: Vec<(usize, usize)> = picks
            .iter()
            .map(|(w, r)| (sources.binary_search(w).unwrap_or_default(), *r))
            .collect();
        Ok(Some(interleave_record_batch(&batches, &indices)?))
    }

    /// The view statements of the block read through.
    pub(crate) fn view(&mut self, snapshot: u64) -> Result<Arc<TransactionView>> {
        if let Some(view) = &self.view {
            return Ok(view.clone());
        }
        let mut tables = HashMap::new();
        for (table_id, net) in self.net() {
            let rows = match self.rows_of(&net)? {
                Some(rows) => Some(with_timestamp(
                    &rows,
                    &net.schema.storage_schema(),
                    snapshot,
                )?),
                None => None,
            };
            let keys: Vec<PkValue> = net.keys.into_keys().collect();
            let hidden_keys = keys_batch(&net.schema, &keys)?;
            tables.insert(table_id, Arc::new(PendingTable { rows, hidden_keys }));
        }
        let view = Arc::new(TransactionView {
            read_ts: snapshot,
            tables,
        });
        self.view = Some(view.clone());
        Ok(view)
    }
}
