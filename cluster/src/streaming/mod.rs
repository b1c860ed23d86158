//! The streaming role: validates writes, stamps them with a TSO timestamp,
//! appends them to the WAL (durable before acknowledging) and applies them to
//! the table's growing segment; seals and flushes its shards' segments
//! (`flush`). It carries its tables in a registry of its own, keyed by
//! table id (`node`: the [`StreamingRole`](crate::api::streaming::StreamingRole)
//! the coordinator drives, the WAL's replay and truncation).

mod flush;
mod node;
pub mod transaction;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use arrow::array::{new_null_array, Array, ArrayRef, AsArray, Int64Array, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float32Type, Int64Type, SchemaRef};
use parking_lot::{Mutex, RwLock};
use quiver_common::schema::{vector_dim, ColumnType, TableSchema};
use quiver_common::vector::{validate, VectorError};
use quiver_exec::pk::{pk_values, PkValue};
use quiver_proto::WalRecord;
use quiver_storage::{MetaStore, ObjectStoreRef, Wal};

use crate::api::query::DeleteSubscriber;
use crate::api::streaming::{WriteMode, WriteOutcome};
use crate::coordinator::TimestampSource;
use crate::error::{EngineError, Result};
use crate::segment_files::keys_batch;
use crate::table::{with_timestamp, SealPolicy, TableRuntime};

/// Writes to tables through one WAL.
#[derive(Clone)]
pub struct StreamingNode {
    wal: Arc<dyn Wal>,
    tso: Arc<dyn TimestampSource>,
    /// Timestamps of writes taken but not yet applied (a count per
    /// timestamp); taken and registered under this lock, so
    /// [`StreamingNode::safe_timestamp`] never misses one.
    in_flight: Arc<Mutex<BTreeMap<u64, usize>>>,
    /// Where flushed segments, delete logs and checkpoints are recorded.
    meta: Arc<dyn MetaStore>,
    /// Where flushed segments and delete logs are written.
    objects: ObjectStoreRef,
    /// The tables the node carries, by id.
    tables: Arc<RwLock<HashMap<u64, Arc<TableRuntime>>>>,
    /// Where every applied delete goes as well (the query node).
    delete_subscriber: Arc<dyn DeleteSubscriber>,
    /// When a growing segment seals.
    seal: SealPolicy,
    /// The WAL replay start last persisted (`keys::WAL_REPLAY_FROM`).
    replay_from: Arc<AtomicU64>,
}

/// A write's timestamp, registered in flight until dropped (applied, or
/// failed).
struct InFlight<'a> {
    ts: u64,
    node: &'a StreamingNode,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut in_flight = self.node.in_flight.lock();
        if let Some(n) = in_flight.get_mut(&self.ts) {
            *n -= 1;
            if *n == 0 {
                in_flight.remove(&self.ts);
            }
        }
    }
}

impl std::fmt::Debug for StreamingNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StreamingNode")
    }
}

impl StreamingNode {
    /// A node appending to `wal`, stamping writes with `tso`, flushing
    /// to `objects`, recording flushes in `meta`, sending every delete it
    /// applies to `delete_subscriber` and sealing growing segments at
    /// `seal`.
    pub fn new(
        wal: Arc<dyn Wal>,
        tso: Arc<dyn TimestampSource>,
        meta: Arc<dyn MetaStore>,
        objects: ObjectStoreRef,
        delete_subscriber: Arc<dyn DeleteSubscriber>,
        seal: SealPolicy,
    ) -> Self {
        Self {
            wal,
            tso,
            in_flight: Arc::default(),
            meta,
            objects,
            tables: Arc::default(),
            delete_subscriber,
            seal,
            replay_from: Arc::default(),
        }
    }

    /// A table the node carries.
    pub fn table(&self, table_id: u64) -> Result<Arc<TableRuntime>> {
        self.tables
            .read()
            .get(&table_id)
            .cloned()
            .ok_or(EngineError::TableIdNotFound(table_id))
    }

    /// Every table the node carries.
    fn all_tables(&self) -> Vec<Arc<TableRuntime>> {
        self.tables.read().values().cloned().collect()
    }

