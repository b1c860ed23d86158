//! Milvus ARRAY fields.
//!
//! An Array field is stored in a JSONB column holding a JSON array (the
//! form the filter translator reads with `arr[0]`, `array_contains*` and
//! `array_length`); its element type, `max_capacity` and `max_length` are a
//! durable option of the table ([`ARRAYS_OPTION`]). This module turns the
//! schema's Array fields into those columns and back, checks and encodes
//! `ArrayData` on insert, and decodes the JSON into `ArrayData` on output.
//! To SQL the column is plain JSONB.

use std::collections::BTreeMap;

use milvus::proto::common::KeyValuePair;
use milvus::proto::schema::{
    field_data, scalar_field, ArrayArray, BoolArray, CollectionSchema, DataType, DoubleArray,
    FieldData, FieldSchema, FloatArray, IntArray, JsonArray, LongArray, ScalarField, StringArray,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::filter::{ElementKind, FieldKind};
use super::status::DoorError;

/// The table option describing a table's Array fields (JSON, by name).
const ARRAYS_OPTION: &str = "milvus.arrays";
/// Milvus' bound on `max_capacity`.
const MAX_CAPACITY: u32 = 4096;

/// One Array field's element type and bounds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct ArrayField {
    /// The Milvus `DataType` of the elements.
    pub element: i32,
    pub max_capacity: u32,
    /// For VarChar elements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<u32>,
}

/// A collection's Array fields, by field name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct ArrayFields(BTreeMap<String, ArrayField>);

fn type_param<'a>(field: &'a FieldSchema, key: &str) -> Option<&'a str> {
    field
        .type_params
        .iter()
        .find(|kv| kv.key == key)
        .map(|kv| kv.value.as_str())
}

impl ArrayField {
    /// The Array field a schema field declares (validated as Milvus does).
    fn of(field: &FieldSchema) -> Result<Self, DoorError> {
        use DataType as T;
        let element = DataType::try_from(field.element_type).unwrap_or(T::None);
        if !matches!(
            element,
            T::Bool | T::Int8 | T::Int16 | T::Int32 | T::Int64 | T::Float | T::Double | T::VarChar
        ) {
            return Err(DoorError::invalid(format!(
                "element type {} is not supported for the array field {}",
                element.as_str_name(),
                field.name
            )));
        }
        let capacity = type_param(field, "max_capacity").ok_or_else(|| {
            DoorError::invalid(format!(
                "type param(max_capacity) should be specified for array field {}",
                field.name
            ))
        })?;
        let max_capacity = capacity
            .parse::<u32>()
            .ok()
            .filter(|c| (1..=MAX_CAPACITY).contains(c))
            .ok_or_else(|| {
                DoorError::invalid(format!(
                    "the maximum capacity specified for a Array should be in (0, {MAX_CAPACITY}], but got {capacity} (field {})",
                    field.name
                ))
            })?;
        let max_length = if element == T::VarChar {
            let text = type_param(field, "max_length").ok_or_else(|| {
                DoorError::invalid(format!(
                    "type param(max_length) should be specified for the field({})",
                    field.name
                ))
            })?;
            Some(
                text.parse::<u32>()
                    .ok()
                    .filter(|l| (1..=65_535).contains(l))
                    .ok_or_else(|| {
                        DoorError::invalid(format!(
                            "the maximum length specified for the field({}) should be in (0, 65535], but got {text} instead",
                            field.name
                        ))
                    })?,
            )
        } else {
            None
        };
        if field.default_value.is_some() {
            return Err(DoorError::invalid(format!(
                "array field {} does not support a default value",
                field.name
            )));
        }
        if field.is_primary_key || field.is_partition_key {
            return Err(DoorError::invalid(format!(
                "the array field {} cannot be the primary key or the partition key",
                field.name
            )));
        }
        Ok(Self {
            element: element as i32,
            max_capacity,
            max_length,
        })
    }

    /// The filter translator's view of the elements.
    fn element_kind(&self) -> ElementKind {
        use DataType as T;
        match DataType::try_from(self.element).unwrap_or(T::None) {
            T::Bool => ElementKind::Bool,
            T::Float | T::Double => ElementKind::Float,
            T::VarChar => ElementKind::String,
            _ => ElementKind::Int,
        }
    }

