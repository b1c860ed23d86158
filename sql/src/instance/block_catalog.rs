//! A transaction block's catalog changes as its session sees them: the
//! tables it created (pending in the coordinator under a name no client
//! can send, see `quiver_cluster::api::PendingChange`) under the names
//! the client gave them, the tables it dropped gone; every other session
//! sees the catalog as it was until the block commits. [`CatalogBlock`]
//! ends the block's changes in the coordinator (commit or abort), and
//! aborts them when a session ends without ending its block.

use std::collections::BTreeSet;
use std::sync::Arc;

use parking_lot::RwLock;
use quiver_cluster::api::coordinator::pending_table_name;
use quiver_cluster::api::{Coordinator, EndBlock};
use quiver_exec::catalog::CatalogSource;
use quiver_exec::table_source::TableSource;

use crate::error::Result;

/// What a block changed, by (database, table) as the client names them.
#[derive(Debug, Default)]
pub(crate) struct BlockTables {
    /// The block's id once it changed the catalog.
    pub(crate) block: Option<u64>,
    created: BTreeSet<(String, String)>,
    dropped: BTreeSet<(String, String)>,
    /// How many changes the block made (a savepoint records it).
    pub(crate) changes: usize,
}

/// The block state a session and its DataFusion catalog share.
pub(crate) type SharedBlockTables = Arc<RwLock<BlockTables>>;

/// How a session's block sees a table name.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum BlockName {
    /// Not changed by the block: the name itself.
    Unchanged,
    /// Created by the block: its pending name.
    Created(String),
    /// Dropped by the block.
    Dropped,
}

impl BlockTables {
    /// How the block sees `database.table`.
    pub(crate) fn lookup(&self, database: &str, table: &str) -> BlockName {
        let Some(block) = self.block else {
            return BlockName::Unchanged;
        };
        let key = (database.to_string(), table.to_string());
        if self.created.contains(&key) {
            BlockName::Created(pending_table_name(table, block))
        } else if self.dropped.contains(&key) {
            BlockName::Dropped
        } else {
            BlockName::Unchanged
        }
    }

    /// Records a table the block created.
    pub(crate) fn created(&mut self, database: &str, table: &str) {
        self.created
            .insert((database.to_string(), table.to_string()));
        self.changes += 1;
    }

    /// Records another change (an index on a table the block created).
    pub(crate) fn changed(&mut self) {
        self.changes += 1;
    }

    /// Records a table the block dropped (one it created is just gone).
    pub(crate) fn dropped(&mut self, database: &str, table: &str) {
        let key = (database.to_string(), table.to_string());
        if !self.created.remove(&key) {
            self.dropped.insert(key);
        }
        self.changes += 1;
    }
}

/// A session's catalog for DataFusion: the shared one, seen through the
/// session's block.
#[derive(Debug)]
pub(crate) struct SessionCatalog {
    pub(crate) shared: Arc<dyn CatalogSource>,
    pub(crate) block: SharedBlockTables,
}

impl CatalogSource for SessionCatalog {
    fn schema_names(&self) -> Vec<String> {
        self.shared.schema_names()
    }

    fn table_names(&self, schema: &str) -> Vec<String> {
        let mut names = self.shared.table_names(schema);
        let block = self.block.read();
        if block.block.is_some() {
            names.retain(|n| !block.dropped.contains(&(schema.to_string(), n.clone())));
            names.extend(
                block
                    .created
                    .iter()
                    .filter(|(db, _)| db == schema)
                    .map(|(_, name)| name.clone()),
            );
            names.sort();
        }
        names
    }

    fn table(&self, schema: &str, name: &str) -> Option<Arc<dyn TableSource>> {
        let lookup = self.block.read().lookup(schema, name);
        match lookup {
            BlockName::Unchanged => self.shared.table(schema, name),
            BlockName::Created(pending) => self.shared.table(schema, &pending),
            BlockName::Dropped => None,
        }
    }
}

/// The catalog changes of an open block: ended by [`CatalogBlock::end`];
/// dropped without it (the session ended mid-block), it aborts them.
pub(crate) struct CatalogBlock {
    pub(crate) id: u64,
    coordinator: Arc<dyn Coordinator>,
    tables: SharedBlockTables,
    ended: bool,
}

impl CatalogBlock {
    /// Starts the catalog changes of a block with id `id`.
    pub(crate) fn new(
        id: u64,
        coordinator: Arc<dyn Coordinator>,
        tables: SharedBlockTables,
    ) -> Self {
        tables.write().block = Some(id);
        Self {
            id,
            coordinator,
            tables,
            ended: false,
        }
    }

    /// Commits or aborts the changes in the coordinator.
    pub(crate) async fn end(mut self, commit: bool) -> Result<()> {
        self.ended = true;
        *self.tables.write() = BlockTables::default();
        self.coordinator
            .end_block(EndBlock {
                block: self.id,
                commit,
            })
            .await?;
        Ok(())
    }
}

impl CatalogBlock {
    /// Leaves the changes pending for recovery to end: the block's WAL
    /// entry may or may not be durable (its append's outcome is unknown),
    /// and only the WAL can say which.
    pub(crate) fn leave_to_recovery(mut self) {
        self.ended = true;
        *self.tables.write() = BlockTables::default();
    }
}

impl Drop for CatalogBlock {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        *self.tables.write() = BlockTables::default();
        let coordinator = self.coordinator.clone();
        let block = self.id;
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = coordinator
                    .end_block(EndBlock {
                        block,
                        commit: false,
                    })
                    .await
                {
                    tracing::warn!(block, error = %e, "aborting the catalog changes of an ended session's transaction block");
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_sees_what_it_created_and_not_what_it_dropped() {
        let mut tables = BlockTables::default();
        assert_eq!(tables.lookup("public", "a"), BlockName::Unchanged);
        tables.block = Some(7);
        tables.created("public", "a");
        tables.dropped("public", "b");
        assert_eq!(
            tables.lookup("public", "a"),
            BlockName::Created(pending_table_name("a", 7))
        );
        assert_eq!(tables.lookup("public", "b"), BlockName::Dropped);
        assert_eq!(tables.lookup("other", "a"), BlockName::Unchanged);
        // Dropping what the block created leaves nothing to drop at commit.
        tables.dropped("public", "a");
        assert_eq!(tables.lookup("public", "a"), BlockName::Unchanged);
        assert_eq!(tables.changes, 3);
    }
}
