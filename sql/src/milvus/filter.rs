//! Translation of Milvus boolean filter expressions into SQL.
//!
//! This module owns the `filter` / `expr` string accepted by pymilvus
//! `search`, `query` and `delete`: it tokenizes and parses the Milvus filter
//! language, resolves field names against the collection schema, substitutes
//! template placeholders (`{name}`), performs cheap type checks and renders a
//! PostgreSQL-dialect SQL boolean expression that DataFusion's SQL parser
//! (sqlparser, `PostgreSqlDialect`) accepts, e.g.
//!
//! ```text
//! age > 18 and name like "ab%"   =>   (("age" > 18) AND ("name" LIKE 'ab%'))
//! ```
//!
//! Supported syntax:
//! - literals: integers (decimal, `0x` hex, `0b` binary, `0o`/leading-zero
//!   octal as in Milvus; emitted in decimal), floats (`1.5`, `.5`, `1.`,
//!   `1e3`), strings in double or single quotes with backslash escapes, and
//!   booleans (`true`/`True`/`TRUE`, `false`/`False`/`FALSE`);
//! - identifiers naming scalar fields (`Bool`, `Int`, `Float`, `String`);
//! - comparisons `== != < <= > >=` and chained ranges (`10 < x <= 20`,
//!   `30 > x >= 5`);
//! - arithmetic `+ - * / %`, `**` (rendered as `power(a, b)`), unary `-`/`+`;
//! - logical `and`/`&&`, `or`/`||`, `not`/`!` (precedence `not` > `and` >
//!   `or`; comparisons bind tighter than all three);
//! - `x in [..]`, `x not in [..]` (an empty list becomes `FALSE` / `TRUE`);
//! - `x like "pattern"`, `x is null`, `x is not null`;
//! - template placeholders `{name}` wherever a literal may stand, and as the
//!   whole list after `in` / `not in` (array values are only allowed there).
//!
//! Not supported yet (each reports a [`FilterError`] saying so): JSON paths
//! (`meta["a"]`), dynamic field keys (undeclared names when a `$meta` JSON
//! field exists), array indexing (`arr[0]`), comparisons on whole JSON or
//! array fields (only `is null` / `is not null` work on them), every function
//! call (`json_contains*`, `array_contains*`, `array_length`, `text_match`,
//! `phrase_match`, `random_sample`, spatial functions, ...), `exists`,
//! bitwise operators, regex match (`=~`, `!~`), raw strings (`r"..."`),
//! `iso` timestamp comparisons and hexadecimal floats.
//!
//! Output conventions: identifiers are always double-quoted, strings are
//! single-quoted with `''` escaping (backslashes are literal in the
//! PostgreSQL dialect), and every operator application is wrapped in
//! parentheses so precedence never depends on the SQL dialect. Chains of the
//! same associative operator (`a and b and c`, `a + b - c`, `a * b / c`) are
//! rendered flat inside one pair of parentheses, which keeps the SQL nesting
//! shallow (sqlparser limits recursion depth).
//!
//! Positions in [`FilterError`] are 0-based `char` offsets into the input.
//! Input is limited to [`MAX_EXPR_LEN`] bytes and [`MAX_DEPTH`] nested levels
//! so hostile input cannot exhaust the stack.

use std::collections::HashMap;
use std::fmt;

/// Maximum accepted length of a filter expression, in bytes.
pub const MAX_EXPR_LEN: usize = 64 * 1024;

/// Maximum nesting depth (parentheses, unary operators, expression tree).
pub const MAX_DEPTH: usize = 200;

/// Kind of a collection field, as far as filtering is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    Bool,
    Int,
    Float,
    String,
    Json,
    Vector,
    Array,
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

/// A filter that could not be translated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError {
    /// 0-based `char` offset in the input expression.
    pub position: usize,
    pub message: String,
}

impl FilterError {
    fn new(position: usize, message: impl Into<String>) -> Self {
        FilterError {
            position,
            message: message.into(),
        }
    }

    /// Renders the error in Milvus style, including the offending expression.
    pub fn describe(&self, expr: &str) -> String {
        format!(
            "cannot parse expression: {expr}, error: {} at position {}",
            self.message, self.position
        )
    }
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot parse expression, error: {} at position {}",
            self.message, self.position
        )
    }
}

impl std::error::Error for FilterError {}

type Result<T> = std::result::Result<T, FilterError>;

/// Translates a Milvus filter expression into a SQL boolean expression.
///
/// `fields` lists the fields the expression may reference and `templates`
/// supplies values for `{name}` placeholders. An empty (or whitespace-only)
/// expression is an error; callers treat "no filter" themselves.
pub fn filter_to_sql(
    expr: &str,
    fields: &[FilterField],
    templates: &HashMap<String, TemplateValue>,
) -> Result<String> {
    if expr.len() > MAX_EXPR_LEN {
        return Err(FilterError::new(0, "expression is too long"));
    }
    let chars: Vec<char> = expr.chars().collect();
    if chars.iter().all(|c| c.is_whitespace()) {
        return Err(FilterError::new(0, "empty expression"));
    }
    let tokens = lex(&chars)?;
    let mut parser = Parser {
        tokens,
        idx: 0,
        depth: 0,
        fields,
        templates,
    };
    let root = parser.parse_or()?;
    if parser.peek() != &Tok::Eof {
        return Err(parser.unexpected());
    }
    if root.ty != Ty::Bool {
        return Err(FilterError::new(
            root.pos,
            format!("filter expression must be boolean, got {}", root.ty.name()),
        ));
    }
    let mut out = String::new();
    emit(&root, &mut out);
    Ok(out)
}

// ---------------------------------------------------------------------------
// Lexer
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Int(u64),
    /// Normalized float text (always has a digit before and after any `.`).
    Float(String),
    Str(String),
    Bool(bool),
    Ident(String),
    LParen,
    RParen,
    LBracket,
    RBracket,
    LBrace,
    RBrace,
    Comma,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    Pow,
    And,
    Or,
    Not,
    In,
    Like,
    Is,
    Null,
    Eof,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    pos: usize,
    text: String,
}

