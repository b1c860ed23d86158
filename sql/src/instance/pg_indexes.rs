//! Quiver's indexes in the Postgres catalog, as psql's `\d table` and `\di`,
//! pg_dump, JDBC's `getIndexInfo` and ORMs' reflection read them: every
//! table's primary key as `<table>_pkey` (a unique B-tree, as PostgreSQL
//! names and describes it) and every vector index (`hnsw`, `ivfflat`, and
//! Quiver's `ivf_sq8` and `flat`) appear in `pg_class` (`relkind` `i`) and
//! `pg_index`, their access methods in `pg_am`, and
//! `pg_get_indexdef(oid[, column, pretty])` prints their definitions in
//! PostgreSQL's words (`CREATE INDEX items_embedding_idx ON public.items
//! USING hnsw (embedding vector_l2_ops) WITH (m='16', ef_construction='64')`).
//!
//! An index's OID is derived from its table's id and its id in the table
//! (0 for the primary key), so it stays the same across sessions and
//! restarts. `pg_get_indexdef` answers from the indexes the session's last
//! scan of `pg_class` or `pg_index` found ([`IndexMirror`]): a catalog
//! query that joins them — every client's does — scans them while it is
//! planned, before the function runs.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int32Type, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::datasource::TableProvider;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};
use quiver_cluster::api::Coordinator;

use super::identifiers::quote_ident;
use super::pg_catalog_rows::{int_column, namespace_names, scan_all, string_column, CatalogRows};
use super::pg_class_options::{with_reloptions, with_reloptions_field};

/// `pg_am` OIDs of the access methods Quiver adds (`btree` is PostgreSQL's
/// own, 403). pgvector's are assigned when the extension is created; these
/// sit above the OIDs sessions hand out.
const ACCESS_METHODS: [(&str, i32, &str); 4] = [
    ("hnsw", 0x3FFF_FF01, "hnswhandler"),
    ("ivfflat", 0x3FFF_FF02, "ivfflathandler"),
    ("ivf_sq8", 0x3FFF_FF03, "ivf_sq8handler"),
    ("flat", 0x3FFF_FF04, "flathandler"),
];
const BTREE_OID: i32 = 403;

/// The OID of index `index_id` (0: the primary key) of table `table_id`.
pub fn index_oid(table_id: u64, index_id: u64) -> i32 {
    0x4000_0000 | (((table_id & 0x3_FFFF) as i32) << 12) | (index_id & 0xFFF) as i32
}

/// One index as the catalog shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct PgIndex {
    pub oid: i32,
    pub name: String,
    pub namespace: String,
    pub namespace_oid: i32,
    pub table: String,
    pub table_oid: i32,
    /// The table's owner as `pg_class` reports it.
    pub owner: i32,
    pub primary: bool,
    /// The key column: name and number (`attnum`).
    pub column: (String, i16),
    /// The access method (`btree`, `hnsw`, ...).
    pub method: String,
    /// The operator class (`vector_l2_ops`); `None` for the default.
    pub opclass: Option<String>,
    /// Build parameters in PostgreSQL's order.
    pub params: Vec<(String, u64)>,
}

impl PgIndex {
    fn method_oid(&self) -> i32 {
        ACCESS_METHODS
            .iter()
            .find(|(name, _, _)| *name == self.method)
            .map_or(BTREE_OID, |(_, oid, _)| *oid)
    }

    /// `pg_get_indexdef(oid, 0, pretty)`.
    pub fn definition(&self, pretty: bool) -> String {
        let table = if pretty {
            quote_ident(&self.table)
        } else {
            format!(
                "{}.{}",
                quote_ident(&self.namespace),
                quote_ident(&self.table)
            )
        };
        let mut out = format!(
            "CREATE {}INDEX {} ON {table} USING {} ({}",
            if self.primary { "UNIQUE " } else { "" },
            quote_ident(&self.name),
            self.method,
            quote_ident(&self.column.0),
        );
        if let Some(opclass) = &self.opclass {
            out.push(' ');
            out.push_str(opclass);
        }
        out.push(')');
        if !self.params.is_empty() {
            let params: Vec<String> = self
                .params
                .iter()
                .map(|(k, v)| format!("{k}='{v}'"))
                .collect();
            out.push_str(&format!(" WITH ({})", params.join(", ")));
        }
        out
    }
}

