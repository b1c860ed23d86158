//! The [`Coordinator`] API served in process by the [`Engine`]: each request
//! is the plain-data form of one of the engine's DDL and catalog methods,
//! so the access layer depends on the API, not on the engine, and a remote
//! coordinator can serve the same messages.

use async_trait::async_trait;

use super::Engine;
use crate::api::{
    AddColumn, CatalogSnapshot, Coordinator, CreateDatabase, CreateIndex, CreateTable,
    DropDatabase, DropIndex, DropTable, EndBlock, ExtensionOutcome, ExtensionRef, IndexBuildStep,
    IndexStatus, PendingKind, RenameTable, SegmentPlacement, SetTableOptions, ShardLayout,
    TableInfo, TableLayout, TableRef, TimestampBatch,
};
use crate::coordinator::TableMeta;
use crate::error::Result;
use crate::shards::channel_name;

/// The name standalone gives its one streaming and query node.
pub const STANDALONE_NODE: &str = "standalone";

#[async_trait]
impl Coordinator for Engine {
    async fn create_database(&self, request: CreateDatabase) -> Result<bool> {
        Engine::create_database(self, &request.name, request.if_not_exists).await
    }

    async fn drop_database(&self, request: DropDatabase) -> Result<bool> {
        Engine::drop_database(self, &request.name, request.if_exists, request.cascade).await
    }

    async fn create_table(&self, request: CreateTable) -> Result<bool> {
        let CreateTable {
            table,
            schema,
            shards,
            if_not_exists,
            in_block,
        } = request;
        match in_block {
            None => {
                Engine::create_sharded_table(
                    self,
                    &table.database,
                    &table.name,
                    schema,
                    shards,
                    if_not_exists,
                )
                .await
            }
            Some(block) => {
                Engine::create_table_in_block(self, &table, schema, shards, if_not_exists, block)
                    .await
            }
        }
    }

    async fn drop_table(&self, request: DropTable) -> Result<bool> {
        match request.in_block {
            None => {
                Engine::drop_table(
                    self,
                    &request.table.database,
                    &request.table.name,
                    request.if_exists,
                )
                .await
            }
            Some(block) => {
                Engine::drop_table_in_block(self, &request.table, request.if_exists, block).await
            }
        }
    }

    async fn end_block(&self, request: EndBlock) -> Result<()> {
        Engine::end_block(self, request.block, request.commit).await
    }

    async fn rename_table(&self, request: RenameTable) -> Result<()> {
        Engine::rename_table(
            self,
            &request.table.database,
            &request.table.name,
            &request.new_name,
        )
        .await
    }

    async fn add_column(&self, request: AddColumn) -> Result<bool> {
        let AddColumn {
            table,
            column,
            if_not_exists,
        } = request;
        Engine::add_column(self, &table.database, &table.name, column, if_not_exists).await
    }

    async fn set_table_options(&self, request: SetTableOptions) -> Result<()> {
        Engine::set_table_options(
            self,
            &request.table.database,
            &request.table.name,
            &request.changes,
        )
        .await
    }

    async fn create_index(&self, request: CreateIndex) -> Result<Option<String>> {
        let CreateIndex {
            table,
            definition,
            if_not_exists,
        } = request;
        Engine::create_index(
            self,
            &table.database,
            &table.name,
            definition,
            if_not_exists,
        )
        .await
    }

    async fn create_extension(&self, extension: ExtensionRef) -> Result<ExtensionOutcome> {
        Engine::create_extension(self, &extension.database, &extension.name).await
    }

    async fn drop_extension(&self, extension: ExtensionRef) -> Result<ExtensionOutcome> {
        Engine::drop_extension(self, &extension.database, &extension.name).await
    }

    async fn drop_index(&self, request: DropIndex) -> Result<bool> {
        Engine::drop_index(self, &request.database, &request.name, request.if_exists).await
    }

    async fn index_statuses(&self) -> Result<Vec<IndexStatus>> {
        Engine::index_statuses(self).await
    }

    async fn table_index_statuses(&self, table: TableRef) -> Result<Vec<IndexStatus>> {
        Engine::table_index_statuses(self, &table.database, &table.name).await
    }