fn lex(chars: &[char]) -> Result<Vec<Token>> {
    let n = chars.len();
    let at = |i: usize| chars.get(i).copied();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < n {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        let next = at(i + 1);
        let (tok, len) = match c {
            '(' => (Tok::LParen, 1),
            ')' => (Tok::RParen, 1),
            '[' => (Tok::LBracket, 1),
            ']' => (Tok::RBracket, 1),
            '{' => (Tok::LBrace, 1),
            '}' => (Tok::RBrace, 1),
            ',' => (Tok::Comma, 1),
            '+' => (Tok::Plus, 1),
            '-' => (Tok::Minus, 1),
            '/' => (Tok::Slash, 1),
            '%' => (Tok::Percent, 1),
            '*' if next == Some('*') => (Tok::Pow, 2),
            '*' => (Tok::Star, 1),
            '=' if next == Some('=') => (Tok::Eq, 2),
            '=' if next == Some('~') => {
                return Err(FilterError::new(start, "regex match is not supported yet"));
            }
            '=' => {
                return Err(FilterError::new(
                    start,
                    "unexpected character '='; use '==' for equality",
                ));
            }
            '!' if next == Some('=') => (Tok::Ne, 2),
            '!' if next == Some('~') => {
                return Err(FilterError::new(start, "regex match is not supported yet"));
            }
            '!' => (Tok::Not, 1),
            '<' if next == Some('=') => (Tok::Le, 2),
            '>' if next == Some('=') => (Tok::Ge, 2),
            '<' if next == Some('<') => return Err(bitwise(start, "<<")),
            '>' if next == Some('>') => return Err(bitwise(start, ">>")),
            '<' => (Tok::Lt, 1),
            '>' => (Tok::Gt, 1),
            '&' if next == Some('&') => (Tok::And, 2),
            '|' if next == Some('|') => (Tok::Or, 2),
            '&' | '|' | '^' | '~' => return Err(bitwise(start, &c.to_string())),
            '"' | '\'' => {
                let (s, end) = lex_string(chars, start)?;
                (Tok::Str(s), end - start)
            }
            '0'..='9' => {
                let (tok, end) = lex_number(chars, start)?;
                (tok, end - start)
            }
            '.' if next.is_some_and(|d| d.is_ascii_digit()) => {
                let (tok, end) = lex_number(chars, start)?;
                (tok, end - start)
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == '$' => {
                let mut end = i + 1;
                while end < n && (chars[end].is_ascii_alphanumeric() || chars[end] == '_') {
                    end += 1;
                }
                let word: String = chars[start..end].iter().collect();
                (keyword(word), end - start)
            }
            other => {
                return Err(FilterError::new(
                    start,
                    format!("unexpected character '{other}'"),
                ));
            }
        };
        i += len;
        tokens.push(Token {
            tok,
            pos: start,
            text: chars[start..i].iter().collect(),
        });
    }
    tokens.push(Token {
        tok: Tok::Eof,
        pos: n,
        text: String::new(),
    });
    Ok(tokens)
}

fn bitwise(pos: usize, op: &str) -> FilterError {
    FilterError::new(pos, format!("bitwise operator '{op}' is not supported yet"))
}

fn keyword(word: String) -> Tok {
    match word.as_str() {
        "and" | "AND" => Tok::And,
        "or" | "OR" => Tok::Or,
        "not" | "NOT" => Tok::Not,
        "in" | "IN" => Tok::In,
        "like" | "LIKE" => Tok::Like,
        "true" | "True" | "TRUE" => Tok::Bool(true),
        "false" | "False" | "FALSE" => Tok::Bool(false),
        w if w.eq_ignore_ascii_case("is") => Tok::Is,
        w if w.eq_ignore_ascii_case("null") => Tok::Null,
        _ => Tok::Ident(word),
    }
}

/// Lexes a quoted string starting at `start`; returns the unescaped value and
/// the index just past the closing quote.
fn lex_string(chars: &[char], start: usize) -> Result<(String, usize)> {
    let quote = chars[start];
    let mut out = String::new();
    let mut i = start + 1;
    loop {
        let Some(&c) = chars.get(i) else {
            return Err(FilterError::new(start, "unterminated string"));
        };
        if c == quote {
            return Ok((out, i + 1));
        }
        if c != '\\' {
            out.push(c);
            i += 1;
            continue;
        }
        let Some(&esc) = chars.get(i + 1) else {
            return Err(FilterError::new(start, "unterminated string"));
        };
        let simple = match esc {
            '"' => Some('"'),
            '\'' => Some('\''),
            '\\' => Some('\\'),
            '?' => Some('?'),
            'n' => Some('\n'),
            't' => Some('\t'),
            'r' => Some('\r'),
            'a' => Some('\u{07}'),
            'b' => Some('\u{08}'),
            'f' => Some('\u{0c}'),
            'v' => Some('\u{0b}'),
            _ => None,
        };
        if let Some(ch) = simple {
            out.push(ch);
            i += 2;
            continue;
        }
        let digits = match esc {
            'u' => 4,
            'U' => 8,
            _ => {
                return Err(FilterError::new(
                    i,
                    format!("invalid escape sequence '\\{esc}'"),
                ));
            }
        };
        let hex: String = chars.iter().skip(i + 2).take(digits).collect();
        let ch = if hex.len() == digits && hex.chars().all(|h| h.is_ascii_hexdigit()) {
            u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32)
        } else {
            None
        };
        match ch {
            Some(ch) => out.push(ch),
            None => {
                return Err(FilterError::new(i, "invalid unicode escape sequence"));
            }
        }
        i += 2 + digits;
    }
}

/// Lexes a numeric literal starting at `start`; returns the token and the
/// index just past it.
fn lex_number(chars: &[char], start: usize) -> Result<(Tok, usize)> {
    let at = |i: usize| chars.get(i).copied();
    let is_word = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    let invalid = |end: usize| {
        let mut end = end;
        while is_word(at(end)) || at(end) == Some('.') {
            end += 1;
        }
        let text: String = chars[start..end].iter().collect();
        FilterError::new(start, format!("invalid numeric literal '{text}'"))
    };
    let out_of_range = || FilterError::new(start, "integer literal out of range");

    // Radix-prefixed integers: 0x.., 0o.., 0b...
    if at(start) == Some('0') {
        let radix = match at(start + 1) {
            Some('x' | 'X') => Some(16),
            Some('o' | 'O') => Some(8),
            Some('b' | 'B') => Some(2),
            _ => None,
        };
        if let Some(radix) = radix {
            let mut end = start + 2;
            while at(end).is_some_and(|c| c.is_digit(radix)) {
                end += 1;
            }
            if end == start + 2 || is_word(at(end)) || at(end) == Some('.') {
                return Err(invalid(end));
            }
            let digits: String = chars[start + 2..end].iter().collect();
            let value = u64::from_str_radix(&digits, radix).map_err(|_| out_of_range())?;
            return Ok((Tok::Int(value), end));
        }
    }

    let mut i = start;
    while at(i).is_some_and(|c| c.is_ascii_digit()) {
        i += 1;
    }
    let int_part: String = chars[start..i].iter().collect();
    let mut frac_part = None;
    if at(i) == Some('.') {
        let frac_start = i + 1;
        i += 1;
        while at(i).is_some_and(|c| c.is_ascii_digit()) {
            i += 1;
        }
        frac_part = Some(chars[frac_start..i].iter().collect::<String>());
    }
    let mut exp_part = None;
    if matches!(at(i), Some('e' | 'E')) {
        let exp_start = i;
        let mut j = i + 1;
        if matches!(at(j), Some('+' | '-')) {
            j += 1;
        }
        let digits_start = j;
        while at(j).is_some_and(|c| c.is_ascii_digit()) {
            j += 1;
        }
        if j == digits_start {
            return Err(invalid(j));
        }
        exp_part = Some(chars[exp_start..j].iter().collect::<String>());
        i = j;
    }
    if is_word(at(i)) || at(i) == Some('.') {
        return Err(invalid(i));
    }

    if frac_part.is_none() && exp_part.is_none() {
        let value = if int_part.len() > 1 && int_part.starts_with('0') {
            // Milvus (like C) reads a leading zero as an octal literal.
            if !int_part.chars().all(|c| c.is_digit(8)) {
                return Err(FilterError::new(
                    start,
                    format!("invalid octal literal '{int_part}'"),
                ));
            }
            u64::from_str_radix(&int_part, 8).map_err(|_| out_of_range())?
        } else {
            int_part.parse::<u64>().map_err(|_| out_of_range())?
        };
        return Ok((Tok::Int(value), i));
    }

    let int_part = int_part.trim_start_matches('0');
    let mut text = if int_part.is_empty() {
        "0".to_string()
    } else {
        int_part.to_string()
    };
    if let Some(frac) = frac_part {
        text.push('.');
        text.push_str(if frac.is_empty() { "0" } else { &frac });
    }
    if let Some(exp) = exp_part {
        text.push_str(&exp);
    }
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok((Tok::Float(text), i)),
        _ => Err(FilterError::new(start, "float literal out of range")),
    }
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
    /// A whole JSON or array field; only `is [not] null` may consume it.
    Opaque,
}