/// The indexes the session's last catalog scan found, by OID.
#[derive(Debug, Default)]
pub struct IndexMirror {
    indexes: RwLock<HashMap<i32, PgIndex>>,
}

impl IndexMirror {
    fn replace(&self, indexes: &[PgIndex]) {
        *self.indexes.write().unwrap_or_else(|e| e.into_inner()) =
            indexes.iter().map(|ix| (ix.oid, ix.clone())).collect();
    }

    fn get(&self, oid: i32) -> Option<PgIndex> {
        self.indexes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&oid)
            .cloned()
    }
}

/// Every index of the tables `pg_class` lists (scanned from `classes`),
/// from the coordinator's catalog; the mirror learns them.
async fn current_indexes(
    coordinator: &Arc<dyn Coordinator>,
    classes: &Arc<dyn TableProvider>,
    namespaces: &Arc<dyn TableProvider>,
    mirror: &IndexMirror,
    state: &dyn Session,
) -> Result<Vec<PgIndex>> {
    let namespace_names = namespace_names(namespaces, state).await?;
    // (namespace, relname) -> (oid, namespace oid, owner)
    let mut relations = HashMap::new();
    for batch in scan_all(classes, state).await? {
        let oids = int_column(&batch, "oid")?;
        let names = string_column(&batch, "relname")?;
        let spaces = int_column(&batch, "relnamespace")?;
        let owners = int_column(&batch, "relowner")?;
        let kinds = string_column(&batch, "relkind")?;
        for row in 0..batch.num_rows() {
            let (Some(oid), Some(name), Some(space)) = (oids[row], names[row].clone(), spaces[row])
            else {
                continue;
            };
            if kinds[row].as_deref() != Some("r") {
                continue;
            }
            if let Some(namespace) = namespace_names.get(&space) {
                relations.insert(
                    (namespace.clone(), name),
                    (oid as i32, space as i32, owners[row].unwrap_or(0) as i32),
                );
            }
        }
    }
    let catalog = coordinator
        .catalog()
        .await
        .map_err(|e| DataFusionError::External(Box::new(e)))?;
    let mut out = Vec::new();
    for table in catalog.tables {
        let key = (table.table.database.clone(), table.table.name.clone());
        let Some(&(table_oid, namespace_oid, owner)) = relations.get(&key) else {
            continue;
        };
        let schema = &table.schema;
        // Attribute numbers count the declared columns, as pg_attribute does.
        let attnum = |name: &str| {
            schema
                .visible_columns()
                .position(|c| c.name == name)
                .map(|i| i as i16 + 1)
        };
        let base = PgIndex {
            oid: index_oid(table.id, 0),
            name: format!("{}_pkey", table.table.name),
            namespace: key.0.clone(),
            namespace_oid,
            table: key.1.clone(),
            table_oid,
            owner,
            primary: true,
            column: (
                schema.pk().name.clone(),
                attnum(&schema.pk().name).unwrap_or(0),
            ),
            method: "btree".into(),
            opclass: None,
            params: Vec::new(),
        };
        for index in &table.indexes {
            let Some(number) = attnum(&index.column) else {
                continue;
            };
            let order: &[&str] = &["m", "ef_construction", "lists"];
            let mut params: Vec<(String, u64)> =
                index.params.iter().map(|(k, v)| (k.clone(), *v)).collect();
            params.sort_by_key(|(k, _)| order.iter().position(|o| o == k).unwrap_or(order.len()));
            out.push(PgIndex {
                oid: index_oid(table.id, index.id),
                name: index.name.clone(),
                primary: false,
                column: (index.column.clone(), number),
                method: index.kind.clone(),
                opclass: Some(format!("vector_{}_ops", index.metric)),
                params,
                ..base.clone()
            });
        }
        // A hidden row id is a key, not an index the table declared.
        if !schema.has_hidden_key() {
            out.push(base);
        }
    }
    out.sort_by_key(|ix| ix.oid);
    mirror.replace(&out);
    Ok(out)
}

