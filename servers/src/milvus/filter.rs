//! Milvus boolean filter expressions, lowered straight into DataFusion
//! expressions ([`filter_to_expr`], [`CheckedFilter::lower`]; see
//! `lower.rs`) for the door's typed plans.
//!
//! This module owns the `filter` / `expr` string accepted by pymilvus
//! `search`, `query` and `delete`: it tokenizes and parses the Milvus filter
//! language, resolves field names against the collection schema, substitutes
//! template placeholders (`{name}`), performs cheap type checks and lowers
//! the tree to a DataFusion boolean expression.
//!
//! The same tree also has a PostgreSQL-dialect SQL reading
//! ([`filter_to_sql`], `emit.rs`), e.g.
//!
//! ```text
//! age > 18 and name like "ab%"   =>   (("age" > 18) AND ("name" LIKE 'ab%'))
//! ```
//!
//! The door never generates or sends it: it is the reference the tests
//! compare the lowered expressions with (the same rows through SQL), and
//! the notation the translation rules below are written in.
//!
//! Supported syntax:
//! - literals: integers (decimal, `0x` hex, `0b` binary, `0o`/leading-zero
//!   octal as in Milvus; emitted in decimal), floats (`1.5`, `.5`, `1.`,
//!   `1e3`), strings in double or single quotes with backslash escapes, and
//!   booleans (`true`/`True`/`TRUE`, `false`/`False`/`FALSE`);
//! - identifiers naming scalar fields (`Bool`, `Int`, `Float`, `String`);
//! - JSON paths `meta["a"]["b"]`, `meta["arr"][0]` (also `$meta["k"]`), and
//!   dynamic field keys: when the collection has a dynamic field (a `Json`
//!   field named `$meta`), an undeclared name `color` means `$meta["color"]`
//!   and `color["x"]` means `$meta["color"]["x"]`;
//! - ARRAY fields ([`FieldKind::Array`], [`FieldKind::ArrayOf`]) indexed
//!   with `arr[0]`;
//! - comparisons `== != < <= > >=` and chained ranges (`10 < x <= 20`,
//!   `30 > x >= 5`);
//! - arithmetic `+ - * / %`, `**` (rendered as `power(a, b)`), unary `-`/`+`;
//! - logical `and`/`&&`, `or`/`||`, `not`/`!`;
//! - `x in [..]`, `x not in [..]` (an empty list becomes `FALSE` / `TRUE`);
//! - `x like "pattern"`, `x is null`, `x is not null`;
//! - `json_contains(src, v)`, `json_contains_all(src, [..])`,
//!   `json_contains_any(src, [..])`, their `array_contains*` twins (the same
//!   functions in Milvus) and `array_length(src)`, where `src` is a JSON
//!   field, a JSON path or an ARRAY field (names in lower or upper case);
//! - template placeholders `{name}` wherever a literal may stand, and as the
//!   whole list after `in` / `not in` and in `*_contains_all` / `_any`.
//!
//! Precedence and associativity follow Milvus' ANTLR grammar (`Plan.g4`),
//! tightest first: `is [not] null` (only directly after a field), `like`,
//! `**`, unary `- + not !`, `* / %`, `+ -`, `in` / `not in`, `< <= > >=`,
//! `== !=`, `and`, `or`; binary operators (`**` included) associate to the
//! left. So `not a == b` is `(not a) == b`, `not x in [1]` is
//! `(not x) in [1]`, `-2 ** 2` is `-(2 ** 2)`, `2 ** 3 ** 2` is
//! `(2 ** 3) ** 2` and `a + 1 in [2]` is `(a + 1) in [2]`. Type checks then
//! reject, as Milvus does, e.g. `not age > 18` (`not` of a number); write
//! `not (age > 18)`.
//!
//! JSON and ARRAY values are JSON text in SQL and are read with the
//! functions of the `datafusion-functions-json` crate:
//! - a JSON value takes the type of what it meets: compared with a number
//!   (or in arithmetic) it is read with `json_get_float` (so `== 3` matches
//!   `3` and `3.0`, and `> 2` matches `2.5`, as in Milvus), or with
//!   `json_get_int` for equality with an integer beyond ±2^53; with a string
//!   (or `like`) with `json_get_str`; with a boolean with `json_get_bool`.
//!   An `in` list of mixed types reads the value once per type. Elements of
//!   [`FieldKind::ArrayOf`] fields use the getter of their element kind;
//! - a missing key, an index out of range or a value of another type reads
//!   as NULL; predicates over such values become `((..) IS TRUE)`, false
//!   like in Milvus, and `((..) IS NOT FALSE)` for `!=` and `not in`, which
//!   Milvus makes true when the types differ;
//! - `is null` / `is not null` on a path test `json_as_text(..)` (a missing
//!   key and a JSON `null` are both null);
//! - `json_contains` & co. read the array with `json_get_array` (a list of
//!   each element's JSON text) and use DataFusion's `array_has`,
//!   `array_has_all` / `array_has_any` with `make_array(..)`: strings and
//!   booleans are looked up by their compact JSON text (`'"red"'`,
//!   `'true'`), which assumes the stored JSON is written compactly with
//!   minimal string escaping (as `serde_json` writes it); numbers by value
//!   after `TRY_CAST(.. AS DOUBLE[])` (`BIGINT[]` for integer arrays);
//! - `array_length` is `json_length(..)` on an ARRAY field and
//!   `cardinality(json_get_array(..))` on JSON (arrays only, like Milvus).
//!
//! Known differences from Milvus: the typed getters also read strings that
//! spell a number or a boolean (`json_get_float` reads `"3"` as 3,
//! `json_get_bool` reads `"true"`), which Milvus treats as a type mismatch;
//! `IS NOT FALSE` lets rows whose whole JSON / ARRAY column is NULL pass
//! `!=` / `not in` (Milvus drops null rows); integers beyond ±2^53 compare
//! exactly only in `==`, `!=` and `in`.
//!
//! Not supported yet (rejected with a [`FilterError`], mostly "... is not
//! supported yet"): comparisons on whole JSON or array fields (only
//! `is null` / `is not null` work on them), `json_contains` with an array
//! value (sub-array membership), other functions (`text_match`,
//! `phrase_match`, `random_sample`, spatial functions, ...), `exists`,
//! bitwise operators, regex match (`=~`, `!~`), raw strings (`r"..."`),
//! `iso` timestamp comparisons and hexadecimal floats.
//!
//! Conventions of the SQL reading: identifiers are always double-quoted,
//! strings are single-quoted with `''` escaping (backslashes are literal in
//! the PostgreSQL dialect), integers are printed in decimal, floats keep
//! their decimal point or exponent, and every operator application is
//! wrapped in parentheses so precedence never depends on the SQL dialect.
//! Chains of one precedence level are rendered flat; `not x` is `(NOT x)`
//! when `x` is a field or literal and the equivalent (under three-valued
//! logic) `(x = FALSE)` otherwise, which the lowering follows too; `a ** b`
//! is `power(a, b)`, nested at most [`MAX_POWER_NESTING`] deep.
//!
//! Size: at most [`MAX_FILTER_OPERATORS`] operators, counted on the tokens
//! before the tree is built; the lowered expression is held to the
//! expression limits by [`check_lowered`] (see `limits`).
//!
//! Positions in [`FilterError`] are 0-based `char` offsets into the input.
//! The parser uses an explicit operator stack rather than recursion; input is
//! limited to [`MAX_EXPR_LEN`] bytes and [`MAX_DEPTH`] nested levels, which
//! also bounds the (recursive) rendering, so hostile input cannot exhaust the
//! stack.

