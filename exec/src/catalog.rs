//! DataFusion catalog and schema providers over a [`CatalogSource`]: every
//! lookup reads the live catalog, so DDL from any connection (or protocol)
//! is seen by the next statement of every session.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, SchemaProvider};
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::TableProvider;
use parking_lot::RwLock;

use crate::table::QuiverTable;
use crate::table_source::TableSource;

/// Appended to a table's name, names the same table with its hidden
/// columns ([`QuiverTable::with_hidden_columns`]). A NUL cannot be part of
/// a name a client sends (the Postgres protocol ends strings with it), so
/// no user table can be shadowed; only statements the server writes itself
/// (the key lookups of `UPDATE`/`DELETE`) name it.
pub const WITH_HIDDEN_COLUMNS: &str = "\u{0}with_hidden_columns";

/// The live catalog: schemas (Milvus databases) and their tables.
pub trait CatalogSource: Send + Sync + std::fmt::Debug {
    /// Names of all schemas.
    fn schema_names(&self) -> Vec<String>;
    /// Names of the tables in `schema`.
    fn table_names(&self, schema: &str) -> Vec<String>;
    /// A table's source.
    fn table(&self, schema: &str, name: &str) -> Option<Arc<dyn TableSource>>;
}

/// The DataFusion catalog of one Quiver instance.
#[derive(Debug)]
pub struct QuiverCatalog {
    source: Arc<dyn CatalogSource>,
    /// System schemas registered by the session (pg_catalog, ...).
    extra: RwLock<HashMap<String, Arc<dyn SchemaProvider>>>,
}

impl QuiverCatalog {
    /// Wraps a catalog source.
    pub fn new(source: Arc<dyn CatalogSource>) -> Self {
        Self {
            source,
            extra: RwLock::new(HashMap::new()),
        }
    }
}

impl CatalogProvider for QuiverCatalog {
    fn schema_names(&self) -> Vec<String> {
        let mut names = self.source.schema_names();
        names.extend(self.extra.read().keys().cloned());
        names.sort();
        names.dedup();
        names
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        if let Some(extra) = self.extra.read().get(name) {
            return Some(extra.clone());
        }
        if self.source.schema_names().iter().any(|s| s == name) {
            Some(Arc::new(QuiverSchema {
                source: self.source.clone(),
                schema: name.to_string(),
            }))
        } else {
            None
        }
    }

    fn register_schema(
        &self,
        name: &str,
        schema: Arc<dyn SchemaProvider>,
    ) -> Result<Option<Arc<dyn SchemaProvider>>> {
        Ok(self.extra.write().insert(name.to_string(), schema))
    }

    fn deregister_schema(
        &self,
        name: &str,
        _cascade: bool,
    ) -> Result<Option<Arc<dyn SchemaProvider>>> {
        Ok(self.extra.write().remove(name))
    }
}

impl QuiverCatalog {
    /// Drops the system schemas registered by the session; they may refer
    /// back to the session's catalog list, so this breaks that cycle.
    pub fn clear_system_schemas(&self) {
        self.extra.write().clear();
    }
}

/// One schema of the live catalog.
#[derive(Debug)]
pub struct QuiverSchema {
    source: Arc<dyn CatalogSource>,
    schema: String,
}

#[async_trait]
impl SchemaProvider for QuiverSchema {
    fn table_names(&self) -> Vec<String> {
        self.source.table_names(&self.schema)
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>, DataFusionError> {
        if let Some(table) = name.strip_suffix(WITH_HIDDEN_COLUMNS) {
            return Ok(self.source.table(&self.schema, table).map(|source| {
                Arc::new(QuiverTable::with_hidden_columns(table, source)) as Arc<dyn TableProvider>
            }));
        }
        Ok(self
            .source
            .table(&self.schema, name)
            .map(|source| Arc::new(QuiverTable::new(name, source)) as Arc<dyn TableProvider>))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.source.table(&self.schema, name).is_some()
    }
}