/// Rows of `schema` for `items`, each column's value named by `value`
/// (column name, item; `None`: the column's zero: 0, false, '' or NULL
/// when nullable).
pub(super) fn rows_of<T>(
    schema: &SchemaRef,
    items: &[T],
    value: impl Fn(&str, &T) -> Option<ScalarValue>,
) -> Result<RecordBatch> {
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let values: Vec<ScalarValue> = items
            .iter()
            .map(|item| {
                value(field.name(), item).unwrap_or_else(|| {
                    if field.is_nullable() {
                        ScalarValue::Null
                    } else {
                        match field.data_type() {
                            DataType::Boolean => ScalarValue::Boolean(Some(false)),
                            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
                                ScalarValue::Utf8(Some(String::new()))
                            }
                            _ => ScalarValue::Int32(Some(0)),
                        }
                    }
                })
            })
            .collect();
        let array = if values.is_empty() {
            arrow::array::new_empty_array(field.data_type())
        } else {
            let typed: Vec<ScalarValue> = values
                .into_iter()
                .map(|v| match v {
                    ScalarValue::Null => ScalarValue::try_from(field.data_type()),
                    v => Ok(v),
                })
                .collect::<Result<_>>()?;
            cast(&ScalarValue::iter_to_array(typed)?, field.data_type())?
        };
        columns.push(array);
    }
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

fn int(v: i32) -> Option<ScalarValue> {
    Some(ScalarValue::Int32(Some(v)))
}

fn text(v: impl Into<String>) -> Option<ScalarValue> {
    Some(ScalarValue::Utf8(Some(v.into())))
}

fn boolean(v: bool) -> Option<ScalarValue> {
    Some(ScalarValue::Boolean(Some(v)))
}

/// A `pg_catalog` table with rows added by `extend` at each scan.
pub struct ExtendedCatalogTable {
    pub inner: Arc<dyn TableProvider>,
    pub classes: Arc<dyn TableProvider>,
    pub namespaces: Arc<dyn TableProvider>,
    pub coordinator: Arc<dyn Coordinator>,
    pub mirror: Arc<IndexMirror>,
    pub kind: Extension,
}

/// Which catalog table an [`ExtendedCatalogTable`] extends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extension {
    /// `pg_class`: the index relations; tables with indexes.
    Class,
    /// `pg_index`: one row per index.
    Index,
    /// `pg_am`: the vector access methods.
    AccessMethod,
}

#[async_trait]
impl CatalogRows for ExtendedCatalogTable {
    const NAME: &'static str = "ExtendedCatalogTable";

    fn schema(&self) -> SchemaRef {
        match self.kind {
            Extension::Class => with_reloptions_field(&self.inner.schema()),
            _ => self.inner.schema(),
        }
    }

