//! pgvector's SQL functions as DataFusion scalar UDFs: the distances
//! (`l2_distance`, `cosine_distance`, `inner_product`, `negative_inner_product`,
//! `l1_distance`), `vector_dims`, `vector_norm`, `l2_normalize`, `subvector`,
//! `to_vector`, the cast helper behind `::vector`, and `vector_to_text`, the
//! one behind a vector's `::text`.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, FixedSizeListArray, Float32Array, Float64Array, Int32Array, ListArray, StringArray,
};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{exec_err, plan_err, DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};
use quiver_common::schema::{vector_arrow_type, vector_dim};
use quiver_common::vector::{check_dimension, format_text, parse_text, VectorError};
use quiver_index::distance::norm;
use quiver_index::Metric;

use crate::vector_value::{is_vector_like, vector_error, VectorArg};

/// All vector functions, ready to register.
pub fn vector_functions() -> Vec<ScalarUDF> {
    vec![
        ScalarUDF::from(DistanceFunction::new(Metric::L2)),
        ScalarUDF::from(DistanceFunction::new(Metric::Cosine)),
        ScalarUDF::from(DistanceFunction::new(Metric::NegativeInnerProduct)),
        ScalarUDF::from(DistanceFunction::new(Metric::L1)),
        ScalarUDF::from(InnerProduct::default()),
        ScalarUDF::from(VectorUnary::new(UnaryKind::Dims)),
        ScalarUDF::from(VectorUnary::new(UnaryKind::Norm)),
        ScalarUDF::from(VectorUnary::new(UnaryKind::Normalize)),
        ScalarUDF::from(Subvector::default()),
        ScalarUDF::from(ToVector::default()),
        ScalarUDF::from(VectorToText::default()),
    ]
}

/// The metric behind a distance function name, if it is one.
pub fn metric_of_function(name: &str) -> Option<Metric> {
    match name {
        "l2_distance" => Some(Metric::L2),
        "cosine_distance" => Some(Metric::Cosine),
        "negative_inner_product" => Some(Metric::NegativeInnerProduct),
        "l1_distance" => Some(Metric::L1),
        _ => None,
    }
}

fn check_vector_args(name: &str, arg_types: &[DataType], count: usize) -> Result<Vec<DataType>> {
    if arg_types.len() != count || !arg_types.iter().take(count.min(2)).all(is_vector_like) {
        let types: Vec<String> = arg_types.iter().map(|t| t.to_string()).collect();
        return plan_err!("function {name}({}) does not exist", types.join(", "));
    }
    Ok(arg_types.to_vec())
}

fn binary_distance(
    args: &ScalarFunctionArgs,
    f: impl Fn(&[f32], &[f32]) -> f64,
) -> Result<ColumnarValue> {
    let a = VectorArg::from_value(&args.args[0])?;
    let b = VectorArg::from_value(&args.args[1])?;
    let all_scalar = args
        .args
        .iter()
        .all(|v| matches!(v, ColumnarValue::Scalar(_)));
    let n = if all_scalar { 1 } else { args.number_rows };
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        match (a.row(i), b.row(i)) {
            (Some(x), Some(y)) => {
                if x.len() != y.len() {
                    return Err(vector_error(VectorError::DifferentDimensions(
                        x.len(),
                        y.len(),
                    )));
                }
                out.push(Some(f(&x, &y)));
            }
            _ => out.push(None),
        }
    }
    let array = Float64Array::from(out);
    if all_scalar {
        Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
            &array, 0,
        )?))
    } else {
        Ok(ColumnarValue::Array(Arc::new(array)))
    }
}

/// `l2_distance`, `cosine_distance`, `negative_inner_product`, `l1_distance`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct DistanceFunction {
    metric: Metric,
    signature: Signature,
}

