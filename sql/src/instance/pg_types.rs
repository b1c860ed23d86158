//! Postgres type information of Quiver columns for client catalogs:
//! `pg_catalog.pg_attribute` reports each column's real type OID and type
//! modifier (`vector(3)`, `character varying(20)`, `jsonb`, ...), and
//! `format_type` prints pgvector's `vector(n)`; psql's `\d` relies on both.
//! `pg_database` lists Quiver's databases (`pg_database`); `pg_class`,
//! `pg_index` and `pg_am` list Quiver's indexes (`pg_indexes`);
//! `pg_extension` the extensions installed (`extensions`).

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int32Array, RecordBatch, StringArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int64Type, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{SchemaProvider, Session};
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::TableProvider;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
};
use quiver_cluster::api::Coordinator;
use quiver_common::schema::{ColumnType, TableSchema};

use super::extensions::PgExtension;
use super::pg_catalog_rows::{
    int_column, namespace_names, scan_all, string_column, CatalogRows, RowsTable,
};
use super::pg_indexes::{ExtendedCatalogTable, Extension, IndexMirror};

/// OID of pgvector's `vector` type as Quiver reports it.
pub const VECTOR_OID: i32 = arrow_pg::datatypes::PG_VECTOR_TYPE_OID as i32;

/// Postgres type OID and type modifier of a column type.
pub fn pg_type_of(column_type: &ColumnType) -> (i32, i32) {
    match column_type {
        ColumnType::Bool => (16, -1),
        ColumnType::Int16 => (21, -1),
        ColumnType::Int32 => (23, -1),
        ColumnType::Int64 => (20, -1),
        ColumnType::Float32 => (700, -1),
        ColumnType::Float64 => (701, -1),
        ColumnType::Text { max_len: None } => (25, -1),
        ColumnType::Text { max_len: Some(n) } => (1043, *n as i32 + 4),
        ColumnType::Json => (3802, -1),
        ColumnType::TimestampTz => (1184, -1),
        ColumnType::Vector { dim } => (VECTOR_OID, *dim as i32),
    }
}

/// The `pg_catalog` schema with a type-exact `pg_attribute` (the column
/// types read from the coordinator's catalog).
pub struct PgCatalogOverlay {
    pub inner: Arc<dyn SchemaProvider>,
    pub coordinator: Arc<dyn Coordinator>,
    /// The indexes `pg_get_indexdef` describes, as the last scan of
    /// `pg_class` or `pg_index` found them.
    pub indexes: Arc<IndexMirror>,
    /// The session's database (its installed extensions are listed).
    pub database: String,
}

impl std::fmt::Debug for PgCatalogOverlay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgCatalogOverlay")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl SchemaProvider for PgCatalogOverlay {
    fn table_names(&self) -> Vec<String> {
        self.inner.table_names()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let table = self.inner.table(name).await?;
        if name == "pg_database" {
            return Ok(table.map(|inner| {
                Arc::new(RowsTable(super::pg_database::PgDatabase {
                    inner,
                    coordinator: self.coordinator.clone(),
                })) as Arc<dyn TableProvider>
            }));
        }
        if name == "pg_extension" {
            let (Some(inner), Some(namespaces)) = (table, self.inner.table("pg_namespace").await?)
            else {
                return Ok(None);
            };
            return Ok(Some(Arc::new(RowsTable(PgExtension {
                inner,
                namespaces,
                coordinator: self.coordinator.clone(),
                database: self.database.clone(),
            }))));
        }
        if name == "pg_type" {
            let (Some(types), Some(namespaces)) = (table, self.inner.table("pg_namespace").await?)
            else {
                return Ok(None);
            };
            return Ok(Some(Arc::new(RowsTable(PgType { types, namespaces }))));
        }
        let extension = match name {
            "pg_class" => Some(Extension::Class),
            "pg_index" => Some(Extension::Index),
            "pg_am" => Some(Extension::AccessMethod),
            _ => None,
        };
        if let Some(kind) = extension {
            let (Some(inner), Some(classes), Some(namespaces)) = (
                table,
                self.inner.table("pg_class").await?,
                self.inner.table("pg_namespace").await?,
            ) else {
                return Ok(None);
            };
            return Ok(Some(Arc::new(RowsTable(ExtendedCatalogTable {
                inner,
                classes,
                namespaces,
                coordinator: self.coordinator.clone(),
                mirror: self.indexes.clone(),
                kind,
            }))));
        }
        if name != "pg_attribute" {
            return Ok(table);
        }
        let (Some(attributes), Some(classes), Some(namespaces)) = (
            table,
            self.inner.table("pg_class").await?,
            self.inner.table("pg_namespace").await?,
        ) else {
            return Ok(None);
        };
        Ok(Some(Arc::new(RowsTable(PgAttribute {
            attributes,
            classes,
            namespaces,
            coordinator: self.coordinator.clone(),
        }))))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.inner.table_exist(name)
    }
}

struct PgAttribute {
    attributes: Arc<dyn TableProvider>,
    classes: Arc<dyn TableProvider>,
    namespaces: Arc<dyn TableProvider>,
    coordinator: Arc<dyn Coordinator>,
}

#[async_trait]
impl CatalogRows for PgAttribute {
    const NAME: &'static str = "PgAttribute";

    fn schema(&self) -> SchemaRef {
        self.attributes.schema()
    }

