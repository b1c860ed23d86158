//! `avg(vector)`: the element-wise mean of vectors, as pgvector defines it.
//! Registered as `vector_avg`; the access layer routes `avg(<vector column>)` to it.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, ListArray};
use arrow::datatypes::{DataType, Field, FieldRef, Float64Type, UInt64Type};
use datafusion::common::{plan_err, Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, ColumnarValue, Signature, Volatility,
};
use quiver_common::schema::{vector_arrow_type, vector_dim};
use quiver_common::vector::VectorError;

use crate::vector_value::{is_vector_like, vector_error, VectorArg};

/// The `vector_avg` aggregate.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct VectorAvg {
    signature: Signature,
}

impl Default for VectorAvg {
    fn default() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

/// The aggregate, ready to register.
pub fn vector_avg() -> AggregateUDF {
    AggregateUDF::from(VectorAvg::default())
}

impl AggregateUDFImpl for VectorAvg {
    fn name(&self) -> &str {
        "vector_avg"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        match arg_types {
            [t] if is_vector_like(t)
                && !matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View) =>
            {
                Ok(arg_types.to_vec())
            }
            _ => plan_err!("function avg({:?}) does not exist", arg_types),
        }
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(match arg_types.first().and_then(vector_dim) {
            Some(dim) => vector_arrow_type(dim as i32),
            None => DataType::List(Arc::new(Field::new_list_field(DataType::Float32, true))),
        })
    }

    fn return_field(&self, arg_fields: &[FieldRef]) -> Result<FieldRef> {
        let arg_types: Vec<DataType> = arg_fields.iter().map(|f| f.data_type().clone()).collect();
        Ok(Arc::new(crate::vector_field::vector_field(
            self.name(),
            self.return_type(&arg_types)?,
        )))
    }

    fn accumulator(&self, acc_args: AccumulatorArgs<'_>) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(VectorAvgAccumulator {
            sum: Vec::new(),
            count: 0,
            output: acc_args.return_field.data_type().clone(),
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs<'_>) -> Result<Vec<FieldRef>> {
        Ok(vec![
            Arc::new(Field::new(
                format!("{}[sum]", args.name),
                DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true))),
                true,
            )),
            Arc::new(Field::new(
                format!("{}[count]", args.name),
                DataType::UInt64,
                true,
            )),
        ])
    }
}

#[derive(Debug)]
struct VectorAvgAccumulator {
    sum: Vec<f64>,
    count: u64,
    output: DataType,
}

impl VectorAvgAccumulator {
    fn add(&mut self, values: &[f64], count: u64) -> Result<()> {
        if self.sum.is_empty() {
            self.sum = vec![0.0; values.len()];
        } else if self.sum.len() != values.len() {
            return Err(vector_error(VectorError::DifferentDimensions(
                self.sum.len(),
                values.len(),
            )));
        }
        for (s, v) in self.sum.iter_mut().zip(values) {
            *s += v;
        }
        self.count += count;
        Ok(())
    }
}

impl Accumulator for VectorAvgAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let arg = VectorArg::from_value(&ColumnarValue::Array(values[0].clone()))?;
        for i in 0..values[0].len() {
            if let Some(v) = arg.row(i) {
                let v: Vec<f64> = v.iter().map(|x| *x as f64).collect();
                self.add(&v, 1)?;
            }
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let sums = states[0].as_list::<i32>();
        let counts = states[1].as_primitive::<UInt64Type>();
        for i in 0..sums.len() {
            if sums.is_null(i) || counts.value(i) == 0 {
                continue;
            }
            let values = sums.value(i);
            let values = values.as_primitive::<Float64Type>();
            self.add(values.values(), counts.value(i))?;
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let sum = Float64Array::from(self.sum.clone());
        let list = ListArray::new(
            Arc::new(Field::new_list_field(DataType::Float64, true)),
            arrow::buffer::OffsetBuffer::from_lengths([sum.len()]),
            Arc::new(sum),
            None,
        );
        Ok(vec![
            ScalarValue::List(Arc::new(list)),
            ScalarValue::UInt64(Some(self.count)),
        ])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        if self.count == 0 {
            return ScalarValue::try_from(&self.output);
        }
        let mean: Vec<f32> = self
            .sum
            .iter()
            .map(|s| (s / self.count as f64) as f32)
            .collect();
        let item = Arc::new(Field::new_list_field(DataType::Float32, true));
        let values = Arc::new(arrow::array::Float32Array::from(mean.clone()));
        match &self.output {
            DataType::FixedSizeList(_, dim) if *dim as usize == mean.len() => {
                Ok(ScalarValue::FixedSizeList(Arc::new(
                    arrow::array::FixedSizeListArray::try_new(item, *dim, values, None)?,
                )))
            }
            _ => Ok(ScalarValue::List(Arc::new(ListArray::new(
                item,
                arrow::buffer::OffsetBuffer::from_lengths([mean.len()]),
                values,
                None,
            )))),
        }
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.sum.capacity() * 8
    }
}
