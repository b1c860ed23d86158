//! The statement-complexity check: bounds the expression trees a statement
//! will build, on its text, before any parser builds them.
//!
//! Parsing, planning, optimizing and dropping expression trees all recurse
//! on them, and a left-deep chain (`1+1+...`, `a AND b AND ...`) of N terms
//! is N deep: a few thousand terms overflow a thread's stack and abort the
//! process, and several of DataFusion's passes are quadratic in the depth
//! long before that. A tree of 10^5 terms overflows even when it is only
//! dropped, so the check runs on tokens ([`lexer`]), statement by statement,
//! and stops at the first limit exceeded (a 50 MB statement is refused after
//! reading just past its limit, with no allocation per token).
//!
//! Four limits ([`ComplexityLimits`], defaults in
//! `quiver_common::limits`):
//! - **depth**: the height of the deepest expression tree, estimated with
//!   operator precedence (`a = 1 OR b = 2` is two deep, `1+1+1` three):
//!   every binary, prefix and postfix operator, cast, subscript,
//!   parenthesis, bracket, function call, `CASE` and subquery is one level,
//!   and every set operation or join adds one to its query;
//! - **operators**: all of those operators in one statement (list elements
//!   such as `IN (...)` items or `VALUES` rows are not operators);
//! - **function nesting**: function calls nested in one another's
//!   arguments (sqlparser parses each argument twice, so time doubles with
//!   every level);
//! - **list items**: the elements of every comma-separated list in one
//!   statement (`IN (...)` items, `VALUES` rows and their values, select
//!   lists, call arguments). Lists are flat, but each item costs a few
//!   kilobytes and tens of microseconds of planning, so a 50 MB list would
//!   cost gigabytes.
//!
//! The estimate only needs to be an upper bound of what the parser builds,
//! up to a small factor: words it does not know are operands, an operand
//! right after another one starts a new expression (`SELECT a FROM t`), and
//! constructs it does not model (`IS DISTINCT FROM`, `AT TIME ZONE`) still
//! count their operator keyword, so the operator limit bounds every tree.

mod lexer;

use lexer::{Lexeme, Lexer};
use quiver_common::limits::{
    MAX_EXPRESSION_DEPTH, MAX_EXPRESSION_OPERATORS, MAX_FUNCTION_NESTING, MAX_LIST_ITEMS,
};
use quiver_common::status::StatusCode;

/// The bounds a statement's expressions must stay within.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ComplexityLimits {
    /// Deepest expression tree.
    pub depth: usize,
    /// Most operators per statement.
    pub operators: usize,
    /// Most nested function calls.
    pub function_nesting: usize,
    /// Most list items (commas outside literals) per statement.
    pub list_items: usize,
}

impl ComplexityLimits {
    /// The limits of SQL statements (both doors).
    pub const SQL: ComplexityLimits = ComplexityLimits {
        depth: MAX_EXPRESSION_DEPTH,
        operators: MAX_EXPRESSION_OPERATORS,
        function_nesting: MAX_FUNCTION_NESTING,
        list_items: MAX_LIST_ITEMS,
    };
}

/// A statement over one of its [`ComplexityLimits`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TooComplex {
    /// An expression tree deeper than `limit`.
    Depth { limit: usize },
    /// More than `limit` operators in one statement.
    Operators { limit: usize },
    /// Function calls nested more than `limit` deep.
    FunctionNesting { limit: usize },
    /// More than `limit` list items in one statement.
    ListItems { limit: usize },
    /// The SQL parser's own bound on its recursion (sqlparser's default),
    /// reached by nesting before any of the limits above.
    ParserRecursion { limit: usize },
}

impl TooComplex {
    /// `54001` (statement too complex) / Milvus 1100.
    pub fn status_code(&self) -> StatusCode {
        StatusCode::StatementTooComplex
    }