impl Ty {
    fn name(self) -> &'static str {
        match self {
            Ty::Bool => "boolean",
            Ty::Num => "number",
            Ty::Str => "string",
            Ty::Opaque => "JSON/array field",
        }
    }

    fn comparable(self, other: Ty) -> bool {
        match (self, other) {
            (Ty::Opaque, _) | (_, Ty::Opaque) => false,
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

#[derive(Debug)]
enum Node {
    Lit(Lit),
    Column(String),
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
}

#[derive(Debug)]
struct Expr {
    node: Node,
    /// Char offset of the first token of the expression.
    pos: usize,
    ty: Ty,
    /// Height of the tree rooted here (bounded by `MAX_DEPTH`).
    depth: usize,
}

impl Expr {
    fn leaf(node: Node, pos: usize, ty: Ty) -> Expr {
        Expr {
            node,
            pos,
            ty,
            depth: 1,
        }
    }

    fn new(node: Node, pos: usize, ty: Ty) -> Result<Expr> {
        let child = match &node {
            Node::Lit(_) | Node::Column(_) => 0,
            Node::Neg(e) | Node::Not(e) | Node::In(e, ..) | Node::Like(e, _) => e.depth,
            Node::IsNull(e, _) => e.depth,
            Node::Power(a, b) | Node::Compare(a, _, b) => a.depth.max(b.depth),
            Node::Chain(first, rest) => rest
                .iter()
                .map(|(_, e)| e.depth)
                .fold(first.depth, usize::max),
            Node::Range(a, _, b, _, c) => a.depth.max(b.depth).max(c.depth),
            Node::Logic(_, items) => items.iter().map(|e| e.depth).max().unwrap_or(0),
        };
        if child >= MAX_DEPTH {
            return Err(too_deep(pos));
        }
        Ok(Expr {
            node,
            pos,
            ty,
            depth: child + 1,
        })
    }
}

fn too_deep(pos: usize) -> FilterError {
    FilterError::new(pos, "expression is too deeply nested")
}

fn require(e: &Expr, want: Ty, op: &str) -> Result<()> {
    if e.ty == want {
        return Ok(());
    }
    let want = match want {
        Ty::Bool => "boolean",
        Ty::Num => "numeric",
        Ty::Str => "a string",
        Ty::Opaque => "a field",
    };
    Err(FilterError::new(
        e.pos,
        format!("operand of '{op}' must be {want}, got {}", e.ty.name()),
    ))
}

fn require_comparable(a: &Expr, b: &Expr, op: &Token) -> Result<()> {
    if a.ty.comparable(b.ty) {
        return Ok(());
    }
    Err(FilterError::new(
        op.pos,
        format!(
            "cannot compare {} with {} using '{}'",
            a.ty.name(),
            b.ty.name(),
            op.text
        ),
    ))
}

// ---------------------------------------------------------------------------
// Parser
// ---------------------------------------------------------------------------

struct Parser<'a> {
    tokens: Vec<Token>,
    idx: usize,
    depth: usize,
    fields: &'a [FilterField<'a>],
    templates: &'a HashMap<String, TemplateValue>,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> &Tok {
        &self.tokens[self.idx].tok
    }

    fn peek_at(&self, k: usize) -> &Tok {
        let i = (self.idx + k).min(self.tokens.len() - 1);
        &self.tokens[i].tok
    }

    fn current(&self) -> &Token {
        &self.tokens[self.idx]
    }

    /// Consumes the current token (never moves past `Eof`).
    fn bump(&mut self) -> Token {
        let tok = self.tokens[self.idx].clone();
        if self.idx + 1 < self.tokens.len() {
            self.idx += 1;
        }
        tok
    }

    fn unexpected(&self) -> FilterError {
        let tok = self.current();
        if tok.tok == Tok::Eof {
            FilterError::new(tok.pos, "unexpected end of expression")
        } else {
            FilterError::new(tok.pos, format!("unexpected token '{}'", tok.text))
        }
    }

    fn expected(&self, what: &str) -> FilterError {
        let tok = self.current();
        let found = if tok.tok == Tok::Eof {
            "end of expression".to_string()
        } else {
            format!("'{}'", tok.text)
        };
        FilterError::new(tok.pos, format!("expected {what}, found {found}"))
    }

    fn expect(&mut self, tok: Tok, what: &str) -> Result<Token> {
        if *self.peek() == tok {
            Ok(self.bump())
        } else {
            Err(self.expected(what))
        }
    }

    /// Runs `f` one nesting level deeper, failing beyond `MAX_DEPTH`.
    fn nested<T>(&mut self, pos: usize, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        if self.depth >= MAX_DEPTH {
            return Err(too_deep(pos));
        }
        self.depth += 1;
        let result = f(self);
        self.depth -= 1;
        result
    }

    fn parse_or(&mut self) -> Result<Expr> {
        self.parse_logic(LogicOp::Or)
    }

    fn parse_logic(&mut self, op: LogicOp) -> Result<Expr> {
        let (tok, operand): (Tok, fn(&mut Self) -> Result<Expr>) = match op {
            LogicOp::Or => (Tok::Or, |p: &mut Self| p.parse_logic(LogicOp::And)),
            LogicOp::And => (Tok::And, Self::parse_not),
        };
        let first = operand(self)?;
        if *self.peek() != tok {
            return Ok(first);
        }
        require(&first, Ty::Bool, op.name())?;
        let pos = first.pos;
        let mut items = vec![first];
        while *self.peek() == tok {
            self.bump();
            let next = operand(self)?;
            require(&next, Ty::Bool, op.name())?;
            items.push(next);
        }
        Expr::new(Node::Logic(op, items), pos, Ty::Bool)
    }

    fn parse_not(&mut self) -> Result<Expr> {
        if *self.peek() != Tok::Not {
            return self.parse_equality();
        }
        let op = self.bump();
        let inner = self.nested(op.pos, Self::parse_not)?;
        require(&inner, Ty::Bool, "not")?;
        Expr::new(Node::Not(Box::new(inner)), op.pos, Ty::Bool)
    }

    fn parse_equality(&mut self) -> Result<Expr> {
        let mut left = self.parse_relational()?;
        loop {
            let op = match self.peek() {
                Tok::Eq => CmpOp::Eq,
                Tok::Ne => CmpOp::Ne,
                _ => return Ok(left),
            };
            let op_tok = self.bump();
            let right = self.parse_relational()?;
            require_comparable(&left, &right, &op_tok)?;
            let pos = left.pos;
            left = Expr::new(
                Node::Compare(Box::new(left), op, Box::new(right)),
                pos,
                Ty::Bool,
            )?;
        }
    }

    fn parse_relational(&mut self) -> Result<Expr> {
        let left = self.parse_additive()?;
        let pos = left.pos;
        match self.peek() {
            Tok::In => {
                self.bump();
                self.parse_in(left, false)
            }
            Tok::Not if *self.peek_at(1) == Tok::In => {
                self.bump();
                self.bump();
                self.parse_in(left, true)
            }
            Tok::Not => {
                self.bump();
                Err(self.expected("'in' after 'not'"))
            }
            Tok::Like => {
                self.bump();
                require(&left, Ty::Str, "like")?;
                let pattern = self.parse_pattern()?;
                Expr::new(Node::Like(Box::new(left), pattern), pos, Ty::Bool)
            }
            Tok::Is => {
                self.bump();
                let negated = *self.peek() == Tok::Not;
                if negated {
                    self.bump();
                }
                self.expect(Tok::Null, "'null'")?;
                Expr::new(Node::IsNull(Box::new(left), negated), pos, Ty::Bool)
            }
            tok => {
                let Some(op1) = CmpOp::relational(tok) else {
                    return Ok(left);
                };
                let op1_tok = self.bump();
                let mid = self.parse_additive()?;
                require_comparable(&left, &mid, &op1_tok)?;
                let Some(op2) = CmpOp::relational(self.peek()) else {
                    return Expr::new(
                        Node::Compare(Box::new(left), op1, Box::new(mid)),
                        pos,
                        Ty::Bool,
                    );
                };
                let op2_tok = self.bump();
                if op1.is_less() != op2.is_less() {
                    return Err(FilterError::new(
                        op2_tok.pos,
                        format!(
                            "cannot chain '{}' with '{}'; use 'and' instead",
                            op1_tok.text, op2_tok.text
                        ),
                    ));
                }
                let hi = self.parse_additive()?;
                require_comparable(&mid, &hi, &op2_tok)?;
                Expr::new(
                    Node::Range(Box::new(left), op1, Box::new(mid), op2, Box::new(hi)),
                    pos,
                    Ty::Bool,
                )
            }
        }
    }

    /// Parses the list after `in` / `not in`.
    fn parse_in(&mut self, left: Expr, negated: bool) -> Result<Expr> {
        let pos = left.pos;
        let mut items: Vec<(Lit, usize)> = Vec::new();
        match self.peek() {
            Tok::LBracket => {
                self.bump();
                loop {
                    if *self.peek() == Tok::RBracket {
                        self.bump();
                        break;
                    }
                    let item_pos = self.current().pos;
                    items.push((self.parse_list_item()?, item_pos));
                    match self.peek() {
                        Tok::Comma => {
                            self.bump();
                        }
                        Tok::RBracket => {
                            self.bump();
                            break;
                        }
                        _ => return Err(self.expected("',' or ']'")),
                    }
                }
            }
            Tok::LBrace => {
                let (name, brace_pos) = self.parse_template_name()?;
                match self.template(&name, brace_pos)? {
                    TemplateValue::Array(values) => {
                        for value in values {
                            items.push((template_lit(value, &name, brace_pos)?, brace_pos));
                        }
                    }
                    _ => {
                        return Err(FilterError::new(
                            brace_pos,
                            format!("template variable {name} must be an array after 'in'"),
                        ));
                    }
                }
            }
            _ => return Err(self.expected("'[' or a template variable after 'in'")),
        }
        for (lit, item_pos) in &items {
            if !left.ty.comparable(lit.ty()) {
                return Err(FilterError::new(
                    *item_pos,
                    format!(
                        "cannot compare {} with {} in 'in' list",
                        left.ty.name(),
                        lit.ty().name()
                    ),
                ));
            }
        }
        let lits = items.into_iter().map(|(lit, _)| lit).collect();
        Expr::new(Node::In(Box::new(left), negated, lits), pos, Ty::Bool)
    }

    fn parse_list_item(&mut self) -> Result<Lit> {
        match self.peek().clone() {
            Tok::Int(v) => {
                let tok = self.bump();
                int_lit(v as i128, tok.pos)
            }
            Tok::Float(s) => {
                self.bump();
                Ok(Lit::Float(s))
            }
            Tok::Str(s) => {
                self.bump();
                Ok(Lit::Str(s))
            }
            Tok::Bool(b) => {
                self.bump();
                Ok(Lit::Bool(b))
            }
            Tok::Plus | Tok::Minus => {
                let sign = self.bump();
                let negative = sign.tok == Tok::Minus;
                match self.peek().clone() {
                    Tok::Int(v) => {
                        self.bump();
                        let v = v as i128;
                        int_lit(if negative { -v } else { v }, sign.pos)
                    }
                    Tok::Float(s) => {
                        self.bump();
                        Ok(Lit::Float(if negative { format!("-{s}") } else { s }))
                    }
                    _ => Err(self.expected("a number")),
                }
            }
            Tok::LBrace => {
                let (name, brace_pos) = self.parse_template_name()?;
                let value = self.template(&name, brace_pos)?;
                template_lit(value, &name, brace_pos)
            }
            _ => Err(self.expected("a literal or ']'")),
        }
    }

    fn parse_pattern(&mut self) -> Result<String> {
        match self.peek().clone() {
            Tok::Str(s) => {
                self.bump();
                Ok(s)
            }
            Tok::LBrace => {
                let (name, brace_pos) = self.parse_template_name()?;
                match self.template(&name, brace_pos)? {
                    TemplateValue::String(s) => Ok(s.clone()),
                    _ => Err(FilterError::new(
                        brace_pos,
                        format!("template variable {name} must be a string after 'like'"),
                    )),
                }
            }
            _ => Err(self.expected("a string pattern after 'like'")),
        }
    }

    /// Parses `{name}`; returns the name and the position of `{`.
    fn parse_template_name(&mut self) -> Result<(String, usize)> {
        let brace = self.expect(Tok::LBrace, "'{'")?;
        let name = match self.peek().clone() {
            Tok::Ident(name) => {
                self.bump();
                name
            }
            _ => return Err(self.expected("a template variable name")),
        };
        self.expect(Tok::RBrace, "'}'")?;
        Ok((name, brace.pos))
    }

    fn template(&self, name: &str, pos: usize) -> Result<&'a TemplateValue> {
        self.templates
            .get(name)
            .ok_or_else(|| FilterError::new(pos, format!("template variable {name} not found")))
    }

    fn parse_additive(&mut self) -> Result<Expr> {
        self.parse_chain(true)
    }

    /// Parses one left-associative arithmetic level (`+ -` or `* / %`).
    fn parse_chain(&mut self, additive: bool) -> Result<Expr> {
        let op_of = |tok: &Tok| match (additive, tok) {
            (true, Tok::Plus) => Some(ArithOp::Add),
            (true, Tok::Minus) => Some(ArithOp::Sub),
            (false, Tok::Star) => Some(ArithOp::Mul),
            (false, Tok::Slash) => Some(ArithOp::Div),
            (false, Tok::Percent) => Some(ArithOp::Mod),
            _ => None,
        };
        let operand = |p: &mut Self| {
            if additive {
                p.parse_chain(false)
            } else {
                p.parse_unary()
            }
        };
        let first = operand(self)?;
        let Some(op) = op_of(self.peek()) else {
            return Ok(first);
        };
        require(&first, Ty::Num, op.sql())?;
        let pos = first.pos;
        let mut rest = Vec::new();
        while let Some(op) = op_of(self.peek()) {
            self.bump();
            let next = operand(self)?;
            require(&next, Ty::Num, op.sql())?;
            rest.push((op, next));
        }
        Expr::new(Node::Chain(Box::new(first), rest), pos, Ty::Num)
    }

    fn parse_unary(&mut self) -> Result<Expr> {
        let negative = match self.peek() {
            Tok::Minus => true,
            Tok::Plus => false,
            _ => return self.parse_power(),
        };
        let op = self.bump();
        // Fold a sign into a directly following numeric literal (so that
        // i64::MIN is expressible), unless `**` binds the literal first.
        if *self.peek_at(1) != Tok::Pow {
            match self.peek().clone() {
                Tok::Int(v) => {
                    self.bump();
                    let v = v as i128;
                    let lit = int_lit(if negative { -v } else { v }, op.pos)?;
                    return Ok(Expr::leaf(Node::Lit(lit), op.pos, Ty::Num));
                }
                Tok::Float(s) => {
                    self.bump();
                    let s = if negative { format!("-{s}") } else { s };
                    return Ok(Expr::leaf(Node::Lit(Lit::Float(s)), op.pos, Ty::Num));
                }
                _ => {}
            }
        }
        let inner = self.nested(op.pos, Self::parse_unary)?;
        require(&inner, Ty::Num, &op.text)?;
        if !negative {
            return Ok(inner);
        }
        Expr::new(Node::Neg(Box::new(inner)), op.pos, Ty::Num)
    }

    fn parse_power(&mut self) -> Result<Expr> {
        let base = self.parse_primary()?;
        if *self.peek() != Tok::Pow {
            return Ok(base);
        }
        let op = self.bump();
        require(&base, Ty::Num, "**")?;
        // Right-associative; the exponent may carry a sign (`2 ** -1`).
        let exponent = self.nested(op.pos, Self::parse_unary)?;
        require(&exponent, Ty::Num, "**")?;
        let pos = base.pos;
        Expr::new(
            Node::Power(Box::new(base), Box::new(exponent)),
            pos,
            Ty::Num,
        )
    }

    fn parse_primary(&mut self) -> Result<Expr> {
        let tok = self.current().clone();
        let lit = match &tok.tok {
            Tok::Int(v) => Some(int_lit(*v as i128, tok.pos)?),
            Tok::Float(s) => Some(Lit::Float(s.clone())),
            Tok::Str(s) => Some(Lit::Str(s.clone())),
            Tok::Bool(b) => Some(Lit::Bool(*b)),
            _ => None,
        };
        if let Some(lit) = lit {
            self.bump();
            let ty = lit.ty();
            return Ok(Expr::leaf(Node::Lit(lit), tok.pos, ty));
        }
        match &tok.tok {
            Tok::LParen => {
                self.bump();
                let mut inner = self.nested(tok.pos, Self::parse_or)?;
                self.expect(Tok::RParen, "')'")?;
                inner.pos = tok.pos;
                Ok(inner)
            }
            Tok::LBrace => {
                let (name, pos) = self.parse_template_name()?;
                let value = self.template(&name, pos)?;
                if matches!(value, TemplateValue::Array(_)) {
                    return Err(FilterError::new(
                        pos,
                        format!(
                            "template variable {name} is an array; arrays are only allowed after 'in' / 'not in'"
                        ),
                    ));
                }
                let lit = template_lit(value, &name, pos)?;
                let ty = lit.ty();
                Ok(Expr::leaf(Node::Lit(lit), pos, ty))
            }
            Tok::LBracket => Err(FilterError::new(
                tok.pos,
                "array literals are only allowed after 'in' / 'not in'",
            )),
            Tok::Ident(name) => {
                self.bump();
                self.parse_identifier(name.clone(), tok.pos)
            }
            _ => Err(self.unexpected()),
        }
    }

    fn parse_identifier(&mut self, name: String, pos: usize) -> Result<Expr> {
        let not_supported =
            |what: String| FilterError::new(pos, format!("{what} is not supported yet"));
        if *self.peek() == Tok::LParen {
            return Err(not_supported(name.to_ascii_lowercase()));
        }
        let Some(field) = self.fields.iter().find(|f| f.name == name) else {
            if name.eq_ignore_ascii_case("exists") {
                return Err(not_supported("exists".to_string()));
            }
            let has_meta = self
                .fields
                .iter()
                .any(|f| f.name == "$meta" && f.kind == FieldKind::Json);
            if has_meta {
                return Err(not_supported(format!("dynamic field key {name}")));
            }
            return Err(FilterError::new(pos, format!("field {name} not exist")));
        };
        let ty = match field.kind {
            FieldKind::Bool => Ty::Bool,
            FieldKind::Int | FieldKind::Float => Ty::Num,
            FieldKind::String => Ty::Str,
            FieldKind::Vector => {
                return Err(FilterError::new(
                    pos,
                    format!("vector field {name} cannot be used in a filter"),
                ));
            }
            FieldKind::Json | FieldKind::Array => {
                let json = field.kind == FieldKind::Json;
                match self.peek() {
                    Tok::LBracket if json => return Err(not_supported("JSON path".to_string())),
                    Tok::LBracket => return Err(not_supported("array indexing".to_string())),
                    Tok::Is => Ty::Opaque,
                    _ => {
                        let kind = if json { "JSON" } else { "array" };
                        return Err(not_supported(format!(
                            "using {kind} field {name} outside 'is null' / 'is not null'"
                        )));
                    }
                }
            }
        };
        Ok(Expr::leaf(Node::Column(name), pos, ty))
    }
}

