//! Indexes: create (a Milvus index type and its parameters as the
//! coordinator's index definition, built as `CREATE INDEX` builds), describe (with build states and progress), the vector index of
//! a field as the catalog has it.

use milvus::proto::common::KeyValuePair;
use milvus::proto::milvus::{CreateIndexRequest, DropIndexRequest, IndexDescription};
use quiver_common::schema::ColumnType;

use quiver_sql::handler::ddl::{CatalogChange, CreateIndex, DropIndex, IndexDefinition, TableRef};

use super::convert;
use super::door::MilvusDoor;
use super::request::param;
use super::status::{code, DoorError};
use super::{index_names, validate};

impl MilvusDoor {
    /// The index of a vector column: (name, kind, metric) from the catalog view.
    pub(super) async fn vector_index(
        &self,
        database: &str,
        collection: &str,
        field: Option<&str>,
    ) -> Result<Vec<IndexRow>, DoorError> {
        // Read from the catalog directly: a search asks for its metric, and
        // planning a query over the system view for it costs milliseconds.
        Ok(self
            .handler
            .indexes(database, collection)
            .await?
            .into_iter()
            .filter(|ix| field.is_none_or(|f| ix.column == f))
            .map(|ix| IndexRow {
                name: ix.name,
                column: ix.column,
                kind: ix.kind,
                metric: ix.metric,
                params: ix.params,
                ready: ix.ready,
                indexed: ix.rows_indexed as i64,
                total: ix.rows_total as i64,
            })
            .collect())
    }

    pub(super) async fn do_create_index(
        &self,
        database: &str,
        r: &CreateIndexRequest,
    ) -> Result<(), DoorError> {
        let table = self.table(database, &r.collection_name).await?;
        let column = table.column_index(&r.field_name).ok_or_else(|| {
            DoorError::invalid(format!(
                "cannot create index on non-exist field: {}",
                r.field_name
            ))
        })?;
        if !matches!(table.columns[column].column_type, ColumnType::Vector { .. }) {
            return Err(DoorError::unsupported(format!(
                "scalar index (field {})",
                r.field_name
            )));
        }
        let extra = &r.extra_params;
        let index_type = param(extra, "index_type")
            .unwrap_or("AUTOINDEX")
            .to_ascii_uppercase();
        let metric = param(extra, "metric_type").unwrap_or("COSINE");
        // L2, IP, COSINE: Quiver names the same metrics l2, ip, cosine.
        convert::metric_operator(metric)?;
        let knobs: serde_json::Value = param(extra, "params")
            .map(|p| serde_json::from_str(p).unwrap_or(serde_json::Value::Null))
            .unwrap_or(serde_json::Value::Null);
        let knob = |key: &str| {
            param(extra, key)
                .and_then(|v| v.parse::<u64>().ok())
                .or_else(|| {
                    knobs
                        .get(key)
                        .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
                })
        };
        let (method, params) = match index_type.as_str() {
            "AUTOINDEX" | "HNSW" => (
                "hnsw",
                vec![
                    ("m", knob("M").unwrap_or(16)),
                    ("ef_construction", knob("efConstruction").unwrap_or(200)),
                ],
            ),
            "IVF_FLAT" => ("ivfflat", vec![("lists", knob("nlist").unwrap_or(128))]),
            "IVF_SQ8" => ("ivf_sq8", vec![("lists", knob("nlist").unwrap_or(128))]),
            "FLAT" => ("flat", Vec::new()),
            other => return Err(DoorError::unsupported(format!("index type {other}"))),
        };
        validate::index_name(&r.index_name)?;
        let name = if r.index_name.is_empty() {
            r.field_name.clone()
        } else {
            r.index_name.clone()
        };
        // Milvus index names are per collection; Quiver's per schema.
        let sql_name = index_names::sql_index_name(&r.collection_name, &name)?;
        let existing = self
            .vector_index(database, &r.collection_name, Some(&r.field_name))
            .await?;
        if let Some(ix) = existing.first() {
            if ix.name == sql_name && ix.metric.eq_ignore_ascii_case(metric) {
                return Ok(());
            }
            return Err(DoorError::invalid(format!(
                "at most one distinct index is allowed per field, existing index {}",
                ix.name
            )));
        }
        self.change_catalog(CatalogChange::CreateIndex(CreateIndex {
            table: TableRef::new(database, &r.collection_name),
            definition: IndexDefinition {
                name: Some(sql_name),
                column: r.field_name.clone(),
                kind: method.to_string(),
                metric: metric.to_ascii_lowercase(),
                params: params
                    .into_iter()
                    .map(|(key, value)| (key.to_string(), value))
                    .collect(),
            },
            if_not_exists: false,
        }))
        .await
        .map(|_| ())
    }