    /// What is over which limit, without the leading "statement too complex".
    pub fn detail(&self) -> String {
        match self {
            TooComplex::Depth { limit } => format!(
                "expressions nested more than {limit} levels deep \
                 (quiver limit max_expression_depth = {limit})"
            ),
            TooComplex::Operators { limit } => format!(
                "more than {limit} operators in one statement \
                 (quiver limit max_expression_operators = {limit})"
            ),
            TooComplex::FunctionNesting { limit } => format!(
                "function calls nested more than {limit} deep \
                 (quiver limit max_function_nesting = {limit})"
            ),
            TooComplex::ListItems { limit } => format!(
                "more than {limit} list items (IN lists, VALUES rows and values, \
                 select lists, arguments) in one statement; split it into several \
                 (quiver limit max_list_items = {limit})"
            ),
            TooComplex::ParserRecursion { limit } => {
                format!("nested more than the SQL parser's recursion limit of {limit} levels")
            }
        }
    }
}

impl std::fmt::Display for TooComplex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "statement too complex: {}", self.detail())
    }
}

impl std::error::Error for TooComplex {}

/// sqlparser's recursion limit (its `DEFAULT_REMAINING_DEPTH`), which the
/// parsers of both doors keep.
pub const PARSER_RECURSION_LIMIT: usize = 50;

/// Checks every statement of `sql` against `limits`.
pub fn check(sql: &str, limits: ComplexityLimits) -> Result<(), TooComplex> {
    let mut counter = Counter::new(limits);
    for lexeme in Lexer::new(sql) {
        counter.feed(lexeme)?;
    }
    counter.end_statement()
}

// Binding powers, loosest first, as in PostgreSQL's operator precedence.
const PREC_OR: u8 = 5;
const PREC_XOR: u8 = 7;
const PREC_AND: u8 = 10;
const PREC_NOT: u8 = 15;
const PREC_IS: u8 = 17;
const PREC_COMPARE: u8 = 20;
const PREC_IN_LIKE: u8 = 22;
const PREC_OTHER: u8 = 25;
const PREC_ADD: u8 = 30;
const PREC_MUL: u8 = 40;
const PREC_POW: u8 = 50;
const PREC_UNARY: u8 = 55;
const PREC_COLLATE: u8 = 58;
const PREC_CAST: u8 = 60;
const PREC_SUBSCRIPT: u8 = 70;

/// An operator waiting for its right operand.
#[derive(Debug, Clone, Copy)]
struct PendingOp {
    prec: u8,
    unary: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GroupKind {
    /// The statement itself.
    Root,
    /// `(...)`, `[...]`, a call's arguments.
    Parens,
    /// `CASE ... END`.
    Case,
}

/// One open group and the expression being read in it.
#[derive(Debug)]
struct Group {
    kind: GroupKind,
    /// A function call's arguments.
    call: bool,
    /// Where this group's operands and operators start on the shared stacks.
    operand_base: usize,
    op_base: usize,
    /// Height of the highest finished expression in the group.
    items_max: usize,
    /// Set operations, joins and `FROM` list entries: each nests the query
    /// one level deeper.
    relations: usize,
    in_from: bool,
    /// The next token should be an operand (else an operator).
    expect_operand: bool,
    /// A `NOT` after an operand, waiting for `IN`, `LIKE`, `BETWEEN`, ...
    negated: bool,
    /// After a `.`: the next name belongs to the current operand.
    after_dot: bool,
}

impl Group {
    fn new(kind: GroupKind, call: bool, operand_base: usize, op_base: usize) -> Self {
        Group {
            kind,
            call,
            operand_base,
            op_base,
            items_max: 0,
            relations: 0,
            in_from: false,
            expect_operand: true,
            negated: false,
            after_dot: false,
        }
    }
}

/// What the previous token was, for telling calls from parenthesized operands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Prev<'a> {
    Word(&'a str),
    QuotedIdent,
    Other,
}

/// Keywords after which `(` does not open a function's argument list.
const NOT_CALLS: &[&str] = &[
    "all",
    "and",
    "any",
    "array",
    "as",
    "between",
    "by",
    "cast",
    "distinct",
    "else",
    "except",
    "exists",
    "filter",
    "from",
    "group",
    "having",
    "ilike",
    "in",
    "intersect",
    "is",
    "join",
    "lateral",
    "like",
    "not",
    "on",
    "or",
    "over",
    "returning",
    "select",
    "some",
    "table",
    "then",
    "try_cast",
    "union",
    "using",
    "values",
    "when",
    "where",
    "with",
    "within",
];

/// Keywords that end a `FROM` list.
const END_FROM: &[&str] = &[
    "where",
    "group",
    "having",
    "order",
    "limit",
    "offset",
    "window",
    "qualify",
    "returning",
    "fetch",
    "for",
    "select",
    "set",
    "values",
    "union",
    "intersect",
    "except",
];

/// The statement-by-statement state of the check.
struct Counter<'a> {
    limits: ComplexityLimits,
    groups: Vec<Group>,
    /// Heights of finished operands of the open expressions.
    operands: Vec<usize>,
    ops: Vec<PendingOp>,
    /// Operators seen in this statement.
    operators: usize,
    /// List items (commas) seen in this statement.
    list_items: usize,
    /// A `-`/`+` prefix not counted yet: it is a literal's sign if a
    /// literal follows.
    sign_pending: bool,
    /// Function calls open around the current token.
    calls_open: usize,
    prev: Prev<'a>,
}

