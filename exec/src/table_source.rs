//! The contract between execution and the storage roles: a [`TableSource`]
//! describes a table and hands out the fragments a search or scan
//! scatters to, each over one node's part of the table.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::error::Result;
use quiver_common::schema::TableSchema;

use crate::fragments::TableFragment;
use crate::source::IndexDescription;

/// One table as execution reads it.
#[async_trait]
pub trait TableSource: Send + Sync + std::fmt::Debug {
    /// The table's id.
    fn table_id(&self) -> u64;
    /// The definition of the table the statement plans over.
    fn table_schema(&self) -> TableSchema;
    /// The vector indexes defined on the table.
    fn vector_indexes(&self) -> Vec<IndexDescription> {
        Vec::new()
    }
    /// The fragments a vector search or scan scatters to, reading at
    /// `read_ts` (a fresh timestamp when `None`), and the timestamp they
    /// read at: per shard, the parts of the nodes holding its data.
    async fn fragments(&self, read_ts: Option<u64>) -> Result<(u64, Vec<Arc<dyn TableFragment>>)>;
}
