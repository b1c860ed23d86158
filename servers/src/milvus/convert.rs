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
    field_data, scalar_field, value_field, vector_field, BoolArray, CollectionSchema, DataType,
    DoubleArray, FieldData, FieldSchema, FloatArray, IntArray, JsonArray, LongArray, ScalarField,
    StringArray as PbStringArray, ValueField, VectorField,
};
use quiver_common::schema::{ColumnType, TableSchema};

use super::hidden_columns::PARTITION_COLUMN;
use super::status::DoorError;

/// The column holding a collection's dynamic field (undeclared keys, JSON).
pub const DYNAMIC_FIELD: &str = "$meta";

/// What a write stores in the hidden partition column.
#[derive(Debug, Clone, Copy)]
pub struct PartitionWrite<'a> {
    /// The partition (`None`: `_default`, stored as NULL).
    pub name: Option<&'a str>,
    /// Whether the column is written (a partial update leaves it alone
    /// unless the request names a partition).
    pub explicit: bool,
}

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

/// Whether a Milvus data type is a vector type (of any element kind).
pub fn is_vector_type(data_type: i32) -> bool {
    matches!(
        DataType::try_from(data_type),
        Ok(DataType::FloatVector
            | DataType::BinaryVector
            | DataType::Float16Vector
            | DataType::BFloat16Vector
            | DataType::Int8Vector
            | DataType::SparseFloatVector)
    )
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
        // Milvus' naming rule also keeps fields apart from the hidden
        // `$meta` and `$partition` columns.
        super::validate::field_name(&field.name)?;
        let auto_id = field.auto_id || (schema.auto_id && field.is_primary_key);
        let mut column = format!("{} {}", quote(&field.name), sql_type(field)?);
        if auto_id {
            if !field.is_primary_key {
                return Err(DoorError::invalid(format!(
                    "only the primary key field can be auto_id (field {})",
                    field.name
                )));
            }
            if field.data_type != DataType::Int64 as i32 {
                return Err(DoorError::unsupported(format!(
                    "auto_id on a {} primary key (field {})",
                    DataType::try_from(field.data_type)
                        .map(|t| t.as_str_name())
                        .unwrap_or("non-Int64"),
                    field.name
                )));
            }
            column = format!("{} BIGSERIAL", quote(&field.name));
        }
        if let Some(default) = &field.default_value {
            if field.is_primary_key {
                return Err(DoorError::invalid(format!(
                    "the primary key field {} cannot have a default value",
                    field.name
                )));
            }
            column.push_str(&format!(
                " DEFAULT {}",
                default_literal(&field.name, default)?
            ));
        }
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

/// A field's default value as a SQL literal.
fn default_literal(field: &str, value: &ValueField) -> Result<String, DoorError> {
    use value_field::Data as V;
    Ok(match &value.data {
        Some(V::BoolData(b)) => b.to_string(),
        Some(V::IntData(i)) => i.to_string(),
        Some(V::LongData(i)) => i.to_string(),
        Some(V::FloatData(f)) if f.is_finite() => format!("{f:?}"),
        Some(V::DoubleData(f)) if f.is_finite() => format!("{f:?}"),
        Some(V::StringData(t)) => format!("'{}'", t.replace('\'', "''")),
        _ => {
            return Err(DoorError::unsupported(format!(
                "this kind of default value (field {field})"
            )))
        }
    })
}

/// `array` with its nulls replaced by the `DEFAULT` literal `sql`.
fn with_default(array: ArrayRef, column: &ColumnType, sql: &str) -> Result<ArrayRef, DoorError> {
    let text = sql.trim();
    let text = match text.strip_prefix('\'').and_then(|t| t.strip_suffix('\'')) {
        Some(inner) => inner.replace("''", "'"),
        None => text.to_string(),
    };
    let value = datafusion::common::ScalarValue::try_from_string(text, &column.arrow_type())
        .and_then(|v| v.to_scalar())
        .map_err(|e| DoorError::internal(format!("default value {sql}: {e}")))?;
    let valid =
        arrow::compute::is_not_null(&array).map_err(|e| DoorError::internal(e.to_string()))?;
    arrow::compute::kernels::zip::zip(&valid, &array, &value)
        .map_err(|e| DoorError::internal(e.to_string()))
}

/// A stored `DEFAULT` literal back as a Milvus default value (`None` for
/// an expression that is not a plain literal).
fn default_value(column: &ColumnType, sql: &str) -> Option<ValueField> {
    use value_field::Data as V;
    let text = sql.trim();
    let data = match column {
        ColumnType::Bool => V::BoolData(text.parse().ok()?),
        ColumnType::Int16 | ColumnType::Int32 => V::IntData(text.parse().ok()?),
        ColumnType::Int64 => V::LongData(text.parse().ok()?),
        ColumnType::Float32 => V::FloatData(text.parse().ok()?),
        ColumnType::Float64 => V::DoubleData(text.parse().ok()?),
        ColumnType::Text { .. } => {
            let inner = text.strip_prefix('\'')?.strip_suffix('\'')?;
            V::StringData(inner.replace("''", "'"))
        }
        _ => return None,
    };
    Some(ValueField { data: Some(data) })
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
        if column.name == PARTITION_COLUMN {
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
            default_value: column
                .default_sql
                .as_deref()
                .and_then(|sql| default_value(&column.column_type, sql)),
            ..Default::default()
        });
    }
    CollectionSchema {
        name: name.to_string(),
        fields,
        enable_dynamic_field: dynamic,
        #[allow(deprecated)]
        auto_id: table.pk().auto_increment,
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
    // A nullable field (or one with a default) sends one validity flag per
    // row and values for the valid rows only.
    if !data.valid_data.is_empty() {
        return Ok(data.valid_data.len());
    }
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
            if *dim == 0 || floats.data.len() != rows * *dim as usize {
                return Err(DoorError::invalid(format!(
                    "field {} carries {} floats, not {rows} vectors of dim {dim}",
                    data.field_name,
                    floats.data.len()
                )));
            }
            for vector in floats.data.chunks_exact(*dim as usize) {
                quiver_common::vector::validate(vector)
                    .map_err(|e| DoorError::invalid(format!("field {}: {e}", data.field_name)))?;
            }
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
                            // Stored compact, so JSON lookups compare the
                            // same text whatever spacing the client sent.
                            let value =
                                serde_json::from_str::<serde_json::Value>(&text).map_err(|e| {
                                    DoorError::invalid(format!(
                                        "field {} holds invalid JSON: {e}",
                                        data.field_name
                                    ))
                                })?;
                            Ok(value.to_string())
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

/// The rows of an insert or upsert as a batch in the table's column order,
/// with the names of the columns the request sent. A column not sent is
/// null here: the write fills a generated key or its `DEFAULT`; with
/// `partial` (an upsert's `partial_update`) any column may be left out.
/// An upsert (`upsert`) names rows by key, so it sends even a generated key.
pub fn insert_batch(
    table: &TableSchema,
    fields: &[FieldData],
    num_rows: u32,
    upsert: bool,
    partial: bool,
    partition: PartitionWrite<'_>,
) -> Result<(RecordBatch, Vec<String>), DoorError> {
    let rows = match fields.first() {
        Some(first) => field_rows(first)?,
        None => return Err(DoorError::invalid("no field data".to_string())),
    };
    if num_rows != 0 && num_rows as usize != rows {
        return Err(DoorError::invalid(format!(
            "the num_rows ({num_rows}) of the request is not equal to the rows of field data ({rows})"
        )));
    }
    for data in fields {
        let known = data.is_dynamic
            || (data.field_name != PARTITION_COLUMN
                && table.columns.iter().any(|c| c.name == data.field_name));
        if !known {
            return Err(DoorError::invalid(format!(
                "field {} not exist in collection schema",
                data.field_name
            )));
        }
        let field_rows = field_rows(data)?;
        if field_rows != rows {
            return Err(DoorError::invalid(format!(
                "the num_rows of field {} ({field_rows}) is not equal to the num_rows of field {} ({rows})",
                data.field_name, fields[0].field_name
            )));
        }
    }
    let schema: SchemaRef = Arc::new(arrow::datatypes::Schema::new(
        table
            .columns
            .iter()
            .map(|c| c.arrow_field().with_nullable(true))
            .collect::<Vec<_>>(),
    ));
    let mut columns = Vec::with_capacity(table.columns.len());
    let mut sent_names = Vec::new();
    for (i, column) in table.columns.iter().enumerate() {
        if column.name == PARTITION_COLUMN {
            if partition.explicit {
                sent_names.push(column.name.clone());
            }
            let value = partition.name.map(str::to_string);
            columns.push(Arc::new(arrow::array::StringArray::from(vec![value; rows])) as ArrayRef);
            continue;
        }
        let sent = fields.iter().find(|f| {
            f.field_name == column.name || (column.name == DYNAMIC_FIELD && f.is_dynamic)
        });
        let generated = i == table.primary_key && column.auto_increment;
        let array = match sent {
            Some(data) if generated && !upsert => {
                return Err(DoorError::invalid(format!(
                    "the primary key field {} is auto_id: do not send its values",
                    data.field_name
                )))
            }
            // Milvus gives rows sent as null the field's default value.
            Some(data) if column.default_sql.is_some() && data.valid_data.iter().all(|v| !v) && !data.valid_data.is_empty() => {
                arrow::array::new_null_array(&column.column_type.arrow_type(), rows)
            }
            Some(data) => {
                sent_names.push(column.name.clone());
                let array = column_array(data, &column.column_type, rows)?;
                match &column.default_sql {
                    Some(sql) if array.null_count() > 0 => with_default(array, &column.column_type, sql)?,
                    _ => array,
                }
            }
            None if partial
                || generated
                || column.nullable
                || column.default_sql.is_some() =>
            {
                arrow::array::new_null_array(&column.column_type.arrow_type(), rows)
            }
            None => {
                return Err(DoorError::invalid(format!(
                    "Insert missed an field `{}` to collection without set nullable==true or set default_value",
                    column.name
                )))
            }
        };
        columns.push(array);
    }
    let batch =
        RecordBatch::try_new(schema, columns).map_err(|e| DoorError::invalid(e.to_string()))?;
    Ok((batch, sent_names))
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
    let scalar = |data: S| {
        F::Scalars(ScalarField {
            data: Some(data),
            ..Default::default()
        })
    };
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

/// Keeps only `keys` in each JSON object of a JSON field's data.
pub fn keep_json_keys(data: &mut FieldData, keys: &[&str]) {
    let Some(field_data::Field::Scalars(ScalarField {
        data: Some(scalar_field::Data::JsonData(json)),
        ..
    })) = &mut data.field
    else {
        return;
    };
    for value in &mut json.data {
        if let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(value) {
            let kept: serde_json::Map<String, serde_json::Value> = map
                .into_iter()
                .filter(|(k, _)| keys.contains(&k.as_str()))
                .collect();
            *value = serde_json::Value::Object(kept).to_string().into_bytes();
        }
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
    if batch.num_rows() == 0 || index >= batch.num_columns() {
        return Ok(Vec::new());
    }
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
        for bad in ["$partition", "$meta", "1st", "a-b", ""] {
            let named = CollectionSchema {
                fields: vec![field(bad, DataType::Int64, &[])],
                ..schema.clone()
            };
            let err = create_table_sql("public", "docs", &named).unwrap_err();
            // Milvus' `field name invalid`.
            assert_eq!(err.code, 1701, "{bad}: {err}");
            assert!(
                err.to_string().contains("field name invalid[field="),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn scores_follow_milvus() {
        assert_eq!(milvus_score("L2", 2.0), 4.0);
        assert_eq!(milvus_score("IP", -0.5), 0.5);
        assert_eq!(milvus_score("COSINE", 0.25), 0.75);
        assert!(metric_operator("HAMMING").is_err());
    }
}
