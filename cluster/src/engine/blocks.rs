//! Catalog changes of transaction blocks (see [`PendingChange`]): the
//! tables a block creates or drops stay pending until the block ends;
//! ending it applies or discards all of them in one meta-store
//! transaction; recovery ends every block a crash left pending, as
//! committed exactly when the block's marked WAL entry is durable.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use quiver_common::schema::TableSchema;
use quiver_storage::MetaBatch;

use super::Engine;
use crate::api::coordinator::{client_table_name, is_pending_name, PendingChange, PendingKind};
use crate::api::TableRef;
use crate::catalog_table::{streaming_definition, CatalogTable};
use crate::coordinator::{encode, keys};
use crate::error::{EngineError, Result};

impl Engine {
    /// Creates a table for transaction block `block`: it exists at once,
    /// named [`pending_table_name`](crate::api::coordinator::pending_table_name)
    /// until the block ends, and its name is taken for every other session.
    pub async fn create_table_in_block(
        &self,
        table: &TableRef,
        schema: TableSchema,
        shards: u32,
        if_not_exists: bool,
        block: u64,
    ) -> Result<bool> {
        let _ddl = self.ddl_lock.lock().await;
        let pending = PendingChange {
            block,
            kind: PendingKind::Create,
        };
        self.create_table_locked(
            &table.database,
            &table.name,
            schema,
            shards,
            if_not_exists,
            Some(pending),
        )
        .await
    }

    /// Drops a table for transaction block `block`. A table the block
    /// created (named by its pending name) goes at once: no one else sees
    /// it. Any other table is marked dropped by the block and stays for
    /// every other session until the block commits; a table another block
    /// is dropping is [`EngineError::TableLocked`].
    pub async fn drop_table_in_block(
        &self,
        table: &TableRef,
        if_exists: bool,
        block: u64,
    ) -> Result<bool> {
        let _ddl = self.ddl_lock.lock().await;
        if is_pending_name(&table.name) {
            return self
                .drop_table_locked(&table.database, &table.name, if_exists)
                .await;
        }
        let found = {
            let state = self.catalog.read();
            state
                .by_name
                .get(&(table.database.clone(), table.name.clone()))
                .and_then(|id| state.tables.get(id))
                .cloned()
        };
        let missing = || {
            if if_exists {
                Ok(false)
            } else {
                Err(EngineError::TableNotFound {
                    database: table.database.clone(),
                    table: table.name.clone(),
                })
            }
        };
        let Some(found) = found else {
            return missing();
        };
        let Ok(_records) = found.lock_records().await else {
            return missing();
        };
        let mut meta = found.meta.read().clone();
        match meta.pending {
            Some(p) if p.block == block => return missing(),
            Some(_) => {
                return Err(EngineError::TableLocked {
                    table: table.name.clone(),
                })
            }
            None => {}
        }
        let _change = self.catalog_change();
        meta.pending = Some(PendingChange {
            block,
            kind: PendingKind::Drop,
        });
        self.meta.put(&keys::table(meta.id), encode(&meta)).await?;
        found.meta.write().pending = meta.pending;
        Ok(true)
    }

    /// Commits (`commit`) or aborts the pending catalog changes of
    /// transaction block `block`; a block with none is no error.
    pub async fn end_block(&self, block: u64, commit: bool) -> Result<()> {
        let _ddl = self.ddl_lock.lock().await;
        self.end_block_locked(block, commit).await
    }

    /// [`Engine::end_block`], the caller holding `ddl_lock`.
    async fn end_block_locked(&self, block: u64, commit: bool) -> Result<()> {
        let tables: Vec<Arc<CatalogTable>> = self
            .catalog
            .read()
            .tables
            .values()
            .filter(|t| t.meta.read().pending.is_some_and(|p| p.block == block))
            .cloned()
            .collect();
        if tables.is_empty() {
            return Ok(());
        }
        let _change = self.catalog_change();
        // Table ids ascending (the catalog's order): two ends cannot
        // deadlock; the records locks keep flushes and index builds from
        // writing the tables' records meanwhile.
        let mut guards = Vec::with_capacity(tables.len());
        for table in &tables {
            guards.push(table.records.lock().await);
        }
        let mut batch = MetaBatch::new();
        let mut kept = Vec::new();
        let mut gone = Vec::new();
        for (i, table) in tables.iter().enumerate() {
            let mut meta = table.meta.read().clone();
            let Some(pending) = meta.pending.take() else {
                continue;
            };
            // A created table stays when the block commits, a dropped one
            // when it aborts.
            if (pending.kind == PendingKind::Create) == commit {
                meta.name = client_table_name(&meta.name).to_string();
                batch = batch.put(keys::table(meta.id), encode(&meta));
                kept.push((table.clone(), meta));
            } else {
                batch = batch
                    .delete(keys::table(meta.id))
                    .put(keys::dropped_table(meta.id), encode(&true));
                gone.push(i);
            }
        }
        self.meta.apply(batch).await?;
        for &i in &gone {
            guards[i].dropped = true;
        }
        drop(guards);
        {
            let mut state = self.catalog.write();
            // The dropped first: a table the block created may take the
            // name of one it dropped.
            for &i in &gone {
                let meta = tables[i].meta.read();
                state
                    .by_name
                    .remove(&(meta.database.clone(), meta.name.clone()));
                state.tables.remove(&meta.id);
            }
            for (table, meta) in &kept {
                let before = table.meta.read().name.clone();
                state.by_name.remove(&(meta.database.clone(), before));
                state
                    .by_name
                    .insert((meta.database.clone(), meta.name.clone()), meta.id);
                *table.meta.write() = meta.clone();
            }
        }
        for (_, meta) in &kept {
            self.streaming.update_table(streaming_definition(meta))?;
        }
        for &i in &gone {
            let id = tables[i].id();
            self.streaming.close_table(id).await?;
            self.query.release_table(id).await?;
            self.finish_table_drop(id).await?;
        }
        Ok(())
    }

    /// Ends every block a crash left pending: committed when its WAL entry
    /// (marked with the block's id) is durable, else aborted. Returns how
    /// many blocks were ended.
    pub(super) async fn end_pending_blocks(&self, committed: &HashSet<u64>) -> Result<usize> {
        let blocks: BTreeSet<u64> = self
            .catalog
            .read()
            .tables
            .values()
            .filter_map(|t| t.meta.read().pending.map(|p| p.block))
            .collect();
        let _ddl = self.ddl_lock.lock().await;
        for &block in &blocks {
            self.end_block_locked(block, committed.contains(&block))
                .await?;
        }
        Ok(blocks.len())
    }
}