impl DistanceFunction {
    /// The function of a metric.
    pub fn new(metric: Metric) -> Self {
        Self {
            metric,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for DistanceFunction {
    fn name(&self) -> &str {
        self.metric.function_name()
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_vector_args(self.name(), arg_types, 2)
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let metric = self.metric;
        binary_distance(&args, |a, b| metric.distance(a, b))
    }
}

/// pgvector's `inner_product(a, b)` (positive; `<#>` is its negation).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct InnerProduct {
    signature: Signature,
}

impl Default for InnerProduct {
    fn default() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for InnerProduct {
    fn name(&self) -> &str {
        "inner_product"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_vector_args(self.name(), arg_types, 2)
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        binary_distance(&args, |a, b| -Metric::NegativeInnerProduct.distance(a, b))
    }
}

/// One-argument vector functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnaryKind {
    Dims,
    Norm,
    Normalize,
}

/// `vector_dims`, `vector_norm`, `l2_normalize`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct VectorUnary {
    kind: UnaryKind,
    signature: Signature,
}

impl VectorUnary {
    /// The function of a kind.
    pub fn new(kind: UnaryKind) -> Self {
        Self {
            kind,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

fn vector_field_like(input: &DataType, name: &str) -> FieldRef {
    match vector_dim(input) {
        Some(dim) => Arc::new(Field::new(name, vector_arrow_type(dim as i32), true)),
        None => Arc::new(Field::new(
            name,
            DataType::List(Arc::new(Field::new_list_field(DataType::Float32, true))),
            true,
        )),
    }
}

/// Builds a vector column: fixed-size when every vector has `dim` elements, else a list.
fn build_vectors(rows: Vec<Option<Vec<f32>>>, fixed_dim: Option<usize>) -> Result<ArrayRef> {
    let nulls = NullBuffer::from(rows.iter().map(|r| r.is_some()).collect::<Vec<_>>());
    let item = Arc::new(Field::new_list_field(DataType::Float32, true));
    match fixed_dim {
        Some(dim) => {
            let mut values = Vec::with_capacity(rows.len() * dim);
            for row in &rows {
                match row {
                    Some(v) => {
                        check_dimension(dim, v.len()).map_err(vector_error)?;
                        values.extend_from_slice(v);
                    }
                    None => values.extend(std::iter::repeat_n(0.0, dim)),
                }
            }
            Ok(Arc::new(FixedSizeListArray::try_new(
                item,
                dim as i32,
                Arc::new(Float32Array::from(values)),
                Some(nulls),
            )?))
        }
        None => {
            let lengths = rows.iter().map(|r| r.as_ref().map_or(0, |v| v.len()));
            let offsets = OffsetBuffer::from_lengths(lengths);
            let values: Vec<f32> = rows.into_iter().flatten().flatten().collect();
            Ok(Arc::new(ListArray::try_new(
                item,
                offsets,
                Arc::new(Float32Array::from(values)),
                Some(nulls),
            )?))
        }
    }
}

fn rows_of(arg: &VectorArg, n: usize) -> Vec<Option<Vec<f32>>> {
    (0..n).map(|i| arg.row(i).map(|v| v.into_owned())).collect()
}

fn output(array: ArrayRef, scalar: bool) -> Result<ColumnarValue> {
    if scalar {
        Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
            &array, 0,
        )?))
    } else {
        Ok(ColumnarValue::Array(array))
    }
}

impl ScalarUDFImpl for VectorUnary {
    fn name(&self) -> &str {
        match self.kind {
            UnaryKind::Dims => "vector_dims",
            UnaryKind::Norm => "vector_norm",
            UnaryKind::Normalize => "l2_normalize",
        }
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_vector_args(self.name(), arg_types, 1)
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(match self.kind {
            UnaryKind::Dims => DataType::Int32,
            UnaryKind::Norm => DataType::Float64,
            UnaryKind::Normalize => vector_field_like(&arg_types[0], "l2_normalize")
                .data_type()
                .clone(),
        })
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs<'_>) -> Result<FieldRef> {
        let arg_types: Vec<DataType> = args
            .arg_fields
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        let data_type = self.return_type(&arg_types)?;
        Ok(match self.kind {
            UnaryKind::Normalize => {
                Arc::new(crate::vector_field::vector_field(self.name(), data_type))
            }
            _ => Arc::new(Field::new(self.name(), data_type, true)),
        })
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let scalar = matches!(args.args[0], ColumnarValue::Scalar(_));
        let n = if scalar { 1 } else { args.number_rows };
        let arg = VectorArg::from_value(&args.args[0])?;
        let array: ArrayRef = match self.kind {
            UnaryKind::Dims => Arc::new(Int32Array::from(
                (0..n)
                    .map(|i| arg.row(i).map(|v| v.len() as i32))
                    .collect::<Vec<_>>(),
            )),
            UnaryKind::Norm => Arc::new(Float64Array::from(
                (0..n)
                    .map(|i| arg.row(i).map(|v| norm(&v)))
                    .collect::<Vec<_>>(),
            )),
            UnaryKind::Normalize => {
                let rows = rows_of(&arg, n)
                    .into_iter()
                    .map(|r| {
                        r.map(|v| {
                            let len = norm(&v);
                            if len == 0.0 {
                                v
                            } else {
                                v.iter().map(|x| (*x as f64 / len) as f32).collect()
                            }
                        })
                    })
                    .collect();
                build_vectors(rows, vector_dim(args.return_field.data_type()))?
            }
        };
        output(array, scalar)
    }
}

/// `subvector(v, start, count)`: `count` elements from 1-based `start`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Subvector {
    signature: Signature,
}

