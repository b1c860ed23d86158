//! What a transaction reads: its snapshot overlaid with its own writes.
//!
//! A transaction block reads every table at one snapshot timestamp (a TSO
//! timestamp no stored row carries) and buffers its writes until `COMMIT`.
//! The session hands execution a [`TransactionView`] (a DataFusion config
//! extension): for each table it wrote, the rows it holds (stamped at the
//! snapshot timestamp) and the keys it wrote or deleted. Scans and searches
//! then read the table's fragments with those keys hidden
//! ([`HidingFragment`], which puts them in every request, so the hiding
//! crosses a transport) plus one in-process fragment of the pending rows.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::RecordBatch;
use datafusion::catalog::Session;
use datafusion::common::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use futures::future::BoxFuture;
use quiver_common::schema::TableSchema;

use crate::fragments::{
    FragmentReply, FragmentScan, FragmentSearch, SnapshotFragment, TableFragment,
};
use crate::source::{Segment, SegmentKind, TableSnapshot};

/// A table's writes pending in a transaction.
#[derive(Debug, Clone, Default)]
pub struct PendingTable {
    /// The rows the transaction wrote and holds, in the table's storage
    /// schema, stamped at the snapshot timestamp.
    pub rows: Option<RecordBatch>,
    /// Every key the transaction wrote or deleted (one column, typed as
    /// the key): the stored rows with these keys are hidden from it.
    pub hidden_keys: Option<RecordBatch>,
}

/// A transaction's snapshot and its pending writes, by table id.
#[derive(Debug, Clone, Default)]
pub struct TransactionView {
    pub read_ts: u64,
    pub tables: HashMap<u64, Arc<PendingTable>>,
}

/// The pending writes of `table_id` in the session's transaction, if any.
pub fn session_pending(state: &dyn Session, table_id: u64) -> Option<Arc<PendingTable>> {
    state
        .config()
        .get_extension::<TransactionView>()?
        .tables
        .get(&table_id)
        .cloned()
}

/// `fragments` of a table as its transaction sees them: the stored rows of
/// the keys it wrote hidden, its own rows added.
pub fn overlay(
    fragments: Vec<Arc<dyn TableFragment>>,
    pending: &PendingTable,
    table_id: u64,
    schema: &TableSchema,
    read_ts: u64,
) -> Vec<Arc<dyn TableFragment>> {
    let mut out: Vec<Arc<dyn TableFragment>> = match &pending.hidden_keys {
        Some(keys) => fragments
            .into_iter()
            .map(|inner| {
                Arc::new(HidingFragment {
                    inner,
                    hidden_keys: keys.clone(),
                }) as Arc<dyn TableFragment>
            })
            .collect(),
        None => fragments,
    };
    if let Some(rows) = pending.rows.as_ref().filter(|r| r.num_rows() > 0) {
        let snapshot = TableSnapshot {
            table_id,
            schema: schema.clone(),
            segments: vec![Segment {
                id: u64::MAX,
                shard: 0,
                kind: SegmentKind::Growing,
                batches: Arc::new(vec![rows.clone()]),
                rows: rows.num_rows(),
                indexes: Vec::new(),
                stats: None,
            }],
            deletes: Default::default(),
            read_ts,
        };
        out.extend(
            SnapshotFragment::split(&snapshot).into_iter().map(|f| {
                Arc::new(f.labelled("transaction's own writes")) as Arc<dyn TableFragment>
            }),
        );
    }
    out
}

/// A fragment read with some keys' stored rows hidden.
#[derive(Debug)]
pub struct HidingFragment {
    inner: Arc<dyn TableFragment>,
    hidden_keys: RecordBatch,
}

impl TableFragment for HidingFragment {
    fn label(&self) -> String {
        self.inner.label()
    }

    fn segments(&self) -> usize {
        self.inner.segments()
    }

    fn stored_rows(&self) -> usize {
        self.inner.stored_rows()
    }

    fn scan(
        &self,
        request: FragmentScan,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let request = FragmentScan {
            hidden_keys: Some(self.hidden_keys.clone()),
            ..request
        };
        self.inner.scan(request, context)
    }

    fn search(
        &self,
        request: FragmentSearch,
        context: Arc<TaskContext>,
    ) -> BoxFuture<'static, Result<FragmentReply>> {
        let request = FragmentSearch {
            hidden_keys: Some(self.hidden_keys.clone()),
            ..request
        };
        self.inner.search(request, context)
    }
}
