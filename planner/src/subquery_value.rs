//! A scalar subquery's one value, as an aggregate:
//! `quiver_subquery_check((SELECT quiver_subquery_value(x) FROM ...))` is
//! `(SELECT x FROM ...)` — NULL for no rows, PostgreSQL's cardinality
//! violation (`21000`, "more than one row returned by a subquery used as an
//! expression") for more. The aggregate gives the value with its row count
//! (DataFusion computes it for every group of the inner relation, even one
//! no outer row asks for); the check raises the error only for a row of
//! the outer query that reads a group of more than one row.
//!
//! DataFusion plans a correlated scalar subquery only when it aggregates
//! ("Correlated scalar subquery must be aggregated to return at most one
//! row"), so psql's `\dT`, whose filter is `(SELECT c.relkind = 'c' FROM
//! pg_class c WHERE c.oid = t.typrelid)`, failed. The access layer wraps the
//! select item of such a subquery in this aggregate: it has the subquery's
//! meaning exactly (one value, NULL, or the error), and DataFusion
//! decorrelates it as any aggregating subquery.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, StructArray};
use arrow::datatypes::{DataType, Field, FieldRef, UInt64Type};
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, ColumnarValue, ReturnFieldArgs,
    ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use crate::search_subqueries::SubqueryReturnedRows;

/// The aggregate's name.
pub const SUBQUERY_VALUE: &str = "quiver_subquery_value";

/// The check's name.
pub const SUBQUERY_CHECK: &str = "quiver_subquery_check";

/// The aggregate's result: the value and how many rows the group had.
fn counted(value_field: &Field) -> DataType {
    DataType::Struct(
        vec![
            Arc::new(value_field.clone().with_name("value").with_nullable(true)),
            Arc::new(Field::new("rows", DataType::UInt64, false)),
        ]
        .into(),
    )
}

/// The `quiver_subquery_value` aggregate.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct SubqueryValue {
    signature: Signature,
}