impl Default for Subvector {
    fn default() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for Subvector {
    fn name(&self) -> &str {
        "subvector"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        if arg_types.len() != 3 || !is_vector_like(&arg_types[0]) {
            return plan_err!("function subvector requires (vector, integer, integer)");
        }
        // An integer of any width as it is: a cast would hide a constant
        // count from `return_field_from_args`.
        Ok(vec![
            arg_types[0].clone(),
            integer_argument_type(&arg_types[1]),
            integer_argument_type(&arg_types[2]),
        ])
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::List(Arc::new(Field::new_list_field(
            DataType::Float32,
            true,
        ))))
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs<'_>) -> Result<FieldRef> {
        if let Some(count) = args
            .scalar_arguments
            .get(2)
            .copied()
            .flatten()
            .and_then(integer_constant)
        {
            if count > 0 {
                return Ok(Arc::new(Field::new(
                    "subvector",
                    vector_arrow_type(count as i32),
                    true,
                )));
            }
        }
        Ok(Arc::new(Field::new(
            "subvector",
            self.return_type(&[])?,
            true,
        )))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let scalar = args
            .args
            .iter()
            .all(|v| matches!(v, ColumnarValue::Scalar(_)));
        let n = if scalar { 1 } else { args.number_rows };
        let arg = VectorArg::from_value(&args.args[0])?;
        let ints = |idx: usize| -> Result<Vec<Option<i64>>> {
            let array = args.args[idx].to_array(n)?;
            let array = arrow::compute::cast(&array, &DataType::Int64)?;
            let array = array
                .as_any()
                .downcast_ref::<arrow::array::Int64Array>()
                .cloned()
                .ok_or_else(|| {
                    DataFusionError::Internal("subvector bounds are not integers".into())
                })?;
            Ok(array.iter().collect())
        };
        let starts = ints(1)?;
        let counts = ints(2)?;
        let mut rows = Vec::with_capacity(n);
        for i in 0..n {
            let (Some(v), Some(start), Some(count)) = (arg.row(i), starts[i], counts[i]) else {
                rows.push(None);
                continue;
            };
            if count < 1 {
                return exec_err!("vector must have at least 1 dimension");
            }
            let from = (start.max(1) - 1) as usize;
            let to = ((start + count - 1).max(0) as usize).min(v.len());
            if from >= to {
                return exec_err!("vector must have at least 1 dimension");
            }
            rows.push(Some(v[from..to].to_vec()));
        }
        output(
            build_vectors(rows, vector_dim(args.return_field.data_type()))?,
            scalar,
        )
    }
}

