//! Conversions between Milvus' messages and Quiver's types: collection
//! schemas ↔ table definitions (as `CREATE TABLE` text), `FieldData`
//! columns ↔ Arrow arrays, and the distance conventions of each door.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, FixedSizeListArray, Float32Array, Float64Array,
    Int16Array, Int32Array, Int64Array, RecordBatch, StringArray,
};
use arrow::datatypes::{DataType as ArrowType, Field, Float32Type, SchemaRef};
use milvus::proto::common::KeyValuePair;
use milvus::proto::schema::{
    field_data, scalar_field, vector_field, BoolArray, CollectionSchema, DataType, DoubleArray,
    FieldData, FieldSchema, FloatArray, IntArray, JsonArray, LongArray, ScalarField,
    StringArray as PbStringArray, VectorField,
};
use quiver_common::schema::{ColumnType, TableSchema};

use super::DoorError;

/// The column holding a collection's dynamic field (undeclared keys, JSON).
pub const DYNAMIC_FIELD: &str = "$meta";

/// Double-quotes an identifier for SQL.
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn type_param(field: &FieldSchema, key: &str) -> Option<String> {
    field
        .type_params
        .iter()
        .find(|kv| kv.key == key)
        .map(|kv| kv.value.clone())
}

/// The SQL type of a Milvus field; types Quiver does not store yet are an
/// error naming them.
fn sql_type(field: &FieldSchema) -> Result<String, DoorError> {
    let data_type = DataType::try_from(field.data_type).unwrap_or(DataType::None);
    Ok(match data_type {
        DataType::Bool => "BOOLEAN".into(),
        DataType::Int8 | DataType::Int16 => "SMALLINT".into(),
        DataType::Int32 => "INTEGER".into(),
        DataType::Int64 => "BIGINT".into(),
        DataType::Float => "REAL".into(),
        DataType::Double => "DOUBLE PRECISION".into(),
        DataType::VarChar | DataType::String => {
            let max = type_param(field, "max_length").ok_or_else(|| {
                DoorError::invalid(format!(
                    "type param(max_length) should be specified for the field({})",
                    field.name
                ))
            })?;
            let max: u32 = max.parse().map_err(|_| {
                DoorError::invalid(format!(
                    "the maximum length specified for the field({}) should be in (0, 65535]",
                    field.name
                ))
            })?;
            if max == 0 || max > 65_535 {
                return Err(DoorError::invalid(format!(
                    "the maximum length specified for the field({}) should be in (0, 65535], but got {max} instead",
                    field.name
                )));
            }
            format!("VARCHAR({max})")
        }
        DataType::Json => "JSONB".into(),
        DataType::FloatVector => {
            let dim = type_param(field, "dim").ok_or_else(|| {
                DoorError::invalid(format!(
                    "dimension is not defined in field type params of field {}",
                    field.name
                ))
            })?;
            let dim: u32 = dim.parse().map_err(|_| {
                DoorError::invalid(format!("invalid dimension {dim} of field {}", field.name))
            })?;
            if dim == 0 || dim > quiver_common::limits::MAX_VECTOR_DIM as u32 {
                return Err(DoorError::invalid(format!(
                    "invalid dimension: {dim} of field {}. should be in range 2 ~ {}",
                    field.name,
                    quiver_common::limits::MAX_VECTOR_DIM
                )));
            }
            format!("vector({dim})")
        }
        other => {
            return Err(DoorError::unsupported(format!(
                "field type {} (field {})",
                other.as_str_name(),
                field.name
            )))
        }
    })
}

/// `CREATE TABLE` text for a collection schema.
#[allow(deprecated)] // `CollectionSchema::auto_id`: old clients still set it
pub fn create_table_sql(
    database: &str,
    name: &str,
    schema: &CollectionSchema,
) -> Result<String, DoorError> {
    let mut columns = Vec::new();
    let mut primary = 0;
    for field in &schema.fields {
        if field.auto_id || (schema.auto_id && field.is_primary_key) {
            return Err(DoorError::unsupported("auto_id".to_string()));
        }
        if field.default_value.is_some() {
            return Err(DoorError::unsupported("field default values".to_string()));
        }
        let mut column = format!("{} {}", quote(&field.name), sql_type(field)?);
        if field.is_primary_key {
            primary += 1;
            column.push_str(" PRIMARY KEY");
        } else if !field.nullable {
            column.push_str(" NOT NULL");
        }
        columns.push(column);
    }
    if primary != 1 {
        return Err(DoorError::invalid(
            "schema must have exactly one primary key field".to_string(),
        ));
    }
    if schema.enable_dynamic_field {
        columns.push(format!("{} JSONB", quote(DYNAMIC_FIELD)));
    }
    Ok(format!(
        "CREATE TABLE {}.{} ({})",
        quote(database),
        quote(name),
        columns.join(", ")
    ))
}

