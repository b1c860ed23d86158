//! PostgreSQL's `json` / `jsonb` in SQL: the types in casts (`'{...}'::jsonb`,
//! `CAST(x AS json)`), stored as their text in a UTF-8 field marked with
//! [`JSON_METADATA_KEY`] like a `JSONB` column; and the operators
//! `->` `->>` `#>` `#>>` `?` `@>` `<@` on them.
//!
//! * [`JsonTypePlanner`] plans the types;
//! * [`JsonCastRule`] (analyzer rule) turns a cast to them into `jsonb_in`
//!   (validates the text — `22P02` as PostgreSQL words it — and, for
//!   `jsonb`, writes it in PostgreSQL's normal form: keys ordered by length
//!   then bytes, one per name, `", "` and `": "` between items);
//! * [`JsonOperatorPlanner`] plans the operators over the functions of
//!   `datafusion-functions-json` (`->` an element as JSON text, `->>` as
//!   text) and [`JsonbPredicate`] (`@>`, `<@`: PostgreSQL's containment,
//!   [`contains`]; `?`: a key or a string element, [`exists`]).

use std::sync::Arc;

use arrow::array::{Array, AsArray, BooleanArray, StringArray};
use arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{exec_err, DFSchema, DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::expr::{Cast, ScalarFunction, TryCast};
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult, RawBinaryExpr, TypePlanner};
use datafusion::logical_expr::{
    lit, ColumnarValue, Expr, ExprSchemable, LogicalPlan, ReturnFieldArgs, ScalarFunctionArgs,
    ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::optimizer::AnalyzerRule;
use datafusion::sql::sqlparser::ast::{BinaryOperator, DataType as SqlType};
use quiver_common::schema::JSON_METADATA_KEY;
use serde_json::Value;

/// The metadata value of a `jsonb` field (and of a `JSONB` column).
const JSONB: &str = "json";
/// The metadata value of a `json` field (text kept as written).
const JSON_TEXT: &str = "json-text";

/// A UTF-8 field holding JSON (`jsonb` unless `text_kept`).
fn json_field(name: &str, text_kept: bool) -> Field {
    let kind = if text_kept { JSON_TEXT } else { JSONB };
    Field::new(name, DataType::Utf8, true)
        .with_metadata([(JSON_METADATA_KEY.to_string(), kind.to_string())].into())
}

/// `Some(text_kept)` when `field` holds JSON.
fn json_kind(field: &Field) -> Option<bool> {
    match field.metadata().get(JSON_METADATA_KEY)?.as_str() {
        JSONB => Some(false),
        JSON_TEXT => Some(true),
        _ => None,
    }
}

/// Plans `json` and `jsonb`, and hands every other type to the planner
/// it was put over (a session has one type planner).
#[derive(Debug, Default)]
pub struct JsonTypePlanner {
    fallback: Option<Arc<dyn TypePlanner>>,
}

impl JsonTypePlanner {
    /// Plans JSON types, then asks `fallback`.
    pub fn over(fallback: Option<Arc<dyn TypePlanner>>) -> Self {
        Self { fallback }
    }
}

impl TypePlanner for JsonTypePlanner {
    fn plan_type_field(&self, sql_type: &SqlType) -> Result<Option<FieldRef>> {
        match sql_type {
            SqlType::JSONB => Ok(Some(Arc::new(json_field("jsonb", false)))),
            SqlType::JSON => Ok(Some(Arc::new(json_field("json", true)))),
            other => match &self.fallback {
                Some(fallback) => fallback.plan_type_field(other),
                None => Ok(None),
            },
        }
    }
}

/// `jsonb_in(text[, text_kept])`: the text checked as JSON and, unless
/// `text_kept`, in `jsonb`'s normal form.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct JsonbIn {
    signature: Signature,
}

impl Default for JsonbIn {
    fn default() -> Self {
        Self {
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

fn invalid_json(text: &str) -> DataFusionError {
    DataFusionError::External(Box::new(InvalidJson {
        text: text.to_string(),
    }))
}

/// Text that is not JSON: PostgreSQL's `invalid input syntax for type json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidJson {
    pub text: String,
}

impl std::fmt::Display for InvalidJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid input syntax for type json")
    }
}

