//! Lowering a checked filter tree straight to a DataFusion [`DfExpr`] (the
//! typed plans of the Milvus door), with the same meaning as the SQL text of
//! [`super::emit`]: JSON values read by the `datafusion-functions-json`
//! getters, a possibly missing operand settled with `IS TRUE` /
//! `IS NOT FALSE`, `x [NOT] IN` split by literal type over untyped JSON,
//! `json_contains*` over `json_get_array`. `and` / `or` lists become
//! balanced trees (the operators are associative), so a long list is a
//! shallow expression.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::common::Column;
use datafusion::logical_expr::expr::{InList, Like, ScalarFunction};
use datafusion::logical_expr::{lit, BinaryExpr, Expr as DfExpr, Operator, ScalarUDF};

use super::*;

/// Where lowering finds the scalar functions it calls (the session's
/// registry: `json_get_str`, `array_has`, `power`, ...).
pub trait FunctionSource {
    fn function(&self, name: &str) -> std::result::Result<Arc<ScalarUDF>, FilterError>;
}

/// A function registry (a session's) as lowering's source.
pub struct Registry<'r>(pub &'r dyn datafusion::execution::FunctionRegistry);

impl FunctionSource for Registry<'_> {
    fn function(&self, name: &str) -> std::result::Result<Arc<ScalarUDF>, FilterError> {
        self.0
            .udf(name)
            .map_err(|e| FilterError::new(0, e.to_string()))
    }
}

pub(super) struct Lowering<'f> {
    pub(super) functions: &'f dyn FunctionSource,
}

impl Lowering<'_> {
    fn call(&self, name: &str, args: Vec<DfExpr>) -> Result<DfExpr> {
        Ok(DfExpr::ScalarFunction(ScalarFunction::new_udf(
            self.functions.function(name)?,
            args,
        )))
    }

    pub(super) fn lower(&self, e: &Expr) -> Result<DfExpr> {
        Ok(match &e.node {
            Node::Lit(lit) => lower_lit(lit),
            Node::Column(name) => column(name),
            Node::Access(access) => self.access(access, access.getter.sql())?,
            Node::Neg(inner) => DfExpr::Negative(Box::new(self.lower(inner)?)),
            Node::Not(inner) => match inner.node {
                Node::Column(_) | Node::Lit(_) | Node::Access(_) => {
                    DfExpr::Not(Box::new(self.lower(inner)?))
                }
                // `x = FALSE`, as the SQL text has it (equal to `NOT x`
                // under three-valued logic).
                _ => binary(self.lower(inner)?, Operator::Eq, lit(false)),
            },
            Node::Power(base, exponent) => {
                self.call("power", vec![self.lower(base)?, self.lower(exponent)?])?
            }
            Node::Chain(first, rest) => {
                let mut out = self.lower(first)?;
                for (op, operand) in rest {
                    out = binary(out, arith(*op), self.lower(operand)?);
                }
                out
            }
            Node::Compare(left, op, right) => {
                let missing = (left.nullish || right.nullish).then_some(*op == CmpOp::Ne);
                settle(
                    missing,
                    binary(self.lower(left)?, compare(*op), self.lower(right)?),
                )
            }
            Node::Range(lo, op1, mid, op2, hi) => {
                let missing = (lo.nullish || mid.nullish || hi.nullish).then_some(false);
                let low = binary(self.lower(lo)?, compare(*op1), self.lower(mid)?);
                let high = binary(self.lower(mid)?, compare(*op2), self.lower(hi)?);
                settle(missing, binary(low, Operator::And, high))
            }
            Node::Logic(op, items) => {
                let lowered = items
                    .iter()
                    .map(|item| self.lower(item))
                    .collect::<Result<Vec<_>>>()?;
                balanced(
                    lowered,
                    match op {
                        LogicOp::And => Operator::And,
                        LogicOp::Or => Operator::Or,
                    },
                )
            }
            Node::In(inner, negated, items) => self.lower_in(inner, *negated, items)?,
            Node::Like(inner, pattern) => settle(
                inner.nullish.then_some(false),
                DfExpr::Like(Like::new(
                    false,
                    Box::new(self.lower(inner)?),
                    Box::new(lit(pattern.clone())),
                    None,
                    false,
                )),
            ),
            Node::IsNull(inner, negated) => {
                let target = match &inner.node {
                    // A missing key and a JSON `null` both read as NULL.
                    Node::Access(access) => self.access(access, "json_as_text")?,
                    _ => self.lower(inner)?,
                };
                if *negated {
                    DfExpr::IsNotNull(Box::new(target))
                } else {
                    DfExpr::IsNull(Box::new(target))
                }
            }
            Node::Contains(source, op, items) => self.contains(source, *op, items)?,
            Node::Length(source) => match (source.kind, source.path.is_empty()) {
                (SourceKind::Array(_), true) => self.access(source, "json_length")?,
                _ => self.call("cardinality", vec![self.access(source, "json_get_array")?])?,
            },
        })
    }

    fn lower_in(&self, inner: &Expr, negated: bool, items: &[Lit]) -> Result<DfExpr> {
        if items.is_empty() {
            return Ok(lit(negated));
        }
        let missing = inner.nullish.then_some(negated);
        let groups = in_groups(inner, items);
        let mut parts = Vec::with_capacity(groups.len());
        for (getter, lits) in groups {
            let target = match (&inner.node, getter) {
                (
                    Node::Access(access),
                    Getter::Float | Getter::Int | Getter::Str | Getter::Bool,
                ) => self.access(access, getter.sql())?,
                _ => self.lower(inner)?,
            };
            let list = lits.into_iter().map(lower_lit).collect();
            parts.push(DfExpr::InList(InList::new(Box::new(target), list, negated)));
        }
        let joined = balanced(parts, if negated { Operator::And } else { Operator::Or });
        Ok(settle(missing, joined))
    }

    fn contains(&self, source: &Access, op: ContainsOp, items: &[Lit]) -> Result<DfExpr> {
        if items.is_empty() {
            return Ok(if op == ContainsOp::All {
                // Every array contains all of nothing.
                DfExpr::IsNotNull(Box::new(self.access(source, "json_get_array")?))
            } else {
                lit(false)
            });
        }
        let func = match op {
            ContainsOp::One => "array_has",
            ContainsOp::All => "array_has_all",
            ContainsOp::Any => "array_has_any",
        };
        let mut parts = Vec::new();
        for (ty, lits) in group_by_type(items) {
            let array = self.access(source, "json_get_array")?;
            let haystack = if ty == Ty::Num {
                let exact = contains_ints_exactly(source, &lits);
                let element = if exact {
                    DataType::Int64
                } else {
                    DataType::Float64
                };
                DfExpr::TryCast(datafusion::logical_expr::TryCast::new(
                    Box::new(array),
                    DataType::List(Arc::new(Field::new_list_field(element, true))),
                ))
            } else {
                array
            };
            let needles: Vec<DfExpr> = lits
                .iter()
                .map(|lit| match lit {
                    Lit::Str(s) => datafusion::logical_expr::lit(json_text(s)),
                    Lit::Bool(b) => datafusion::logical_expr::lit(b.to_string()),
                    Lit::Int(_) | Lit::Float(_) => lower_lit(lit),
                })
                .collect();
            let needle = if op == ContainsOp::One {
                needles.into_iter().next().unwrap_or_else(|| lit(false))
            } else {
                self.call("make_array", needles)?
            };
            parts.push(self.call(func, vec![haystack, needle])?);
        }
        let joined = balanced(
            parts,
            if op == ContainsOp::All {
                Operator::And
            } else {
                Operator::Or
            },
        );
        Ok(DfExpr::IsTrue(Box::new(joined)))
    }

    /// `func(column, 'key', 0, ...)`.
    fn access(&self, access: &Access, func: &str) -> Result<DfExpr> {
        let mut args = vec![column(&access.column)];
        for step in &access.path {
            args.push(match step {
                PathElem::Key(key) => lit(key.clone()),
                PathElem::Index(index) => lit(*index),
            });
        }
        self.call(func, args)
    }
}

