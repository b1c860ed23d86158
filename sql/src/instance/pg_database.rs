//! `pg_catalog.pg_database` with Quiver's databases: besides the rows
//! `datafusion-pg-catalog` gives (`quiver`, `postgres`), one row per Milvus
//! database other than the default one — the names a client may connect
//! to (`psql -l`, `\l`, DBeaver's database list). Each new row copies the
//! `quiver` row (owner, encoding, locale) with its own name and an OID
//! past the existing ones, in name order.

use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, Int64Array, RecordBatch, StringArray, UInt32Array};
use arrow::compute::{cast, concat_batches, take};
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::TableProvider;
use quiver_cluster::api::Coordinator;

use super::pg_catalog_rows::{scan_all, CatalogRows};

/// `pg_database` with a row for each database.
pub(super) struct PgDatabase {
    pub inner: Arc<dyn TableProvider>,
    pub coordinator: Arc<dyn Coordinator>,
}

#[async_trait]
impl CatalogRows for PgDatabase {
    const NAME: &'static str = "PgDatabase";

    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    async fn rows(&self, state: &dyn Session) -> Result<Vec<RecordBatch>> {
        let batches = scan_all(&self.inner, state).await?;
        let schema = self.schema();
        let listed = concat_batches(&schema, &batches)?;
        let catalog = self
            .coordinator
            .catalog()
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        Ok(vec![with_databases(&listed, catalog.databases)?])
    }
}

/// `listed` (pg_database's rows) with a copy of its `quiver` row for each
/// of `databases` it lacks (the default database `public` excluded).
fn with_databases(listed: &RecordBatch, mut databases: Vec<String>) -> Result<RecordBatch> {
    let schema = listed.schema();
    let names_index = schema.index_of("datname")?;
    let oid_index = schema.index_of("oid")?;
    let names = cast(
        listed.column(names_index),
        &arrow::datatypes::DataType::Utf8,
    )?;
    let names = names.as_string::<i32>();
    let known: Vec<&str> = names.iter().flatten().collect();
    let Some(template) = known.iter().position(|name| *name == "quiver") else {
        return Ok(listed.clone());
    };
    databases.sort();
    databases.retain(|db| db != quiver_cluster::DEFAULT_DATABASE && !known.contains(&db.as_str()));
    if databases.is_empty() {
        return Ok(listed.clone());
    }
    let oids = cast(listed.column(oid_index), &arrow::datatypes::DataType::Int64)?;
    let next_oid = oids
        .as_primitive::<arrow::datatypes::Int64Type>()
        .iter()
        .flatten()
        .max()
        .unwrap_or(16_383)
        + 1;
    let copies = UInt32Array::from(vec![template as u32; databases.len()]);
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(listed.num_columns());
    for (index, column) in listed.columns().iter().enumerate() {
        let added: ArrayRef = if index == names_index {
            cast(
                &StringArray::from(databases.clone()),
                schema.field(index).data_type(),
            )?
        } else if index == oid_index {
            let new_oids: Vec<i64> = (0..databases.len() as i64).map(|i| next_oid + i).collect();
            cast(&Int64Array::from(new_oids), schema.field(index).data_type())?
        } else {
            take(column.as_ref(), &copies, None)?
        };
        columns.push(arrow::compute::concat(&[column.as_ref(), added.as_ref()])?);
    }
    Ok(RecordBatch::try_new(schema, columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{DataType, Field, Schema};

    #[test]
    fn each_database_gets_a_row_like_quivers() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("oid", DataType::Int32, false),
            Field::new("datname", DataType::Utf8, false),
            Field::new("encoding", DataType::Int32, false),
        ]));
        let listed = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(arrow::array::Int32Array::from(vec![1, 16384])),
                Arc::new(StringArray::from(vec!["postgres", "quiver"])),
                Arc::new(arrow::array::Int32Array::from(vec![6, 6])),
            ],
        )
        .unwrap();
        let rows = with_databases(
            &listed,
            vec!["shop".into(), "public".into(), "archive".into()],
        )
        .unwrap();
        let names: Vec<&str> = rows.column(1).as_string::<i32>().iter().flatten().collect();
        assert_eq!(names, ["postgres", "quiver", "archive", "shop"]);
        let oids: Vec<i32> = rows
            .column(0)
            .as_primitive::<arrow::datatypes::Int32Type>()
            .values()
            .to_vec();
        assert_eq!(oids, [1, 16384, 16385, 16386]);
        assert_eq!(rows.num_rows(), 4);
    }
}