    /// One row's elements as a JSON array, checked against the field.
    fn encode(&self, field: &str, row: &ScalarField) -> Result<Value, DoorError> {
        use scalar_field::Data as S;
        use DataType as T;
        let element = DataType::try_from(self.element).unwrap_or(T::None);
        let mismatch = || {
            DoorError::invalid(format!(
                "the element type of array field {field} doesn't match, expected: {}",
                element.as_str_name()
            ))
        };
        let int_range = |v: i32, lo: i32, hi: i32| {
            if (lo..=hi).contains(&v) {
                Ok(Value::from(v))
            } else {
                Err(DoorError::invalid(format!(
                    "the value {v} of an element of array field {field} is out of range for {}",
                    element.as_str_name()
                )))
            }
        };
        let finite = |v: f64| {
            serde_json::Number::from_f64(v)
                .map(Value::Number)
                .ok_or_else(|| {
                    DoorError::invalid(format!("array field {field} holds a NaN or infinite value"))
                })
        };
        let values: Vec<Value> = match (element, &row.data) {
            (T::Bool, Some(S::BoolData(a))) => a.data.iter().map(|&b| Value::from(b)).collect(),
            (T::Int8, Some(S::IntData(a))) => a
                .data
                .iter()
                .map(|&v| int_range(v, i8::MIN.into(), i8::MAX.into()))
                .collect::<Result<_, _>>()?,
            (T::Int16, Some(S::IntData(a))) => a
                .data
                .iter()
                .map(|&v| int_range(v, i16::MIN.into(), i16::MAX.into()))
                .collect::<Result<_, _>>()?,
            (T::Int32, Some(S::IntData(a))) => a.data.iter().map(|&v| Value::from(v)).collect(),
            (T::Int64, Some(S::LongData(a))) => a.data.iter().map(|&v| Value::from(v)).collect(),
            (T::Float, Some(S::FloatData(a))) => a
                .data
                .iter()
                .map(|&v| finite(v as f64))
                .collect::<Result<_, _>>()?,
            (T::Double, Some(S::DoubleData(a))) => a
                .data
                .iter()
                .map(|&v| finite(v))
                .collect::<Result<_, _>>()?,
            (T::VarChar, Some(S::StringData(a))) => {
                let max = self.max_length.unwrap_or(65_535) as usize;
                if let Some(long) = a.data.iter().find(|s| s.chars().count() > max) {
                    return Err(DoorError::invalid(format!(
                        "the length ({}) of an element of array field ({field}) exceeds max length ({max})",
                        long.chars().count()
                    )));
                }
                a.data.iter().map(|s| Value::from(s.as_str())).collect()
            }
            // An empty array may come without data.
            (_, None) => Vec::new(),
            _ => return Err(mismatch()),
        };
        if values.len() > self.max_capacity as usize {
            return Err(DoorError::invalid(format!(
                "array length exceeds max capacity, array length {}, max capacity {} (field {field})",
                values.len(),
                self.max_capacity
            )));
        }
        Ok(Value::Array(values))
    }

    /// One stored JSON array back as the row's elements.
    fn decode(&self, text: &str) -> Result<ScalarField, DoorError> {
        use scalar_field::Data as S;
        use DataType as T;
        let corrupt = || DoorError::internal(format!("an array value is not a JSON array: {text}"));
        let Ok(Value::Array(values)) = serde_json::from_str::<Value>(text) else {
            return Err(corrupt());
        };
        let ints = || -> Result<Vec<i64>, DoorError> {
            values
                .iter()
                .map(|v| v.as_i64().ok_or_else(corrupt))
                .collect()
        };
        let floats = || -> Result<Vec<f64>, DoorError> {
            values
                .iter()
                .map(|v| v.as_f64().ok_or_else(corrupt))
                .collect()
        };
        let data = match DataType::try_from(self.element).unwrap_or(T::None) {
            T::Bool => S::BoolData(BoolArray {
                data: values
                    .iter()
                    .map(|v| v.as_bool().ok_or_else(corrupt))
                    .collect::<Result<_, _>>()?,
            }),
            T::Int64 => S::LongData(LongArray { data: ints()? }),
            T::Float => S::FloatData(FloatArray {
                data: floats()?.into_iter().map(|v| v as f32).collect(),
            }),
            T::Double => S::DoubleData(DoubleArray { data: floats()? }),
            T::VarChar => S::StringData(StringArray {
                data: values
                    .iter()
                    .map(|v| v.as_str().map(str::to_string).ok_or_else(corrupt))
                    .collect::<Result<_, _>>()?,
            }),
            _ => S::IntData(IntArray {
                data: ints()?.into_iter().map(|v| v as i32).collect(),
            }),
        };
        Ok(ScalarField {
            data: Some(data),
            ..Default::default()
        })
    }
}

impl ArrayFields {
    /// A collection's Array fields from its table options.
    pub fn from_options(options: &BTreeMap<String, String>) -> Result<Self, DoorError> {
        match options.get(ARRAYS_OPTION) {
            None => Ok(Self::default()),
            Some(text) => serde_json::from_str(text)
                .map(Self)
                .map_err(|e| DoorError::internal(format!("corrupt array options: {e}"))),
        }
    }