fn column(name: &str) -> DfExpr {
    DfExpr::Column(Column::new_unqualified(name))
}

fn binary(left: DfExpr, op: Operator, right: DfExpr) -> DfExpr {
    DfExpr::BinaryExpr(BinaryExpr::new(Box::new(left), op, Box::new(right)))
}

/// A possibly missing operand's predicate settled as Milvus does: `None`
/// leaves it, `Some(false)` is `IS TRUE`, `Some(true)` is `IS NOT FALSE`.
fn settle(missing: Option<bool>, predicate: DfExpr) -> DfExpr {
    match missing {
        None => predicate,
        Some(false) => DfExpr::IsTrue(Box::new(predicate)),
        Some(true) => DfExpr::IsNotFalse(Box::new(predicate)),
    }
}

/// `items` joined by `op` as a balanced tree (depth log2 of the count).
fn balanced(mut items: Vec<DfExpr>, op: Operator) -> DfExpr {
    match items.len() {
        0 => lit(op == Operator::And),
        1 => items.remove(0),
        n => {
            let right = items.split_off(n / 2);
            binary(balanced(items, op), op, balanced(right, op))
        }
    }
}

fn lower_lit(lit: &Lit) -> DfExpr {
    match lit {
        Lit::Int(i) => datafusion::logical_expr::lit(*i),
        // The lexer only lets numbers through; SQL reads them as Float64 too.
        Lit::Float(s) => datafusion::logical_expr::lit(s.parse::<f64>().unwrap_or(f64::NAN)),
        Lit::Str(s) => datafusion::logical_expr::lit(s.clone()),
        Lit::Bool(b) => datafusion::logical_expr::lit(*b),
    }
}

fn compare(op: CmpOp) -> Operator {
    match op {
        CmpOp::Eq => Operator::Eq,
        CmpOp::Ne => Operator::NotEq,
        CmpOp::Lt => Operator::Lt,
        CmpOp::Le => Operator::LtEq,
        CmpOp::Gt => Operator::Gt,
        CmpOp::Ge => Operator::GtEq,
    }
}

fn arith(op: ArithOp) -> Operator {
    match op {
        ArithOp::Add => Operator::Plus,
        ArithOp::Sub => Operator::Minus,
        ArithOp::Mul => Operator::Multiply,
        ArithOp::Div => Operator::Divide,
        ArithOp::Mod => Operator::Modulo,
    }
}
