//! [`TableView`]: a table as execution reads it, the [`TableSource`] the
//! engine hands the access layer: the table's definition as the
//! coordinator's catalog gave it when the view was made (id, schema, index
//! definitions: a statement plans over one version of them) and, by table
//! id, the read sides ([`TableReads`]) of the two roles that hold its
//! data: the streaming node's part (per shard its growing segment, and
//! its sealed segments not flushed yet) and the query node's (per shard
//! the flushed segments it serves), each over its own node's state and
//! delete map, merged as [`crate::api::reads`] describes.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::error::{DataFusionError, Result};
use quiver_common::schema::TableSchema;
use quiver_exec::fragments::TableFragment;
use quiver_exec::source::IndexDescription;
use quiver_exec::table_source::TableSource;

use crate::api::reads::{ReadTable, TableReads};
use crate::catalog_table::CatalogTable;
use crate::indexes::IndexMeta;

/// One table over its streaming node's and its query node's read sides.
#[derive(Debug, Clone)]
pub struct TableView {
    table_id: u64,
    schema: TableSchema,
    /// The index records of the table.
    indexes: Vec<IndexMeta>,
    streaming: Arc<dyn TableReads>,
    query: Arc<dyn TableReads>,
}

impl TableView {
    /// The table `table` of the catalog as it is now, its data read from
    /// the streaming node's and the query node's read sides.
    pub fn new(
        table: &CatalogTable,
        streaming: Arc<dyn TableReads>,
        query: Arc<dyn TableReads>,
    ) -> Self {
        Self {
            table_id: table.id(),
            schema: table.schema(),
            indexes: table.meta.read().indexes.clone(),
            streaming,
            query,
        }
    }

    fn request(&self, read_ts: Option<u64>) -> ReadTable {
        ReadTable {
            table_id: self.table_id,
            read_ts,
            schema: self.schema.clone(),
            indexes: self.indexes.clone(),
        }
    }
}

fn read_error(e: crate::error::EngineError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

#[async_trait]
impl TableSource for TableView {
    fn table_id(&self) -> u64 {
        self.table_id
    }

    fn table_schema(&self) -> TableSchema {
        self.schema.clone()
    }

    fn vector_indexes(&self) -> Vec<IndexDescription> {
        self.indexes
            .iter()
            .filter_map(|ix| ix.describe(&self.schema))
            .collect()
    }

    /// The streaming node's part first (it picks the read timestamp when
    /// none is given), then the query node's at the same timestamp; per
    /// shard, the query node's sealed segments, then the streaming node's
    /// sealed segments not flushed yet and its growing segment, leaving
    /// out every streaming fragment whose segments the query node covers
    /// already.
    async fn fragments(&self, read_ts: Option<u64>) -> Result<(u64, Vec<Arc<dyn TableFragment>>)> {
        let own = self
            .streaming
            .read_table(self.request(read_ts))
            .await
            .map_err(read_error)?;
        let served = self
            .query
            .read_table(self.request(Some(own.read_ts)))
            .await
            .map_err(read_error)?;
        let covered: HashSet<u64> = served.covered.iter().copied().collect();
        let own_fragments = own
            .fragments
            .into_iter()
            .filter(|f| !f.segment_ids.iter().any(|id| covered.contains(id)));
        let mut parts: Vec<_> = served.fragments.into_iter().chain(own_fragments).collect();
        // Per shard (a stable sort): sealed (query node), sealed not
        // flushed, growing.
        parts.sort_by_key(|f| f.shard);
        Ok((own.read_ts, parts.into_iter().map(|f| f.fragment).collect()))
    }
}
