//! Writes: insert, upsert (whole rows or partial updates) and delete.

use milvus::proto::milvus::{DeleteRequest, MutationResult};
use quiver_sql::handler::WriteKind;

use super::collection::Collection;
use super::convert;
use super::door::MilvusDoor;
use super::rows::ids_of;
use super::status::{ok_status, DoorError};

impl MilvusDoor {
    pub(super) async fn do_insert(
        &self,
        database: &str,
        collection: &str,
        fields: &[milvus::proto::schema::FieldData],
        num_rows: u32,
        partition: &str,
        kind: WriteKind,
    ) -> Result<MutationResult, DoorError> {
        let _partitions_stable = self.partition_changes.read().await;
        let Collection {
            table,
            partitions,
            arrays,
        } = self.collection(database, collection).await?;
        let target = partitions.insert_target(partition)?;
        let fields = arrays.encode_fields(fields)?;
        let partial = matches!(kind, WriteKind::Merge { .. });
        let upsert = kind != WriteKind::Insert;
        let written_partition = convert::PartitionWrite {
            name: target.as_deref(),
            // A partial update moves rows only when told to.
            explicit: !partial || !partition.is_empty(),
        };
        let (batch, sent) = convert::insert_batch(
            &table,
            &fields,
            num_rows,
            upsert,
            partial,
            written_partition,
        )?;
        let kind = match kind {
            WriteKind::Merge { .. } => WriteKind::Merge {
                columns: sent.clone(),
            },
            // Milvus accepts an insert of an existing primary key (it does
            // not deduplicate); Quiver keeps the newest row.
            WriteKind::Insert => WriteKind::Upsert,
            WriteKind::Upsert => WriteKind::Upsert,
        };
        let mut session = self.session().await?;
        let result = self
            .handler
            .write(
                &mut session.session,
                database,
                collection,
                batch,
                &sent,
                kind,
            )
            .await;
        self.give_back(session);
        let written = result?;
        let count = written.rows.num_rows();
        Ok(MutationResult {
            status: Some(ok_status()),
            i_ds: Some(ids_of(&table, written.rows.column(table.primary_key))?),
            insert_cnt: count as i64,
            upsert_cnt: if upsert { count as i64 } else { 0 },
            succ_index: (0..count as u32).collect(),
            // Quiver's timestamps are Milvus' hybrid timestamps.
            timestamp: written.ts,
            ..Default::default()
        })
    }

    pub(super) async fn do_delete(
        &self,
        database: &str,
        r: &DeleteRequest,
    ) -> Result<MutationResult, DoorError> {
        let _partitions_stable = self.partition_changes.read().await;
        let Collection {
            table,
            partitions,
            arrays,
        } = self.collection(database, &r.collection_name).await?;
        let scope = partitions.write_scope(&r.partition_name)?;
        let mut session = self.session().await?;
        let result = async {
            let Some(filter) = self.predicate_expr(
                &mut session.session,
                &table,
                &arrays,
                &r.expr,
                &r.expr_template_values,
            )?
            else {
                return Err(DoorError::invalid(
                    "delete plan can't be empty or always true".to_string(),
                ));
            };
            let filter = match scope {
                Some(scope) => filter.and(scope),
                None => filter,
            };
            Ok(self
                .handler
                .delete_where(&mut session.session, database, &r.collection_name, filter)
                .await?)
        }
        .await;
        self.give_back(session);
        let deleted = result?;
        Ok(MutationResult {
            status: Some(ok_status()),
            delete_cnt: deleted as i64,
            ..Default::default()
        })
    }

    /// Flush: acknowledged writes are already durable in the WAL; Flush
    /// also seals the growing data and writes it to object storage (where
    /// it gets its index), like Milvus. The flush timestamp.
    pub(super) async fn do_flush(
        &self,
        database: &str,
        names: &[String],
    ) -> Result<u64, DoorError> {
        for name in names {
            let name = match self.table(database, name).await {
                Ok(_) => name.clone(),
                Err(e) => self.alias_target(database, name).await.ok_or(e)?,
            };
            self.handler.flush(database, &name).await?;
        }
        Ok(self.handler.allocate_timestamp().await?)
    }

    /// Whether a flush at `flush_ts` is complete. Flush returns once the
    /// collection's data is in object storage, so every flush a client
    /// waits on is complete; a timestamp from the future is not flushed yet.
    pub(super) async fn flushed(
        &self,
        database: &str,
        collection: &str,
        flush_ts: u64,
    ) -> Result<bool, DoorError> {
        if !collection.is_empty() {
            self.table(database, collection).await?;
        }
        Ok(flush_ts <= self.handler.read_timestamp().await?)
    }

    /// Compaction runs to completion before the reply; the id is the
    /// allocated timestamp (and the segments merged).
    pub(super) async fn do_compact(
        &self,
        database: &str,
        collection: &str,
    ) -> Result<(i64, usize), DoorError> {
        self.table(database, collection).await?;
        let merged = self.handler.compact(database, collection).await?;
        Ok((self.handler.allocate_timestamp().await? as i64, merged))
    }

    /// A compaction id is a timestamp: every one issued is completed.
    pub(super) async fn compaction_state(&self, id: i64) -> Result<(), DoorError> {
        if id > 0 && (id as u64) < self.handler.read_timestamp().await? {
            Ok(())
        } else {
            Err(DoorError::invalid(format!("compaction {id} not found")))
        }
    }

    /// A new timestamp from the engine's oracle.
    pub(super) async fn timestamp(&self) -> Result<u64, DoorError> {
        self.handler.allocate_timestamp().await.map_err(Into::into)
    }
}
