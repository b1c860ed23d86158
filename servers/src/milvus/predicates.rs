//! Filter expressions as predicates of the door's typed plans: a request's
//! `expr` (with its template values) checked and lowered by
//! [`filter`](super::filter) over the collection's fields, and predicates
//! joined.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use datafusion::logical_expr::{Expr as DfExpr, ScalarUDF};
use quiver_sql::handler::{QueryHandler, Session};

use quiver_common::schema::{ColumnType, TableSchema};

use super::door::MilvusDoor;
use super::hidden_columns::PARTITION_COLUMN;
use super::status::DoorError;
use super::{arrays, filter};

impl MilvusDoor {
    /// The filter of a request as a DataFusion expression over the
    /// collection's columns (`None` when empty), for the door's typed plans.
    pub(super) fn predicate_expr(
        &self,
        session: &mut Session,
        table: &TableSchema,
        arrays: &arrays::ArrayFields,
        expr: &str,
        templates: &HashMap<String, milvus::proto::schema::TemplateValue>,
    ) -> Result<Option<DfExpr>, DoorError> {
        let Some(checked) = self.checked_filter(table, arrays, expr, templates)? else {
            return Ok(None);
        };
        let functions = SessionFunctions {
            handler: self.handler.as_ref(),
            session: RefCell::new(session),
        };
        Ok(Some(checked.lower(&functions)?))
    }
}

impl MilvusDoor {
    /// The filter of a request, parsed and checked (`None` when empty).
    pub(super) fn checked_filter(
        &self,
        table: &TableSchema,
        arrays: &arrays::ArrayFields,
        expr: &str,
        templates: &HashMap<String, milvus::proto::schema::TemplateValue>,
    ) -> Result<Option<filter::CheckedFilter>, DoorError> {
        if expr.trim().is_empty() {
            return Ok(None);
        }
        let fields = filter_fields(table, arrays);
        let templates = templates
            .iter()
            .map(|(k, v)| Ok((k.clone(), template_value(v)?)))
            .collect::<Result<HashMap<_, _>, DoorError>>()?;
        Ok(Some(filter::check_filter(expr, &fields, &templates)?))
    }
}

/// The session's scalar functions, as filter lowering looks them up.
struct SessionFunctions<'a> {
    handler: &'a dyn QueryHandler,
    session: RefCell<&'a mut Session>,
}

impl filter::FunctionSource for SessionFunctions<'_> {
    fn function(&self, name: &str) -> Result<Arc<ScalarUDF>, filter::FilterError> {
        let mut session = self.session.borrow_mut();
        self.handler
            .scalar_function(&mut session, name)
            .map_err(|e| filter::FilterError {
                position: 0,
                message: e.to_string(),
            })
    }
}

/// The fields a filter over `table` may name, with their filter kinds.
fn filter_fields<'t>(
    table: &'t TableSchema,
    arrays: &arrays::ArrayFields,
) -> Vec<filter::FilterField<'t>> {
    table
        .columns
        .iter()
        .filter(|c| c.name != PARTITION_COLUMN)
        .map(|c| filter::FilterField {
            name: &c.name,
            kind: match c.column_type {
                ColumnType::Json if arrays.get(&c.name).is_some() => arrays
                    .filter_kind(&c.name)
                    .unwrap_or(filter::FieldKind::Array),
                ColumnType::Bool => filter::FieldKind::Bool,
                ColumnType::Int16 | ColumnType::Int32 | ColumnType::Int64 => filter::FieldKind::Int,
                ColumnType::Float32 | ColumnType::Float64 => filter::FieldKind::Float,
                ColumnType::Text { .. } | ColumnType::TimestampTz => filter::FieldKind::String,
                ColumnType::Json => filter::FieldKind::Json,
                ColumnType::Vector { .. } => filter::FieldKind::Vector,
            },
        })
        .collect()
}

/// Both predicates (either may be absent).
pub(super) fn both_exprs(a: Option<DfExpr>, b: Option<DfExpr>) -> Option<DfExpr> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.and(b)),
        (a, b) => a.or(b),
    }
}

