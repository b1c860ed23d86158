//! Milvus filters lowered straight to DataFusion expressions (the door's
//! typed plans) select exactly the rows their SQL translation selects,
//! through a real `Instance`: scalar fields, JSON paths read as numbers,
//! strings and booleans, missing keys, `in` lists of mixed types, `like`,
//! `is null`, `json_contains*`, `array_length`, arithmetic and ranges;
//! and a typed delete removes exactly what its filter selects.

use std::collections::HashMap;
use std::sync::Mutex;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use datafusion::common::Column;
use datafusion::logical_expr::Expr;
use futures::TryStreamExt;
use quiver_cluster::Engine;
use quiver_common::config::QuiverConfig;
use quiver_servers::milvus::filter::{filter_to_expr, filter_to_sql, FieldKind, FilterField};
use quiver_sql::handler::{Output, QueryHandler, Session, SessionInfo};
use quiver_sql::Instance;

mod support;
use support::SessionFunctions;

const ROWS: &str = r#"
    (1, 30, 'alice', 1.5, true, '{"a": 1, "s": "x", "b": true, "arr": [1, 2, 3], "tags": ["red", "blue"]}'),
    (2, 17, 'bob', -2.0, false, '{"a": 2.5, "s": "y", "b": false, "arr": [4], "tags": ["green"]}'),
    (3, 45, 'carol', 0.0, NULL, '{"a": "1", "arr": [], "tags": []}'),
    (4, NULL, 'dave', 10.25, true, '{"s": "x", "n": null}'),
    (5, 18, 'al%ce', 3.0, false, NULL),
    (6, 60, 'eve', NULL, true, '{"a": 9007199254740993, "arr": [1.0, 2.5], "tags": ["red"]}')
"#;

const FILTERS: &[&str] = &[
    "age > 18",
    "age >= 18 and age < 50",
    "18 <= age < 50",
    "not (age > 18)",
    "age in [17, 45, 99]",
    "age not in [17, 45]",
    "age + 2 * 3 > 30 or score < 0",
    "age % 2 == 0",
    "2 ** 3 < age",
    "-score > 1",
    "name like \"al%\"",
    "name like \"b__\"",
    "flag == true",
    "flag != false",
    "not flag",
    "age is null",
    "age is not null and flag",
    "meta[\"a\"] == 1",
    "meta[\"a\"] > 2",
    "meta[\"a\"] != 1",
    "meta[\"s\"] == \"x\"",
    "meta[\"s\"] like \"x%\"",
    "meta[\"b\"] == true",
    "meta[\"a\"] in [1, \"1\", 2.5]",
    "meta[\"a\"] not in [1, \"1\"]",
    "meta[\"a\"] == 9007199254740993",
    "meta[\"n\"] is null",
    "meta[\"n\"] is not null",
    "meta[\"arr\"][0] == 1",
    "json_contains(meta[\"tags\"], \"red\")",
    "json_contains_all(meta[\"arr\"], [1, 2])",
    "json_contains_any(meta[\"tags\"], [\"green\", \"blue\"])",
    "json_contains_any(meta[\"arr\"], [2.5, \"x\"])",
    "json_contains_all(meta[\"arr\"], [])",
    "array_length(meta[\"arr\"]) >= 2",
    "meta[\"a\"] + 1 > 2 and (score > 0 or name == \"eve\")",
    "age in []",
    "age not in []",
];

fn fields() -> Vec<FilterField<'static>> {
    vec![
        FilterField {
            name: "id",
            kind: FieldKind::Int,
        },
        FilterField {
            name: "age",
            kind: FieldKind::Int,
        },
        FilterField {
            name: "name",
            kind: FieldKind::String,
        },
        FilterField {
            name: "score",
            kind: FieldKind::Float,
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

/// `filter` lowered with the session's functions, as the door lowers it.
fn lower(
    instance: &Instance,
    session: &mut Session,
    filter: &str,
    fields: &[FilterField<'_>],
) -> Expr {
    let functions = SessionFunctions {
        instance,
        session: Mutex::new(session),
    };
    filter_to_expr(filter, fields, &HashMap::new(), &functions)
        .unwrap_or_else(|e| panic!("{filter}: {e:?}"))
}

async fn ids(output: Output) -> Vec<i64> {
    let Output::Rows { stream, .. } = output else {
        panic!("no rows");
    };
    let batches: Vec<RecordBatch> = stream.try_collect().await.unwrap();
    batches
        .iter()
        .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
        .collect()
}

#[tokio::test]
async fn lowered_filters_select_what_their_sql_selects() {
    let dir = tempfile::tempdir().unwrap();
    let config = QuiverConfig {
        data_dir: dir.path().to_path_buf(),
        ..Default::default()
    };
    let instance = Instance::new(Engine::open(config).await.unwrap());
    let mut session = instance
        .new_session(SessionInfo {
            user: "t".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let setup = format!(
        "CREATE TABLE t (id BIGINT PRIMARY KEY, age INT, name TEXT, score DOUBLE PRECISION, \
         flag BOOLEAN, meta JSON); INSERT INTO t VALUES {ROWS}"
    );
    for statement in instance.parse(&setup).unwrap() {
        instance
            .execute(&mut session, &statement, None)
            .await
            .unwrap();
    }
    let fields = fields();
    let templates = HashMap::new();
    let mut selective = 0;
    for filter in FILTERS {
        let predicate = filter_to_sql(filter, &fields, &templates).unwrap();
        let sql = format!("SELECT id FROM t WHERE {predicate} ORDER BY id");
        let statement = instance.parse(&sql).unwrap().remove(0);
        let by_sql = ids(instance
            .execute(&mut session, &statement, None)
            .await
            .unwrap())
        .await;

        let expr = lower(&instance, &mut session, filter, &fields);
        let id = Expr::Column(Column::new_unqualified("id"));
        let plan = instance
            .table_scan(&mut session, "public", "t")
            .await
            .unwrap()
            .filter(expr)
            .unwrap()
            .project(vec![id.clone()])
            .unwrap()
            .sort(vec![id.sort(true, false)])
            .unwrap()
            .build()
            .unwrap();
        let by_plan = ids(instance.execute_plan(&mut session, plan).await.unwrap()).await;
        assert_eq!(by_plan, by_sql, "{filter} (SQL: {predicate})");
        if !by_sql.is_empty() && by_sql.len() < 6 {
            selective += 1;
        }
    }
    // The corpus means something: most filters keep some rows, not all.
    assert!(selective * 4 >= FILTERS.len() * 3, "{selective} selective");

    // A typed delete removes exactly the rows the filter's SQL selects.
    let filter = "meta[\"a\"] != 1 and age > 17";
    let predicate = filter_to_sql(filter, &fields, &templates).unwrap();
    let select = |sql: String| instance.parse(&sql).unwrap().remove(0);
    let statement = select(format!("SELECT id FROM t WHERE {predicate} ORDER BY id"));
    let selected = ids(instance
        .execute(&mut session, &statement, None)
        .await
        .unwrap())
    .await;
    let expr = lower(&instance, &mut session, filter, &fields);
    let deleted = instance
        .delete_where(&mut session, "public", "t", expr)
        .await
        .unwrap();
    let statement = select("SELECT id FROM t ORDER BY id".to_string());
    let left = ids(instance
        .execute(&mut session, &statement, None)
        .await
        .unwrap())
    .await;
    assert_eq!(selected, [5, 6]);
    assert_eq!(deleted, selected.len());
    assert_eq!(left, [1, 2, 3, 4]);
}
