//! Primary key values.

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Int16Type, Int32Type, Int64Type};

/// A primary key value: integer or text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PkValue {
    Int(i64),
    Str(String),
}

impl std::fmt::Display for PkValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PkValue::Int(v) => write!(f, "{v}"),
            PkValue::Str(v) => write!(f, "{v}"),
        }
    }
}

/// Reads primary keys from an array; `None` for NULL entries.
pub fn pk_values(array: &ArrayRef) -> Vec<Option<PkValue>> {
    let n = array.len();
    let get = |i: usize| -> Option<PkValue> {
        if array.is_null(i) {
            return None;
        }
        Some(match array.data_type() {
            DataType::Int64 => PkValue::Int(array.as_primitive::<Int64Type>().value(i)),
            DataType::Int32 => PkValue::Int(array.as_primitive::<Int32Type>().value(i) as i64),
            DataType::Int16 => PkValue::Int(array.as_primitive::<Int16Type>().value(i) as i64),
            DataType::Utf8 => PkValue::Str(array.as_string::<i32>().value(i).to_string()),
            DataType::LargeUtf8 => PkValue::Str(array.as_string::<i64>().value(i).to_string()),
            DataType::Utf8View => PkValue::Str(array.as_string_view().value(i).to_string()),
            _ => return None,
        })
    };
    (0..n).map(get).collect()
}

/// A key usable for ordering and hashing without allocation for integer keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PkRef<'a> {
    Int(i64),
    Str(&'a str),
}

impl PkRef<'_> {
    /// The owned key.
    pub fn to_value(self) -> PkValue {
        match self {
            PkRef::Int(v) => PkValue::Int(v),
            PkRef::Str(s) => PkValue::Str(s.to_string()),
        }
    }
}

/// Reads the primary key at `row` without allocating.
#[inline]
pub fn pk_ref(array: &dyn Array, row: usize) -> Option<PkRef<'_>> {
    if array.is_null(row) {
        return None;
    }
    Some(match array.data_type() {
        DataType::Int64 => PkRef::Int(array.as_primitive::<Int64Type>().value(row)),
        DataType::Int32 => PkRef::Int(array.as_primitive::<Int32Type>().value(row) as i64),
        DataType::Int16 => PkRef::Int(array.as_primitive::<Int16Type>().value(row) as i64),
        DataType::Utf8 => PkRef::Str(array.as_string::<i32>().value(row)),
        _ => return None,
    })
}