    /// The table option recording these fields (`None` when there are none).
    pub fn option(&self) -> Option<(String, Option<String>)> {
        (!self.0.is_empty()).then(|| {
            let text = serde_json::to_string(&self.0).expect("array options serialize");
            (ARRAYS_OPTION.to_string(), Some(text))
        })
    }

    pub fn get(&self, name: &str) -> Option<&ArrayField> {
        self.0.get(name)
    }

    /// The filter kind of an Array field.
    pub fn filter_kind(&self, name: &str) -> Option<FieldKind> {
        self.get(name).map(|a| FieldKind::ArrayOf(a.element_kind()))
    }

    /// A new collection's schema with its Array fields as JSON fields (the
    /// columns `CREATE TABLE` makes), and those Array fields.
    pub fn split(schema: &CollectionSchema) -> Result<(CollectionSchema, Self), DoorError> {
        let mut stored = schema.clone();
        let mut arrays = BTreeMap::new();
        for field in &mut stored.fields {
            if field.data_type != DataType::Array as i32 {
                continue;
            }
            arrays.insert(field.name.clone(), ArrayField::of(field)?);
            field.data_type = DataType::Json as i32;
            field.element_type = 0;
            field.type_params.clear();
        }
        Ok((stored, Self(arrays)))
    }

    /// Marks the Array fields of a described schema.
    pub fn describe(&self, schema: &mut CollectionSchema) {
        for field in &mut schema.fields {
            let Some(array) = self.get(&field.name) else {
                continue;
            };
            field.data_type = DataType::Array as i32;
            field.element_type = array.element;
            field.type_params = std::iter::once(KeyValuePair {
                key: "max_capacity".into(),
                value: array.max_capacity.to_string(),
            })
            .chain(array.max_length.map(|l| KeyValuePair {
                key: "max_length".into(),
                value: l.to_string(),
            }))
            .collect();
        }
    }

    /// An insert's fields with Array data encoded as the JSON the columns
    /// hold; other fields are unchanged.
    pub fn encode_fields(&self, fields: &[FieldData]) -> Result<Vec<FieldData>, DoorError> {
        use field_data::Field as F;
        use scalar_field::Data as S;
        fields
            .iter()
            .map(|data| {
                let Some(array) = self.get(&data.field_name) else {
                    return Ok(data.clone());
                };
                let rows = match &data.field {
                    Some(F::Scalars(ScalarField {
                        data: Some(S::ArrayData(rows)),
                        ..
                    })) => &rows.data,
                    _ => {
                        return Err(DoorError::invalid(format!(
                            "the data type of field {} doesn't match, expected: Array",
                            data.field_name
                        )))
                    }
                };
                let json = rows
                    .iter()
                    .map(|row| {
                        Ok(array
                            .encode(&data.field_name, row)?
                            .to_string()
                            .into_bytes())
                    })
                    .collect::<Result<Vec<_>, DoorError>>()?;
                Ok(FieldData {
                    r#type: DataType::Json as i32,
                    field: Some(F::Scalars(ScalarField {
                        data: Some(S::JsonData(JsonArray { data: json })),
                        ..Default::default()
                    })),
                    ..data.clone()
                })
            })
            .collect()
    }