impl<'a> Counter<'a> {
    fn new(limits: ComplexityLimits) -> Self {
        Counter {
            limits,
            groups: vec![Group::new(GroupKind::Root, false, 0, 0)],
            operands: Vec::new(),
            ops: Vec::new(),
            operators: 0,
            list_items: 0,
            sign_pending: false,
            calls_open: 0,
            prev: Prev::Other,
        }
    }

    fn top(&mut self) -> &mut Group {
        let last = self.groups.len() - 1;
        &mut self.groups[last]
    }

    /// Levels the enclosing groups add above the current expression.
    fn enclosing(&self) -> usize {
        self.groups.len() - 1
    }

    fn check_height(&self, height: usize) -> Result<(), TooComplex> {
        if height + self.enclosing() > self.limits.depth {
            return Err(TooComplex::Depth {
                limit: self.limits.depth,
            });
        }
        Ok(())
    }

    fn count_operator(&mut self) -> Result<(), TooComplex> {
        self.operators += 1;
        if self.operators > self.limits.operators {
            return Err(TooComplex::Operators {
                limit: self.limits.operators,
            });
        }
        Ok(())
    }

    fn feed(&mut self, lexeme: Lexeme<'a>) -> Result<(), TooComplex> {
        // The sign of a literal (`-1`, `+2.5`) is part of the value: the
        // planner folds it, and a multi-row `VALUES` list may hold one per
        // value. Any other prefix operator counts.
        if std::mem::take(&mut self.sign_pending) && !matches!(lexeme, Lexeme::Literal) {
            self.count_operator()?;
        }
        if self.top().negated {
            let infix = matches!(lexeme, Lexeme::Word(w)
                if ["in", "like", "ilike", "similar", "between"]
                    .iter()
                    .any(|k| w.eq_ignore_ascii_case(k)));
            if !infix {
                // `SELECT NOT x`: the `NOT` began a new expression.
                self.top().negated = false;
                self.finish_item()?;
                self.prefix(PREC_NOT)?;
            }
        }
        let prev = self.prev;
        self.prev = match lexeme {
            Lexeme::Word(w) => Prev::Word(w),
            Lexeme::QuotedIdent => Prev::QuotedIdent,
            _ => Prev::Other,
        };
        match lexeme {
            Lexeme::Word(word) => self.word(word),
            Lexeme::QuotedIdent | Lexeme::Literal => self.operand(1),
            Lexeme::Operator(op) => {
                if self.top().expect_operand && (op == "-" || op == "+") {
                    self.sign_pending = true;
                    self.push_prefix(PREC_UNARY)
                } else if self.top().expect_operand {
                    self.prefix(PREC_UNARY)
                } else {
                    self.binary(operator_precedence(op))
                }
            }
            Lexeme::Cast => self.binary(PREC_CAST),
            Lexeme::LParen => self.open_paren(prev),
            Lexeme::LBracket => {
                if !self.top().expect_operand {
                    self.binary(PREC_SUBSCRIPT)?;
                }
                self.open(GroupKind::Parens, false)
            }
            Lexeme::RParen | Lexeme::RBracket => self.close(),
            Lexeme::Comma => {
                self.list_items += 1;
                if self.list_items > self.limits.list_items {
                    return Err(TooComplex::ListItems {
                        limit: self.limits.list_items,
                    });
                }
                if self.top().in_from {
                    self.relation()?;
                }
                self.finish_item()
            }
            Lexeme::Semicolon => self.end_statement(),
            Lexeme::Period => {
                self.top().after_dot = true;
                Ok(())
            }
            Lexeme::Other => Ok(()),
        }
    }