    /// A timestamp for a write, in flight until the guard drops. Taken
    /// under the table's write lock, so one table's writes are ordered by
    /// timestamp in the WAL.
    fn begin_write(&self) -> Result<InFlight<'_>> {
        let mut in_flight = self.in_flight.lock();
        let ts = self.tso.next()?;
        *in_flight.entry(ts).or_default() += 1;
        Ok(InFlight { ts, node: self })
    }

    fn append(&self, record: &WalRecord) -> Result<u64> {
        let payload = record.encode()?;
        let lsns = self.wal.append(vec![payload])?;
        Ok(lsns[0])
    }

    /// Just below the oldest write still in flight, or the newest
    /// timestamp handed out when none is.
    pub fn safe_timestamp(&self) -> u64 {
        let in_flight = self.in_flight.lock();
        match in_flight.keys().next() {
            Some(oldest) => oldest - 1,
            None => self.tso.last(),
        }
    }

    /// Inserts (or upserts) rows (auto ids assigned); returns once they are
    /// durable and visible. Blocks until the WAL fsync.
    fn write_blocking(
        &self,
        table: &TableRuntime,
        batch: RecordBatch,
        mode: WriteMode,
    ) -> Result<WriteOutcome> {
        let (schema, name) = {
            let definition = table.definition.read();
            (definition.schema.clone(), definition.name.clone())
        };
        let user_schema = schema.arrow_schema();
        let mut batch = coerce_batch(&batch, &schema, &user_schema)?;
        let _guard = table.write_lock.lock();
        // The definition may have changed while this write waited for the
        // lock (a column added): the batch is reshaped to the one it
        // applies under.
        let schema = {
            let now = table.definition.read().schema.clone();
            if now != schema {
                batch = coerce_batch(&batch, &now, &now.arrow_schema())?;
            }
            now
        };
        check_not_null(&batch, &schema, &name)?;
        let keys: Vec<PkValue> = pk_values(batch.column(schema.primary_key))
            .into_iter()
            .map(|k| k.expect("checked not null"))
            .collect();
        let mut seen = HashSet::with_capacity(keys.len());
        let mut keep = Vec::with_capacity(keys.len());
        // An upsert deletes only the keys it replaces: a delete record for a
        // key that never existed would make every later search check it.
        let mut replaced = Vec::new();
        {
            let data = table.data.read();
            for key in &keys {
                if !seen.insert(key.clone()) {
                    return Err(EngineError::DuplicateKey {
                        table: name,
                        column: schema.pk().name.clone(),
                        key: key.to_string(),
                    });
                }
                let exists = data.live.contains(key);
                if exists && mode == WriteMode::Upsert {
                    replaced.push(key.clone());
                }
                match mode {
                    WriteMode::Insert if exists => {
                        return Err(EngineError::DuplicateKey {
                            table: name,
                            column: schema.pk().name.clone(),
                            key: key.to_string(),
                        })
                    }
                    WriteMode::InsertIgnore => keep.push(!exists),
                    _ => keep.push(true),
                }
            }
        }
        if mode == WriteMode::InsertIgnore && keep.iter().any(|k| !k) {
            let mask = arrow::array::BooleanArray::from(keep);
            batch = arrow::compute::filter_record_batch(&batch, &mask)?;
        }
        let deletes: Vec<PkValue> = replaced;
        if batch.num_rows() == 0 {
            return Ok(WriteOutcome {
                rows: batch,
                ts: 0,
                lsn: 0,
                sealed: false,
            });
        }
        let write = self.begin_write()?;
        let ts = write.ts;
        let stored = with_timestamp(&batch, &schema.storage_schema(), ts)?;
        let record = WalRecord {
            table_id: table.id(),
            ts,
            deletes: keys_batch(&schema, &deletes)?,
            inserts: Some(stored),
        };
        let lsn = self.append(&record)?;
        let sealed = table.apply(
            lsn,
            ts,
            record.deletes.as_ref(),
            record.inserts.as_ref(),
            true,
            &|_| true,
        )?;
        Ok(WriteOutcome {
            rows: batch,
            ts,
            lsn,
            sealed,
        })
    }

    /// Deletes rows by key; returns how many visible rows were deleted.
    /// Blocks until the WAL fsync.
    fn delete_blocking(&self, table: &TableRuntime, keys: Vec<PkValue>) -> Result<usize> {
        let schema = table.schema();
        let _guard = table.write_lock.lock();
        let keys: Vec<PkValue> = {
            let data = table.data.read();
            let mut seen = HashSet::new();
            keys.into_iter()
                .filter(|k| data.live.contains(k) && seen.insert(k.clone()))
                .collect()
        };
        if keys.is_empty() {
            return Ok(0);
        }
        let write = self.begin_write()?;
        let ts = write.ts;
        let record = WalRecord {
            table_id: table.id(),
            ts,
            deletes: keys_batch(&schema, &keys)?,
            inserts: None,
        };
        let lsn = self.append(&record)?;
        table.apply(lsn, ts, record.deletes.as_ref(), None, true, &|_| true)?;
        Ok(keys.len())
    }
}