use std::collections::HashMap;

mod emit;
mod error;
mod lexer;
mod limits;
mod lower;
mod operands;
mod parser;

use emit::*;
use lexer::*;
use operands::*;
use parser::*;

pub use error::FilterError;
pub use limits::{check_lowered, LOWERED_LIMITS, MAX_FILTER_OPERATORS};
use lower::Lowering;
pub use lower::{FunctionSource, Registry};

/// Maximum accepted length of a filter expression, in bytes.
pub const MAX_EXPR_LEN: usize = 64 * 1024;

/// Maximum nesting depth (parentheses, unary operators, expression tree).
pub const MAX_DEPTH: usize = 200;

/// Maximum number of `**` operators nested inside one another. Each is a
/// nested `power(..)` call (in SQL, which sqlparser parses in time
/// exponential in the nesting), so deeper chains are rejected.
pub const MAX_POWER_NESTING: usize = 8;

/// Name of the dynamic field: a [`FieldKind::Json`] field with this name
/// makes undeclared names its keys.
pub const DYNAMIC_FIELD: &str = "$meta";

/// Kind of a collection field, as far as filtering is concerned.
///
/// A `Json` field named `$meta` is the dynamic field: when it is present,
/// names that match no field are its keys (`color` means `$meta["color"]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    Bool,
    Int,
    Float,
    String,
    /// JSON text (Utf8) holding any JSON value.
    Json,
    Vector,
    /// A Milvus ARRAY field stored as JSON text (a JSON array) whose element
    /// type is unknown: its elements are typed like JSON values.
    Array,
    /// A Milvus ARRAY field stored as JSON text (a JSON array) of elements of
    /// one kind.
    ArrayOf(ElementKind),
}

