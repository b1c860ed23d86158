//! Milvus filters against the expression limits: hostile chains are
//! refused quickly with a message naming the limit (Milvus 1100), the
//! largest accepted ones lower to expressions within the statement limits.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::execution::SessionState;
use datafusion::logical_expr::Expr as DfExpr;

use super::super::{
    check_filter, filter_to_sql, FieldKind, FilterError, FilterField, Registry, MAX_EXPR_LEN,
};
use super::{Measure, LOWERED_LIMITS, MAX_FILTER_OPERATORS};
use crate::milvus::DoorError;

fn fields() -> Vec<FilterField<'static>> {
    vec![
        FilterField {
            name: "id",
            kind: FieldKind::Int,
        },
        FilterField {
            name: "flag",
            kind: FieldKind::Bool,
        },
        FilterField {
            name: "meta",
            kind: FieldKind::Json,
        },
    ]
}

/// A session's functions (the JSON getters among them), as the door's
/// sessions have them.
fn functions() -> SessionState {
    let mut state = SessionStateBuilder::new().with_default_features().build();
    datafusion_functions_json::register_all(&mut state).expect("JSON functions");
    state
}

/// Checks and lowers `expr` as the door does.
fn translate(expr: &str) -> Result<DfExpr, FilterError> {
    check_filter(expr, &fields(), &HashMap::new())?.lower(&Registry(&functions()))
}

/// A filter of `n` terms.
type Shape = fn(usize) -> String;

/// Filter shapes by their number of terms.
fn shapes() -> Vec<(&'static str, Shape)> {
    vec![
        ("or chain", |n| vec!["id == 1"; n].join(" or ")),
        ("and chain", |n| vec!["id > 0"; n].join(" and ")),
        ("+ chain", |n| format!("id{} > 0", " + 1".repeat(n))),
        ("* chain", |n| format!("id{} > 0", " * 1".repeat(n))),
        ("json or chain", |n| {
            vec!["meta[\"k\"] == 1"; n].join(" || ")
        }),
        ("in lists under and", |n| {
            vec!["id in [1, 2, 3]"; n].join(" && ")
        }),
    ]
}

/// The largest `n` whose shape translates, by bisection.
fn largest_accepted(shape: fn(usize) -> String) -> usize {
    let (mut ok, mut over) = (1, 4 * MAX_FILTER_OPERATORS);
    assert!(translate(&shape(ok)).is_ok());
    assert!(translate(&shape(over)).is_err());
    while over - ok > 1 {
        let mid = (ok + over) / 2;
        match translate(&shape(mid)) {
            Ok(_) => ok = mid,
            Err(_) => over = mid,
        }
    }
    ok
}

#[test]
fn the_issue_reports_are_refused_with_1100_naming_the_limit() {
    let or_chain = vec!["id==1"; 2000].join(" or ");
    let plus_chain = format!("id{} > 0", " + 1".repeat(10_000));
    for expr in [or_chain, plus_chain] {
        let start = Instant::now();
        let err = translate(&expr).unwrap_err();
        assert!(start.elapsed() < Duration::from_secs(1));
        assert!(
            err.message
                .contains("quiver limit max_expression_operators = 512"),
            "{}",
            err.message
        );
        let door = DoorError::from(err);
        assert_eq!(door.code, 1100);
        assert!(door.message.contains("too complex"), "{}", door.message);
    }
}

#[test]
fn operators_are_counted_before_the_tree_is_built() {
    let at_limit = vec!["flag"; MAX_FILTER_OPERATORS + 1].join(" or ");
    let over = format!("{at_limit} or not flag");
    // Under the operator limit, the limits of the lowered expression apply:
    // its operators (an `or` list lowers to a balanced tree)...
    assert!(translate(&at_limit)
        .unwrap_err()
        .message
        .contains("max_expression_operators"));
    // ...and its depth (an arithmetic chain lowers to a left-deep one).
    let deep = format!("id{} > 0", " + 1".repeat(MAX_FILTER_OPERATORS / 2));
    assert!(translate(&deep)
        .unwrap_err()
        .message
        .contains("max_expression_depth"));
    let err = filter_to_sql(&over, &fields(), &HashMap::new()).unwrap_err();
    assert!(
        err.message.contains("more than 512 operators"),
        "{}",
        err.message
    );
    // The position is that of the first operator over the limit.
    assert!(err.position > 0);
}

#[test]
fn hostile_filters_are_refused_quickly() {
    // Filters are at most MAX_EXPR_LEN bytes: the longest chains fit in it.
    let max_terms = |term: &str, op: &str| MAX_EXPR_LEN / (term.len() + op.len());
    let cases = [
        vec!["id==1"; max_terms("id==1", " or ")].join(" or "),
        vec!["flag"; max_terms("flag", "&&")].join("&&"),
        format!("id{} > 0", "+1".repeat(max_terms("1", "+") - 4)),
        format!("{}flag", "not ".repeat(max_terms("", "not ") - 2)),
        format!("{}flag{}", "(".repeat(30_000), ")".repeat(30_000)),
    ];
    for expr in &cases {
        assert!(expr.len() <= MAX_EXPR_LEN);
        let start = Instant::now();
        assert!(translate(expr).is_err(), "{}", &expr[..20]);
        let spent = start.elapsed();
        assert!(
            spent < Duration::from_millis(500),
            "{spent:?}: {}",
            &expr[..20]
        );
    }
}

#[test]
fn largest_accepted_filters_meet_the_statement_limits() {
    for (name, shape) in shapes() {
        let n = largest_accepted(shape);
        // Long enough for real filters...
        assert!(n >= 60, "{name}: only {n} terms");
        // ...and what is accepted, with the door's scope around it, is
        // within the statement limits.
        let lowered = translate(&shape(n)).unwrap();
        let scope = datafusion::logical_expr::col("$partition")
            .in_list(vec![datafusion::logical_expr::lit("_default")], false);
        let mut measure = Measure::default();
        let height = measure.height(&lowered.and(scope), 0);
        assert!(height <= LOWERED_LIMITS.depth + 4, "{name}: {height} deep");
        assert!(
            measure.operators <= LOWERED_LIMITS.operators + 16,
            "{name}: {} operators",
            measure.operators
        );
        let err = translate(&shape(n + 1)).unwrap_err();
        assert!(
            err.message.contains("quiver limit"),
            "{name}: {}",
            err.message
        );
    }
}

#[test]
fn the_lowered_tree_is_measured_node_by_node() {
    // `id + 1 + 1 > 0`: (((id + 1) + 1) > 0), four levels, three operators.
    let lowered = translate("id + 1 + 1 > 0").unwrap();
    let mut measure = Measure::default();
    assert_eq!(measure.height(&lowered, 0), 4);
    assert_eq!(measure.operators, 3);
    assert_eq!(measure.function_nesting, 0);
    // A JSON getter is a call with its column and key as arguments; `in`
    // adds its items.
    let lowered = translate("meta[\"k\"] in [1, 2, 3]").unwrap();
    let mut measure = Measure::default();
    measure.height(&lowered, 0);
    assert_eq!(measure.function_nesting, 1);
    assert_eq!(measure.list_items, 2 + 3);
}
