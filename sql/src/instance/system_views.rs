//! Quiver's system schema `quiver_catalog`, read live from the
//! coordinator:
//!
//! * `quiver_catalog.indexes` — every vector index with its type, metric,
//!   parameters, state (`building` / `ready`) and rows indexed / total.

use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{MemorySchemaProvider, SchemaProvider, Session as DfSession};
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use quiver_cluster::api::{Coordinator, IndexStatus};

/// Name of the system schema.
pub const SYSTEM_SCHEMA: &str = "quiver_catalog";

/// The `quiver_catalog` schema, read from the coordinator.
pub fn system_schema(coordinator: Arc<dyn Coordinator>) -> Arc<dyn SchemaProvider> {
    let schema = MemorySchemaProvider::new();
    schema
        .register_table("indexes".into(), Arc::new(IndexesView { coordinator }))
        .expect("a fresh schema accepts a table");
    Arc::new(schema)
}

/// `quiver_catalog.indexes`.
struct IndexesView {
    coordinator: Arc<dyn Coordinator>,
}

impl std::fmt::Debug for IndexesView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IndexesView")
    }
}

fn indexes_schema() -> SchemaRef {
    let text = |name: &str| Field::new(name, DataType::Utf8, false);
    let count = |name: &str| Field::new(name, DataType::Int64, false);
    Arc::new(Schema::new(vec![
        text("schema_name"),
        text("table_name"),
        text("index_name"),
        text("column_name"),
        text("index_type"),
        text("metric"),
        text("parameters"),
        text("state"),
        count("rows_indexed"),
        count("rows_total"),
        count("segments_indexed"),
        count("segments_total"),
    ]))
}

#[async_trait]
impl TableProvider for IndexesView {
    fn schema(&self) -> SchemaRef {
        indexes_schema()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        _state: &dyn DfSession,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let rows = self
            .coordinator
            .index_statuses()
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let text = |f: fn(&IndexStatus) -> &str| {
            Arc::new(StringArray::from_iter_values(rows.iter().map(f))) as _
        };
        let count = |f: fn(&IndexStatus) -> usize| {
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|r| f(r) as i64),
            )) as _
        };
        let schema = indexes_schema();
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                text(|r| &r.database),
                text(|r| &r.table),
                text(|r| &r.name),
                text(|r| &r.column),
                text(|r| &r.kind),
                text(|r| &r.metric),
                text(|r| &r.params),
                text(|r| &r.state),
                count(|r| r.rows_indexed),
                count(|r| r.rows_total),
                count(|r| r.segments_indexed),
                count(|r| r.segments_total),
            ],
        )?;
        Ok(MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            schema,
            projection.cloned(),
        )?)
    }
}
