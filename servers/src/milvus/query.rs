//! Reads by filter or key: `Query` (rows, `count(*)`, pages; the query
//! iterators of the clients are pages of it), output fields, and rows by
//! primary key.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::RecordBatch;
use datafusion::common::ScalarValue;
use datafusion::functions_aggregate::count::count_all;
use datafusion::logical_expr::{cast, lit, Expr as DfExpr};
use milvus::proto::milvus::{QueryRequest, QueryResults};
use milvus::proto::schema::LongArray;
use quiver_common::schema::{ColumnType, TableSchema};

use super::collection::Collection;
use super::convert;
use super::door::{first_count, MilvusDoor};
use super::hidden_columns::{column, PARTITION_COLUMN};
use super::predicates::both_exprs;
use super::request::param;
use super::rows::{concat, output_field, text_values};
use super::status::{ok_status, DoorError};
use super::validate;

impl MilvusDoor {
    /// Output columns: the primary key first, then the requested fields
    /// (`*` is every scalar field; vectors only when named).
    pub(super) fn output_columns(
        &self,
        table: &TableSchema,
        requested: &[String],
        with_vectors_for_star: bool,
    ) -> Result<Vec<usize>, DoorError> {
        let mut out = vec![table.primary_key];
        for name in requested {
            if name == "*" {
                for (i, c) in table.columns.iter().enumerate() {
                    let vector = matches!(c.column_type, ColumnType::Vector { .. });
                    let hidden = c.name == PARTITION_COLUMN;
                    if !out.contains(&i) && !hidden && (with_vectors_for_star || !vector) {
                        out.push(i);
                    }
                }
                continue;
            }
            let Some(i) = table
                .column_index(name)
                .filter(|_| name != PARTITION_COLUMN)
                .or_else(|| table.column_index(convert::DYNAMIC_FIELD))
            else {
                return Err(DoorError::invalid(format!("field {name} not exist")));
            };
            if !out.contains(&i) {
                out.push(i);
            }
        }
        Ok(out)
    }

    /// `Query` as a typed plan: the table's scan, the filter and the
    /// partition scope, then `count(*)` or the output columns ordered by
    /// primary key within the window.
    pub(super) async fn do_query(
        &self,
        database: &str,
        r: &QueryRequest,
    ) -> Result<QueryResults, DoorError> {
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
        let (limit, offset) = validate::query_window(
            param(&r.query_params, "limit"),
            param(&r.query_params, "offset"),
        )?;
        let counting = r
            .output_fields
            .iter()
            .any(|f| f.eq_ignore_ascii_case("count(*)"));
        if r.expr.trim().is_empty()
            && limit.is_none()
            && !r.output_fields.iter().any(|f| f == "count(*)")
        {
            return Err(DoorError::invalid(
                "empty expression should be used with limit".to_string(),
            ));
        }
        // No output fields means every field, vectors included, as in Milvus.
        let every = ["*".to_string()];
        let requested: &[String] = if r.output_fields.is_empty() {
            &every
        } else {
            &r.output_fields
        };
        let columns = if counting {
            Vec::new()
        } else {
            self.output_columns(&table, requested, true)?
        };
        let batches = self
            .typed_plan(database, &r.collection_name, |session, scan| {
                let filter = self.predicate_expr(
                    session,
                    &table,
                    &arrays,
                    &r.expr,
                    &r.expr_template_values,
                )?;
                let mut plan = scan;
                if let Some(predicate) = both_exprs(filter, scope) {
                    plan = plan.filter(predicate)?;
                }
                if counting {
                    return Ok(plan
                        .aggregate(Vec::<DfExpr>::new(), vec![count_all()])?
                        .build()?);
                }
                let select: Vec<DfExpr> = columns
                    .iter()
                    .map(|&i| column(&table.columns[i].name))
                    .collect();
                plan = plan
                    .project(select)?
                    .sort(vec![column(&table.pk().name).sort(true, false)])?;
                if limit.is_some() || offset > 0 {
                    plan = plan.limit(offset, limit)?;
                }
                Ok(plan.build()?)
            })
            .await?;
        if counting {
            let count = first_count(&batches);
            return Ok(QueryResults {
                status: Some(ok_status()),
                fields_data: vec![milvus::proto::schema::FieldData {
                    r#type: milvus::proto::schema::DataType::Int64 as i32,
                    field_name: "count(*)".into(),
                    field: Some(milvus::proto::schema::field_data::Field::Scalars(
                        milvus::proto::schema::ScalarField {
                            data: Some(milvus::proto::schema::scalar_field::Data::LongData(
                                LongArray { data: vec![count] },
                            )),
                            ..Default::default()
                        },
                    )),
                    ..Default::default()
                }],
                collection_name: r.collection_name.clone(),
                output_fields: vec!["count(*)".into()],
                ..Default::default()
            });
        }
        let batch = concat(&batches, columns.len())?;
        let mut fields_data = Vec::new();
        for (pos, &i) in columns.iter().enumerate() {
            let column = &table.columns[i];
            let array = match &batch {
                Some(b) => b.column(pos).clone(),
                None => arrow::array::new_empty_array(&column.column_type.arrow_type()),
            };
            fields_data.push(output_field(
                &table,
                &arrays,
                column,
                &array,
                &r.output_fields,
            )?);
        }
        Ok(QueryResults {
            status: Some(ok_status()),
            fields_data,
            collection_name: r.collection_name.clone(),
            output_fields: columns
                .iter()
                .map(|&i| table.columns[i].name.clone())
                .collect(),
            primary_field_name: table.pk().name.clone(),
            ..Default::default()
        })
    }

