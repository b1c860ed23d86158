//! `Search`: the request's vector field, metric, window and knobs checked,
//! its query vectors (placeholders or primary keys) decoded, and one
//! typed plan ([`super::typed_search`], cached per shape) run per query
//! vector with the vector as its parameter.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch};
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::{cast, lit, Expr as DfExpr, LogicalPlanBuilder};
use futures::{StreamExt, TryStreamExt};
use milvus::proto::common::PlaceholderGroup;
use milvus::proto::milvus::{search_request, SearchRequest, SearchResults};
use milvus::proto::schema::{IDs, SearchResultData};
use prost::Message;
use quiver_common::schema::{ColumnType, TableSchema};
use quiver_sql::handler::{KeyedPlan, Output, SearchKnobs};

use super::collection::Collection;
use super::convert;
use super::door::{DoorSession, MilvusDoor};
use super::expanding::{Grouping, Picker, RangeFilter};
use super::hidden_columns::{column, PARTITION_COLUMN};
use super::request::param;
use super::rows::{
    collect_rows, concat, id_strings, id_values, ids_of, output_field, pk_requested, text_values,
    RowsFuture,
};
use super::status::{ok_status, DoorError};
use super::typed_search::{distance_function, TypedSearch};
use super::validate;

impl MilvusDoor {
    pub(super) async fn do_search(
        &self,
        database: &str,
        r: &SearchRequest,
    ) -> Result<SearchResults, DoorError> {
        Ok(self.search_with_metric(database, r).await?.0)
    }

