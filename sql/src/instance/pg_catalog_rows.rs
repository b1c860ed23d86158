//! Reading DataFusion's `pg_catalog` tables back as rows, for the
//! overlays that extend them (`pg_types`, `pg_indexes`, `pg_database`,
//! `extensions`): a whole scan, the namespaces by OID, a column as integers
//! or text, and [`RowsTable`], the table provider of an overlay whose rows
//! are made at each scan ([`CatalogRows`]).

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::SchemaRef;
use arrow::datatypes::{DataType, Int64Type};
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::Result;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

/// A catalog view whose rows are made at each scan.
#[async_trait]
pub(super) trait CatalogRows: Send + Sync + 'static {
    /// The overlay's name (its `Debug` output).
    const NAME: &'static str;
    /// The view's columns.
    fn schema(&self) -> SchemaRef;
    /// Every row, as of this scan.
    async fn rows(&self, state: &dyn Session) -> Result<Vec<RecordBatch>>;
}

/// The table provider of a [`CatalogRows`] view: a scan makes the rows and
/// serves them from memory, projected.
pub(super) struct RowsTable<T>(pub T);

impl<T: CatalogRows> std::fmt::Debug for RowsTable<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(T::NAME)
    }
}

#[async_trait]
impl<T: CatalogRows> TableProvider for RowsTable<T> {
    fn schema(&self) -> SchemaRef {
        self.0.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let rows = self.0.rows(state).await?;
        Ok(MemorySourceConfig::try_new_exec(
            &[rows],
            self.0.schema(),
            projection.cloned(),
        )?)
    }
}

/// Every row of `table`.
pub(super) async fn scan_all(
    table: &Arc<dyn TableProvider>,
    state: &dyn Session,
) -> Result<Vec<RecordBatch>> {
    let plan = table.scan(state, None, &[], None).await?;
    datafusion::physical_plan::collect(plan, state.task_ctx()).await
}

/// `pg_namespace` as oid → name.
pub(super) async fn namespace_names(
    namespaces: &Arc<dyn TableProvider>,
    state: &dyn Session,
) -> Result<HashMap<i64, String>> {
    let mut out = HashMap::new();
    for batch in scan_all(namespaces, state).await? {
        let names = string_column(&batch, "nspname")?;
        for (oid, name) in int_column(&batch, "oid")?.into_iter().zip(names) {
            if let (Some(oid), Some(name)) = (oid, name) {
                out.insert(oid, name);
            }
        }
    }
    Ok(out)
}

/// Column `name` of `batch` as integers.
pub(super) fn int_column(batch: &RecordBatch, name: &str) -> Result<Vec<Option<i64>>> {
    let column = batch.column_by_name(name).ok_or_else(|| {
        datafusion::error::DataFusionError::Internal(format!("pg_catalog column {name} missing"))
    })?;
    let ints = cast(column, &DataType::Int64)?;
    Ok(ints.as_primitive::<Int64Type>().iter().collect())
}

/// Column `name` of `batch` as text.
pub(super) fn string_column(batch: &RecordBatch, name: &str) -> Result<Vec<Option<String>>> {
    let column = batch.column_by_name(name).ok_or_else(|| {
        datafusion::error::DataFusionError::Internal(format!("pg_catalog column {name} missing"))
    })?;
    let strings = cast(column, &DataType::Utf8)?;
    Ok(strings
        .as_string::<i32>()
        .iter()
        .map(|s| s.map(str::to_string))
        .collect())
}
