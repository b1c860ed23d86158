//! The contract between execution and the storage roles: a [`TableSource`]
//! describes a table, hands out [`TableSnapshot`]s and the fragments a
//! vector search scatters to.

use std::sync::Arc;

use quiver_common::schema::TableSchema;

use crate::fragments::{SnapshotFragment, TableFragment};
use crate::source::{IndexDescription, TableSnapshot};

/// Something that can hand out snapshots of one table.
pub trait TableSource: Send + Sync + std::fmt::Debug {
    /// The table's id.
    fn table_id(&self) -> u64;
    /// The current definition of the table.
    fn table_schema(&self) -> TableSchema;
    /// A snapshot at `read_ts`, or at a fresh timestamp when `None`.
    fn snapshot(&self, read_ts: Option<u64>) -> TableSnapshot;
    /// The vector indexes defined on the table.
    fn vector_indexes(&self) -> Vec<IndexDescription> {
        Vec::new()
    }
    /// The fragments a vector search or scan scatters to, reading at `read_ts` (a
    /// fresh timestamp when `None`), and the timestamp they read at. In
    /// process: the parts of one snapshot, per shard its sealed and its
    /// growing segments ([`SnapshotFragment::split`]).
    fn fragments(&self, read_ts: Option<u64>) -> (u64, Vec<Arc<dyn TableFragment>>) {
        let snapshot = self.snapshot(read_ts);
        let fragments = SnapshotFragment::split(&snapshot)
            .into_iter()
            .map(|f| Arc::new(f) as Arc<dyn TableFragment>)
            .collect();
        (snapshot.read_ts, fragments)
    }
}