fn int_lit(value: i128, pos: usize) -> Result<Lit> {
    i64::try_from(value)
        .map(Lit::Int)
        .map_err(|_| FilterError::new(pos, "integer literal out of range"))
}

fn template_lit(value: &TemplateValue, name: &str, pos: usize) -> Result<Lit> {
    Ok(match value {
        TemplateValue::Bool(b) => Lit::Bool(*b),
        TemplateValue::Int(i) => Lit::Int(*i),
        TemplateValue::Float(f) if f.is_finite() => Lit::Float(format!("{f:?}")),
        TemplateValue::Float(_) => {
            return Err(FilterError::new(
                pos,
                format!("template variable {name} is not a finite number"),
            ));
        }
        TemplateValue::String(s) => Lit::Str(s.clone()),
        TemplateValue::Array(_) => {
            return Err(FilterError::new(
                pos,
                format!("template variable {name} contains a nested array"),
            ));
        }
    })
}

// ---------------------------------------------------------------------------
// SQL rendering
// ---------------------------------------------------------------------------

fn emit(e: &Expr, out: &mut String) {
    match &e.node {
        Node::Lit(lit) => emit_lit(lit, out),
        Node::Column(name) => {
            out.push('"');
            out.push_str(&name.replace('"', "\"\""));
            out.push('"');
        }
        Node::Neg(inner) => {
            // The space keeps `- -1` from turning into a `--` comment.
            out.push_str("(- ");
            emit(inner, out);
            out.push(')');
        }
        Node::Not(inner) => {
            out.push_str("(NOT ");
            emit(inner, out);
            out.push(')');
        }
        Node::Power(base, exponent) => {
            out.push_str("power(");
            emit(base, out);
            out.push_str(", ");
            emit(exponent, out);
            out.push(')');
        }
        Node::Chain(first, rest) => {
            out.push('(');
            emit(first, out);
            for (op, operand) in rest {
                out.push(' ');
                out.push_str(op.sql());
                out.push(' ');
                emit(operand, out);
            }
            out.push(')');
        }
        Node::Compare(left, op, right) => {
            out.push('(');
            emit(left, out);
            out.push(' ');
            out.push_str(op.sql());
            out.push(' ');
            emit(right, out);
            out.push(')');
        }
        Node::Range(lo, op1, mid, op2, hi) => {
            out.push('(');
            emit(lo, out);
            out.push(' ');
            out.push_str(op1.sql());
            out.push(' ');
            emit(mid, out);
            out.push_str(" AND ");
            emit(mid, out);
            out.push(' ');
            out.push_str(op2.sql());
            out.push(' ');
            emit(hi, out);
            out.push(')');
        }
        Node::Logic(op, items) => {
            out.push('(');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                    out.push_str(op.sql());
                    out.push(' ');
                }
                emit(item, out);
            }
            out.push(')');
        }
        Node::In(inner, negated, items) => {
            if items.is_empty() {
                out.push_str(if *negated { "TRUE" } else { "FALSE" });
                return;
            }
            out.push('(');
            emit(inner, out);
            out.push_str(if *negated { " NOT IN (" } else { " IN (" });
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                emit_lit(item, out);
            }
            out.push_str("))");
        }
        Node::Like(inner, pattern) => {
            out.push('(');
            emit(inner, out);
            out.push_str(" LIKE ");
            emit_str(pattern, out);
            out.push(')');
        }
        Node::IsNull(inner, negated) => {
            out.push('(');
            emit(inner, out);
            out.push_str(if *negated {
                " IS NOT NULL)"
            } else {
                " IS NULL)"
            });
        }
    }
}

