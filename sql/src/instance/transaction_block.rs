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
use quiver_common::status::StatusCode;
use quiver_exec::pk::{pk_values, PkValue};
use quiver_exec::transaction_view::{PendingTable, TransactionView};

use super::block_catalog::CatalogBlock;
use crate::error::{Result, SqlError};

/// An open transaction block of a session.
#[derive(Default)]
pub(crate) struct TransactionBlock {
    /// The snapshot timestamp, taken by the block's first statement.
    pub(crate) snapshot: Option<u64>,
    /// The buffered writes, in order.
    pub(crate) writes: Vec<BufferedWrite>,
    /// Savepoints: name, how many writes and how many catalog changes
    /// preceded it.
    pub(crate) savepoints: Vec<(String, usize, usize)>,
    /// An error aborted the block: only `ROLLBACK` (to a savepoint) helps.
    pub(crate) failed: bool,
    /// `READ ONLY`: writes are refused (`25006`).
    pub(crate) read_only: bool,
    /// The view of the writes, built when a statement first needs it.
    pub(crate) view: Option<Arc<TransactionView>>,
    /// The block's catalog changes, once it made one (`CREATE TABLE`,
    /// `DROP TABLE`, `CREATE INDEX` on a table it created).
    pub(crate) catalog: Option<CatalogBlock>,
}

impl BufferedWrite {
    /// The memory it holds.
    pub(crate) fn bytes(&self) -> usize {
        match &self.change {
            Change::Rows { rows, existed } => rows.get_array_memory_size() + existed.len(),
            Change::Delete(keys) => keys
                .iter()
                .map(|k| match k {
                    PkValue::Int(_) => 8,
                    PkValue::Str(s) => s.len() + 24,
                })
                .sum(),
        }
    }
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
    /// Buffers a write, unless the block would then hold more than
    /// `limit` bytes (`54000`).
    pub(crate) fn push(&mut self, write: BufferedWrite, limit: usize) -> Result<()> {
        let held: usize = self.writes.iter().map(BufferedWrite::bytes).sum();
        if held + write.bytes() > limit {
            return Err(SqlError::Query {
                code: StatusCode::LimitExceeded,
                message: format!(
                    "transaction too large: its writes would hold more than {limit} bytes; commit in smaller transactions"
                ),
            });
        }
        self.writes.push(write);
        self.view = None;
        Ok(())
    }

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

#[cfg(test)]
mod tests {
    use quiver_common::schema::{ColumnDef, ColumnType};

    use super::*;

    fn schema() -> TableSchema {
        TableSchema {
            columns: vec![
                ColumnDef::new("id", ColumnType::Int64),
                ColumnDef::new("n", ColumnType::Int64),
            ],
            primary_key: 0,
        }
    }

    fn rows(ids: &[i64], n: i64) -> BufferedWrite {
        let schema = schema();
        let batch = RecordBatch::try_new(
            schema.arrow_schema(),
            vec![
                Arc::new(arrow::array::Int64Array::from(ids.to_vec())),
                Arc::new(arrow::array::Int64Array::from(vec![n; ids.len()])),
            ],
        )
        .unwrap();
        BufferedWrite {
            table_id: 1,
            schema,
            change: Change::Rows {
                rows: batch,
                existed: vec![false; ids.len()],
            },
        }
    }

    fn delete(ids: &[i64]) -> BufferedWrite {
        BufferedWrite {
            table_id: 1,
            schema: schema(),
            change: Change::Delete(ids.iter().map(|i| PkValue::Int(*i)).collect()),
        }
    }

    #[test]
    fn the_net_effect_keeps_the_last_write_of_each_key() {
        let mut block = TransactionBlock::default();
        block.push(rows(&[1, 2, 3], 10), usize::MAX).unwrap();
        block.push(delete(&[2, 7]), usize::MAX).unwrap();
        block.push(rows(&[3], 30), usize::MAX).unwrap();
        let net = block.net().remove(&1).unwrap();
        assert_eq!(net.keys.len(), 4);
        assert!(!net.keys[&PkValue::Int(1)].seen, "inserted by the block");
        assert!(net.keys[&PkValue::Int(7)].seen, "a stored row it deleted");
        assert!(net.keys[&PkValue::Int(2)].row.is_none());
        let rows = block.rows_of(&net).unwrap().unwrap();
        let mut left: Vec<(i64, i64)> = (0..rows.num_rows())
            .map(|r| {
                let col = |c: usize| {
                    rows.column(c)
                        .as_any()
                        .downcast_ref::<arrow::array::Int64Array>()
                        .unwrap()
                        .value(r)
                };
                (col(0), col(1))
            })
            .collect();
        left.sort_unstable();
        assert_eq!(left, [(1, 10), (3, 30)]);
        let view = block.view(99).unwrap();
        let pending = &view.tables[&1];
        assert_eq!(pending.rows.as_ref().unwrap().num_rows(), 2);
        assert_eq!(pending.hidden_keys.as_ref().unwrap().num_rows(), 4);
    }

    #[test]
    fn a_block_over_its_size_limit_refuses_the_write() {
        let mut block = TransactionBlock::default();
        let write = rows(&[1, 2], 0);
        let limit = write.bytes() + 8;
        block.push(write, limit).unwrap();
        let err = block.push(rows(&[3], 0), limit).unwrap_err();
        assert_eq!(err.status_code(), StatusCode::LimitExceeded);
        assert!(
            err.to_string().starts_with("transaction too large"),
            "{err}"
        );
        assert_eq!(block.writes.len(), 1, "nothing of the refused write");
    }
}