fn kv(key: &str, value: impl Into<String>) -> KeyValuePair {
    KeyValuePair {
        key: key.into(),
        value: value.into(),
    }
}

/// The Milvus schema of a table.
pub fn collection_schema(name: &str, table: &TableSchema) -> CollectionSchema {
    let mut fields = Vec::new();
    let mut dynamic = false;
    for (i, column) in table.columns.iter().enumerate() {
        if column.name == DYNAMIC_FIELD {
            dynamic = true;
            continue;
        }
        let (data_type, params) = match &column.column_type {
            ColumnType::Bool => (DataType::Bool, vec![]),
            ColumnType::Int16 => (DataType::Int16, vec![]),
            ColumnType::Int32 => (DataType::Int32, vec![]),
            ColumnType::Int64 => (DataType::Int64, vec![]),
            ColumnType::Float32 => (DataType::Float, vec![]),
            ColumnType::Float64 => (DataType::Double, vec![]),
            ColumnType::Text { max_len } => (
                DataType::VarChar,
                vec![kv("max_length", max_len.unwrap_or(65_535).to_string())],
            ),
            ColumnType::Json => (DataType::Json, vec![]),
            // Milvus has no time type; the value travels as its text.
            ColumnType::TimestampTz => (DataType::VarChar, vec![kv("max_length", "64")]),
            ColumnType::Vector { dim } => (DataType::FloatVector, vec![kv("dim", dim.to_string())]),
        };
        fields.push(FieldSchema {
            field_id: 100 + i as i64,
            name: column.name.clone(),
            is_primary_key: i == table.primary_key,
            data_type: data_type as i32,
            type_params: params,
            auto_id: column.auto_increment && i == table.primary_key,
            nullable: column.nullable && i != table.primary_key,
            ..Default::default()
        });
    }
    CollectionSchema {
        name: name.to_string(),
        fields,
        enable_dynamic_field: dynamic,
        ..Default::default()
    }
}

/// The Milvus data type of a column.
pub fn field_type(column: &ColumnType) -> DataType {
    match column {
        ColumnType::Bool => DataType::Bool,
        ColumnType::Int16 => DataType::Int16,
        ColumnType::Int32 => DataType::Int32,
        ColumnType::Int64 => DataType::Int64,
        ColumnType::Float32 => DataType::Float,
        ColumnType::Float64 => DataType::Double,
        ColumnType::Text { .. } | ColumnType::TimestampTz => DataType::VarChar,
        ColumnType::Json => DataType::Json,
        ColumnType::Vector { .. } => DataType::FloatVector,
    }
}

/// Number of rows a field carries.
fn field_rows(data: &FieldData) -> Result<usize, DoorError> {
    use field_data::Field as F;
    use scalar_field::Data as S;
    Ok(match &data.field {
        Some(F::Scalars(ScalarField { data: Some(d), .. })) => match d {
            S::BoolData(a) => a.data.len(),
            S::IntData(a) => a.data.len(),
            S::LongData(a) => a.data.len(),
            S::FloatData(a) => a.data.len(),
            S::DoubleData(a) => a.data.len(),
            S::StringData(a) => a.data.len(),
            S::JsonData(a) => a.data.len(),
            _ => {
                return Err(DoorError::unsupported(format!(
                    "the data of field {}",
                    data.field_name
                )))
            }
        },
        Some(F::Vectors(VectorField {
            dim,
            data: Some(vector_field::Data::FloatVector(a)),
            ..
        })) => {
            if *dim <= 0 {
                return Err(DoorError::invalid(format!(
                    "invalid dim {dim} of field {}",
                    data.field_name
                )));
            }
            a.data.len() / *dim as usize
        }
        Some(F::Vectors(_)) => {
            return Err(DoorError::unsupported(format!(
                "vector type of field {} (only FloatVector is supported yet)",
                data.field_name
            )))
        }
        _ => {
            return Err(DoorError::invalid(format!(
                "field {} carries no data",
                data.field_name
            )))
        }
    })
}