/// Decodes the keys of a delete batch.
pub fn keys_of(batch: &RecordBatch) -> Vec<PkValue> {
    pk_values(batch.column(0)).into_iter().flatten().collect()
}

/// Reshapes an incoming batch to the table's user schema, validating vectors
/// (dimension, NaN, infinity) and VARCHAR lengths.
pub fn coerce_batch(
    batch: &RecordBatch,
    schema: &TableSchema,
    user_schema: &SchemaRef,
) -> Result<RecordBatch> {
    let mut columns = Vec::with_capacity(schema.columns.len());
    for (def, field) in schema.columns.iter().zip(user_schema.fields()) {
        let Some(input) = batch.column_by_name(&def.name) else {
            columns.push(new_null_array(field.data_type(), batch.num_rows()));
            continue;
        };
        let column = match &def.column_type {
            ColumnType::Vector { dim } => coerce_vector(input, *dim as usize)?,
            ColumnType::Text { max_len } => {
                let column = cast_column(input, field.data_type(), &def.name)?;
                if let Some(max) = max_len {
                    let strings = column.as_string::<i32>();
                    for value in strings.iter().flatten() {
                        if value.chars().count() > *max as usize {
                            return Err(EngineError::ValueTooLong(*max));
                        }
                    }
                }
                column
            }
            ColumnType::Json => {
                let column = cast_column(input, field.data_type(), &def.name)?;
                // A JSONB column holds JSON: its text is checked here, on
                // every write path (SQL, COPY, the Milvus door).
                let texts = column.as_string::<i32>();
                for text in texts.iter().flatten() {
                    if serde_json::from_str::<serde::de::IgnoredAny>(text).is_err() {
                        return Err(EngineError::InvalidJson {
                            column: def.name.clone(),
                        });
                    }
                }
                column
            }
            _ => cast_column(input, field.data_type(), &def.name)?,
        };
        columns.push(column);
    }
    // Built on the all-nullable schema: NOT NULL is checked next, with a clear error.
    Ok(RecordBatch::try_new_with_options(
        relaxed(user_schema),
        columns,
        &arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )?)
}

/// The schema with every field nullable (NOT NULL is checked separately with a clear error).
fn relaxed(schema: &SchemaRef) -> SchemaRef {
    Arc::new(arrow::datatypes::Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect::<Vec<_>>(),
    ))
}

fn cast_column(input: &ArrayRef, target: &DataType, column: &str) -> Result<ArrayRef> {
    if input.data_type() == target {
        return Ok(input.clone());
    }
    cast(input, target).map_err(|_| EngineError::TypeMismatch {
        column: column.to_string(),
        expected: target.to_string(),
        actual: input.data_type().to_string(),
    })
}

fn coerce_vector(input: &ArrayRef, dim: usize) -> Result<ArrayRef> {
    let target = quiver_common::schema::vector_arrow_type(dim as i32);
    let array = match input.data_type() {
        DataType::FixedSizeList(_, n) => {
            if *n as usize != dim {
                return Err(VectorError::WrongDimension {
                    expected: dim,
                    actual: *n as usize,
                }
                .into());
            }
            cast(input, &target)?
        }
        DataType::List(_) | DataType::LargeList(_) => {
            let list = cast(
                input,
                &DataType::List(Arc::new(arrow::datatypes::Field::new_list_field(
                    DataType::Float32,
                    true,
                ))),
            )?;
            let list = list.as_list::<i32>();
            for i in 0..list.len() {
                if list.is_valid(i) {
                    let len = list.value_length(i) as usize;
                    if len != dim {
                        return Err(VectorError::WrongDimension {
                            expected: dim,
                            actual: len,
                        }
                        .into());
                    }
                }
            }
            cast(list, &target)?
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let strings = cast(input, &DataType::Utf8)?;
            let strings = strings.as_string::<i32>();
            let mut values = Vec::with_capacity(strings.len() * dim);
            let mut valid = Vec::with_capacity(strings.len());
            for s in strings {
                match s {
                    Some(s) => {
                        let v = quiver_common::vector::parse_text(s)?;
                        quiver_common::vector::check_dimension(dim, v.len())?;
                        values.extend(v);
                        valid.push(true);
                    }
                    None => {
                        values.extend(std::iter::repeat_n(0.0, dim));
                        valid.push(false);
                    }
                }
            }
            Arc::new(arrow::array::FixedSizeListArray::try_new(
                Arc::new(arrow::datatypes::Field::new_list_field(
                    DataType::Float32,
                    true,
                )),
                dim as i32,
                Arc::new(arrow::array::Float32Array::from(values)),
                Some(arrow::buffer::NullBuffer::from(valid)),
            )?)
        }
        DataType::Null => new_null_array(&target, input.len()),
        other => {
            return Err(EngineError::TypeMismatch {
                column: "vector".into(),
                expected: format!("vector({dim})"),
                actual: other.to_string(),
            })
        }
    };
    let list = array.as_fixed_size_list();
    debug_assert_eq!(vector_dim(list.data_type()), Some(dim));
    let values = list.values().as_primitive::<Float32Type>();
    for i in 0..list.len() {
        if list.is_valid(i) {
            let start = list.value_offset(i) as usize;
            validate(&values.values()[start..start + dim])?;
        }
    }
    Ok(array)
}

