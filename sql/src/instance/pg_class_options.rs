//! `pg_class.reloptions`: a relation's storage parameters as PostgreSQL
//! lists them (`{name=value,...}`, NULL without any). A Quiver table has
//! one, its shard count (`CREATE TABLE ... WITH (shards = N)`), listed when
//! it is not the default 1 — psql's `\d+` shows it as `Options: shards=4`.
//! DataFusion's `pg_class` has no such column; the `pg_class` overlay
//! ([`super::pg_indexes::ExtendedCatalogTable`]) appends it to every row.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, ListBuilder, RecordBatch, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::Result;

use super::pg_catalog_rows::{int_column, string_column};

/// The column's name.
pub const RELOPTIONS: &str = "reloptions";

/// `text[]`, as PostgreSQL types it.
fn reloptions_type() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true)))
}

/// `schema` (of `pg_class`) with `reloptions` appended.
pub fn with_reloptions_field(schema: &SchemaRef) -> SchemaRef {
    if schema.index_of(RELOPTIONS).is_ok() {
        return schema.clone();
    }
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new(RELOPTIONS, reloptions_type(), true));
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// `batch` (of `pg_class`) with its rows' `reloptions`: `shards=N` for the
/// tables (by namespace OID and name) `shards` lists with more than one.
pub fn with_reloptions(
    batch: RecordBatch,
    shards: &HashMap<(i64, String), u32>,
) -> Result<RecordBatch> {
    let schema = with_reloptions_field(&batch.schema());
    if batch.schema().index_of(RELOPTIONS).is_ok() {
        return Ok(batch);
    }
    let names = string_column(&batch, "relname")?;
    let namespaces = int_column(&batch, "relnamespace")?;
    let mut options = ListBuilder::new(StringBuilder::new());
    for (name, namespace) in names.into_iter().zip(namespaces) {
        let count = match (name, namespace) {
            (Some(name), Some(namespace)) => shards.get(&(namespace, name)).copied(),
            _ => None,
        };
        match count {
            Some(n) if n > 1 => {
                options.values().append_value(format!("shards={n}"));
                options.append(true);
            }
            _ => options.append_null(),
        }
    }
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    columns.push(Arc::new(options.finish()));
    Ok(RecordBatch::try_new(schema, columns)?)
}