/// Expands the values of a nullable field sent only for its valid rows.
fn spread<T: Clone>(values: &[T], valid: &[bool], rows: usize) -> Vec<Option<T>> {
    if valid.is_empty() {
        return values.iter().cloned().map(Some).collect();
    }
    if values.len() == rows {
        return values
            .iter()
            .zip(valid)
            .map(|(v, ok)| ok.then(|| v.clone()))
            .collect();
    }
    let mut it = values.iter();
    valid
        .iter()
        .map(|ok| if *ok { it.next().cloned() } else { None })
        .collect()
}

/// One column of the table from the field sent for it.
fn column_array(data: &FieldData, column: &ColumnType, rows: usize) -> Result<ArrayRef, DoorError> {
    use field_data::Field as F;
    use scalar_field::Data as S;
    let mismatch = || {
        DoorError::invalid(format!(
            "the data type of field {} doesn't match, expected: {}",
            data.field_name,
            field_type(column).as_str_name()
        ))
    };
    let valid = &data.valid_data;
    let array: ArrayRef = match (column, &data.field) {
        (ColumnType::Vector { dim }, Some(F::Vectors(v))) => {
            let Some(vector_field::Data::FloatVector(floats)) = &v.data else {
                return Err(mismatch());
            };
            if v.dim != *dim as i64 {
                return Err(DoorError::invalid(format!(
                    "the dim ({}) of field data(field {}) is not equal to schema dim ({dim})",
                    v.dim, data.field_name
                )));
            }
            quiver_common::vector::validate(&floats.data)
                .map_err(|e| DoorError::invalid(format!("field {}: {e}", data.field_name)))?;
            let item = Arc::new(Field::new("item", ArrowType::Float32, true));
            Arc::new(
                FixedSizeListArray::try_new(
                    item,
                    *dim as i32,
                    Arc::new(Float32Array::from(floats.data.clone())),
                    None,
                )
                .map_err(|e| DoorError::invalid(e.to_string()))?,
            )
        }
        (_, Some(F::Scalars(ScalarField { data: Some(d), .. }))) => match (column, d) {
            (ColumnType::Bool, S::BoolData(a)) => {
                Arc::new(BooleanArray::from(spread(&a.data, valid, rows)))
            }
            (ColumnType::Int16, S::IntData(a)) => {
                let values: Result<Vec<Option<i16>>, _> = spread(&a.data, valid, rows)
                    .into_iter()
                    .map(|v| v.map(i16::try_from).transpose())
                    .collect();
                Arc::new(Int16Array::from(values.map_err(|_| {
                    DoorError::invalid(format!(
                        "a value of field {} is out of range",
                        data.field_name
                    ))
                })?))
            }
            (ColumnType::Int32, S::IntData(a)) => {
                Arc::new(Int32Array::from(spread(&a.data, valid, rows)))
            }
            (ColumnType::Int64, S::LongData(a)) => {
                Arc::new(Int64Array::from(spread(&a.data, valid, rows)))
            }
            (ColumnType::Float32, S::FloatData(a)) => {
                Arc::new(Float32Array::from(spread(&a.data, valid, rows)))
            }
            (ColumnType::Float64, S::DoubleData(a)) => {
                Arc::new(Float64Array::from(spread(&a.data, valid, rows)))
            }
            (ColumnType::Text { max_len }, S::StringData(a)) => {
                if let Some(max) = max_len {
                    if let Some(long) = a.data.iter().find(|s| s.chars().count() > *max as usize) {
                        return Err(DoorError::invalid(format!(
                            "the length ({}) of varchar field ({}) exceeds max length ({max})",
                            long.chars().count(),
                            data.field_name
                        )));
                    }
                }
                Arc::new(StringArray::from(spread(&a.data, valid, rows)))
            }
            (ColumnType::Json, S::JsonData(a)) => {
                let texts: Result<Vec<Option<String>>, DoorError> = spread(&a.data, valid, rows)
                    .into_iter()
                    .map(|v| {
                        v.map(|bytes| {
                            let text = String::from_utf8(bytes).map_err(|_| {
                                DoorError::invalid(format!(
                                    "field {} holds invalid JSON",
                                    data.field_name
                                ))
                            })?;
                            serde_json::from_str::<serde_json::Value>(&text).map_err(|e| {
                                DoorError::invalid(format!(
                                    "field {} holds invalid JSON: {e}",
                                    data.field_name
                                ))
                            })?;
                            Ok(text)
                        })
                        .transpose()
                    })
                    .collect();
                Arc::new(StringArray::from(texts?))
            }
            _ => return Err(mismatch()),
        },
        _ => return Err(mismatch()),
    };
    if array.len() != rows {
        return Err(DoorError::invalid(format!(
            "the num_rows ({}) of field ({}) is not equal to passed num_rows ({rows})",
            array.len(),
            data.field_name
        )));
    }
    Ok(array)
}