    /// An output column of an Array field as `ArrayData` (others unchanged).
    pub fn decode_field(&self, data: FieldData) -> Result<FieldData, DoorError> {
        use field_data::Field as F;
        use scalar_field::Data as S;
        let Some(array) = self.get(&data.field_name) else {
            return Ok(data);
        };
        let Some(F::Scalars(ScalarField {
            data: Some(S::JsonData(json)),
            ..
        })) = &data.field
        else {
            return Ok(data);
        };
        let rows = json
            .data
            .iter()
            .enumerate()
            .map(|(i, bytes)| {
                if data.valid_data.get(i) == Some(&false) {
                    // A null row: Milvus sends an empty array in its place.
                    return array.decode("[]");
                }
                array.decode(std::str::from_utf8(bytes).unwrap_or(""))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(FieldData {
            r#type: DataType::Array as i32,
            field: Some(F::Scalars(ScalarField {
                data: Some(S::ArrayData(ArrayArray {
                    data: rows,
                    element_type: array.element,
                })),
                ..Default::default()
            })),
            ..data
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn array_field(element: DataType, params: &[(&str, &str)]) -> FieldSchema {
        FieldSchema {
            name: "arr".into(),
            data_type: DataType::Array as i32,
            element_type: element as i32,
            type_params: params
                .iter()
                .map(|(k, v)| KeyValuePair {
                    key: k.to_string(),
                    value: v.to_string(),
                })
                .collect(),
            ..Default::default()
        }
    }

    fn longs(values: &[i64]) -> ScalarField {
        ScalarField {
            data: Some(scalar_field::Data::LongData(LongArray {
                data: values.to_vec(),
            })),
            ..Default::default()
        }
    }

    #[test]
    fn array_fields_are_validated_as_milvus_does() {
        assert!(ArrayField::of(&array_field(DataType::Int64, &[("max_capacity", "4")])).is_ok());
        let missing = ArrayField::of(&array_field(DataType::Int64, &[])).unwrap_err();
        assert!(
            missing.message.contains("max_capacity"),
            "{}",
            missing.message
        );
        assert!(ArrayField::of(&array_field(DataType::Int64, &[("max_capacity", "0")])).is_err());
        assert!(
            ArrayField::of(&array_field(DataType::Int64, &[("max_capacity", "4097")])).is_err()
        );
        assert!(ArrayField::of(&array_field(DataType::Json, &[("max_capacity", "4")])).is_err());
        assert!(ArrayField::of(&array_field(DataType::Array, &[("max_capacity", "4")])).is_err());
        assert!(ArrayField::of(&array_field(DataType::VarChar, &[("max_capacity", "4")])).is_err());
        let text = ArrayField::of(&array_field(
            DataType::VarChar,
            &[("max_capacity", "4"), ("max_length", "5")],
        ))
        .unwrap();
        assert_eq!(text.max_length, Some(5));
    }

    #[test]
    fn schemas_split_into_json_columns_and_describe_back() {
        let schema = CollectionSchema {
            fields: vec![array_field(
                DataType::VarChar,
                &[("max_capacity", "3"), ("max_length", "8")],
            )],
            ..Default::default()
        };
        let (stored, arrays) = ArrayFields::split(&schema).unwrap();
        assert_eq!(stored.fields[0].data_type, DataType::Json as i32);
        let mut described = stored;
        arrays.describe(&mut described);
        assert_eq!(described, schema);
        assert_eq!(
            arrays.filter_kind("arr"),
            Some(FieldKind::ArrayOf(ElementKind::String))
        );
    }

    #[test]
    fn null_rows_decode_as_flagged_empty_arrays() {
        let (_, arrays) = ArrayFields::split(&CollectionSchema {
            fields: vec![array_field(DataType::Int64, &[("max_capacity", "3")])],
            ..Default::default()
        })
        .unwrap();
        let stored = FieldData {
            field_name: "arr".into(),
            r#type: DataType::Json as i32,
            field: Some(field_data::Field::Scalars(ScalarField {
                data: Some(scalar_field::Data::JsonData(JsonArray {
                    data: vec![b"[1,2]".to_vec(), b"{}".to_vec()],
                })),
                ..Default::default()
            })),
            valid_data: vec![true, false],
            ..Default::default()
        };
        let out = arrays.decode_field(stored).unwrap();
        assert_eq!(out.r#type, DataType::Array as i32);
        assert_eq!(out.valid_data, vec![true, false]);
        let Some(field_data::Field::Scalars(ScalarField {
            data: Some(scalar_field::Data::ArrayData(rows)),
            ..
        })) = out.field
        else {
            panic!("not array data: {out:?}");
        };
        assert_eq!(rows.data, vec![longs(&[1, 2]), longs(&[])]);
        assert_eq!(rows.element_type, DataType::Int64 as i32);
    }

    #[test]
    fn elements_are_checked_encoded_and_decoded() {
        let field =
            ArrayField::of(&array_field(DataType::Int64, &[("max_capacity", "3")])).unwrap();
        let json = field.encode("arr", &longs(&[1, -2, 3])).unwrap();
        assert_eq!(json.to_string(), "[1,-2,3]");
        assert_eq!(field.decode("[1,-2,3]").unwrap(), longs(&[1, -2, 3]));
        let over = field.encode("arr", &longs(&[1, 2, 3, 4])).unwrap_err();
        assert!(over.message.contains("max capacity"), "{}", over.message);
        let floats = ScalarField {
            data: Some(scalar_field::Data::FloatData(FloatArray {
                data: vec![0.1],
            })),
            ..Default::default()
        };
        assert!(
            field.encode("arr", &floats).is_err(),
            "element type mismatch"
        );
        let float_field =
            ArrayField::of(&array_field(DataType::Float, &[("max_capacity", "3")])).unwrap();
        let stored = float_field.encode("arr", &floats).unwrap().to_string();
        assert_eq!(float_field.decode(&stored).unwrap(), floats);
        let nan = ScalarField {
            data: Some(scalar_field::Data::FloatData(FloatArray {
                data: vec![f32::NAN],
            })),
            ..Default::default()
        };
        assert!(float_field.encode("arr", &nan).is_err());
        let small = ArrayField::of(&array_field(DataType::Int8, &[("max_capacity", "3")])).unwrap();
        let big = ScalarField {
            data: Some(scalar_field::Data::IntData(IntArray { data: vec![300] })),
            ..Default::default()
        };
        assert!(small.encode("arr", &big).is_err());
    }
}
