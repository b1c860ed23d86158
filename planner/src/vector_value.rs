//! Reading vector arguments of functions, whatever form they arrive in:
//! `vector(n)` columns (`FixedSizeList<Float32>`), `real[]`/`float8[]`
//! lists, pgvector text (`'[1,2,3]'`), or NULL.

use std::borrow::Cow;

use arrow::array::{Array, ArrayRef, AsArray, FixedSizeListArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float32Type};
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::ColumnarValue;
use quiver_common::vector::{parse_text, validate, VectorError};

/// Wraps a pgvector error so front ends can recover its status code.
pub fn vector_error(err: VectorError) -> DataFusionError {
    DataFusionError::External(Box::new(err))
}

/// One vector argument of a function call.
pub enum VectorArg {
    /// The same value for every row.
    Scalar(Option<Vec<f32>>),
    /// A `vector(n)` column.
    Fixed(FixedSizeListArray),
    /// Values converted row by row.
    Rows(Vec<Option<Vec<f32>>>),
}

impl VectorArg {
    /// Reads an argument.
    pub fn from_value(value: &ColumnarValue) -> Result<Self> {
        match value {
            ColumnarValue::Scalar(scalar) => Ok(VectorArg::Scalar(scalar_vector(scalar)?)),
            ColumnarValue::Array(array) => array_vectors(array),
        }
    }

    /// The vector of row `i` (NULL as `None`).
    pub fn row(&self, i: usize) -> Option<Cow<'_, [f32]>> {
        match self {
            VectorArg::Scalar(v) => v.as_deref().map(Cow::Borrowed),
            VectorArg::Fixed(list) => {
                if list.is_null(i) {
                    return None;
                }
                let dim = list.value_length() as usize;
                let values = list.values().as_primitive::<Float32Type>().values();
                let start = list.value_offset(i) as usize;
                Some(Cow::Borrowed(&values[start..start + dim]))
            }
            VectorArg::Rows(rows) => rows[i].as_deref().map(Cow::Borrowed),
        }
    }
}

/// Converts a scalar to a vector.
pub fn scalar_vector(scalar: &ScalarValue) -> Result<Option<Vec<f32>>> {
    if scalar.is_null() {
        return Ok(None);
    }
    let array = scalar.to_array_of_size(1)?;
    match array_vectors(&array)? {
        VectorArg::Rows(mut rows) => Ok(rows.pop().flatten()),
        other => Ok(other.row(0).map(|v| v.into_owned())),
    }
}

fn array_vectors(array: &ArrayRef) -> Result<VectorArg> {
    match array.data_type() {
        DataType::FixedSizeList(field, _) if field.data_type() == &DataType::Float32 => {
            Ok(VectorArg::Fixed(array.as_fixed_size_list().clone()))
        }
        DataType::FixedSizeList(field, dim) => {
            let target = DataType::FixedSizeList(
                std::sync::Arc::new(arrow::datatypes::Field::new_list_field(
                    DataType::Float32,
                    true,
                )),
                *dim,
            );
            let _ = field;
            let casted = cast(array, &target)?;
            Ok(VectorArg::Fixed(casted.as_fixed_size_list().clone()))
        }
        DataType::List(_) | DataType::LargeList(_) => {
            let target = DataType::List(std::sync::Arc::new(
                arrow::datatypes::Field::new_list_field(DataType::Float32, true),
            ));
            let casted = cast(array, &target)?;
            let list = casted.as_list::<i32>();
            let mut rows = Vec::with_capacity(list.len());
            for i in 0..list.len() {
                if list.is_null(i) {
                    rows.push(None);
                    continue;
                }
                let value = list.value(i);
                let floats = value.as_primitive::<Float32Type>();
                if floats.null_count() > 0 {
                    return Err(DataFusionError::Execution(
                        "array must not contain nulls".into(),
                    ));
                }
                let v = floats.values().to_vec();
                validate(&v).map_err(vector_error)?;
                rows.push(Some(v));
            }
            Ok(VectorArg::Rows(rows))
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let strings = cast(array, &DataType::Utf8)?;
            let strings = strings.as_string::<i32>();
            let rows = (0..strings.len())
                .map(|i| {
                    if strings.is_null(i) {
                        Ok(None)
                    } else {
                        parse_text(strings.value(i)).map(Some).map_err(vector_error)
                    }
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(VectorArg::Rows(rows))
        }
        DataType::Null => Ok(VectorArg::Rows(vec![None; array.len()])),
        other => Err(DataFusionError::Plan(format!(
            "cannot use a value of type {other} as a vector"
        ))),
    }
}

/// True when values of this type can be read as vectors.
pub fn is_vector_like(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::FixedSizeList(..)
            | DataType::List(_)
            | DataType::LargeList(_)
            | DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Utf8View
            | DataType::Null
    )
}