    /// A search and the metric its scores are in.
    pub(super) async fn search_with_metric(
        &self,
        database: &str,
        r: &SearchRequest,
    ) -> Result<(SearchResults, String), DoorError> {
        let Collection {
            table,
            partitions,
            arrays,
        } = self
            .collection_to_read(
                database,
                &r.collection_name,
                r.consistency_level,
                r.guarantee_timestamp,
            )
            .await?;
        let scope = partitions.read_scope(&r.partition_names)?;
        let params = &r.search_params;
        let vector_columns: Vec<usize> = table
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| matches!(c.column_type, ColumnType::Vector { .. }))
            .map(|(i, _)| i)
            .collect();
        let anns =
            match param(params, "anns_field").filter(|f| !f.is_empty()) {
                Some(name) => table
                    .column_index(name)
                    .filter(|i| vector_columns.contains(i))
                    .ok_or_else(|| {
                        DoorError::invalid(format!(
                            "failed to get field schema by name: fieldName({name}) not found"
                        ))
                    })?,
                None => match vector_columns.as_slice() {
                    [one] => *one,
                    _ => return Err(DoorError::invalid(
                        "multiple anns_fields exist, please specify a anns_field in search_params"
                            .to_string(),
                    )),
                },
            };
        let ColumnType::Vector { dim } = table.columns[anns].column_type else {
            return Err(DoorError::internal("not a vector column".to_string()));
        };
        let (topk, offset) =
            validate::search_window(param(params, "topk"), param(params, "offset"))?;
        let indexes = self
            .vector_index(
                database,
                &r.collection_name,
                Some(&table.columns[anns].name),
            )
            .await?;
        let metric = match param(params, "metric_type").filter(|m| !m.is_empty()) {
            Some(m) => m.to_ascii_uppercase(),
            None => indexes
                .first()
                .map(|ix| ix.metric.to_ascii_uppercase())
                .unwrap_or_else(|| "COSINE".to_string()),
        };
        if let Some(ix) = indexes.first() {
            if !ix.metric.eq_ignore_ascii_case(&metric) {
                return Err(DoorError::invalid(format!(
                    "metric type not match: invalid parameter[expected={}][actual={metric}]",
                    ix.metric.to_ascii_uppercase()
                )));
            }
        }
        let distance = distance_function(&metric)?;
        let kind = validate::IndexKind::of_method(indexes.first().map(|ix| ix.kind.as_str()));
        let search_knobs = serde_json::Value::Object(validate::search_params(
            param(params, "params"),
            kind,
            topk + offset,
        )?);
        let queries = match &r.search_input {
            Some(search_request::SearchInput::PlaceholderGroup(bytes)) => {
                let queries = placeholder_vectors(bytes, dim)?;
                validate::nq(queries.len())?;
                queries
            }
            Some(search_request::SearchInput::Ids(ids)) => {
                self.vectors_by_ids(database, &table, anns, ids, &r.collection_name, &scope)
                    .await?
            }
            None => return Err(DoorError::invalid("no query vectors".to_string())),
        };
        let filter = self.checked_filter(&table, &arrays, &r.dsl, &r.expr_template_values)?;
        let columns = self.output_columns(&table, &r.output_fields, true)?;
        let group = match param(params, "group_by_field").filter(|f| !f.is_empty()) {
            None => None,
            Some(name) => {
                let index = table
                    .column_index(name)
                    .filter(|&i| table.columns[i].name != PARTITION_COLUMN)
                    .filter(|&i| {
                        !matches!(
                            table.columns[i].column_type,
                            ColumnType::Vector { .. } | ColumnType::Json
                        )
                    })
                    .ok_or_else(|| {
                        DoorError::invalid(format!(
                            "groupBy field({name}) not found or not a scalar field in schema"
                        ))
                    })?;
                let size: usize = param(params, "group_size")
                    .map(|v| v.parse().ok().filter(|&n: &usize| (1..=1024).contains(&n)))
                    .unwrap_or(Some(1))
                    .ok_or_else(|| {
                        DoorError::invalid("group_size must be in [1, 1024]".to_string())
                    })?;
                let strict = param(params, "strict_group_size")
                    .is_some_and(|v| v.eq_ignore_ascii_case("true"));
                Some(Grouping {
                    index,
                    size,
                    strict,
                })
            }
        };
        let range = RangeFilter::from_knobs(&search_knobs, &metric)?;
        let mut fetched = columns.clone();
        if let Some(g) = &group {
            if !fetched.contains(&g.index) {
                fetched.push(g.index);
            }
        }
        let search = TypedSearch {
            database: database.to_string(),
            collection: r.collection_name.clone(),
            select: fetched
                .iter()
                .map(|&i| table.columns[i].name.clone())
                .collect(),
            vector: table.columns[anns].name.clone(),
            vector_type: table.columns[anns].column_type.arrow_type(),
            distance,
            filter,
            scope,
        };
        let distance_at = fetched.len();
        let mut session = self.session().await?;
        let result = if group.is_none() && range.is_none() {
            self.search_queries(
                &mut session,
                &search,
                (topk, offset),
                &search_knobs,
                &queries,
                dim,
            )
            .await
        } else {
            let pick = Picker {
                metric: &metric,
                range,
                group: group.as_ref(),
                topk,
                offset,
                distance_at,
                group_at: group
                    .as_ref()
                    .and_then(|g| fetched.iter().position(|&i| i == g.index)),
            };
            self.expanding_search(&mut session, &search, &search_knobs, &queries, dim, &pick)
                .await
        };
        self.give_back(session);
        let per_query = result?;
        let mut scores = Vec::new();
        let mut topks = Vec::new();
        let mut all: Vec<RecordBatch> = Vec::new();
        for batch in per_query {
            let distances = convert::float_column(&batch, distance_at)?;
            topks.push(batch.num_rows() as i64);
            scores.extend(distances.iter().map(|d| convert::milvus_score(&metric, *d)));
            all.push(batch);
        }
        let merged = concat(&all, distance_at + 1)?;
        let mut fields_data = Vec::new();
        let mut ids = IDs::default();
        let mut group_by_field_value = None;
        if let Some(batch) = &merged {
            ids = ids_of(&table, batch.column(0))?;
            for (pos, &i) in columns
                .iter()
                .enumerate()
                .skip(usize::from(!pk_requested(&table, &r.output_fields)))
            {
                let column = &table.columns[i];
                fields_data.push(output_field(
                    &table,
                    &arrays,
                    column,
                    batch.column(pos),
                    &r.output_fields,
                )?);
            }
            if let Some(g) = &group {
                let pos = fetched.iter().position(|&i| i == g.index).unwrap_or(0);
                let column = &table.columns[g.index];
                group_by_field_value = Some(convert::field_data(
                    &column.name,
                    &column.column_type,
                    batch.column(pos),
                )?);
            }
        }
        let results = SearchResults {
            status: Some(ok_status()),
            results: Some(SearchResultData {
                num_queries: queries.len() as i64,
                top_k: topk as i64,
                fields_data,
                scores,
                ids: Some(ids),
                topks,
                output_fields: columns
                    .iter()
                    .skip(usize::from(!pk_requested(&table, &r.output_fields)))
                    .map(|&i| table.columns[i].name.clone())
                    .collect(),
                primary_field_name: table.pk().name.clone(),
                group_by_field_value,
                ..Default::default()
            }),
            collection_name: r.collection_name.clone(),
            ..Default::default()
        };
        Ok((results, metric))
    }

    /// The stored vectors of the rows with primary keys `ids`, in `ids`'
    /// order (search by primary key).
    pub(super) async fn vectors_by_ids(
        &self,
        database: &str,
        table: &TableSchema,
        anns: usize,
        ids: &IDs,
        collection: &str,
        scope: &Option<DfExpr>,
    ) -> Result<Vec<Vec<f32>>, DoorError> {
        let keys = id_values(ids)?;
        validate::nq(keys.len())?;
        let pk = column(&table.pk().name);
        let batches = self
            .typed_plan(database, collection, |_, scan| {
                let mut filter = if keys.is_empty() {
                    lit(false)
                } else {
                    pk.clone().in_list(keys, false)
                };
                if let Some(scope) = scope {
                    filter = filter.and(scope.clone());
                }
                Ok(scan
                    .filter(filter)?
                    .project(vec![
                        cast(pk.clone(), arrow::datatypes::DataType::Utf8),
                        column(&table.columns[anns].name),
                    ])?
                    .build()?)
            })
            .await?;
        let mut found: HashMap<String, Vec<f32>> = HashMap::new();
        for batch in &batches {
            let names = text_values(batch.column(0))?;
            let vectors = batch.column(1).as_fixed_size_list();
            for (row, name) in names.into_iter().enumerate() {
                let v = vectors.value(row);
                found.insert(
                    name,
                    v.as_primitive::<arrow::datatypes::Float32Type>()
                        .values()
                        .to_vec(),
                );
            }
        }
        id_strings(ids)
            .into_iter()
            .map(|key| {
                found.remove(&key).ok_or_else(|| {
                    DoorError::invalid(format!("primary key {key} to search by not found"))
                })
            })
            .collect()
    }

    /// Runs the prepared search once per query vector in one session (the
    /// session's plan cache keeps the physical plan between them).
    pub(super) async fn search_queries(
        &self,
        door: &mut DoorSession,
        search: &TypedSearch,
        (limit, offset): (usize, usize),
        knobs: &serde_json::Value,
        queries: &[Vec<f32>],
        dim: u32,
    ) -> Result<Vec<RecordBatch>, DoorError> {
        // The session keeps its knobs between requests; they are set (as
        // typed values, no statement) only when this request wants others.
        let ef = knobs
            .get("ef")
            .and_then(|v| v.as_u64())
            .map(|ef| ef.clamp(1, 1000));
        let nprobe = knobs
            .get("nprobe")
            .and_then(|v| v.as_u64())
            .map(|n| n.max(1));
        if ef != door.ef || nprobe != door.nprobe {
            door.ef = None;
            door.nprobe = None;
            let knobs = SearchKnobs {
                ef_search: ef.map(|v| v as usize),
                probes: nprobe.map(|v| v as usize),
            };
            self.handler.set_search_knobs(&mut door.session, knobs)?;
            door.ef = ef;
            door.nprobe = nprobe;
        }
        let key = search.key(limit, offset);
        let build = |scan: LogicalPlanBuilder, functions: &dyn FunctionRegistry| {
            search.build(scan, functions, limit, offset)
        };
        let item = Arc::new(arrow::datatypes::Field::new(
            "item",
            arrow::datatypes::DataType::Float32,
            true,
        ));
        // Each vector's search is planned here (the cached plan, rebound)
        // and run below, several at once: the engine's search pool spreads
        // them over the cores.
        let mut streams = Vec::with_capacity(queries.len());
        for q in queries {
            let list = arrow::array::FixedSizeListArray::try_new(
                item.clone(),
                dim as i32,
                Arc::new(arrow::array::Float32Array::from(q.clone())),
                None,
            )
            .map_err(|e| DoorError::internal(e.to_string()))?;
            let params = ParamValues::List(vec![ScalarValue::FixedSizeList(Arc::new(list)).into()]);
            let plan = KeyedPlan {
                key: &key,
                database: &search.database,
                table: &search.collection,
                build: &build,
            };
            match self
                .handler
                .execute_keyed_plan(&mut door.session, plan, params)
                .await?
            {
                Output::Rows { stream, .. } => streams.push(stream),
                _ => return Err(DoorError::internal(format!("a search without rows: {key}"))),
            }
        }
        let at_once = std::thread::available_parallelism().map_or(1, |n| n.get());
        let collecting: Vec<RowsFuture> = streams
            .into_iter()
            .map(|stream| Box::pin(collect_rows(stream)) as RowsFuture)
            .collect();
        futures::stream::iter(collecting)
            .buffered(at_once)
            .try_collect()
            .await
    }
}