    async fn catalog(&self) -> Result<CatalogSnapshot> {
        // Read the version first: a change that starts after this read
        // moves it, so a snapshot is never newer than its version says
        // without the version having moved since.
        let version = Engine::catalog_version(self);
        let state = self.catalog.read();
        let tables = state
            .tables
            .values()
            .map(|table| table.meta.read())
            // A table a block is creating is the block's alone.
            .filter(|meta| !meta.pending.is_some_and(|p| p.kind == PendingKind::Create))
            .map(|meta| table_info(&meta))
            .collect();
        Ok(CatalogSnapshot {
            version,
            databases: state.databases.iter().cloned().collect(),
            tables,
            extensions: state
                .extensions
                .iter()
                .map(|(database, name)| ExtensionRef {
                    database: database.clone(),
                    name: name.clone(),
                })
                .collect(),
        })
    }

    async fn catalog_version(&self) -> Result<u64> {
        Ok(Engine::catalog_version(self))
    }

    async fn describe_table(&self, table: TableRef) -> Result<TableInfo> {
        let runtime = self.table(&table.database, &table.name)?;
        let info = table_info(&runtime.meta.read());
        Ok(info)
    }

    async fn allocate_timestamps(&self, count: u32) -> Result<TimestampBatch> {
        let count = count.max(1);
        let first = self.tso.next_batch(count)?;
        Ok(TimestampBatch { first, count })
    }

    async fn compact(&self, table: TableRef) -> Result<usize> {
        self.compact_table(&table.database, &table.name).await
    }

    async fn build_index_step(&self, table: TableRef) -> Result<IndexBuildStep> {
        let built = self
            .build_indexes_limited(&table.database, &table.name, 1, &|_, _| {})
            .await?;
        let runtime = self.table(&table.database, &table.name)?;
        let missing = self.missing_index_count(&runtime).await?;
        Ok(IndexBuildStep { built, missing })
    }

    async fn request_maintenance(&self) -> Result<()> {
        self.wake_maintenance();
        Ok(())
    }

    async fn read_timestamp(&self) -> Result<u64> {
        Ok(Engine::read_timestamp(self))
    }

    async fn layout(&self, table: TableRef) -> Result<TableLayout> {
        let table_id = self.table(&table.database, &table.name)?.id();
        // The streaming node's part first: a segment handed over meanwhile
        // is then in both, and listed once.
        let own = self.streaming.table_stats(table_id)?;
        let served = self.query.served_segments(table_id).await?;
        // Every shard's channel is carried by the one WAL of the standalone
        // streaming node; its sealed segments are served by the one query node.
        let shards = own
            .growing
            .iter()
            .map(|growing| ShardLayout {
                shard: growing.shard,
                channel: channel_name(table_id, growing.shard),
                streaming_node: STANDALONE_NODE.to_string(),
                growing_segment: growing.segment,
                growing_rows: growing.rows,
                // Sealed segments the query node serves, then those still on
                // the streaming node (not flushed yet).
                sealed_segments: served
                    .iter()
                    .map(|segment| (segment.id, segment.shard, segment.rows as u64))
                    .chain(
                        own.sealed
                            .iter()
                            .filter(|segment| !served.iter().any(|s| s.id == segment.segment))
                            .map(|segment| (segment.segment, segment.shard, segment.rows)),
                    )
                    .filter(|(_, shard, _)| *shard == growing.shard)
                    .map(|(segment, _, rows)| SegmentPlacement {
                        segment,
                        rows,
                        query_node: STANDALONE_NODE.to_string(),
                    })
                    .collect(),
            })
            .collect();
        Ok(TableLayout { table_id, shards })
    }
}

/// The plain-data definition of a table.
fn table_info(meta: &TableMeta) -> TableInfo {
    TableInfo {
        id: meta.id,
        table: TableRef::new(meta.database.clone(), meta.name.clone()),
        schema: meta.schema.clone(),
        shards: meta.shards.max(1),
        options: meta.options.clone(),
        indexes: meta.indexes.clone(),
    }
}