    async fn rows(&self, state: &dyn Session) -> Result<Vec<RecordBatch>> {
        let mut batches = scan_all(&self.inner, state).await?;
        let schema = self.inner.schema();
        if self.kind == Extension::AccessMethod {
            batches.push(rows_of(
                &schema,
                &ACCESS_METHODS,
                |column, (name, oid, handler)| match column {
                    "oid" => int(*oid),
                    "amname" => text(*name),
                    "amhandler" => text(*handler),
                    "amtype" => text("i"),
                    _ => None,
                },
            )?);
            return Ok(batches);
        }
        let indexes = current_indexes(
            &self.coordinator,
            &self.classes,
            &self.namespaces,
            &self.mirror,
            state,
        )
        .await?;
        match self.kind {
            Extension::Class => {
                let with_index: std::collections::HashSet<i32> =
                    indexes.iter().map(|ix| ix.table_oid).collect();
                batches = batches
                    .into_iter()
                    .map(|batch| mark_indexed(batch, &with_index))
                    .collect::<Result<_>>()?;
                batches.push(rows_of(&schema, &indexes, |column, ix| match column {
                    "oid" | "relfilenode" => int(ix.oid),
                    "relname" => text(ix.name.clone()),
                    "relnamespace" => int(ix.namespace_oid),
                    "relowner" => int(ix.owner),
                    "relam" => int(ix.method_oid()),
                    "relpersistence" => text("p"),
                    "relkind" => text("i"),
                    "relnatts" => Some(ScalarValue::Int16(Some(1))),
                    "relispopulated" => boolean(true),
                    "relreplident" => text("n"),
                    "reltuples" => Some(ScalarValue::Float64(Some(-1.0))),
                    _ => None,
                })?);
                let shards = table_shards(&self.coordinator, &self.namespaces, state).await?;
                batches = batches
                    .into_iter()
                    .map(|batch| with_reloptions(batch, &shards))
                    .collect::<Result<_>>()?;
            }
            Extension::Index => {
                batches.push(rows_of(&schema, &indexes, |column, ix| match column {
                    "indexrelid" => int(ix.oid),
                    "indrelid" => int(ix.table_oid),
                    "indnatts" | "indnkeyatts" => Some(ScalarValue::Int16(Some(1))),
                    "indisunique" | "indisprimary" => boolean(ix.primary),
                    "indimmediate" | "indisvalid" | "indisready" | "indislive" => boolean(true),
                    "indkey" => text(ix.column.1.to_string()),
                    "indcollation" | "indclass" | "indoption" => text("0"),
                    _ => None,
                })?);
            }
            Extension::AccessMethod => {}
        }
        Ok(batches)
    }
}

/// Each table's shard count, by namespace OID and name.
async fn table_shards(
    coordinator: &Arc<dyn Coordinator>,
    namespaces: &Arc<dyn TableProvider>,
    state: &dyn Session,
) -> Result<HashMap<(i64, String), u32>> {
    let namespace_oids: HashMap<String, i64> = namespace_names(namespaces, state)
        .await?
        .into_iter()
        .map(|(oid, name)| (name, oid))
        .collect();
    let catalog = coordinator
        .catalog()
        .await
        .map_err(|e| DataFusionError::External(Box::new(e)))?;
    Ok(catalog
        .tables
        .into_iter()
        .filter_map(|t| {
            let namespace = *namespace_oids.get(&t.table.database)?;
            Some(((namespace, t.table.name), t.shards))
        })
        .collect())
}

/// `batch` (of `pg_class`) with `relhasindex` true for the tables in
/// `with_index`.
fn mark_indexed(
    batch: RecordBatch,
    with_index: &std::collections::HashSet<i32>,
) -> Result<RecordBatch> {
    let schema = batch.schema();
    let Ok(at) = schema.index_of("relhasindex") else {
        return Ok(batch);
    };
    let oids = cast(
        batch.column_by_name("oid").unwrap_or(batch.column(0)),
        &DataType::Int32,
    )?;
    let oids = oids.as_primitive::<Int32Type>();
    let old = batch.column(at).as_boolean().clone();
    let marked: BooleanArray = (0..batch.num_rows())
        .map(|row| {
            let indexed = !oids.is_null(row) && with_index.contains(&oids.value(row));
            Some(indexed || (!old.is_null(row) && old.value(row)))
        })
        .collect();
    let mut columns = batch.columns().to_vec();
    columns[at] = Arc::new(marked);
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// `pg_get_indexdef(index oid[, column, pretty])`: the index's `CREATE
/// INDEX` statement; with a column number above 0, that key column's name;
/// NULL for an OID that is no index Quiver knows.
#[derive(Debug)]
struct PgGetIndexdef {
    signature: Signature,
    mirror: Arc<IndexMirror>,
}

impl PartialEq for PgGetIndexdef {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.mirror, &other.mirror)
    }
}

impl Eq for PgGetIndexdef {}

