//! A collection as the door sees it: its table and what the table's
//! options add (partitions, Array fields), read at the start of an RPC —
//! for a read, with the request's consistency level checked and its
//! guarantee timestamp awaited.

use super::door::MilvusDoor;
use super::status::DoorError;
use super::{arrays, consistency, partitions};
use quiver_common::schema::TableSchema;

/// A collection as the door sees it.
pub(super) struct Collection {
    pub(super) table: TableSchema,
    pub(super) partitions: partitions::Partitions,
    pub(super) arrays: arrays::ArrayFields,
}

impl MilvusDoor {
    /// A collection's table and what its options add (partitions, Array
    /// fields), from one read of each.
    pub(super) async fn collection(
        &self,
        database: &str,
        name: &str,
    ) -> Result<Collection, DoorError> {
        let table = self.table(database, name).await?;
        let options = self.handler.table_options(database, name).await?;
        Ok(Collection {
            table,
            partitions: partitions::Partitions::from_options(name, &options)?,
            arrays: arrays::ArrayFields::from_options(&options)?,
        })
    }

    /// [`Self::collection`] for a read (query, search, hybrid search): the
    /// request's consistency level checked and its guarantee timestamp
    /// awaited.
    pub(super) async fn collection_to_read(
        &self,
        database: &str,
        name: &str,
        consistency_level: i32,
        guarantee_timestamp: u64,
    ) -> Result<Collection, DoorError> {
        let collection = self.collection(database, name).await?;
        consistency::checked_level(consistency_level)?;
        self.await_guarantee(guarantee_timestamp).await?;
        Ok(collection)
    }
}