    fn word(&mut self, word: &str) -> Result<(), TooComplex> {
        let is = |k: &str| word.eq_ignore_ascii_case(k);
        if self.top().after_dot {
            return self.operand(1);
        }
        if is("and") {
            return self.binary(PREC_AND);
        }
        if is("or") {
            return self.binary(PREC_OR);
        }
        if is("xor") {
            return self.binary(PREC_XOR);
        }
        if is("not") {
            if self.top().expect_operand {
                return self.prefix(PREC_NOT);
            }
            self.top().negated = true;
            return Ok(());
        }
        if is("is") {
            return self.binary(PREC_IS);
        }
        if [
            "in", "like", "ilike", "similar", "between", "overlaps", "escape",
        ]
        .iter()
        .any(|k| is(k))
        {
            self.top().negated = false;
            return self.binary(PREC_IN_LIKE);
        }
        if is("collate") || is("at") {
            return self.binary(PREC_COLLATE);
        }
        if ["union", "intersect", "except", "join"]
            .iter()
            .any(|k| is(k))
        {
            self.finish_item()?;
            self.relation()?;
            if !is("join") {
                self.top().in_from = false;
            }
            return Ok(());
        }
        if is("case") {
            if !self.top().expect_operand {
                self.finish_item()?;
            }
            return self.open(GroupKind::Case, false);
        }
        if is("end") && self.top().kind == GroupKind::Case {
            return self.close();
        }
        if is("from") {
            self.operand(1)?;
            self.top().in_from = true;
            return Ok(());
        }
        if END_FROM.iter().any(|k| is(k)) {
            self.top().in_from = false;
        }
        self.operand(1)
    }

    /// An operand of height `height`.
    fn operand(&mut self, height: usize) -> Result<(), TooComplex> {
        if self.top().after_dot {
            // `a.b`, `t.*`: one name.
            self.top().after_dot = false;
            if self.operands.len() > self.top().operand_base {
                if let Some(last) = self.operands.last_mut() {
                    *last = (*last).max(height);
                }
                return Ok(());
            }
        } else if !self.top().expect_operand {
            // Two operands in a row: a new expression (`SELECT a FROM t`).
            self.finish_item()?;
        }
        self.check_height(height)?;
        self.operands.push(height);
        self.top().expect_operand = false;
        Ok(())
    }

    fn binary(&mut self, prec: u8) -> Result<(), TooComplex> {
        if self.top().expect_operand {
            return self.prefix(PREC_UNARY);
        }
        self.count_operator()?;
        self.reduce_while(prec)?;
        self.ops.push(PendingOp { prec, unary: false });
        self.top().expect_operand = true;
        Ok(())
    }

    fn prefix(&mut self, prec: u8) -> Result<(), TooComplex> {
        self.count_operator()?;
        self.push_prefix(prec)
    }

    /// A prefix operator, without counting it.
    fn push_prefix(&mut self, prec: u8) -> Result<(), TooComplex> {
        self.ops.push(PendingOp { prec, unary: true });
        // Each pending prefix operator will be one level above the operand.
        let pending = self.ops.len() - self.top().op_base;
        self.check_height(pending + 1)?;
        self.top().expect_operand = true;
        Ok(())
    }

    /// A set operation, join or `FROM` list entry.
    fn relation(&mut self) -> Result<(), TooComplex> {
        self.count_operator()?;
        let top = self.top();
        top.relations += 1;
        // n set operations or joins make a tree n + 1 deep.
        let height = top.relations + 1;
        self.check_height(height)
    }

    /// Applies pending operators that bind at least as tightly as `prec`.
    fn reduce_while(&mut self, prec: u8) -> Result<(), TooComplex> {
        let base = self.top().op_base;
        while self.ops.len() > base && self.ops.last().is_some_and(|op| op.prec >= prec) {
            self.reduce_one()?;
        }
        Ok(())
    }

