//! Size bounds of Milvus filter expressions, on their tokens and on the
//! DataFusion expression they lower to.
//!
//! The filter parser keeps operators on an explicit stack and chains of one
//! precedence level flat, and [`super::MAX_DEPTH`] bounds its nesting, so
//! the filter's own tree is safe to build; what is not is the expression it
//! lowers to, which DataFusion's planner and optimizer walk recursively:
//! an arithmetic chain `a + 1 + 1 ...` lowers to a left-deep tree as deep as
//! it is long. So:
//! - [`check_tokens`] bounds the operators of the filter on its tokens,
//!   before its tree is built ([`MAX_FILTER_OPERATORS`]; each becomes at
//!   least one operator of the lowered expression);
//! - [`check_lowered`] holds the lowered expression to the statement
//!   limits of `quiver_common::limits` (its height, its operators, its
//!   function calls nested in one another, its list items), less the
//!   headroom the door's own predicates (partition scope, ...) need in the
//!   plan around it ([`LOWERED_LIMITS`]), so that a filter is refused with
//!   a filter error naming the limit rather than overflowing a stack.
//!
//! Both errors are Milvus' 1100 (invalid parameter) through [`FilterError`].

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::Expr as DfExpr;
use quiver_common::limits::{
    MAX_EXPRESSION_DEPTH, MAX_EXPRESSION_OPERATORS, MAX_FUNCTION_NESTING, MAX_LIST_ITEMS,
};
use quiver_sql::complexity::ComplexityLimits;

use super::error::FilterError;
use super::lexer::{Tok, Token};

/// Most operators one filter may hold (comparisons, arithmetic, logical
/// operators, `in`, `like`, `is`): the SQL limit, as each of them becomes
/// at least one operator of the lowered expression.
pub const MAX_FILTER_OPERATORS: usize = MAX_EXPRESSION_OPERATORS;

/// The limits a lowered filter must meet: those of a statement, less what
/// the plan around the filter uses.
pub const LOWERED_LIMITS: ComplexityLimits = ComplexityLimits {
    depth: MAX_EXPRESSION_DEPTH - 4,
    operators: MAX_EXPRESSION_OPERATORS - 16,
    function_nesting: MAX_FUNCTION_NESTING,
    list_items: MAX_LIST_ITEMS,
};

fn is_operator(tok: &Tok) -> bool {
    matches!(
        tok,
        Tok::Eq
            | Tok::Ne
            | Tok::Lt
            | Tok::Le
            | Tok::Gt
            | Tok::Ge
            | Tok::Plus
            | Tok::Minus
            | Tok::Star
            | Tok::Slash
            | Tok::Percent
            | Tok::Pow
            | Tok::And
            | Tok::Or
            | Tok::Not
            | Tok::In
            | Tok::Like
            | Tok::Is
    )
}

/// Refuses a filter of more than [`MAX_FILTER_OPERATORS`] operators, at
/// the first one over.
pub(super) fn check_tokens(tokens: &[Token]) -> Result<(), FilterError> {
    let mut operators = 0usize;
    for token in tokens.iter().filter(|t| is_operator(&t.tok)) {
        operators += 1;
        if operators > MAX_FILTER_OPERATORS {
            return Err(FilterError::new(
                token.pos,
                format!(
                    "expression is too complex: more than {MAX_FILTER_OPERATORS} operators \
                     (quiver limit max_expression_operators = {MAX_FILTER_OPERATORS})"
                ),
            ));
        }
    }
    Ok(())
}

/// What a lowered expression is made of, as [`check_lowered`] measures it.
#[derive(Debug, Default)]
struct Measure {
    /// Nodes with operands: operators, function calls, casts, `IN`, ...
    operators: usize,
    /// Deepest nesting of function calls.
    function_nesting: usize,
    /// `IN` list items and function arguments.
    list_items: usize,
}

impl Measure {
    /// The height of `expr` (a leaf is 1), adding its nodes to the counts;
    /// `calls` function calls enclose it.
    fn height(&mut self, expr: &DfExpr, calls: usize) -> usize {
        let calls = match expr {
            DfExpr::ScalarFunction(call) => {
                self.list_items += call.args.len();
                calls + 1
            }
            DfExpr::InList(list) => {
                self.list_items += list.list.len();
                calls
            }
            _ => calls,
        };
        self.function_nesting = self.function_nesting.max(calls);
        let mut highest_child = 0;
        // The closure never fails: the walk cannot end early.
        let _ = expr.apply_children(|child| {
            highest_child = highest_child.max(self.height(child, calls));
            Ok(TreeNodeRecursion::Continue)
        });
        if highest_child > 0 {
            self.operators += 1;
        }
        highest_child + 1
    }
}

/// Refuses a lowered filter over [`LOWERED_LIMITS`]. Its height is bounded
/// before it is built (the filter's nesting by [`super::MAX_DEPTH`], its
/// chains by [`MAX_FILTER_OPERATORS`]), so measuring it recursively is
/// safe.
pub fn check_lowered(expr: &DfExpr) -> Result<(), FilterError> {
    let mut measure = Measure::default();
    let height = measure.height(expr, 0);
    let limits = LOWERED_LIMITS;
    // (measured, its limit, what is over it, the setting, the statement limit)
    let checks = [
        (
            height,
            limits.depth,
            "nests more than {} levels deep",
            "max_expression_depth",
            MAX_EXPRESSION_DEPTH,
        ),
        (
            measure.operators,
            limits.operators,
            "holds more than {} operators",
            "max_expression_operators",
            MAX_EXPRESSION_OPERATORS,
        ),
        (
            measure.function_nesting,
            limits.function_nesting,
            "nests function calls more than {} deep",
            "max_function_nesting",
            MAX_FUNCTION_NESTING,
        ),
        (
            measure.list_items,
            limits.list_items,
            "holds more than {} list items",
            "max_list_items",
            MAX_LIST_ITEMS,
        ),
    ];
    for (measured, limit, what, name, statement_limit) in checks {
        if measured > limit {
            let what = what.replace("{}", &limit.to_string());
            return Err(too_complex(what, name, statement_limit, limit));
        }
    }
    Ok(())
}

/// The filter error of a lowered filter that `what` (is over `limit`, the
/// statement limit `name` less the request's headroom).
fn too_complex(what: String, name: &str, statement_limit: usize, limit: usize) -> FilterError {
    let reserved = statement_limit - limit;
    let headroom = if reserved > 0 {
        format!(", less {reserved} for the request's own conditions")
    } else {
        String::new()
    };
    FilterError::new(
        0,
        format!(
            "expression is too complex: it {what} \
             (quiver limit {name} = {statement_limit}{headroom})"
        ),
    )
}

#[cfg(test)]
mod tests;