fn emit_lit(lit: &Lit, out: &mut String) {
    match lit {
        Lit::Int(i) => out.push_str(&i.to_string()),
        Lit::Float(s) => out.push_str(s),
        Lit::Str(s) => emit_str(s, out),
        Lit::Bool(true) => out.push_str("TRUE"),
        Lit::Bool(false) => out.push_str("FALSE"),
    }
}

fn emit_str(s: &str, out: &mut String) {
    out.push('\'');
    out.push_str(&s.replace('\'', "''"));
    out.push('\'');
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIELDS: &[FilterField<'static>] = &[
        FilterField {
            name: "id",
            kind: FieldKind::Int,
        },
        FilterField {
            name: "age",
            kind: FieldKind::Int,
        },
        FilterField {
            name: "a",
            kind: FieldKind::Int,
        },
        FilterField {
            name: "b",
            kind: FieldKind::Int,
        },
        FilterField {
            name: "c",
            kind: FieldKind::Int,
        },
        FilterField {
            name: "x",
            kind: FieldKind::Int,
        },
        FilterField {
            name: "score",
            kind: FieldKind::Float,
        },
        FilterField {
            name: "name",
            kind: FieldKind::String,
        },
        FilterField {
            name: "s",
            kind: FieldKind::String,
        },
        FilterField {
            name: "flag",
            kind: FieldKind::Bool,
        },
        FilterField {
            name: "meta",
            kind: FieldKind::Json,
        },
        FilterField {
            name: "tags",
            kind: FieldKind::Array,
        },
        FilterField {
            name: "vec",
            kind: FieldKind::Vector,
        },
    ];

    fn templates() -> HashMap<String, TemplateValue> {
        let mut t = HashMap::new();
        t.insert("n".to_string(), TemplateValue::Int(7));
        t.insert("neg".to_string(), TemplateValue::Int(-3));
        t.insert("f".to_string(), TemplateValue::Float(1.0));
        t.insert("big".to_string(), TemplateValue::Float(1e300));
        t.insert("nan".to_string(), TemplateValue::Float(f64::NAN));
        t.insert("str".to_string(), TemplateValue::String("it's".to_string()));
        t.insert("yes".to_string(), TemplateValue::Bool(true));
        t.insert(
            "ids".to_string(),
            TemplateValue::Array(vec![TemplateValue::Int(1), TemplateValue::Int(2)]),
        );
        t.insert(
            "names".to_string(),
            TemplateValue::Array(vec![
                TemplateValue::String("a".to_string()),
                TemplateValue::String("b".to_string()),
            ]),
        );
        t.insert("empty".to_string(), TemplateValue::Array(vec![]));
        t.insert(
            "nested".to_string(),
            TemplateValue::Array(vec![TemplateValue::Array(vec![])]),
        );
        t
    }

    fn sql(expr: &str) -> String {
        filter_to_sql(expr, FIELDS, &templates())
            .unwrap_or_else(|e| panic!("{expr:?} failed: {}", e.describe(expr)))
    }

    fn err(expr: &str) -> FilterError {
        match filter_to_sql(expr, FIELDS, &templates()) {
            Ok(out) => panic!("{expr:?} unexpectedly translated to {out}"),
            Err(e) => e,
        }
    }

    fn check_ok(cases: &[(&str, &str)]) {
        for (expr, want) in cases {
            assert_eq!(sql(expr), *want, "input: {expr:?}");
        }
    }

    fn check_err(cases: &[(&str, usize, &str)]) {
        for (expr, pos, msg) in cases {
            let e = err(expr);
            assert_eq!(
                (e.position, e.message.as_str()),
                (*pos, *msg),
                "input: {expr:?}"
            );
        }
    }

    #[test]
    fn comparisons() {
        check_ok(&[
            ("age == 18", r#"("age" = 18)"#),
            ("age != 18", r#"("age" <> 18)"#),
            ("age < 18", r#"("age" < 18)"#),
            ("age <= 18", r#"("age" <= 18)"#),
            ("age > 18", r#"("age" > 18)"#),
            ("age >= 18", r#"("age" >= 18)"#),
            ("18 < age", r#"(18 < "age")"#),
            ("a == b", r#"("a" = "b")"#),
            ("name == \"bob\"", r#"("name" = 'bob')"#),
            ("name >= 'bob'", r#"("name" >= 'bob')"#),
        ]);
    }

    #[test]
    fn integer_literals() {
        check_ok(&[
            ("x == +5", r#"("x" = 5)"#),
            ("x == -5", r#"("x" = -5)"#),
            ("x == 0", r#"("x" = 0)"#),
            ("x == 0x1F", r#"("x" = 31)"#),
            ("x == 0b101", r#"("x" = 5)"#),
            ("x == 017", r#"("x" = 15)"#),
            ("x == 0o17", r#"("x" = 15)"#),
            ("x == 9223372036854775807", r#"("x" = 9223372036854775807)"#),
            (
                "x == -9223372036854775808",
                r#"("x" = -9223372036854775808)"#,
            ),
        ]);
        check_err(&[
            (
                "x == 9223372036854775808",
                5,
                "integer literal out of range",
            ),
            (
                "x == 99999999999999999999",
                5,
                "integer literal out of range",
            ),
            ("x == 018", 5, "invalid octal literal '018'"),
            ("x == 12ab", 5, "invalid numeric literal '12ab'"),
            ("x == 1.2.3", 5, "invalid numeric literal '1.2.3'"),
            ("x == 0x", 5, "invalid numeric literal '0x'"),
            ("x == 1e", 5, "invalid numeric literal '1e'"),
        ]);
    }

    #[test]
    fn float_literals() {
        check_ok(&[
            ("score > 1.5", r#"("score" > 1.5)"#),
            ("score > .5", r#"("score" > 0.5)"#),
            ("score > 1.", r#"("score" > 1.0)"#),
            ("score > 1e3", r#"("score" > 1e3)"#),
            ("score > 2.5E-3", r#"("score" > 2.5E-3)"#),
            ("score > -0.25", r#"("score" > -0.25)"#),
            ("score > 1", r#"("score" > 1)"#),
        ]);
        check_err(&[("score > 1e999", 8, "float literal out of range")]);
    }

    #[test]
    fn string_literals_and_escapes() {
        check_ok(&[
            (r#"s == "a\"b""#, r#"("s" = 'a"b')"#),
            (r"s == 'it\'s'", r#"("s" = 'it''s')"#),
            (r#"s == "it's""#, r#"("s" = 'it''s')"#),
            (r#"s == 'say "hi"'"#, r#"("s" = 'say "hi"')"#),
            (r#"s == "a\\b""#, r#"("s" = 'a\b')"#),
            (r#"s == "a\nb\tc""#, "(\"s\" = 'a\nb\tc')"),
            (r#"s == "\u00e9""#, r#"("s" = 'é')"#),
            (r#"s == """#, r#"("s" = '')"#),
            (r#"s == "日本語""#, r#"("s" = '日本語')"#),
        ]);
        check_err(&[
            (r#"s == "abc"#, 5, "unterminated string"),
            ("s == 'abc", 5, "unterminated string"),
            (r#"s == "abc\"#, 5, "unterminated string"),
            (r#"s == "a\qb""#, 7, r"invalid escape sequence '\q'"),
            (r#"s == "\u12""#, 6, "invalid unicode escape sequence"),
        ]);
    }

    #[test]
    fn booleans() {
        check_ok(&[
            ("flag", r#""flag""#),
            ("flag == true", r#"("flag" = TRUE)"#),
            ("flag == True", r#"("flag" = TRUE)"#),
            ("flag != FALSE", r#"("flag" <> FALSE)"#),
            ("flag == False", r#"("flag" = FALSE)"#),
            ("true", "TRUE"),
            ("not flag", r#"(NOT "flag")"#),
            ("!flag", r#"(NOT "flag")"#),
            ("flag == 1", r#"("flag" = 1)"#),
        ]);
    }

    #[test]
    fn chained_ranges() {
        check_ok(&[
            ("10 < x <= 20", r#"(10 < "x" AND "x" <= 20)"#),
            ("10 <= x < 20", r#"(10 <= "x" AND "x" < 20)"#),
            ("30 > x > 5", r#"(30 > "x" AND "x" > 5)"#),
            ("30 >= x >= 5", r#"(30 >= "x" AND "x" >= 5)"#),
            ("1 < a + 1 < 5", r#"(1 < ("a" + 1) AND ("a" + 1) < 5)"#),
        ]);
        check_err(&[
            (
                "1 < x > 5",
                6,
                "cannot chain '<' with '>'; use 'and' instead",
            ),
            ("1 < x < 5 < 7", 10, "unexpected token '<'"),
        ]);
    }

    #[test]
    fn arithmetic() {
        check_ok(&[
            ("a + 1 > 2", r#"(("a" + 1) > 2)"#),
            ("a - b * c == 0", r#"(("a" - ("b" * "c")) = 0)"#),
            ("a + b - c == 0", r#"(("a" + "b" - "c") = 0)"#),
            ("a * b / c % 2 == 1", r#"(("a" * "b" / "c" % 2) = 1)"#),
            ("(a + b) * c == 0", r#"((("a" + "b") * "c") = 0)"#),
            ("a ** 2 > 4", r#"(power("a", 2) > 4)"#),
            ("2 ** 3 ** 2 > a", r#"(power(2, power(3, 2)) > "a")"#),
            ("-2 ** 2 < a", r#"((- power(2, 2)) < "a")"#),
            ("a ** -1 < 1", r#"(power("a", -1) < 1)"#),
            ("-a < 0", r#"((- "a") < 0)"#),
            ("- -a < 0", r#"((- (- "a")) < 0)"#),
            ("a - -1 > 0", r#"(("a" - -1) > 0)"#),
            ("+a > 0", r#"("a" > 0)"#),
        ]);
    }

    #[test]
    fn logical_operators_and_precedence() {
        check_ok(&[
            (
                "a > 1 or b < 2 and not c == 3",
                r#"(("a" > 1) OR (("b" < 2) AND (NOT ("c" = 3))))"#,
            ),
            (
                "a > 1 and b > 2 and c > 3",
                r#"(("a" > 1) AND ("b" > 2) AND ("c" > 3))"#,
            ),
            (
                "a > 1 && b > 2 || c > 3",
                r#"((("a" > 1) AND ("b" > 2)) OR ("c" > 3))"#,
            ),
            (
                "a > 1 AND (b > 2 OR c > 3)",
                r#"(("a" > 1) AND (("b" > 2) OR ("c" > 3)))"#,
            ),
            ("NOT (a > 1)", r#"(NOT ("a" > 1))"#),
            ("not not flag", r#"(NOT (NOT "flag"))"#),
            ("!(a != 1)", r#"(NOT ("a" <> 1))"#),
            ("a > 1 == flag", r#"(("a" > 1) = "flag")"#),
        ]);
    }

    #[test]
    fn in_lists() {
        check_ok(&[
            ("x in [1, 2, 3]", r#"("x" IN (1, 2, 3))"#),
            ("x IN [1,2,3,]", r#"("x" IN (1, 2, 3))"#),
            ("x in [-1, +2, 3.5]", r#"("x" IN (-1, 2, 3.5))"#),
            (r#"s not in ["a", 'b']"#, r#"("s" NOT IN ('a', 'b'))"#),
            (r#"s NOT IN ["a"]"#, r#"("s" NOT IN ('a'))"#),
            ("x in []", "FALSE"),
            ("x not in [ ]", "TRUE"),
            ("not x in [1]", r#"(NOT ("x" IN (1)))"#),
            ("flag in [true]", r#"("flag" IN (TRUE))"#),
        ]);
        check_err(&[
            (
                "x in [1,",
                8,
                "expected a literal or ']', found end of expression",
            ),
            ("x in [1 2]", 8, "expected ',' or ']', found '2'"),
            ("x in [a]", 6, "expected a literal or ']', found 'a'"),
            (
                "x in 1",
                5,
                "expected '[' or a template variable after 'in', found '1'",
            ),
            (
                r#"x in [1, "a"]"#,
                9,
                "cannot compare number with string in 'in' list",
            ),
            (
                "x not like 'a'",
                6,
                "expected 'in' after 'not', found 'like'",
            ),
        ]);
    }

    #[test]
    fn like_and_null_checks() {
        check_ok(&[
            (r#"name like "ab%""#, r#"("name" LIKE 'ab%')"#),
            ("name LIKE 'a_b'", r#"("name" LIKE 'a_b')"#),
            (r#"name like "it's%""#, r#"("name" LIKE 'it''s%')"#),
            ("name is null", r#"("name" IS NULL)"#),
            ("name IS NOT NULL", r#"("name" IS NOT NULL)"#),
            ("age Is Not Null", r#"("age" IS NOT NULL)"#),
            ("meta is null", r#"("meta" IS NULL)"#),
            ("tags is not null", r#"("tags" IS NOT NULL)"#),
            (
                "name is null or age > 1",
                r#"(("name" IS NULL) OR ("age" > 1))"#,
            ),
        ]);
        check_err(&[
            (
                "age like 'a%'",
                0,
                "operand of 'like' must be a string, got number",
            ),
            (
                "name like 1",
                10,
                "expected a string pattern after 'like', found '1'",
            ),
            ("name is 1", 8, "expected 'null', found '1'"),
        ]);
    }

    #[test]
    fn templates_substitute() {
        check_ok(&[
            ("x == {n}", r#"("x" = 7)"#),
            ("x > {neg}", r#"("x" > -3)"#),
            ("x - {neg} > 0", r#"(("x" - -3) > 0)"#),
            ("score < {f}", r#"("score" < 1.0)"#),
            ("score < {big}", r#"("score" < 1e300)"#),
            ("s == {str}", r#"("s" = 'it''s')"#),
            ("flag == {yes}", r#"("flag" = TRUE)"#),
            ("x in {ids}", r#"("x" IN (1, 2))"#),
            ("s not in {names}", r#"("s" NOT IN ('a', 'b'))"#),
            ("x in {empty}", "FALSE"),
            ("x in [{n}, 8]", r#"("x" IN (7, 8))"#),
            ("s like {str}", r#"("s" LIKE 'it''s')"#),
            ("{ n } < x < 10", r#"(7 < "x" AND "x" < 10)"#),
        ]);
        check_err(&[
            ("x == {missing}", 5, "template variable missing not found"),
            (
                "x == {ids}",
                5,
                "template variable ids is an array; arrays are only allowed after 'in' / 'not in'",
            ),
            (
                "x in {n}",
                5,
                "template variable n must be an array after 'in'",
            ),
            (
                "x in {nested}",
                5,
                "template variable nested contains a nested array",
            ),
            (
                "score < {nan}",
                8,
                "template variable nan is not a finite number",
            ),
            (
                "x == {1}",
                6,
                "expected a template variable name, found '1'",
            ),
            ("x == {n", 7, "expected '}', found end of expression"),
            (
                "x in {names}",
                5,
                "cannot compare number with string in 'in' list",
            ),
        ]);
    }

    #[test]
    fn unknown_fields_and_unsupported_features() {
        check_err(&[
            ("nope > 1", 0, "field nope not exist"),
            ("age > 1 and nope == 2", 12, "field nope not exist"),
            (r#"meta["a"] == 1"#, 0, "JSON path is not supported yet"),
            ("tags[0] == 1", 0, "array indexing is not supported yet"),
            (
                "meta == 1",
                0,
                "using JSON field meta outside 'is null' / 'is not null' is not supported yet",
            ),
            (
                "json_contains(meta, 1)",
                0,
                "json_contains is not supported yet",
            ),
            (
                "ARRAY_CONTAINS(tags, 1)",
                0,
                "array_contains is not supported yet",
            ),
            (
                "array_length(tags) == 2",
                0,
                "array_length is not supported yet",
            ),
            (
                "text_match(name, 'x')",
                0,
                "text_match is not supported yet",
            ),
            (
                "phrase_match(name, 'x')",
                0,
                "phrase_match is not supported yet",
            ),
            (r#"exists meta["a"]"#, 0, "exists is not supported yet"),
            ("vec == 1", 0, "vector field vec cannot be used in a filter"),
            ("a & 1 == 1", 2, "bitwise operator '&' is not supported yet"),
            (
                "a << 1 == 1",
                2,
                "bitwise operator '<<' is not supported yet",
            ),
            ("name =~ 'a'", 5, "regex match is not supported yet"),
            (
                "x in [1] and [1]",
                13,
                "array literals are only allowed after 'in' / 'not in'",
            ),
        ]);
    }

    #[test]
    fn dynamic_field_keys() {
        let fields = [
            FilterField {
                name: "id",
                kind: FieldKind::Int,
            },
            FilterField {
                name: "$meta",
                kind: FieldKind::Json,
            },
        ];
        let t = HashMap::new();
        let e = filter_to_sql("color == 'red'", &fields, &t).unwrap_err();
        assert_eq!(e.message, "dynamic field key color is not supported yet");
        let e = filter_to_sql("id > 1 and $meta['a'] == 1", &fields, &t).unwrap_err();
        assert_eq!(
            (e.position, e.message.as_str()),
            (11, "JSON path is not supported yet")
        );
        assert_eq!(
            filter_to_sql("id > 1", &fields, &t).unwrap(),
            r#"("id" > 1)"#
        );
    }

    #[test]
    fn type_checks() {
        check_err(&[
            ("age", 0, "filter expression must be boolean, got number"),
            ("a + 1", 0, "filter expression must be boolean, got number"),
            (
                "name == 1",
                5,
                "cannot compare string with number using '=='",
            ),
            ("1 < name", 2, "cannot compare number with string using '<'"),
            (
                "a and flag",
                0,
                "operand of 'and' must be boolean, got number",
            ),
            (
                "flag or 'x'",
                8,
                "operand of 'or' must be boolean, got string",
            ),
            ("not a", 4, "operand of 'not' must be boolean, got number"),
            (
                "name + 1 > 0",
                0,
                "operand of '+' must be numeric, got string",
            ),
            ("-name < 0", 1, "operand of '-' must be numeric, got string"),
            (
                "(a > 1) + 1 > 0",
                0,
                "operand of '+' must be numeric, got boolean",
            ),
            (
                "a ** 'x' > 0",
                5,
                "operand of '**' must be numeric, got string",
            ),
        ]);
    }

    #[test]
    fn syntax_errors_report_positions() {
        check_err(&[
            ("))((", 0, "unexpected token ')'"),
            ("a ==", 4, "unexpected end of expression"),
            ("== 1", 0, "unexpected token '=='"),
            ("1 <", 3, "unexpected end of expression"),
            (
                "a in [1,",
                8,
                "expected a literal or ']', found end of expression",
            ),
            ("(a > 1", 6, "expected ')', found end of expression"),
            ("a > 1)", 5, "unexpected token ')'"),
            ("a > 1 b", 6, "unexpected token 'b'"),
            ("a > 1 and", 9, "unexpected end of expression"),
            (
                "a = 1",
                2,
                "unexpected character '='; use '==' for equality",
            ),
            ("a > 1 # c", 6, "unexpected character '#'"),
            ("a >", 3, "unexpected end of expression"),
            ("()", 1, "unexpected token ')'"),
            ("a > 1 and or b", 10, "unexpected token 'or'"),
            ("  \t", 0, "empty expression"),
            ("", 0, "empty expression"),
        ]);
    }

    #[test]
    fn positions_count_chars_not_bytes() {
        check_err(&[
            (r#"s == "日本語" and )"#, 15, "unexpected token ')'"),
            ("s == 'é' ?", 9, "unexpected character '?'"),
            ("s == 'ü' and nope > 1", 13, "field nope not exist"),
            ("s == 'ß", 5, "unterminated string"),
        ]);
    }

    #[test]
    fn nesting_limits() {
        let ok = format!("{}a > 1{}", "(".repeat(150), ")".repeat(150));
        assert_eq!(sql(&ok), r#"("a" > 1)"#);

        let deep = format!(
            "{}a > 1{}",
            "(".repeat(MAX_DEPTH + 1),
            ")".repeat(MAX_DEPTH + 1)
        );
        assert_eq!(err(&deep).message, "expression is too deeply nested");

        let nots = format!("{}flag", "not ".repeat(MAX_DEPTH + 5));
        assert_eq!(err(&nots).message, "expression is too deeply nested");

        let negs = format!("{}a > 0", "- ".repeat(MAX_DEPTH + 5));
        assert_eq!(err(&negs).message, "expression is too deeply nested");

        let pows = format!("a{} > 0", " ** 2".repeat(MAX_DEPTH + 5));
        assert_eq!(err(&pows).message, "expression is too deeply nested");

        let eqs = format!("flag{}", " == flag".repeat(MAX_DEPTH + 5));
        assert_eq!(err(&eqs).message, "expression is too deeply nested");

        // Long flat chains are fine: they are rendered without nesting.
        let ors = vec!["id == 1"; 2000].join(" or ");
        let out = sql(&ors);
        assert!(out.starts_with(r#"(("id" = 1) OR ("id" = 1)"#), "{out}");
        let sums = format!("a{} > 0", " + 1".repeat(3000));
        assert!(sql(&sums).ends_with("+ 1) > 0)"));
    }

    #[test]
    fn nesting_limit_fits_small_stacks() {
        // Worst-case accepted nesting must parse on a 256 KiB thread stack.
        let handle = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(|| {
                let mut expr = String::new();
                for _ in 0..MAX_DEPTH - 1 {
                    expr.push_str("(not ");
                }
                expr.push_str("flag");
                expr.push_str(&")".repeat(MAX_DEPTH - 1));
                filter_to_sql(&expr, FIELDS, &HashMap::new()).map(|s| s.len())
            })
            .unwrap();
        let result = handle.join().expect("parser overflowed a small stack");
        assert!(result.is_err() || result.unwrap() > 0);
    }

    #[test]
    fn input_length_limit() {
        let long = format!("a > 1{}", " ".repeat(MAX_EXPR_LEN));
        let e = err(&long);
        assert_eq!(
            (e.position, e.message.as_str()),
            (0, "expression is too long")
        );
        let fits = format!("a > 1{}", " ".repeat(MAX_EXPR_LEN - 10));
        assert_eq!(sql(&fits), r#"("a" > 1)"#);
    }

    #[test]
    fn garbage_never_panics() {
        let pieces = [
            "a", "(", ")", "[", "]", "{", "}", ",", "'", "\"", "\\", "==", "<", ">=", "not", "in",
            "and", "or", "**", "-", "1", "1.5", "e", "is", "null", "like", "{n}", "é", " ",
        ];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..3000 {
            let mut expr = String::new();
            for _ in 0..(seed % 12) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                expr.push_str(pieces[(seed % pieces.len() as u64) as usize]);
            }
            seed = seed.wrapping_add(1);
            if let Err(e) = filter_to_sql(&expr, FIELDS, &templates()) {
                assert!(e.position <= expr.chars().count(), "{expr:?}: {e:?}");
                assert!(!e.message.is_empty());
            }
        }
    }

    #[test]
    fn error_display() {
        let e = err("a ==");
        assert_eq!(
            e.to_string(),
            "cannot parse expression, error: unexpected end of expression at position 4"
        );
        assert_eq!(
            e.describe("a =="),
            "cannot parse expression: a ==, error: unexpected end of expression at position 4"
        );
        let boxed: Box<dyn std::error::Error> = Box::new(e);
        assert!(boxed.to_string().contains("position 4"));
    }
}