/// `to_vector(value [, dim])`: what `::vector` and `::vector(n)` casts become.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ToVector {
    signature: Signature,
}

impl Default for ToVector {
    fn default() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

/// Infers the dimension of a constant vector argument.
fn literal_dim(value: &ScalarValue) -> Option<usize> {
    match value {
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => parse_text(s).ok().map(|v| v.len()),
        // Array literals are not inspected: constant folding turns
        // `make_array(..)` into a literal later, and the type must not change.
        _ => None,
    }
}

impl ScalarUDFImpl for ToVector {
    fn name(&self) -> &str {
        "to_vector"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        if arg_types.is_empty() || arg_types.len() > 2 || !is_vector_like(&arg_types[0]) {
            let types: Vec<String> = arg_types.iter().map(|t| t.to_string()).collect();
            return plan_err!("cannot cast type {} to vector", types.join(", "));
        }
        let mut out = vec![arg_types[0].clone()];
        if arg_types.len() == 2 {
            out.push(DataType::Int64);
        }
        Ok(out)
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::List(Arc::new(Field::new_list_field(
            DataType::Float32,
            true,
        ))))
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs<'_>) -> Result<FieldRef> {
        let declared = args
            .scalar_arguments
            .get(1)
            .copied()
            .flatten()
            .and_then(integer_constant)
            .map(|d| d as usize);
        let dim = declared
            .or_else(|| vector_dim(args.arg_fields[0].data_type()))
            .or_else(|| {
                args.scalar_arguments
                    .first()
                    .copied()
                    .flatten()
                    .and_then(literal_dim)
            });
        let data_type = match dim {
            Some(dim) => vector_arrow_type(dim as i32),
            None => self.return_type(&[])?,
        };
        Ok(Arc::new(crate::vector_field::vector_field(
            "to_vector",
            data_type,
        )))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let scalar = args
            .args
            .iter()
            .all(|v| matches!(v, ColumnarValue::Scalar(_)));
        let n = if scalar { 1 } else { args.number_rows };
        let arg = VectorArg::from_value(&args.args[0])?;
        let rows = rows_of(&arg, n);
        let dim = vector_dim(args.return_field.data_type());
        output(build_vectors(rows, dim)?, scalar)
    }
}

/// `vector_to_text(vector)`: a vector's text as pgvector prints it
/// (`[1,2.5]`), what `::text` of a vector becomes.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct VectorToText {
    signature: Signature,
}

impl Default for VectorToText {
    fn default() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for VectorToText {
    fn name(&self) -> &str {
        "vector_to_text"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        match arg_types {
            [vector] if is_vector_like(vector) => Ok(arg_types.to_vec()),
            _ => plan_err!("vector_to_text expects one vector"),
        }
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let scalar = matches!(args.args[0], ColumnarValue::Scalar(_));
        let n = if scalar { 1 } else { args.number_rows };
        let arg = VectorArg::from_value(&args.args[0])?;
        let texts: StringArray = (0..n)
            .map(|i| arg.row(i).map(|v| format_text(&v)))
            .collect();
        output(Arc::new(texts), scalar)
    }
}

/// The value of an integer constant argument of any integer type (a
/// constant is `integer` or `bigint` depending on its size, as in
/// PostgreSQL: `crate::integer_literals`).
fn integer_constant(value: &ScalarValue) -> Option<i64> {
    value_as_i64(value)
}

/// An integer argument's type as it is; any other coerced to `bigint`.
fn integer_argument_type(data_type: &DataType) -> DataType {
    match data_type {
        DataType::Int16 | DataType::Int32 | DataType::Int64 => data_type.clone(),
        _ => DataType::Int64,
    }
}

fn value_as_i64(value: &ScalarValue) -> Option<i64> {
    match value {
        ScalarValue::Int16(Some(v)) => Some(i64::from(*v)),
        ScalarValue::Int32(Some(v)) => Some(i64::from(*v)),
        ScalarValue::Int64(Some(v)) => Some(*v),
        _ => None,
    }
}
