//! [`TableView`]: a table as execution reads it, the [`TableSource`] the
//! engine hands the access layer — the streaming node's part of the table
//! (growing segments, sealed segments not yet flushed, deletes) and the
//! flushed segments its query node serves, put together in one snapshot.

use std::ops::Deref;
use std::sync::Arc;

use quiver_common::schema::TableSchema;
use quiver_exec::fragments::TableFragment;
use quiver_exec::source::{IndexDescription, TableSnapshot};
use quiver_exec::table_source::TableSource;

use crate::query_node::QueryNode;
use crate::table::TableRuntime;

/// One table over its streaming node's state and its query node.
#[derive(Debug, Clone)]
pub struct TableView {
    runtime: Arc<TableRuntime>,
    query_node: Arc<QueryNode>,
}

impl TableView {
    /// The table `runtime` with the segments `query_node` serves of it.
    pub fn new(runtime: Arc<TableRuntime>, query_node: Arc<QueryNode>) -> Self {
        Self {
            runtime,
            query_node,
        }
    }

    /// The streaming node's part of the table.
    pub fn runtime(&self) -> &Arc<TableRuntime> {
        &self.runtime
    }
}

impl Deref for TableView {
    type Target = TableRuntime;

    fn deref(&self) -> &TableRuntime {
        &self.runtime
    }
}

impl TableSource for TableView {
    fn table_id(&self) -> u64 {
        self.runtime.id()
    }

    fn table_schema(&self) -> TableSchema {
        self.runtime.schema()
    }

    fn snapshot(&self, read_ts: Option<u64>) -> TableSnapshot {
        let table_id = self.runtime.id();
        self.runtime
            .snapshot_with(&|| self.query_node.served(table_id), read_ts)
    }

    fn vector_indexes(&self) -> Vec<IndexDescription> {
        self.runtime.vector_indexes()
    }

    /// Per shard, its sealed segments (the query node's) and its growing
    /// segment (the streaming node's), of one snapshot.
    fn fragments(&self, read_ts: Option<u64>) -> (u64, Vec<Arc<dyn TableFragment>>) {
        let snapshot = self.snapshot(read_ts);
        let read_ts = snapshot.read_ts;
        (read_ts, self.runtime.fragments_of(snapshot))
    }
}