impl std::error::Error for InvalidJson {}

impl ScalarUDFImpl for JsonbIn {
    fn name(&self) -> &str {
        "jsonb_in"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs<'_>) -> Result<FieldRef> {
        let text_kept = matches!(
            args.scalar_arguments.get(1),
            Some(Some(ScalarValue::Boolean(Some(true))))
        );
        Ok(Arc::new(json_field(self.name(), text_kept)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let text_kept = matches!(
            &args.args[1],
            ColumnarValue::Scalar(ScalarValue::Boolean(Some(true)))
        );
        let input = args.args[0].to_array(rows)?;
        let input = arrow::compute::cast(&input, &DataType::Utf8)?;
        let input = input.as_string::<i32>();
        let mut out = Vec::with_capacity(rows);
        for i in 0..rows {
            if input.is_null(i) {
                out.push(None);
                continue;
            }
            let text = input.value(i);
            let value: Value = serde_json::from_str(text).map_err(|_| invalid_json(text))?;
            out.push(Some(if text_kept {
                text.to_string()
            } else {
                jsonb_text(&value)
            }));
        }
        let out: Arc<dyn Array> = Arc::new(StringArray::from(out));
        Ok(match &args.args[0] {
            ColumnarValue::Scalar(_) => {
                ColumnarValue::Scalar(ScalarValue::try_from_array(out.as_ref(), 0)?)
            }
            ColumnarValue::Array(_) => ColumnarValue::Array(out),
        })
    }
}

/// `value` written as PostgreSQL writes a `jsonb`.
pub fn jsonb_text(value: &Value) -> String {
    let mut out = String::new();
    write_jsonb(value, &mut out);
    out
}

fn write_jsonb(value: &Value, out: &mut String) {
    match value {
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_jsonb(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_by(|a, b| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push_str(": ");
                write_jsonb(&map[key], out);
            }
            out.push('}');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// PostgreSQL's `jsonb` containment: does `outer` contain `inner`? A
/// top-level array also contains a scalar it holds.
pub fn contains(outer: &Value, inner: &Value) -> bool {
    match (outer, inner) {
        (Value::Array(o), scalar) if !scalar.is_array() && !scalar.is_object() => {
            o.iter().any(|ov| same_scalar(ov, scalar))
        }
        _ => contains_nested(outer, inner),
    }
}

fn contains_nested(outer: &Value, inner: &Value) -> bool {
    match (outer, inner) {
        (Value::Object(o), Value::Object(i)) => i
            .iter()
            .all(|(k, v)| o.get(k).is_some_and(|ov| contains_nested(ov, v))),
        (Value::Array(o), Value::Array(i)) => {
            i.iter().all(|v| o.iter().any(|ov| contains_nested(ov, v)))
        }
        (a, b) => same_scalar(a, b),
    }
}

/// Equal scalars, numbers by value (`1` and `1.0` are the same number).
fn same_scalar(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => x.as_f64() == y.as_f64(),
        },
        (Value::Array(_) | Value::Object(_), _) | (_, Value::Array(_) | Value::Object(_)) => false,
        _ => a == b,
    }
}

/// Does `doc` have `key`: as an object key, a string element of an
/// array, or as the string itself (PostgreSQL's `?`)?
pub fn exists(doc: &Value, key: &str) -> bool {
    match doc {
        Value::Object(map) => map.contains_key(key),
        Value::Array(items) => items.iter().any(|v| v.as_str() == Some(key)),
        Value::String(s) => s == key,
        _ => false,
    }
}

/// A predicate over a `jsonb` and a second operand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum JsonbTest {
    /// `a @> b` (`b` JSON).
    Contains,
    /// `a ? b` (`b` text).
    Exists,
}

/// `jsonb_contains(a, b)` (`a @> b`) and `jsonb_exists(a, key)` (`a ? key`).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct JsonbPredicate {
    test: JsonbTest,
    signature: Signature,
}

impl JsonbPredicate {
    fn new(test: JsonbTest) -> Self {
        Self {
            test,
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for JsonbPredicate {
    fn name(&self) -> &str {
        match self.test {
            JsonbTest::Contains => "jsonb_contains",
            JsonbTest::Exists => "jsonb_exists",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let texts = |i: usize| -> Result<Arc<dyn Array>> {
            let array = args.args[i].to_array(rows)?;
            Ok(arrow::compute::cast(&array, &DataType::Utf8)?)
        };
        let (outer, inner) = (texts(0)?, texts(1)?);
        let (outer, inner) = (outer.as_string::<i32>(), inner.as_string::<i32>());
        let parse = |text: &str| -> Result<Value> {
            serde_json::from_str(text).map_err(|_| invalid_json(text))
        };
        let mut out = Vec::with_capacity(rows);
        for i in 0..rows {
            if outer.is_null(i) || inner.is_null(i) {
                out.push(None);
                continue;
            }
            let doc = parse(outer.value(i))?;
            out.push(Some(match self.test {
                JsonbTest::Contains => contains(&doc, &parse(inner.value(i))?),
                JsonbTest::Exists => exists(&doc, inner.value(i)),
            }));
        }
        let out = BooleanArray::from(out);
        Ok(if scalar {
            ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?)
        } else {
            ColumnarValue::Array(Arc::new(out))
        })
    }
}

/// Rewrites casts to `json` / `jsonb` into `jsonb_in` calls.
#[derive(Debug, Default)]
pub struct JsonCastRule;

fn jsonb_in_call(expr: Expr, text_kept: bool) -> Expr {
    Expr::ScalarFunction(ScalarFunction::new_udf(
        Arc::new(ScalarUDF::from(JsonbIn::default())),
        vec![expr, lit(text_kept)],
    ))
}

fn rewrite_cast(expr: Expr) -> Result<Transformed<Expr>> {
    match expr {
        Expr::Cast(Cast { expr, field }) | Expr::TryCast(TryCast { expr, field })
            if json_kind(&field).is_some() =>
        {
            let text_kept = json_kind(&field) == Some(true);
            Ok(Transformed::yes(jsonb_in_call(*expr, text_kept)))
        }
        other => Ok(Transformed::no(other)),
    }
}

impl AnalyzerRule for JsonCastRule {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| {
            let changed = node.map_expressions(|e| e.transform_up(rewrite_cast))?;
            if changed.transformed {
                changed.map_data(|p| p.recompute_schema())
            } else {
                Ok(changed)
            }
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "json_casts"
    }
}

/// Plans `->`, `->>`, `#>`, `#>>`, `?`, `@>` and `<@` over JSON operands.
#[derive(Debug, Default)]
pub struct JsonOperatorPlanner;

/// True when `expr` is JSON (a `json`/`jsonb` column or cast) or text.
fn is_json_operand(expr: &Expr, schema: &DFSchema) -> bool {
    match expr.to_field(schema) {
        Ok((_, field)) => {
            json_kind(&field).is_some()
                || matches!(field.data_type(), DataType::Utf8 | DataType::Utf8View)
        }
        Err(_) => false,
    }
}

/// The keys of a path operand (`'{a,1}'`): each element, an index when it
/// reads as an integer.
fn path_keys(path: &Expr) -> Result<Vec<Expr>> {
    let Expr::Literal(ScalarValue::Utf8(Some(text)) | ScalarValue::Utf8View(Some(text)), _) = path
    else {
        return exec_err!("a JSON path operand must be a text array constant such as '{{a,1}}'");
    };
    let inner = text
        .trim()
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .ok_or_else(|| DataFusionError::External(Box::new(InvalidJson { text: text.clone() })))?;
    Ok(inner
        .split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(|k| {
            let k = k.trim_matches('"');
            match k.parse::<i64>() {
                Ok(index) => lit(index),
                Err(_) => lit(k.to_string()),
            }
        })
        .collect())
}

/// The functions the JSON casts and operators are planned into, for the
/// session's registry (a fragment's filter is decoded on its node by
/// function name).
pub fn json_functions() -> Vec<ScalarUDF> {
    vec![
        ScalarUDF::from(JsonbIn::default()),
        ScalarUDF::from(JsonbPredicate::new(JsonbTest::Contains)),
        ScalarUDF::from(JsonbPredicate::new(JsonbTest::Exists)),
    ]
}

fn predicate(test: JsonbTest) -> Arc<ScalarUDF> {
    Arc::new(ScalarUDF::from(JsonbPredicate::new(test)))
}

fn call(udf: Arc<ScalarUDF>, args: Vec<Expr>) -> Expr {
    Expr::ScalarFunction(ScalarFunction::new_udf(udf, args))
}

impl ExprPlanner for JsonOperatorPlanner {
    fn plan_binary_op(
        &self,
        expr: RawBinaryExpr,
        schema: &DFSchema,
    ) -> Result<PlannerResult<RawBinaryExpr>> {
        use datafusion_functions_json::udfs;
        let handled = matches!(
            expr.op,
            BinaryOperator::Arrow
                | BinaryOperator::LongArrow
                | BinaryOperator::HashArrow
                | BinaryOperator::HashLongArrow
                | BinaryOperator::Question
                | BinaryOperator::AtArrow
                | BinaryOperator::ArrowAt
        );
        if !handled || !is_json_operand(&expr.left, schema) {
            return Ok(PlannerResult::Original(expr));
        }
        let RawBinaryExpr { op, left, right } = expr;
        let planned = match op {
            BinaryOperator::Arrow => call(udfs::json_get_json_udf(), vec![left, right]),
            BinaryOperator::LongArrow => call(udfs::json_as_text_udf(), vec![left, right]),
            BinaryOperator::HashArrow => {
                let mut args = vec![left];
                args.extend(path_keys(&right)?);
                call(udfs::json_get_json_udf(), args)
            }
            BinaryOperator::HashLongArrow => {
                let mut args = vec![left];
                args.extend(path_keys(&right)?);
                call(udfs::json_as_text_udf(), args)
            }
            BinaryOperator::Question => call(predicate(JsonbTest::Exists), vec![left, right]),
            BinaryOperator::AtArrow => call(predicate(JsonbTest::Contains), vec![left, right]),
            _ => call(predicate(JsonbTest::Contains), vec![right, left]),
        };
        Ok(PlannerResult::Planned(planned))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn jsonb_normal_form_is_postgres() {
        assert_eq!(
            jsonb_text(&json(r#"{"bb":1,"a":[1,2,{"z":null,"y":true}],"c":"x"}"#)),
            r#"{"a": [1, 2, {"y": true, "z": null}], "c": "x", "bb": 1}"#
        );
        assert_eq!(jsonb_text(&json(r#"{"a":1,"a":2}"#)), r#"{"a": 2}"#);
    }

    #[test]
    fn containment_is_postgres() {
        assert!(contains(
            &json(r#"{"a":1,"b":[1,2]}"#),
            &json(r#"{"b":[2]}"#)
        ));
        assert!(!contains(&json(r#"{"a":1}"#), &json(r#"{"a":2}"#)));
        assert!(contains(&json("[1,2,[3]]"), &json("[[3],1]")));
        assert!(contains(&json(r#"["a","b"]"#), &json(r#""a""#)));
        assert!(!contains(&json(r#"{"a":{"b":1}}"#), &json(r#"{"b":1}"#)));
        // The scalar exception is for a top-level array only.
        assert!(!contains(&json("[[1,2]]"), &json("[1]")));
        assert!(!contains(&json(r#"{"a":["x"]}"#), &json(r#"{"a":"x"}"#)));
        assert!(contains(&json("[1.0]"), &json("[1]")));
        assert!(exists(&json(r#"["a","b"]"#), "a"));
        assert!(exists(&json(r#"{"a":1}"#), "a"));
        assert!(!exists(&json(r#"{"b":{"a":1}}"#), "a"));
    }
}
