//! Result rows as Milvus data: field data of output columns, primary keys
//! as Milvus ids (and ids as SQL literals), and result streams collected.

use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use datafusion::execution::SendableRecordBatchStream;
use futures::TryStreamExt;
use milvus::proto::schema::{i_ds, IDs, LongArray};
use quiver_common::schema::{ColumnType, TableSchema};
use quiver_sql::error::SqlError;

use super::status::DoorError;
use super::{arrays, convert};

/// A result column as Milvus field data; the dynamic field keeps only the
/// undeclared keys named in `requested` (all of them for `*` or `$meta`).
pub(super) fn output_field(
    table: &TableSchema,
    arrays: &arrays::ArrayFields,
    column: &quiver_common::schema::ColumnDef,
    array: &arrow::array::ArrayRef,
    requested: &[String],
) -> Result<milvus::proto::schema::FieldData, DoorError> {
    let mut data = convert::field_data(&column.name, &column.column_type, array)?;
    if arrays.get(&column.name).is_some() {
        return arrays.decode_field(data);
    }
    if column.name == convert::DYNAMIC_FIELD
        && !requested
            .iter()
            .any(|f| f == "*" || f == convert::DYNAMIC_FIELD)
    {
        let keys: Vec<&str> = requested
            .iter()
            .map(String::as_str)
            .filter(|name| table.column_index(name).is_none())
            .collect();
        convert::keep_json_keys(&mut data, &keys);
    }
    Ok(data)
}

/// Whether a search's output fields name the primary key (or `*`), so
/// its values travel as a field too, not only as ids.
pub(super) fn pk_requested(table: &TableSchema, requested: &[String]) -> bool {
    requested.iter().any(|f| f == "*" || *f == table.pk().name)
}

/// The primary keys of `ids` as literals of a typed plan.
pub(super) fn id_values(ids: &IDs) -> Result<Vec<datafusion::logical_expr::Expr>, DoorError> {
    use datafusion::logical_expr::lit;
    Ok(match &ids.id_field {
        Some(i_ds::IdField::IntId(a)) => a.data.iter().map(|&i| lit(i)).collect(),
        Some(i_ds::IdField::StrId(a)) => a.data.iter().map(|s| lit(s.clone())).collect(),
        Some(i_ds::IdField::UuidId(_)) => {
            return Err(DoorError::unsupported("UUID primary keys".to_string()))
        }
        None => Vec::new(),
    })
}

/// The primary keys of `ids` as the text SQL renders them.
pub(super) fn id_strings(ids: &IDs) -> Vec<String> {
    match &ids.id_field {
        Some(i_ds::IdField::IntId(a)) => a.data.iter().map(i64::to_string).collect(),
        Some(i_ds::IdField::StrId(a)) => a.data.clone(),
        Some(i_ds::IdField::UuidId(_)) | None => Vec::new(),
    }
}

/// The values of a string column (any string encoding) as text.
pub(super) fn text_values(array: &arrow::array::ArrayRef) -> Result<Vec<String>, DoorError> {
    let text = arrow::compute::cast(array, &arrow::datatypes::DataType::Utf8)
        .map_err(|e| DoorError::internal(e.to_string()))?;
    Ok(text
        .as_string::<i32>()
        .iter()
        .map(|v| v.unwrap_or_default().to_string())
        .collect())
}

/// The primary keys of a result as Milvus ids.
pub(super) fn ids_of(table: &TableSchema, keys: &arrow::array::ArrayRef) -> Result<IDs, DoorError> {
    let id_field = match table.pk().column_type {
        ColumnType::Text { .. } => i_ds::IdField::StrId(milvus::proto::schema::StringArray {
            data: text_values(keys)?,
        }),
        _ => {
            let ints = arrow::compute::cast(keys, &arrow::datatypes::DataType::Int64)
                .map_err(|e| DoorError::internal(e.to_string()))?;
            i_ds::IdField::IntId(LongArray {
                data: ints
                    .as_primitive::<Int64Type>()
                    .iter()
                    .map(|v| v.unwrap_or_default())
                    .collect(),
            })
        }
    };
    Ok(IDs {
        id_field: Some(id_field),
    })
}