/// Element type of an ARRAY field ([`FieldKind::ArrayOf`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElementKind {
    Bool,
    /// Any integer type (stored as JSON integers).
    Int,
    /// `FLOAT` / `DOUBLE`.
    Float,
    /// `VARCHAR`.
    String,
}

/// A field that filter expressions may reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilterField<'a> {
    pub name: &'a str,
    pub kind: FieldKind,
}

/// Value bound to a `{name}` template placeholder.
#[derive(Debug, Clone, PartialEq)]
pub enum TemplateValue {
    Bool(bool),
    Int(i64),
    Float(f64),
    String(String),
    Array(Vec<TemplateValue>),
}

type Result<T> = std::result::Result<T, FilterError>;

/// Translates a Milvus filter expression into a SQL boolean expression.
///
/// `fields` lists the fields the expression may reference and `templates`
/// supplies values for `{name}` placeholders. An empty (or whitespace-only)
/// expression is an error; callers treat "no filter" themselves.
pub fn filter_to_sql(
    expr: &str,
    fields: &[FilterField<'_>],
    templates: &HashMap<String, TemplateValue>,
) -> std::result::Result<String, FilterError> {
    let root = parse_filter(expr, fields, templates)?;
    let mut out = String::new();
    emit(&root, &mut out);
    Ok(out)
}

/// Translates a Milvus filter expression into a DataFusion expression over
/// the collection's columns (the door's typed plans), with the checks of
/// [`check_filter`].
pub fn filter_to_expr(
    expr: &str,
    fields: &[FilterField<'_>],
    templates: &HashMap<String, TemplateValue>,
    functions: &dyn FunctionSource,
) -> std::result::Result<datafusion::logical_expr::Expr, FilterError> {
    check_filter(expr, fields, templates)?.lower(functions)
}

/// A filter that passed the checks of syntax, fields and types, ready to
/// lower.
#[derive(Debug)]
pub struct CheckedFilter {
    root: Expr,
    /// The filter's input (its text and template values, in name order):
    /// equal keys, equal filters over one catalog version.
    key: String,
}

impl CheckedFilter {
    /// The filter as a DataFusion expression, held to the expression limits
    /// ([`check_lowered`]).
    pub fn lower(
        &self,
        functions: &dyn FunctionSource,
    ) -> std::result::Result<datafusion::logical_expr::Expr, FilterError> {
        let lowered = Lowering { functions }.lower(&self.root)?;
        check_lowered(&lowered)?;
        Ok(lowered)
    }

    /// What the filter is made of, for plan-cache keys: its text and
    /// template values. The fields it resolves against are the catalog's,
    /// which plan-cache keys carry the version of.
    pub fn key(&self) -> &str {
        &self.key
    }
}

/// Parses and checks a Milvus filter expression: its syntax, its fields and
/// types. Its size is checked on its tokens here and on its lowered tree by
/// [`CheckedFilter::lower`].
pub fn check_filter(
    expr: &str,
    fields: &[FilterField<'_>],
    templates: &HashMap<String, TemplateValue>,
) -> std::result::Result<CheckedFilter, FilterError> {
    let root = parse_filter(expr, fields, templates)?;
    let by_name: std::collections::BTreeMap<_, _> = templates.iter().collect();
    Ok(CheckedFilter {
        root,
        key: format!("{expr:?} {by_name:?}"),
    })
}

/// The checked, typed tree of a filter expression.
fn parse_filter(
    expr: &str,
    fields: &[FilterField<'_>],
    templates: &HashMap<String, TemplateValue>,
) -> Result<Expr> {
    if expr.len() > MAX_EXPR_LEN {
        return Err(FilterError::new(0, "expression is too long"));
    }
    let chars: Vec<char> = expr.chars().collect();
    if chars.iter().all(|c| c.is_whitespace()) {
        return Err(FilterError::new(0, "empty expression"));
    }
    let tokens = lex(&chars)?;
    limits::check_tokens(&tokens)?;
    let dynamic = fields
        .iter()
        .any(|f| f.name == DYNAMIC_FIELD && f.kind == FieldKind::Json);
    let mut parser = Parser {
        tokens,
        idx: 0,
        stack: Vec::new(),
        depth: 0,
        fields,
        templates,
        dynamic,
    };
    let root = parser.parse_expression()?;
    if root.ty != Ty::Bool {
        return Err(FilterError::new(
            root.pos,
            format!("filter expression must be boolean, got {}", root.ty.name()),
        ));
    }
    Ok(root)
}

// ---------------------------------------------------------------------------
// AST
// ---------------------------------------------------------------------------

/// Coarse static type used for cheap checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    Bool,
    Num,
    Str,
    /// A value inside JSON (a JSON path, a dynamic field key or an element of
    /// an untyped array) whose type is only fixed by what it meets: a literal,
    /// a field or an operator (see [`resolve`]).
    Json,
    /// A whole JSON or array field; only `is [not] null` may consume it.
    Opaque,
}

impl Ty {
    fn name(self) -> &'static str {
        match self {
            Ty::Bool => "boolean",
            Ty::Num => "number",
            Ty::Str => "string",
            Ty::Json => "JSON value",
            Ty::Opaque => "JSON/array field",
        }
    }

    fn comparable(self, other: Ty) -> bool {
        match (self, other) {
            (Ty::Opaque, _) | (_, Ty::Opaque) | (Ty::Json, Ty::Json) => false,
            (Ty::Json, _) | (_, Ty::Json) => true,
            (Ty::Bool, Ty::Num) | (Ty::Num, Ty::Bool) => true,
            (a, b) => a == b,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Lit {
    Int(i64),
    Float(String),
    Str(String),
    Bool(bool),
}

impl Lit {
    fn ty(&self) -> Ty {
        match self {
            Lit::Int(_) | Lit::Float(_) => Ty::Num,
            Lit::Str(_) => Ty::Str,
            Lit::Bool(_) => Ty::Bool,
        }
    }
}

/// Integers beyond ±2^53 are not all representable as `f64`.
const F64_EXACT_INT: u64 = 1 << 53;

/// Whether numbers compared for equality with `lits` must be read from JSON
/// as integers (`json_get_int`) rather than floats: only when every number is
/// an integer and one of them is too large for `f64` to hold exactly.
fn needs_int_getter<'l>(lits: impl IntoIterator<Item = &'l Lit>) -> bool {
    let mut big = false;
    for lit in lits {
        match lit {
            Lit::Int(v) => big |= v.unsigned_abs() > F64_EXACT_INT,
            Lit::Float(_) => return false,
            Lit::Str(_) | Lit::Bool(_) => {}
        }
    }
    big
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    fn sql(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "<>",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }

    fn relational(tok: &Tok) -> Option<CmpOp> {
        match tok {
            Tok::Lt => Some(CmpOp::Lt),
            Tok::Le => Some(CmpOp::Le),
            Tok::Gt => Some(CmpOp::Gt),
            Tok::Ge => Some(CmpOp::Ge),
            _ => None,
        }
    }

    fn is_less(self) -> bool {
        matches!(self, CmpOp::Lt | CmpOp::Le)
    }

    fn is_ordering(self) -> bool {
        !matches!(self, CmpOp::Eq | CmpOp::Ne)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

impl ArithOp {
    fn prec(self) -> u8 {
        match self {
            ArithOp::Add | ArithOp::Sub => PREC_ADD,
            ArithOp::Mul | ArithOp::Div | ArithOp::Mod => PREC_MUL,
        }
    }

    fn sql(self) -> &'static str {
        match self {
            ArithOp::Add => "+",
            ArithOp::Sub => "-",
            ArithOp::Mul => "*",
            ArithOp::Div => "/",
            ArithOp::Mod => "%",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LogicOp {
    And,
    Or,
}

impl LogicOp {
    fn name(self) -> &'static str {
        match self {
            LogicOp::And => "and",
            LogicOp::Or => "or",
        }
    }

    fn sql(self) -> &'static str {
        match self {
            LogicOp::And => "AND",
            LogicOp::Or => "OR",
        }
    }
}

/// One step of a JSON path: `["key"]` or `[0]`.
#[derive(Debug, Clone, PartialEq)]
enum PathElem {
    Key(String),
    Index(i64),
}

/// Where a path starts: a JSON column (a JSON field or `$meta`) or an ARRAY
/// field, with its element kind when known. Both are JSON text in SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SourceKind {
    Json,
    Array(Option<ElementKind>),
}

/// The typed `datafusion-functions-json` getter that reads a JSON value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Getter {
    /// Not chosen yet (the value is still [`Ty::Json`]).
    Unresolved,
    Float,
    Int,
    Str,
    Bool,
}

impl Getter {
    fn sql(self) -> &'static str {
        match self {
            // Only reachable for a value nothing typed; any JSON text works.
            Getter::Unresolved => "json_get_json",
            Getter::Float => "json_get_float",
            Getter::Int => "json_get_int",
            Getter::Str => "json_get_str",
            Getter::Bool => "json_get_bool",
        }
    }
}

impl ElementKind {
    fn name(self) -> &'static str {
        match self {
            ElementKind::Bool => "boolean",
            ElementKind::Int => "integer",
            ElementKind::Float => "float",
            ElementKind::String => "string",
        }
    }

    fn getter(self) -> (Getter, Ty) {
        match self {
            ElementKind::Bool => (Getter::Bool, Ty::Bool),
            ElementKind::Int => (Getter::Int, Ty::Num),
            ElementKind::Float => (Getter::Float, Ty::Num),
            ElementKind::String => (Getter::Str, Ty::Str),
        }
    }

    fn accepts(self, lit: &Lit) -> bool {
        matches!(
            (self, lit),
            (ElementKind::Bool, Lit::Bool(_))
                | (
                    ElementKind::Int | ElementKind::Float,
                    Lit::Int(_) | Lit::Float(_)
                )
                | (ElementKind::String, Lit::Str(_))
        )
    }
}

/// A value read out of a JSON column or an ARRAY field: `column` followed by
/// `path` (possibly empty when the whole column is meant, as in function
/// arguments).
#[derive(Debug, Clone)]
struct Access {
    column: String,
    path: Vec<PathElem>,
    kind: SourceKind,
    getter: Getter,
}

/// `json_contains` / `array_contains` (one value) and their `_all` / `_any`
/// forms (a list of values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ContainsOp {
    One,
    All,
    Any,
}

#[derive(Debug)]
enum Node {
    Lit(Lit),
    Column(String),
    Access(Access),
    Neg(Box<Expr>),
    Not(Box<Expr>),
    Power(Box<Expr>, Box<Expr>),
    /// `first op1 e1 op2 e2 ...` for one precedence level of arithmetic.
    Chain(Box<Expr>, Vec<(ArithOp, Expr)>),
    Compare(Box<Expr>, CmpOp, Box<Expr>),
    Range(Box<Expr>, CmpOp, Box<Expr>, CmpOp, Box<Expr>),
    Logic(LogicOp, Vec<Expr>),
    In(Box<Expr>, bool, Vec<Lit>),
    Like(Box<Expr>, String),
    IsNull(Box<Expr>, bool),
    Contains(Access, ContainsOp, Vec<Lit>),
    /// `array_length(..)`.
    Length(Access),
}

#[derive(Debug)]
struct Expr {
    node: Node,
    /// Char offset of the first token of the expression.
    pos: usize,
    ty: Ty,
    /// Height of the tree rooted here (bounded by `MAX_DEPTH`).
    depth: usize,
    /// Most `power()` calls on one root-to-leaf path.
    powers: usize,
    /// May be SQL NULL because a JSON key or array element is missing (or
    /// holds another type). Predicates over such values are rendered
    /// `((..) IS TRUE)` so that, as in Milvus, a missing key makes a
    /// comparison false rather than unknown (and `((..) IS NOT FALSE)` for
    /// `!=` / `not in`, which a missing key makes true).
    nullish: bool,
}

impl Expr {
    fn leaf(node: Node, pos: usize, ty: Ty) -> Expr {
        let nullish = matches!(node, Node::Access(_) | Node::Length(_));
        Expr {
            node,
            pos,
            ty,
            depth: 1,
            powers: 0,
            nullish,
        }
    }

    fn new(node: Node, pos: usize, ty: Ty) -> Result<Expr> {
        let depth = max_over_children(&node, |e| e.depth);
        if depth >= MAX_DEPTH {
            return Err(too_deep(pos));
        }
        let mut powers = max_over_children(&node, |e| e.powers);
        if let Node::Power(..) = node {
            powers += 1;
            if powers > MAX_POWER_NESTING {
                return Err(FilterError::new(
                    pos,
                    format!("more than {MAX_POWER_NESTING} nested '**' operators"),
                ));
            }
        }
        // Arithmetic over a possibly missing value may be NULL; predicates
        // settle it themselves.
        let nullish = match node {
            Node::Neg(_) | Node::Power(..) | Node::Chain(..) => {
                max_over_children(&node, |e| usize::from(e.nullish)) > 0
            }
            Node::Access(_) | Node::Length(_) => true,
            _ => false,
        };
        Ok(Expr {
            node,
            pos,
            ty,
            depth: depth + 1,
            powers,
            nullish,
        })
    }
}

/// Maximum of `f` over the direct children of `node` (0 for leaves).
fn max_over_children(node: &Node, f: impl Fn(&Expr) -> usize) -> usize {
    match node {
        Node::Lit(_) | Node::Column(_) | Node::Access(_) | Node::Contains(..) | Node::Length(_) => {
            0
        }
        Node::Neg(e) | Node::Not(e) | Node::In(e, ..) | Node::Like(e, _) => f(e),
        Node::IsNull(e, _) => f(e),
        Node::Power(a, b) | Node::Compare(a, _, b) => f(a).max(f(b)),
        Node::Chain(first, rest) => rest.iter().map(|(_, e)| f(e)).fold(f(first), usize::max),
        Node::Range(a, _, b, _, c) => f(a).max(f(b)).max(f(c)),
        Node::Logic(_, items) => items.iter().map(f).max().unwrap_or(0),
    }
}

fn too_deep(pos: usize) -> FilterError {
    FilterError::new(pos, "expression is too deeply nested")
}

/// Fixes the type of a JSON value (see [`Ty::Json`]) to `want` by picking its
/// typed getter; numbers read as floats (so `== 3` matches JSON `3` and
/// `3.0`, like Milvus) unless `exact_int` asks for integers. Other
/// expressions are left alone.
fn resolve(e: &mut Expr, want: Ty, exact_int: bool) {
    if e.ty != Ty::Json {
        return;
    }
    let getter = match want {
        Ty::Num if exact_int => Getter::Int,
        Ty::Num => Getter::Float,
        Ty::Str => Getter::Str,
        Ty::Bool => Getter::Bool,
        Ty::Json | Ty::Opaque => return,
    };
    if let Node::Access(access) = &mut e.node {
        access.getter = getter;
        e.ty = want;
    }
}

/// Checks that `e` has type `want` (a JSON value is read as `want` when that
/// is a number or a string; JSON is never a boolean condition by itself).
fn require(e: &mut Expr, want: Ty, op: &str) -> Result<()> {
    if matches!(want, Ty::Num | Ty::Str) {
        resolve(e, want, false);
    }
    if e.ty == want {
        return Ok(());
    }
    let want = match want {
        Ty::Bool => "boolean",
        Ty::Num => "numeric",
        Ty::Str => "a string",
        Ty::Json | Ty::Opaque => "a field",
    };
    Err(FilterError::new(
        e.pos,
        format!("operand of '{op}' must be {want}, got {}", e.ty.name()),
    ))
}

/// Checks that `a op b` compares compatible values, and types a JSON value
/// on one side after the other side.
fn require_comparable(a: &mut Expr, b: &mut Expr, op_tok: &Token, op: CmpOp) -> Result<()> {
    let ordering_bool = op.is_ordering() && (a.ty == Ty::Bool || b.ty == Ty::Bool);
    if !a.ty.comparable(b.ty) || ordering_bool {
        return Err(FilterError::new(
            op_tok.pos,
            format!(
                "cannot compare {} with {} using '{}'",
                a.ty.name(),
                b.ty.name(),
                op_tok.text
            ),
        ));
    }
    let exact_int = |other: &Expr| {
        !op.is_ordering() && matches!(&other.node, Node::Lit(lit) if needs_int_getter([lit]))
    };
    if a.ty == Ty::Json {
        let exact = exact_int(b);
        resolve(a, b.ty, exact);
    } else if b.ty == Ty::Json {
        let exact = exact_int(a);
        resolve(b, a.ty, exact);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