impl std::hash::Hash for PgGetIndexdef {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        Arc::as_ptr(&self.mirror).hash(state);
    }
}

/// The `pg_get_indexdef` function over the session's `mirror`.
pub fn pg_get_indexdef(mirror: Arc<IndexMirror>) -> ScalarUDF {
    ScalarUDF::from(PgGetIndexdef {
        signature: Signature::one_of(
            vec![
                TypeSignature::Exact(vec![DataType::Int64]),
                TypeSignature::Exact(vec![DataType::Int64, DataType::Int64, DataType::Boolean]),
            ],
            Volatility::Stable,
        ),
        mirror,
    })
}

impl ScalarUDFImpl for PgGetIndexdef {
    fn name(&self) -> &str {
        "pg_get_indexdef"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        Ok(arg_types
            .iter()
            .enumerate()
            .map(|(i, _)| {
                if i == 2 {
                    DataType::Boolean
                } else {
                    DataType::Int64
                }
            })
            .collect())
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let arrays: Vec<ArrayRef> = args
            .args
            .iter()
            .map(|a| a.to_array(rows))
            .collect::<Result<_>>()?;
        let oids = cast(&arrays[0], &DataType::Int64)?;
        let oids = oids.as_primitive::<arrow::datatypes::Int64Type>();
        let columns = match arrays.get(1) {
            Some(a) => Some(cast(a, &DataType::Int64)?),
            None => None,
        };
        let pretty = arrays.get(2).map(|a| a.as_boolean().clone());
        let out: arrow::array::StringArray = (0..rows)
            .map(|row| {
                if oids.is_null(row) {
                    return None;
                }
                let index = i32::try_from(oids.value(row))
                    .ok()
                    .and_then(|oid| self.mirror.get(oid))?;
                let column = columns
                    .as_ref()
                    .map(|c| c.as_primitive::<arrow::datatypes::Int64Type>())
                    .map_or(0, |c| if c.is_null(row) { 0 } else { c.value(row) });
                let pretty = pretty
                    .as_ref()
                    .is_some_and(|p| !p.is_null(row) && p.value(row));
                match column {
                    0 => Some(index.definition(pretty)),
                    1 => Some(quote_ident(&index.column.0)),
                    _ => Some(String::new()),
                }
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hnsw() -> PgIndex {
        PgIndex {
            oid: index_oid(3, 1),
            name: "items_embedding_idx".into(),
            namespace: "public".into(),
            namespace_oid: 2200,
            table: "items".into(),
            table_oid: 16_400,
            owner: 10,
            primary: false,
            column: ("embedding".into(), 2),
            method: "hnsw".into(),
            opclass: Some("vector_l2_ops".into()),
            params: vec![("m".into(), 16), ("ef_construction".into(), 64)],
        }
    }

    /// The definitions PostgreSQL 15 + pgvector print for the same
    /// indexes (`pg_get_indexdef`).
    #[test]
    fn definitions_read_as_postgresql_prints_them() {
        let index = hnsw();
        assert_eq!(
            index.definition(true),
            "CREATE INDEX items_embedding_idx ON items USING hnsw (embedding vector_l2_ops) \
             WITH (m='16', ef_construction='64')"
        );
        let pkey = PgIndex {
            name: "items_pkey".into(),
            primary: true,
            column: ("id".into(), 1),
            method: "btree".into(),
            opclass: None,
            params: Vec::new(),
            ..index
        };
        assert_eq!(
            pkey.definition(false),
            "CREATE UNIQUE INDEX items_pkey ON public.items USING btree (id)"
        );
        assert_eq!(quote_ident("Mixed"), "\"Mixed\"");
    }

    #[test]
    fn index_oids_are_stable_and_distinct() {
        assert_eq!(index_oid(3, 1), index_oid(3, 1));
        assert_ne!(index_oid(3, 0), index_oid(3, 1));
        assert_ne!(index_oid(3, 1), index_oid(4, 1));
        assert!(index_oid(0x3_FFFF, 0xFFF) > 0);
    }
}