pub(super) type RowsFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<RecordBatch, DoorError>> + Send>>;

/// Every row of a result stream, as one batch.
pub(super) async fn collect_rows(
    stream: SendableRecordBatchStream,
) -> Result<RecordBatch, DoorError> {
    let batches = stream
        .try_collect::<Vec<_>>()
        .await
        .map_err(|e| DoorError::from(SqlError::from(e)))?;
    Ok(concat(&batches, 0)?
        .unwrap_or_else(|| RecordBatch::new_empty(Arc::new(arrow::datatypes::Schema::empty()))))
}

/// The batches as one (`None` when there are no rows or no batches).
pub(super) fn concat(
    batches: &[RecordBatch],
    _columns: usize,
) -> Result<Option<RecordBatch>, DoorError> {
    let non_empty: Vec<&RecordBatch> = batches.iter().filter(|b| b.num_columns() > 0).collect();
    let Some(first) = non_empty.first() else {
        return Ok(None);
    };
    let schema = first.schema();
    let merged = arrow::compute::concat_batches(&schema, non_empty.iter().copied())
        .map_err(|e| DoorError::internal(e.to_string()))?;
    Ok(Some(merged))
}

#[cfg(test)]
mod tests {
    use arrow::array::{ArrayRef, Int32Array, StringArray};
    use milvus::proto::schema::StringArray as MilvusStrings;
    use quiver_common::schema::ColumnDef;

    use super::*;

    fn ints(data: &[i64]) -> IDs {
        IDs {
            id_field: Some(i_ds::IdField::IntId(LongArray {
                data: data.to_vec(),
            })),
        }
    }

    fn texts(data: &[&str]) -> IDs {
        IDs {
            id_field: Some(i_ds::IdField::StrId(MilvusStrings {
                data: data.iter().map(|s| s.to_string()).collect(),
            })),
        }
    }

    #[test]
    fn ids_become_literals_and_text() {
        use datafusion::logical_expr::lit;
        assert_eq!(id_values(&ints(&[1, -2])).unwrap(), [lit(1i64), lit(-2i64)]);
        assert_eq!(
            id_values(&texts(&["a", "o'k"])).unwrap(),
            [lit("a"), lit("o'k")]
        );
        assert!(id_values(&IDs::default()).unwrap().is_empty());
        assert_eq!(id_strings(&ints(&[1, -2])), ["1", "-2"]);
        assert_eq!(id_strings(&texts(&["o'k"])), ["o'k"]);
    }

    #[test]
    fn keys_become_milvus_ids() {
        let int_table = TableSchema {
            columns: vec![ColumnDef::new("id", ColumnType::Int32)],
            primary_key: 0,
        };
        let keys: ArrayRef = Arc::new(Int32Array::from(vec![3, 4]));
        assert_eq!(ids_of(&int_table, &keys).unwrap(), ints(&[3, 4]));
        let text_table = TableSchema {
            columns: vec![ColumnDef::new("id", ColumnType::Text { max_len: Some(8) })],
            primary_key: 0,
        };
        let keys: ArrayRef = Arc::new(StringArray::from(vec!["a", "b"]));
        assert_eq!(ids_of(&text_table, &keys).unwrap(), texts(&["a", "b"]));
        assert_eq!(text_values(&keys).unwrap(), ["a", "b"]);
    }

    #[test]
    fn batches_concatenate() {
        assert!(concat(&[], 0).unwrap().is_none());
        let schema = Arc::new(arrow::datatypes::Schema::new(vec![
            arrow::datatypes::Field::new("x", arrow::datatypes::DataType::Int32, false),
        ]));
        let batch = |v: Vec<i32>| {
            RecordBatch::try_new(schema.clone(), vec![Arc::new(Int32Array::from(v))]).unwrap()
        };
        let empty = RecordBatch::new_empty(Arc::new(arrow::datatypes::Schema::empty()));
        let merged = concat(&[batch(vec![1]), empty, batch(vec![2, 3])], 1)
            .unwrap()
            .unwrap();
        assert_eq!(merged.num_rows(), 3);
    }
}