    /// The `columns` of the rows with primary keys `keys` (as text), in
    /// `keys` order (a key may repeat); a typed plan (`pk IN (..)`).
    pub(super) async fn rows_by_keys(
        &self,
        database: &str,
        collection: &str,
        table: &TableSchema,
        columns: &[usize],
        keys: &[String],
    ) -> Result<RecordBatch, DoorError> {
        let text_key = matches!(table.pk().column_type, ColumnType::Text { .. });
        let mut distinct: Vec<&String> = keys.iter().collect();
        distinct.sort();
        distinct.dedup();
        let pk = column(&table.pk().name);
        let literals: Vec<DfExpr> = distinct
            .iter()
            .map(|k| {
                if text_key {
                    lit(k.to_string())
                } else {
                    lit(ScalarValue::Int64(k.parse::<i64>().ok()))
                }
            })
            .collect();
        let batches = self
            .typed_plan(database, collection, |_, scan| {
                let filter = if literals.is_empty() {
                    lit(false)
                } else {
                    pk.clone().in_list(literals, false)
                };
                let select: Vec<DfExpr> = columns
                    .iter()
                    .map(|&i| column(&table.columns[i].name))
                    .chain(std::iter::once(
                        cast(pk.clone(), arrow::datatypes::DataType::Utf8).alias("__milvus_key"),
                    ))
                    .collect();
                Ok(scan.filter(filter)?.project(select)?.build()?)
            })
            .await?;
        let schema = Arc::new(arrow::datatypes::Schema::new(
            columns
                .iter()
                .map(|&i| table.columns[i].arrow_field().with_nullable(true))
                .chain(std::iter::once(arrow::datatypes::Field::new(
                    "__milvus_key",
                    arrow::datatypes::DataType::Utf8,
                    true,
                )))
                .collect::<Vec<_>>(),
        ));
        let all = match concat(&batches, columns.len() + 1)? {
            Some(b) => b,
            None => RecordBatch::new_empty(schema),
        };
        let key_column = text_values(all.column(columns.len()))?;
        let position: HashMap<&str, u32> = key_column
            .iter()
            .enumerate()
            .map(|(i, k)| (k.as_str(), i as u32))
            .collect();
        let indices: Vec<u32> = keys
            .iter()
            .filter_map(|k| position.get(k.as_str()).copied())
            .collect();
        let taken =
            arrow::compute::take_record_batch(&all, &arrow::array::UInt32Array::from(indices))
                .map_err(|e| DoorError::internal(e.to_string()))?;
        taken
            .project(&(0..columns.len()).collect::<Vec<_>>())
            .map_err(|e| DoorError::internal(e.to_string()))
    }
}