/// The rows of an insert as a batch in the table's column order.
pub fn insert_batch(
    table: &TableSchema,
    fields: &[FieldData],
    num_rows: u32,
) -> Result<RecordBatch, DoorError> {
    let rows = match fields.first() {
        Some(first) => field_rows(first)?,
        None => return Err(DoorError::invalid("no field data".to_string())),
    };
    if num_rows != 0 && num_rows as usize != rows {
        return Err(DoorError::invalid(format!(
            "the num_rows ({rows}) of field data is not equal to passed num_rows ({num_rows})"
        )));
    }
    for data in fields {
        let known = data.is_dynamic || table.columns.iter().any(|c| c.name == data.field_name);
        if !known {
            return Err(DoorError::invalid(format!(
                "field {} not exist in collection schema",
                data.field_name
            )));
        }
    }
    let schema: SchemaRef = table.arrow_schema();
    let mut columns = Vec::with_capacity(table.columns.len());
    for column in &table.columns {
        let sent = fields.iter().find(|f| {
            f.field_name == column.name || (column.name == DYNAMIC_FIELD && f.is_dynamic)
        });
        let array = match sent {
            Some(data) => column_array(data, &column.column_type, rows)?,
            None if column.nullable => arrow::array::new_null_array(&column.column_type.arrow_type(), rows),
            None => {
                return Err(DoorError::invalid(format!(
                    "Insert missed an field `{}` to collection without set nullable==true or set default_value",
                    column.name
                )))
            }
        };
        columns.push(array);
    }
    RecordBatch::try_new(schema, columns).map_err(|e| DoorError::invalid(e.to_string()))
}

/// A result column as Milvus field data.
pub fn field_data(
    name: &str,
    column: &ColumnType,
    array: &ArrayRef,
) -> Result<FieldData, DoorError> {
    use field_data::Field as F;
    use scalar_field::Data as S;
    let nulls = array.null_count() > 0;
    let valid_data: Vec<bool> = if nulls {
        (0..array.len()).map(|i| array.is_valid(i)).collect()
    } else {
        Vec::new()
    };
    let scalar = |data: S| F::Scalars(ScalarField {
        data: Some(data),
        ..Default::default()
    });
    let field = match column {
        ColumnType::Bool => scalar(S::BoolData(BoolArray {
            data: array
                .as_boolean()
                .iter()
                .map(|v| v.unwrap_or_default())
                .collect(),
        })),
        ColumnType::Int16 => scalar(S::IntData(IntArray {
            data: array
                .as_primitive::<arrow::datatypes::Int16Type>()
                .iter()
                .map(|v| v.unwrap_or_default() as i32)
                .collect(),
        })),
        ColumnType::Int32 => scalar(S::IntData(IntArray {
            data: array
                .as_primitive::<arrow::datatypes::Int32Type>()
                .iter()
                .map(|v| v.unwrap_or_default())
                .collect(),
        })),
        ColumnType::Int64 => scalar(S::LongData(LongArray {
            data: array
                .as_primitive::<arrow::datatypes::Int64Type>()
                .iter()
                .map(|v| v.unwrap_or_default())
                .collect(),
        })),
        ColumnType::Float32 => scalar(S::FloatData(FloatArray {
            data: array
                .as_primitive::<Float32Type>()
                .iter()
                .map(|v| v.unwrap_or_default())
                .collect(),
        })),
        ColumnType::Float64 => scalar(S::DoubleData(DoubleArray {
            data: array
                .as_primitive::<arrow::datatypes::Float64Type>()
                .iter()
                .map(|v| v.unwrap_or_default())
                .collect(),
        })),
        ColumnType::Text { .. } | ColumnType::TimestampTz => {
            let text = arrow::compute::cast(array, &ArrowType::Utf8)
                .map_err(|e| DoorError::internal(e.to_string()))?;
            scalar(S::StringData(PbStringArray {
                data: text
                    .as_string::<i32>()
                    .iter()
                    .map(|v| v.unwrap_or_default().to_string())
                    .collect(),
            }))
        }
        ColumnType::Json => {
            let text = arrow::compute::cast(array, &ArrowType::Utf8)
                .map_err(|e| DoorError::internal(e.to_string()))?;
            scalar(S::JsonData(JsonArray {
                data: text
                    .as_string::<i32>()
                    .iter()
                    .map(|v| v.unwrap_or("{}").as_bytes().to_vec())
                    .collect(),
            }))
        }
        ColumnType::Vector { dim } => {
            let list = array.as_fixed_size_list();
            let values = list.values().as_primitive::<Float32Type>();
            F::Vectors(VectorField {
                dim: *dim as i64,
                data: Some(vector_field::Data::FloatVector(FloatArray {
                    data: values.values().to_vec(),
                })),
                ..Default::default()
            })
        }
    };
    Ok(FieldData {
        r#type: field_type(column) as i32,
        field_name: name.to_string(),
        field: Some(field),
        field_id: 0,
        is_dynamic: name == DYNAMIC_FIELD,
        valid_data,
    })
}