impl Default for SubqueryValue {
    fn default() -> Self {
        Self {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

/// The aggregate, ready to register.
pub fn subquery_value() -> AggregateUDF {
    AggregateUDF::from(SubqueryValue::default())
}

fn more_than_one_row() -> DataFusionError {
    DataFusionError::External(Box::new(SubqueryReturnedRows))
}

impl AggregateUDFImpl for SubqueryValue {
    fn name(&self) -> &str {
        SUBQUERY_VALUE
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        let value = arg_types.first().cloned().unwrap_or(DataType::Null);
        Ok(counted(&Field::new("value", value, true)))
    }

    fn return_field(&self, arg_fields: &[FieldRef]) -> Result<FieldRef> {
        // The value keeps its field (a vector's marker, a JSON column's).
        let value = arg_fields
            .first()
            .map(|f| f.as_ref().clone())
            .unwrap_or_else(|| Field::new("value", DataType::Null, true));
        Ok(Arc::new(Field::new(self.name(), counted(&value), true)))
    }

    fn accumulator(&self, args: AccumulatorArgs<'_>) -> Result<Box<dyn Accumulator>> {
        let value_type = match args.return_field.data_type() {
            DataType::Struct(fields) => fields[0].data_type().clone(),
            other => other.clone(),
        };
        Ok(Box::new(SubqueryValueAccumulator {
            value: ScalarValue::try_from(&value_type)?,
            rows: 0,
            output: args.return_field.data_type().clone(),
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs<'_>) -> Result<Vec<FieldRef>> {
        let value_type = match args.return_field.data_type() {
            DataType::Struct(fields) => fields[0].data_type().clone(),
            other => other.clone(),
        };
        Ok(vec![
            Arc::new(Field::new(
                format!("{}[value]", args.name),
                value_type,
                true,
            )),
            Arc::new(Field::new(
                format!("{}[rows]", args.name),
                DataType::UInt64,
                true,
            )),
        ])
    }
}

/// The one value seen and how many rows were.
#[derive(Debug)]
struct SubqueryValueAccumulator {
    value: ScalarValue,
    rows: u64,
    output: DataType,
}

impl SubqueryValueAccumulator {
    fn add(&mut self, value: ScalarValue, rows: u64) {
        if rows == 0 {
            return;
        }
        self.rows += rows;
        self.value = value;
    }
}

impl Accumulator for SubqueryValueAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let column = &values[0];
        for row in 0..column.len() {
            self.add(ScalarValue::try_from_array(column, row)?, 1);
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let rows = states[1].as_primitive::<UInt64Type>();
        for row in 0..rows.len() {
            if rows.is_null(row) {
                continue;
            }
            self.add(
                ScalarValue::try_from_array(&states[0], row)?,
                rows.value(row),
            );
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![
            self.value.clone(),
            ScalarValue::UInt64(Some(self.rows)),
        ])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let DataType::Struct(fields) = &self.output else {
            return Err(DataFusionError::Internal(format!(
                "{SUBQUERY_VALUE} returns a struct"
            )));
        };
        let columns: Vec<ArrayRef> = vec![
            self.value.to_array()?,
            ScalarValue::UInt64(Some(self.rows)).to_array()?,
        ];
        Ok(ScalarValue::Struct(Arc::new(StructArray::try_new(
            fields.clone(),
            columns,
            None,
        )?)))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.value.size() - std::mem::size_of_val(&self.value)
    }
}

/// The `quiver_subquery_check` function over the aggregate's result.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct SubqueryCheck {
    signature: Signature,
}

impl Default for SubqueryCheck {
    fn default() -> Self {
        Self {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

/// The check, ready to register.
pub fn subquery_check() -> ScalarUDF {
    ScalarUDF::from(SubqueryCheck::default())
}

impl ScalarUDFImpl for SubqueryCheck {
    fn name(&self) -> &str {
        SUBQUERY_CHECK
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types.first() {
            Some(DataType::Struct(fields)) if fields.len() == 2 => {
                Ok(fields[0].data_type().clone())
            }
            other => Err(DataFusionError::Plan(format!(
                "{SUBQUERY_CHECK} takes the result of {SUBQUERY_VALUE}, not {other:?}"
            ))),
        }
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs<'_>) -> Result<FieldRef> {
        match args.arg_fields.first().map(|f| f.data_type()) {
            Some(DataType::Struct(fields)) if fields.len() == 2 => Ok(Arc::new(
                fields[0]
                    .as_ref()
                    .clone()
                    .with_name(self.name())
                    .with_nullable(true),
            )),
            other => Err(DataFusionError::Plan(format!(
                "{SUBQUERY_CHECK} takes the result of {SUBQUERY_VALUE}, not {other:?}"
            ))),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let scalar = matches!(args.args[0], ColumnarValue::Scalar(_));
        let array = args.args[0].to_array(args.number_rows)?;
        let counted = array.as_struct();
        let rows = counted.column(1).as_primitive::<UInt64Type>();
        for row in 0..counted.len() {
            if !counted.is_null(row) && rows.is_valid(row) && rows.value(row) > 1 {
                return Err(more_than_one_row());
            }
        }
        // A row without a group (no inner row matched) is NULL.
        let values = match counted.null_count() {
            0 => counted.column(0).clone(),
            _ => {
                let absent: arrow::array::BooleanArray = (0..counted.len())
                    .map(|row| Some(counted.is_null(row)))
                    .collect();
                arrow::compute::nullif(counted.column(0), &absent)?
            }
        };
        Ok(if scalar {
            ColumnarValue::Scalar(ScalarValue::try_from_array(&values, 0)?)
        } else {
            ColumnarValue::Array(values)
        })
    }
}

#[cfg(test)]
mod tests {
    use datafusion::prelude::SessionContext;

    use super::*;

    async fn run(sql: &str) -> Result<Vec<arrow::array::RecordBatch>> {
        let ctx = SessionContext::new();
        ctx.register_udaf(subquery_value());
        ctx.register_udf(subquery_check());
        ctx.sql("CREATE TABLE t AS VALUES (1, 'a'), (2, 'b'), (2, 'c')")
            .await?
            .collect()
            .await?;
        ctx.sql(sql).await?.collect().await
    }

    #[tokio::test]
    async fn one_row_is_its_value_none_is_null_more_is_an_error() {
        let err = run(
            "SELECT quiver_subquery_check((SELECT quiver_subquery_value(u.column2) FROM t u \
             WHERE u.column1 = t.column1 + 1)) FROM t WHERE column1 = 1",
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("more than one row"), "{err}");
        let rows = run(
            "SELECT quiver_subquery_check((SELECT quiver_subquery_value(u.column2) FROM t u \
             WHERE u.column1 = t.column1 - 1)) AS prev FROM t ORDER BY column1, column2",
        )
        .await
        .unwrap();
        let text = arrow::util::pretty::pretty_format_batches(&rows)
            .unwrap()
            .to_string();
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with("| "))
                .skip(1)
                .map(str::trim)
                .collect::<Vec<_>>(),
            ["|      |", "| a    |", "| a    |"],
            "{text}"
        );
    }
}