/// Fills the missing values of an auto-increment `BIGINT` primary key with
/// ids from the table's allocator, and makes later ids exceed the explicit
/// ones. This is the access layer's step before the streaming role's write
/// (Milvus' proxy assigns auto ids too): the allocator persists its blocks
/// with async meta-store writes, which cannot happen under the write lock.
pub async fn assign_auto_ids(table: &TableRuntime, batch: RecordBatch) -> Result<RecordBatch> {
    let schema = table.schema();
    let pk = schema.pk();
    let key_type = pk.column_type.arrow_type();
    let largest = match key_type {
        DataType::Int16 => i64::from(i16::MAX),
        DataType::Int32 => i64::from(i32::MAX),
        DataType::Int64 => i64::MAX,
        _ => return Ok(batch),
    };
    if !pk.auto_increment {
        return Ok(batch);
    }
    let rows = batch.num_rows();
    let position = batch.schema().column_with_name(&pk.name).map(|(i, _)| i);
    let column = match position {
        Some(i) => cast_column(batch.column(i), &DataType::Int64, &pk.name)?,
        None => new_null_array(&DataType::Int64, rows),
    };
    let ints = column.as_primitive::<Int64Type>();
    if let Some(max) = ints.iter().flatten().max() {
        table.autoid.observe(max.max(0) as u64).await?;
    }
    let missing = ints.null_count();
    if missing == 0 {
        return Ok(batch);
    }
    let first = table.autoid.allocate(missing as u64).await? as i64;
    let mut next = first;
    let filled: Int64Array = ints
        .iter()
        .map(|v| {
            Some(v.unwrap_or_else(|| {
                let id = next;
                next += 1;
                id
            }))
        })
        .collect();
    if next - 1 > largest {
        return Err(EngineError::IdentityExhausted {
            table: table.name(),
            column: pk.name.clone(),
            max: largest,
        });
    }
    // The key column in its own type (`smallint`, `integer`): every id fits.
    let filled = cast_column(&(Arc::new(filled) as ArrayRef), &key_type, &pk.name)?;
    let field = Arc::new(arrow::datatypes::Field::new(
        &pk.name,
        key_type.clone(),
        true,
    ));
    let mut fields = batch.schema().fields().to_vec();
    let mut columns = batch.columns().to_vec();
    match position {
        Some(i) => {
            fields[i] = field;
            columns[i] = filled;
        }
        None => {
            fields.push(field);
            columns.push(filled);
        }
    }
    let schema =
        arrow::datatypes::Schema::new_with_metadata(fields, batch.schema().metadata().clone());
    Ok(RecordBatch::try_new_with_options(
        Arc::new(schema),
        columns,
        &arrow::array::RecordBatchOptions::new().with_row_count(Some(rows)),
    )?)
}

pub(crate) fn check_not_null(batch: &RecordBatch, schema: &TableSchema, table: &str) -> Result<()> {
    for (i, def) in schema.columns.iter().enumerate() {
        let must = !def.nullable || i == schema.primary_key;
        if must && batch.column(i).null_count() > 0 {
            return Err(EngineError::NotNull {
                table: table.to_string(),
                column: def.name.clone(),
            });
        }
    }
    Ok(())
}