/// Milvus metric names and the pgvector operator that ranks by them.
pub fn metric_operator(metric: &str) -> Result<(&'static str, &'static str), DoorError> {
    match metric.to_ascii_uppercase().as_str() {
        "L2" => Ok(("<->", "vector_l2_ops")),
        "IP" => Ok(("<#>", "vector_ip_ops")),
        "COSINE" => Ok(("<=>", "vector_cosine_ops")),
        other => Err(DoorError::invalid(format!(
            "metric type {other} not found or not supported, supported: [L2 IP COSINE]"
        ))),
    }
}

/// Milvus' score from pgvector's distance: squared Euclidean distance for
/// L2, the inner product for IP, the cosine similarity for COSINE.
pub fn milvus_score(metric: &str, pg_distance: f64) -> f32 {
    match metric.to_ascii_uppercase().as_str() {
        "L2" => (pg_distance * pg_distance) as f32,
        "IP" => (-pg_distance) as f32,
        _ => (1.0 - pg_distance) as f32,
    }
}

/// A float column of a result batch as f64 values.
pub fn float_column(batch: &RecordBatch, index: usize) -> Result<Vec<f64>, DoorError> {
    let array = arrow::compute::cast(batch.column(index), &ArrowType::Float64)
        .map_err(|e| DoorError::internal(e.to_string()))?;
    Ok(array
        .as_primitive::<arrow::datatypes::Float64Type>()
        .iter()
        .map(|v| v.unwrap_or(f64::NAN))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(name: &str, data_type: DataType, params: &[(&str, &str)]) -> FieldSchema {
        FieldSchema {
            name: name.into(),
            data_type: data_type as i32,
            type_params: params.iter().map(|(k, v)| kv(k, *v)).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn schemas_become_tables_and_back() {
        let mut id = field("id", DataType::Int64, &[]);
        id.is_primary_key = true;
        let schema = CollectionSchema {
            name: "docs".into(),
            fields: vec![
                id,
                field("title", DataType::VarChar, &[("max_length", "64")]),
                field("v", DataType::FloatVector, &[("dim", "4")]),
            ],
            enable_dynamic_field: true,
            ..Default::default()
        };
        assert_eq!(
            create_table_sql("public", "docs", &schema).unwrap(),
            "CREATE TABLE \"public\".\"docs\" (\"id\" BIGINT PRIMARY KEY, \"title\" VARCHAR(64) NOT NULL, \"v\" vector(4) NOT NULL, \"$meta\" JSONB)"
        );
        let binary = CollectionSchema {
            fields: vec![field("b", DataType::BinaryVector, &[("dim", "8")])],
            ..schema.clone()
        };
        let err = create_table_sql("public", "docs", &binary).unwrap_err();
        assert!(err.to_string().contains("BinaryVector"), "{err}");
    }

    #[test]
    fn scores_follow_milvus() {
        assert_eq!(milvus_score("L2", 2.0), 4.0);
        assert_eq!(milvus_score("IP", -0.5), 0.5);
        assert_eq!(milvus_score("COSINE", 0.25), 0.75);
        assert!(metric_operator("HAMMING").is_err());
    }
}