    fn reduce_one(&mut self) -> Result<(), TooComplex> {
        let Some(op) = self.ops.pop() else {
            return Ok(());
        };
        let base = self.top().operand_base;
        let pop = |operands: &mut Vec<usize>| {
            if operands.len() > base {
                operands.pop().unwrap_or(1)
            } else {
                1
            }
        };
        let height = if op.unary {
            pop(&mut self.operands) + 1
        } else {
            let right = pop(&mut self.operands);
            let left = pop(&mut self.operands);
            left.max(right) + 1
        };
        self.check_height(height)?;
        self.operands.push(height);
        Ok(())
    }

    /// Ends the current expression of the top group.
    fn finish_item(&mut self) -> Result<(), TooComplex> {
        self.reduce_while(0)?;
        let base = self.top().operand_base;
        let height = self.operands.drain(base..).max().unwrap_or(0);
        let top = self.top();
        top.items_max = top.items_max.max(height);
        top.expect_operand = true;
        top.negated = false;
        top.after_dot = false;
        Ok(())
    }

    fn open_paren(&mut self, prev: Prev<'_>) -> Result<(), TooComplex> {
        let top = self.top();
        if top.expect_operand || top.after_dot {
            return self.open(GroupKind::Parens, false);
        }
        let callee = match prev {
            Prev::Word(word) => Some(!NOT_CALLS.iter().any(|k| word.eq_ignore_ascii_case(k))),
            Prev::QuotedIdent => Some(true),
            Prev::Other => None,
        };
        let Some(call) = callee else {
            // `(a) (b)`: a new expression.
            self.finish_item()?;
            return self.open(GroupKind::Parens, false);
        };
        // The name and its arguments are one operand, pushed at the close.
        let base = self.top().operand_base;
        if self.operands.len() > base {
            self.operands.pop();
        }
        self.top().expect_operand = true;
        if matches!(prev, Prev::Word(w) if w.eq_ignore_ascii_case("as")) {
            // `WITH a AS (...)`, `(...) AS b (...)`: another relation.
            self.relation()?;
        }
        if call {
            self.count_operator()?;
        }
        self.open(GroupKind::Parens, call)
    }

    fn open(&mut self, kind: GroupKind, call: bool) -> Result<(), TooComplex> {
        if call {
            self.calls_open += 1;
            if self.calls_open > self.limits.function_nesting {
                return Err(TooComplex::FunctionNesting {
                    limit: self.limits.function_nesting,
                });
            }
        }
        let group = Group::new(kind, call, self.operands.len(), self.ops.len());
        self.groups.push(group);
        // Each open group is one level above what it holds.
        self.check_height(1)
    }

    fn close(&mut self) -> Result<(), TooComplex> {
        if self.groups.len() == 1 {
            // Unbalanced: the parser reports it.
            return Ok(());
        }
        self.finish_item()?;
        let Some(group) = self.groups.pop() else {
            return Ok(());
        };
        self.operands.truncate(group.operand_base);
        self.ops.truncate(group.op_base);
        if group.call {
            self.calls_open -= 1;
        }
        let height = group.items_max + group.relations + 1;
        self.top().after_dot = false;
        self.operand(height)
    }

    /// Ends a statement (at `;` or the end of the text): the next one
    /// starts from zero.
    fn end_statement(&mut self) -> Result<(), TooComplex> {
        while self.groups.len() > 1 {
            self.close()?;
        }
        self.finish_item()?;
        let top = self.top();
        top.items_max = 0;
        top.relations = 0;
        top.in_from = false;
        self.operands.clear();
        self.ops.clear();
        self.operators = 0;
        self.list_items = 0;
        self.sign_pending = false;
        self.calls_open = 0;
        Ok(())
    }
}

/// Binding power of a symbolic binary operator.
fn operator_precedence(op: &str) -> u8 {
    match op {
        "=" | "<" | ">" | "<=" | ">=" | "<>" | "!=" => PREC_COMPARE,
        "+" | "-" => PREC_ADD,
        "*" | "/" | "%" => PREC_MUL,
        "^" => PREC_POW,
        _ => PREC_OTHER,
    }
}

#[cfg(test)]
mod tests;