/// The float32 query vectors of a serialized `PlaceholderGroup`.
pub(super) fn placeholder_vectors(bytes: &[u8], dim: u32) -> Result<Vec<Vec<f32>>, DoorError> {
    let group = PlaceholderGroup::decode(bytes)
        .map_err(|e| DoorError::invalid(format!("invalid placeholder group: {e}")))?;
    let Some(placeholder) = group.placeholders.first() else {
        return Err(DoorError::invalid("no query vectors".to_string()));
    };
    if placeholder.r#type != milvus::proto::common::PlaceholderType::FloatVector as i32 {
        return Err(DoorError::unsupported(format!(
            "search with {:?} query vectors (only FloatVector)",
            milvus::proto::common::PlaceholderType::try_from(placeholder.r#type)
                .map(|t| t.as_str_name())
                .unwrap_or("unknown")
        )));
    }
    let mut queries = Vec::with_capacity(placeholder.values.len());
    for raw in &placeholder.values {
        if raw.len() != dim as usize * 4 {
            return Err(DoorError::invalid(format!(
                "the dimension of the query vector ({}) is not equal to the dimension of the field ({dim})",
                raw.len() / 4
            )));
        }
        let v: Vec<f32> = raw
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        quiver_common::vector::validate(&v).map_err(|e| DoorError::invalid(e.to_string()))?;
        queries.push(v);
    }
    Ok(queries)
}