    pub(super) async fn index_descriptions(
        &self,
        database: &str,
        collection: &str,
        field: &str,
        index_name: &str,
    ) -> Result<Vec<IndexDescription>, DoorError> {
        self.table(database, collection).await?;
        let field = (!field.is_empty()).then_some(field);
        let rows = self.vector_index(database, collection, field).await?;
        let out: Vec<IndexDescription> = rows
            .into_iter()
            .filter(|ix| {
                index_name.is_empty()
                    || index_names::milvus_index_name(collection, &ix.name) == Some(index_name)
            })
            .map(|ix| {
                let index_type = match ix.kind.as_str() {
                    "hnsw" => "HNSW",
                    "ivfflat" => "IVF_FLAT",
                    "ivf_sq8" => "IVF_SQ8",
                    _ => "FLAT",
                };
                IndexDescription {
                    index_name: index_names::milvus_index_name(collection, &ix.name)
                        .unwrap_or(&ix.name)
                        .to_string(),
                    field_name: ix.column.clone(),
                    params: [
                        ("index_type".to_string(), index_type.to_string()),
                        ("metric_type".to_string(), ix.metric.to_ascii_uppercase()),
                    ]
                    .into_iter()
                    .chain(milvus_index_params(&ix.params))
                    .map(|(key, value)| KeyValuePair { key, value })
                    .collect(),
                    indexed_rows: ix.indexed,
                    total_rows: ix.total,
                    pending_index_rows: ix.total - ix.indexed,
                    state: if ix.ready { 3 } else { 2 },
                    ..Default::default()
                }
            })
            .collect();
        if out.is_empty() {
            return Err(DoorError::index_not_found(collection));
        }
        Ok(out)
    }

    /// Drops the index(es) a request names; dropping an index that does not
    /// exist succeeds, as in Milvus.
    pub(super) async fn do_drop_index(
        &self,
        database: &str,
        q: &DropIndexRequest,
    ) -> Result<(), DoorError> {
        let found = match self
            .index_descriptions(database, &q.collection_name, &q.field_name, &q.index_name)
            .await
        {
            Err(e) if e.code == code::INDEX_NOT_FOUND => Vec::new(),
            other => other?,
        };
        for ix in found {
            self.change_catalog(CatalogChange::DropIndex(DropIndex {
                database: database.to_string(),
                name: index_names::sql_index_name(&q.collection_name, &ix.index_name)?,
                if_exists: false,
            }))
            .await?;
        }
        Ok(())
    }
}

/// A row of `quiver_catalog.indexes`.
pub(super) struct IndexRow {
    pub(super) name: String,
    pub(super) column: String,
    pub(super) kind: String,
    pub(super) metric: String,
    pub(super) params: String,
    pub(super) ready: bool,
    pub(super) indexed: i64,
    pub(super) total: i64,
}

/// `m=16, ef_construction=200` as Milvus' build parameters (`M`,
/// `efConstruction`, `nlist`), each its own key as Milvus reports them.
pub(super) fn milvus_index_params(params: &str) -> Vec<(String, String)> {
    params
        .split(',')
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            let key = match k.trim() {
                "m" => "M",
                "ef_construction" => "efConstruction",
                "lists" => "nlist",
                other => other,
            };
            Some((key.to_string(), v.trim().to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_parameters_take_milvus_names() {
        let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
            list.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(
            milvus_index_params("m=16, ef_construction=200"),
            pairs(&[("M", "16"), ("efConstruction", "200")])
        );
        assert_eq!(
            milvus_index_params("lists = 128"),
            pairs(&[("nlist", "128")])
        );
        assert_eq!(milvus_index_params("other=1"), pairs(&[("other", "1")]));
        assert_eq!(milvus_index_params(""), pairs(&[]));
    }
}