pub(super) fn template_value(
    v: &milvus::proto::schema::TemplateValue,
) -> Result<filter::TemplateValue, DoorError> {
    use milvus::proto::schema::template_value::Val;
    Ok(match &v.val {
        Some(Val::BoolVal(b)) => filter::TemplateValue::Bool(*b),
        Some(Val::Int64Val(i)) => filter::TemplateValue::Int(*i),
        Some(Val::FloatVal(f)) => filter::TemplateValue::Float(*f),
        Some(Val::StringVal(s)) => filter::TemplateValue::String(s.clone()),
        Some(Val::ArrayVal(a)) => {
            use milvus::proto::schema::template_array_value::Data;
            filter::TemplateValue::Array(match &a.data {
                Some(Data::BoolData(d)) => d
                    .data
                    .iter()
                    .map(|b| filter::TemplateValue::Bool(*b))
                    .collect(),
                Some(Data::LongData(d)) => d
                    .data
                    .iter()
                    .map(|i| filter::TemplateValue::Int(*i))
                    .collect(),
                Some(Data::DoubleData(d)) => d
                    .data
                    .iter()
                    .map(|f| filter::TemplateValue::Float(*f))
                    .collect(),
                Some(Data::StringData(d)) => d
                    .data
                    .iter()
                    .map(|s| filter::TemplateValue::String(s.clone()))
                    .collect(),
                _ => {
                    return Err(DoorError::unsupported(
                        "this template array value".to_string(),
                    ))
                }
            })
        }
        _ => return Err(DoorError::unsupported("this template value".to_string())),
    })
}

#[cfg(test)]
mod tests {
    use milvus::proto::schema::template_array_value::Data;
    use milvus::proto::schema::template_value::Val;
    use milvus::proto::schema::{LongArray, StringArray, TemplateArrayValue, TemplateValue};

    use super::*;

    #[test]
    fn predicates_join_with_and() {
        use datafusion::logical_expr::{col, lit};
        let a = || Some(col("a").gt(lit(1)));
        let b = || Some(col("b").is_null());
        assert_eq!(
            both_exprs(a(), b()),
            Some(col("a").gt(lit(1)).and(col("b").is_null()))
        );
        assert_eq!(both_exprs(a(), None), a());
        assert_eq!(both_exprs(None, b()), b());
        assert_eq!(both_exprs(None, None), None);
    }

    fn value(val: Val) -> TemplateValue {
        TemplateValue { val: Some(val) }
    }

    #[test]
    fn template_values_decode() {
        assert!(matches!(
            template_value(&value(Val::Int64Val(3))).unwrap(),
            filter::TemplateValue::Int(3)
        ));
        assert!(matches!(
            template_value(&value(Val::StringVal("x".into()))).unwrap(),
            filter::TemplateValue::String(s) if s == "x"
        ));
        let array = value(Val::ArrayVal(TemplateArrayValue {
            data: Some(Data::LongData(LongArray { data: vec![1, 2] })),
        }));
        match template_value(&array).unwrap() {
            filter::TemplateValue::Array(items) => {
                assert!(matches!(
                    items.as_slice(),
                    [filter::TemplateValue::Int(1), filter::TemplateValue::Int(2)]
                ));
            }
            _ => panic!("not an array"),
        }
        let strings = value(Val::ArrayVal(TemplateArrayValue {
            data: Some(Data::StringData(StringArray {
                data: vec!["a".into()],
            })),
        }));
        assert!(template_value(&strings).is_ok());
        let nested = value(Val::ArrayVal(TemplateArrayValue { data: None }));
        assert_eq!(
            template_value(&nested).unwrap_err().message,
            "this template array value is not supported yet by Quiver"
        );
        assert_eq!(
            template_value(&TemplateValue { val: None })
                .unwrap_err()
                .message,
            "this template value is not supported yet by Quiver"
        );
    }
}
