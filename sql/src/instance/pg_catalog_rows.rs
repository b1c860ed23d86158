//! Reading DataFusion's `pg_catalog` tables back as rows, for the
//! overlays that extend them (`pg_types`, `pg_indexes`): a whole scan, the
//! namespaces by OID, and a column as integers or text.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int64Type};
use datafusion::catalog::Session;
use datafusion::common::Result;
use datafusion::datasource::TableProvider;

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