#[cfg(test)]
mod tests {
    use milvus::proto::common::{PlaceholderType, PlaceholderValue};

    use super::*;

    fn group(kind: PlaceholderType, vectors: &[&[f32]]) -> Vec<u8> {
        PlaceholderGroup {
            placeholders: vec![PlaceholderValue {
                tag: "$0".into(),
                r#type: kind as i32,
                values: vectors
                    .iter()
                    .map(|v| v.iter().flat_map(|x| x.to_le_bytes()).collect())
                    .collect(),
                ..Default::default()
            }],
        }
        .encode_to_vec()
    }

    #[test]
    fn float_placeholders_decode_to_query_vectors() {
        let bytes = group(PlaceholderType::FloatVector, &[&[1.0, -2.5], &[0.0, 3.0]]);
        assert_eq!(
            placeholder_vectors(&bytes, 2).unwrap(),
            vec![vec![1.0, -2.5], vec![0.0, 3.0]]
        );
    }

    #[test]
    fn placeholders_are_checked() {
        let bytes = group(PlaceholderType::FloatVector, &[&[1.0, 2.0, 3.0]]);
        let e = placeholder_vectors(&bytes, 2).unwrap_err();
        assert_eq!(e.code, 1100);
        assert_eq!(
            e.message,
            "the dimension of the query vector (3) is not equal to the dimension of the field (2)"
        );
        let bytes = group(PlaceholderType::BinaryVector, &[&[1.0]]);
        let e = placeholder_vectors(&bytes, 1).unwrap_err();
        assert_eq!(
            e.message,
            "search with \"BinaryVector\" query vectors (only FloatVector) is not supported yet by Quiver"
        );
        let nan = group(PlaceholderType::FloatVector, &[&[f32::NAN, 1.0]]);
        assert_eq!(placeholder_vectors(&nan, 2).unwrap_err().code, 1100);
        let empty = PlaceholderGroup::default().encode_to_vec();
        assert_eq!(
            placeholder_vectors(&empty, 2).unwrap_err().message,
            "no query vectors"
        );
        let e = placeholder_vectors(&[0xff, 0xff, 0xff], 2).unwrap_err();
        assert!(
            e.message.starts_with("invalid placeholder group"),
            "{}",
            e.message
        );
    }
}