    async fn rows(&self, state: &dyn Session) -> Result<Vec<RecordBatch>> {
        let namespaces = namespace_names(&self.namespaces, state).await?;
        let mut relations = HashMap::new();
        for batch in scan_all(&self.classes, state).await? {
            let oids = int_column(&batch, "oid")?;
            let names = string_column(&batch, "relname")?;
            let spaces = int_column(&batch, "relnamespace")?;
            for ((oid, name), space) in oids.into_iter().zip(names).zip(spaces) {
                if let (Some(oid), Some(name), Some(space)) = (oid, name, space) {
                    if let Some(schema) = namespaces.get(&space) {
                        relations.insert(oid, (schema.clone(), name));
                    }
                }
            }
        }
        let catalog = self
            .coordinator
            .catalog()
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let schemas: HashMap<(String, String), TableSchema> = catalog
            .tables
            .into_iter()
            .map(|t| ((t.table.database, t.table.name), t.schema))
            .collect();
        let mut out = Vec::new();
        for batch in scan_all(&self.attributes, state).await? {
            let relids = int_column(&batch, "attrelid")?;
            let names = string_column(&batch, "attname")?;
            let schema = batch.schema();
            let typid_index = schema.index_of("atttypid")?;
            let typmod_index = schema.index_of("atttypmod")?;
            let old_typids = int_column(&batch, "atttypid")?;
            let old_typmods = int_column(&batch, "atttypmod")?;
            let mut typids = Vec::with_capacity(batch.num_rows());
            let mut typmods = Vec::with_capacity(batch.num_rows());
            for row in 0..batch.num_rows() {
                let exact = relids[row]
                    .and_then(|oid| relations.get(&oid))
                    .and_then(|key| schemas.get(key))
                    .and_then(|schema| {
                        let name = names[row].as_deref()?;
                        let index = schema.column_index(name)?;
                        Some(pg_type_of(&schema.columns[index].column_type))
                    });
                let (typid, typmod) = exact.unwrap_or((
                    old_typids[row].unwrap_or(0) as i32,
                    old_typmods[row].unwrap_or(-1) as i32,
                ));
                typids.push(typid);
                typmods.push(typmod);
            }
            let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
            columns[typid_index] = cast(
                &Int32Array::from(typids),
                schema.field(typid_index).data_type(),
            )?;
            columns[typmod_index] = cast(
                &Int32Array::from(typmods),
                schema.field(typmod_index).data_type(),
            )?;
            out.push(RecordBatch::try_new(schema.clone(), columns)?);
        }
        Ok(out)
    }
}

/// `pg_type` with pgvector's `vector` in schema `public`, where
/// `CREATE EXTENSION vector` puts it (asyncpg looks it up as `public.vector`).
struct PgType {
    types: Arc<dyn TableProvider>,
    namespaces: Arc<dyn TableProvider>,
}

#[async_trait]
impl CatalogRows for PgType {
    const NAME: &'static str = "PgType";

    fn schema(&self) -> SchemaRef {
        self.types.schema()
    }

    async fn rows(&self, state: &dyn Session) -> Result<Vec<RecordBatch>> {
        let public = namespace_names(&self.namespaces, state)
            .await?
            .into_iter()
            .find_map(|(oid, name)| (name == "public").then_some(oid));
        let mut out = Vec::new();
        for batch in scan_all(&self.types, state).await? {
            let Some(public) = public else {
                out.push(batch);
                continue;
            };
            let schema = batch.schema();
            let ns_index = schema.index_of("typnamespace")?;
            let oids = int_column(&batch, "oid")?;
            let namespaces = int_column(&batch, "typnamespace")?;
            let patched: Int32Array = oids
                .iter()
                .zip(namespaces)
                .map(|(oid, ns)| {
                    if *oid == Some(VECTOR_OID as i64) {
                        Some(public as i32)
                    } else {
                        ns.map(|n| n as i32)
                    }
                })
                .collect();
            let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
            columns[ns_index] = cast(&patched, schema.field(ns_index).data_type())?;
            out.push(RecordBatch::try_new(schema.clone(), columns)?);
        }
        Ok(out)
    }
}

/// `format_type(oid, typmod)` that knows pgvector's `vector(n)`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct FormatType {
    inner: ScalarUDF,
}

/// The `format_type` function.
pub fn format_type() -> ScalarUDF {
    ScalarUDF::from(FormatType {
        inner: datafusion_pg_catalog::pg_catalog::format_type::create_format_type_udf(),
    })
}

impl ScalarUDFImpl for FormatType {
    fn name(&self) -> &str {
        "format_type"
    }
    fn signature(&self) -> &Signature {
        self.inner.signature()
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let oids = cast(&args.args[0].to_array(rows)?, &DataType::Int64)?;
        let mods = cast(&args.args[1].to_array(rows)?, &DataType::Int64)?;
        let inner = self.inner.invoke_with_args(args)?.to_array(rows)?;
        let inner = cast(&inner, &DataType::Utf8)?;
        let inner = inner.as_string::<i32>();
        let oids = oids.as_primitive::<Int64Type>();
        let mods = mods.as_primitive::<Int64Type>();
        let out: StringArray = (0..rows)
            .map(|i| {
                if oids.is_valid(i) && oids.value(i) == VECTOR_OID as i64 {
                    Some(if mods.is_valid(i) && mods.value(i) > 0 {
                        format!("vector({})", mods.value(i))
                    } else {
                        "vector".to_string()
                    })
                } else if inner.is_valid(i) {
                    Some(inner.value(i).to_string())
                } else {
                    None
                }
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}
