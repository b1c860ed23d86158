//! The access layer without a protocol: statements through `Instance`.

mod support;

use support::{run, session};

use std::sync::Arc;

use arrow::array::RecordBatch;
use quiver_cluster::Engine;
use quiver_common::config::QuiverConfig;
use quiver_common::status::StatusCode;
use quiver_sql::handler::Session;
use quiver_sql::Instance;

async fn instance(dir: &std::path::Path) -> Arc<Instance> {
    instance_and_engine(dir).await.0
}

/// The instance and the engine that serves its roles in process.
async fn instance_and_engine(dir: &std::path::Path) -> (Arc<Instance>, Arc<Engine>) {
    let mut config = QuiverConfig {
        data_dir: dir.to_path_buf(),
        ..Default::default()
    };
    config.segment.seal_rows = 3;
    let engine = Engine::open(config).await.unwrap();
    (Arc::new(Instance::new(engine.clone())), engine)
}

async fn query(instance: &Instance, session: &mut Session, sql: &str) -> String {
    text(&run(instance, session, sql).await.unwrap())
}

fn text(batches: &[RecordBatch]) -> String {
    arrow::util::pretty::pretty_format_batches(batches)
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn explain_shows_the_vector_search_rewrite() {
    let dir = tempfile::tempdir().unwrap();
    let instance = instance(dir.path()).await;
    let mut s = session(&instance).await;
    run(
        &instance,
        &mut s,
        "CREATE TABLE e (id BIGINT PRIMARY KEY, c INTEGER, v vector(2))",
    )
    .await
    .unwrap();
    run(
        &instance,
        &mut s,
        "INSERT INTO e VALUES (1, 1, '[0,0]'), (2, 2, '[1,1]'), (3, 1, '[2,2]'), (4, 2, '[3,3]')",
    )
    .await
    .unwrap();
    let plan = query(
        &instance,
        &mut s,
        "EXPLAIN SELECT id FROM e WHERE c = 1 ORDER BY v <-> '[0,0]' LIMIT 2",
    )
    .await;
    assert!(
        plan.contains("VectorSearch: table=e, column=v, metric=l2_distance, k=2"),
        "{plan}"
    );
    assert!(plan.contains("VectorSearchExec"), "{plan}");
    assert!(plan.contains("filter"), "{plan}");
    let analyzed = query(
        &instance,
        &mut s,
        "EXPLAIN ANALYZE SELECT id FROM e ORDER BY v <-> '[0,0]' LIMIT 2",
    )
    .await;
    assert!(analyzed.contains("rows_scanned=4"), "{analyzed}");
    let rows = query(
        &instance,
        &mut s,
        "SELECT id FROM e WHERE c = 1 ORDER BY v <-> '[0,0]' LIMIT 2",
    )
    .await;
    assert!(rows.contains("| 1  |") && rows.contains("| 3  |"), "{rows}");
}

/// A search's query vector may come from a scalar subquery: it runs once,
/// before the search, which then uses the index (PostgreSQL's InitPlan);
/// no row gives a NULL vector, more than one row PostgreSQL's 21000.
#[tokio::test]
async fn a_scalar_subquery_gives_a_search_its_query_vector() {
    let dir = tempfile::tempdir().unwrap();
    let instance = instance(dir.path()).await;
    let mut s = session(&instance).await;
    run(
        &instance,
        &mut s,
        "CREATE TABLE e (id BIGINT PRIMARY KEY, v vector(2)); \
         INSERT INTO e VALUES (1, '[0,0]'), (2, '[5,5]'), (3, '[1,1]'), (4, '[6,5]'), (5, '[9,9]'); \
         CREATE INDEX ON e USING hnsw (v vector_l2_ops)",
    )
    .await
    .unwrap();
    let search = "SELECT id FROM e ORDER BY v <-> (SELECT v FROM e WHERE id = 2) LIMIT 2";
    let plan = query(&instance, &mut s, &format!("EXPLAIN {search}")).await;
    assert!(plan.contains("VectorSearchExec"), "{plan}");
    assert!(!plan.contains("SortExec"), "{plan}");
    let rows = query(&instance, &mut s, search).await;
    assert_eq!(ids_of(&rows), ["2", "4"], "{rows}");
    // Under a cast, and in the select list as well as the ORDER BY.
    let rows = query(
        &instance,
        &mut s,
        "SELECT id, v <-> (SELECT v FROM e WHERE id = 5)::vector AS d FROM e ORDER BY d LIMIT 1",
    )
    .await;
    assert_eq!(ids_of(&rows), ["5"], "{rows}");
    let error = run(
        &instance,
        &mut s,
        "SELECT id FROM e ORDER BY v <-> (SELECT v FROM e WHERE id > 1) LIMIT 2",
    )
    .await
    .unwrap_err();
    assert_eq!(error.status_code(), StatusCode::CardinalityViolation);
    assert_eq!(
        error.to_string(),
        "more than one row returned by a subquery used as an expression"
    );
    // No row: the distance is NULL for every row, and the rows come anyway.
    let rows = query(
        &instance,
        &mut s,
        "SELECT count(*) FROM (SELECT id FROM e ORDER BY v <-> (SELECT v FROM e WHERE id = 99) LIMIT 2) s",
    )
    .await;
    assert!(rows.contains("| 2 "), "{rows}");
}

/// "For each row, its k nearest": a LATERAL subquery ordered by the
/// distance to the outer row's vector is one lateral search — the search
/// planned once over the index and run for each probe row — and gives
/// each probe what its own search gives. A NULL probe gets no rows (as
/// pgvector's index scan gives none).
#[tokio::test]
async fn a_lateral_join_searches_the_index_for_each_probe() {
    let dir = tempfile::tempdir().unwrap();
    let instance = instance(dir.path()).await;
    let mut s = session(&instance).await;
    run(
        &instance,
        &mut s,
        "CREATE TABLE items (id BIGINT PRIMARY KEY, v vector(2)); \
         INSERT INTO items VALUES (1, '[0,0]'), (2, '[5,5]'), (3, '[1,1]'), (4, '[6,5]'), \
         (5, '[9,9]'), (6, '[0,1]'), (7, '[8,9]'); \
         CREATE INDEX ON items USING hnsw (v vector_l2_ops); \
         CREATE TABLE probes (pid BIGINT PRIMARY KEY, q vector(2)); \
         INSERT INTO probes VALUES (1, '[0,0]'), (2, '[9,9]'), (3, NULL), (4, '[5,5]')",
    )
    .await
    .unwrap();
    let lateral = "SELECT p.pid, nn.id FROM probes p CROSS JOIN LATERAL \
                   (SELECT id FROM items ORDER BY items.v <-> p.q LIMIT 2) nn ORDER BY 1, 2";
    let plan = query(&instance, &mut s, &format!("EXPLAIN {lateral}")).await;
    assert!(plan.contains("LateralSearch: probe=p.q"), "{plan}");
    assert!(plan.contains("LateralSearchExec"), "{plan}");
    assert!(plan.contains("VectorSearchExec"), "{plan}");
    let rows = query(&instance, &mut s, lateral).await;
    let pairs: Vec<String> = rows
        .lines()
        .skip(3)
        .filter(|l| l.starts_with("| "))
        .map(|l| {
            l.split_whitespace()
                .filter(|w| *w != "|")
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect();
    assert_eq!(pairs, ["1,1", "1,6", "2,5", "2,7", "4,2", "4,4"], "{rows}");
    // The distance in the select list, ordered by its alias, a comma join,
    // a filter inside the subquery.
    let rows = query(
        &instance,
        &mut s,
        "SELECT p.pid, nn.id, nn.d FROM probes p, LATERAL \
         (SELECT id, v <-> p.q AS d FROM items WHERE id <> 5 ORDER BY d LIMIT 1) nn ORDER BY 1",
    )
    .await;
    let firsts: Vec<String> = ids_of(&rows);
    assert_eq!(firsts, ["1", "2", "4"], "{rows}");
    assert!(rows.contains("| 2   | 7  | 1.0 |"), "{rows}");
}

/// The query vector from a CTE joined to the table, the join sorted by
/// the distance: the CTE's rows are the probes of a lateral search over
/// the index (not a cross join of exact distances), with or without a
/// filter on the table.
#[tokio::test]
async fn a_join_sorted_by_distance_searches_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let instance = instance(dir.path()).await;
    let mut s = session(&instance).await;
    run(
        &instance,
        &mut s,
        "CREATE TABLE items (id BIGINT PRIMARY KEY, cat INTEGER, v vector(2)); \
         INSERT INTO items VALUES (1, 1, '[0,0]'), (2, 2, '[5,5]'), (3, 1, '[1,1]'), (4, 2, '[6,5]'), \
         (5, 1, '[9,9]'), (6, 2, '[0,1]'), (7, 1, '[8,9]'); \
         CREATE INDEX ON items USING hnsw (v vector_l2_ops)",
    )
    .await
    .unwrap();
    for (filter, expected) in [
        ("", ["2", "4", "7"]),
        ("WHERE items.cat = 1", ["7", "3", "5"]),
    ] {
        let sql = format!(
            "WITH q AS (SELECT v FROM items WHERE id = 2) SELECT items.id FROM items, q \
             {filter} ORDER BY items.v <-> q.v, items.id LIMIT 3"
        );
        let plan = query(&instance, &mut s, &format!("EXPLAIN {sql}")).await;
        assert!(plan.contains("LateralSearchExec"), "{plan}");
        assert!(plan.contains("VectorSearchExec"), "{plan}");
        assert!(!plan.contains("CrossJoinExec"), "{plan}");
        let rows = query(&instance, &mut s, &sql).await;
        assert_eq!(ids_of(&rows), expected, "{rows}");
    }
}

/// The first column of a pretty-printed result, row by row.
fn ids_of(pretty: &str) -> Vec<String> {
    pretty
        .lines()
        .skip(3)
        .filter_map(|l| l.strip_prefix("| ")?.split(' ').next().map(str::to_string))
        .collect()
}

/// A search emits its rows by distance, then primary key, and says so: the
/// sort planned above it is dropped (a LIMIT remains), and the rows come out
/// exactly as that sort would order them, ties included, across segments.
/// An order the search does not give (descending) keeps its sort.
#[tokio::test]
async fn a_search_needs_no_sort_above_it() {
    let dir = tempfile::tempdir().unwrap();
    let instance = instance(dir.path()).await;
    let mut s = session(&instance).await;
    run(
        &instance,
        &mut s,
        "CREATE TABLE t (id BIGINT PRIMARY KEY, v vector(2))",
    )
    .await
    .unwrap();
    // Segments seal every 3 rows: ties span segments, inserted out of order.
    run(
        &instance,
        &mut s,
        "INSERT INTO t VALUES (9, '[1,0]'), (4, '[0,1]'), (7, '[0,0]'), (2, '[1,0]'), \
         (8, '[0,1]'), (1, '[5,5]'), (3, '[0,-1]'), (6, NULL), (5, NULL)",
    )
    .await
    .unwrap();
    let search = "SELECT id FROM t ORDER BY v <-> '[0,0]' LIMIT 8";
    let plan = query(&instance, &mut s, &format!("EXPLAIN {search}")).await;
    assert!(plan.contains("VectorSearchExec"), "{plan}");
    assert!(!plan.contains("SortExec"), "{plan}");
    assert!(plan.contains("GlobalLimitExec"), "{plan}");
    let ids = |out: &str| -> Vec<String> {
        out.lines()
            .filter_map(|l| l.strip_prefix("| ")?.split(' ').next().map(str::to_string))
            .filter(|v| v.parse::<i64>().is_ok())
            .collect()
    };
    let got = ids(&query(&instance, &mut s, search).await);
    assert_eq!(got, ["7", "2", "3", "4", "8", "9", "1", "5"], "{got:?}");
    // With the distance shown, a projection sits between: still no sort.
    let shown = "SELECT id, v <-> '[0,0]' AS d FROM t ORDER BY d LIMIT 3";
    let plan = query(&instance, &mut s, &format!("EXPLAIN {shown}")).await;
    assert!(!plan.contains("SortExec"), "{plan}");
    assert_eq!(ids(&query(&instance, &mut s, shown).await), ["7", "2", "3"]);
    let farthest = "SELECT id FROM t ORDER BY v <-> '[0,0]' DESC LIMIT 2";
    let plan = query(&instance, &mut s, &format!("EXPLAIN {farthest}")).await;
    assert!(plan.contains("SortExec"), "{plan}");
}

#[tokio::test]
async fn errors_carry_status_codes() {
    let dir = tempfile::tempdir().unwrap();
    let instance = instance(dir.path()).await;
    let mut s = session(&instance).await;
    run(
        &instance,
        &mut s,
        "CREATE TABLE e (id BIGINT PRIMARY KEY, v vector(2))",
    )
    .await
    .unwrap();
    let cases = [
        (
            "INSERT INTO e VALUES (1, '[1,2,3]')",
            StatusCode::DimensionMismatch,
        ),
        ("SELECT * FROM missing", StatusCode::TableNotFound),
        ("SELECT nope FROM e", StatusCode::ColumnNotFound),
        (
            "SELECT '[1,x]'::vector",
            StatusCode::InvalidTextRepresentation,
        ),
        ("CREATE INDEX ON e USING gin (v)", StatusCode::Unsupported),
        (
            "CREATE INDEX ON e USING hnsw (v vector_l2_ops) WITH (m = 1000)",
            StatusCode::InvalidParameter,
        ),
    ];
    for (sql, code) in cases {
        let err = run(&instance, &mut s, sql).await.unwrap_err();
        assert_eq!(err.status_code(), code, "{sql}: {err}");
    }
    run(&instance, &mut s, "INSERT INTO e VALUES (1, '[1,2]')")
        .await
        .unwrap();
    let err = run(&instance, &mut s, "INSERT INTO e VALUES (1, '[1,2]')")
        .await
        .unwrap_err();
    assert_eq!(err.status_code(), StatusCode::UniqueViolation, "{err}");
}

#[tokio::test]
async fn data_survives_restart_through_segments_and_wal() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (instance, engine) = instance_and_engine(dir.path()).await;
        let mut s = session(&instance).await;
        run(
            &instance,
            &mut s,
            "CREATE TABLE r (id BIGINT PRIMARY KEY, v vector(2))",
        )
        .await
        .unwrap();
        for i in 0..10 {
            run(
                &instance,
                &mut s,
                &format!("INSERT INTO r VALUES ({i}, '[{i},0]')"),
            )
            .await
            .unwrap();
        }
        engine.maintain().await.unwrap();
        run(&instance, &mut s, "DELETE FROM r WHERE id < 3")
            .await
            .unwrap();
        run(&instance, &mut s, "INSERT INTO r VALUES (100, '[0,0]')")
            .await
            .unwrap();
        // no shutdown: the tail is only in the WAL
    }
    let (instance, engine) = instance_and_engine(dir.path()).await;
    assert!(
        engine.recovery.segments_loaded >= 2,
        "{:?}",
        engine.recovery
    );
    let mut s = session(&instance).await;
    let out = query(
        &instance,
        &mut s,
        "SELECT count(*) AS n, min(id) AS lo, max(id) AS hi FROM r",
    )
    .await;
    assert!(out.contains("| 8 | 3  | 100 |"), "{out}");
    let out = query(
        &instance,
        &mut s,
        "SELECT id FROM r ORDER BY v <-> '[0,0]' LIMIT 2",
    )
    .await;
    assert!(out.contains("| 100 |") && out.contains("| 3   |"), "{out}");
}

/// The session a front end holds is opaque: it shows the user, settings
/// and timeouts the instance keeps, and the instance refuses a session some
/// other handler opened.
#[tokio::test]
async fn sessions_are_opaque_handles_of_their_handler() {
    use quiver_sql::handler::{QueryHandler, SessionState};
    use quiver_sql::SqlError;

    struct Foreign;
    impl SessionState for Foreign {
        fn user(&self) -> &str {
            "foreign"
        }
        fn memory_pool(&self) -> Arc<dyn datafusion::execution::memory_pool::MemoryPool> {
            Arc::new(datafusion::execution::memory_pool::UnboundedMemoryPool::default())
        }
    }

    let dir = tempfile::tempdir().unwrap();
    let instance = instance(dir.path()).await;
    let mut s = session(&instance).await;
    assert_eq!(s.user(), "t");
    assert_eq!(s.statement_timeout(), None);
    run(&instance, &mut s, "SET statement_timeout = '2s'")
        .await
        .unwrap();
    assert_eq!(
        s.statement_timeout(),
        Some(std::time::Duration::from_secs(2))
    );
    assert_eq!(s.setting("STATEMENT_TIMEOUT"), Some("2s"));
    assert!(s.state::<Foreign>().is_none());

    let mut foreign = Session::new(Foreign);
    let statement = instance.parse("SELECT 1").unwrap().remove(0);
    match instance.execute(&mut foreign, &statement, None).await {
        Err(err @ SqlError::Internal(_)) => {
            assert_eq!(err.status_code(), StatusCode::Internal);
        }
        Err(other) => panic!("expected an internal error, got {other:?}"),
        Ok(_) => panic!("a foreign session ran a statement"),
    }
}

/// Typed search knobs set what `SET hnsw.ef_search` / `SET ivfflat.probes`
/// set, with the same checks; `None` goes back to the default.
#[tokio::test]
async fn typed_search_knobs_are_the_session_settings() {
    use quiver_sql::handler::{QueryHandler, SearchKnobs};

    let dir = tempfile::tempdir().unwrap();
    let instance = instance(dir.path()).await;
    let mut s = session(&instance).await;
    let knobs = SearchKnobs {
        ef_search: Some(77),
        probes: Some(5),
    };
    instance.set_search_knobs(&mut s, knobs).unwrap();
    assert!(query(&instance, &mut s, "SHOW hnsw.ef_search")
        .await
        .contains("| 77 "));
    assert!(query(&instance, &mut s, "SHOW ivfflat.probes")
        .await
        .contains("| 5 "));
    let too_big = SearchKnobs {
        ef_search: Some(5000),
        probes: None,
    };
    let err = instance.set_search_knobs(&mut s, too_big).unwrap_err();
    assert_eq!(err.status_code(), StatusCode::InvalidParameter, "{err}");
    instance
        .set_search_knobs(&mut s, SearchKnobs::default())
        .unwrap();
    assert!(query(&instance, &mut s, "SHOW hnsw.ef_search")
        .await
        .contains("| 40 "));
    assert!(query(&instance, &mut s, "SHOW ivfflat.probes")
        .await
        .contains("| 1 "));
}

/// A plain scan goes to the table's fragments with the query's filter
/// pushed down (the filter above it stays), and answers as before.
#[tokio::test]
async fn scans_push_their_filter_down_to_the_fragments() {
    let dir = tempfile::tempdir().unwrap();
    let instance = instance(dir.path()).await;
    let mut s = session(&instance).await;
    run(
        &instance,
        &mut s,
        "CREATE TABLE f (id BIGINT PRIMARY KEY, c INTEGER, t TEXT) WITH (shards = 2)",
    )
    .await
    .unwrap();
    run(
        &instance,
        &mut s,
        "INSERT INTO f VALUES (1, 1, 'a'), (2, 2, 'b'), (3, NULL, 'c'), (4, 2, 'd'), (5, 1, NULL), (6, 3, 'f'), (7, 2, 'g')",
    )
    .await
    .unwrap();
    let plan = query(&instance, &mut s, "EXPLAIN SELECT id FROM f WHERE c = 2").await;
    assert!(
        plan.contains("SegmentScanExec: table=f, fragments="),
        "{plan}"
    );
    assert!(plan.contains("filter=c@1 = 2"), "{plan}");
    let rows = query(
        &instance,
        &mut s,
        "SELECT id FROM f WHERE c = 2 ORDER BY id",
    )
    .await;
    let ids: Vec<&str> = rows
        .lines()
        .filter_map(|l| l.trim().strip_prefix('|'))
        .map(|l| l.trim_end_matches('|').trim())
        .filter(|v| v.parse::<i64>().is_ok())
        .collect();
    assert_eq!(ids, ["2", "4", "7"]);
    // NULL never passes; a filter on another column pushes down too.
    let rows = query(
        &instance,
        &mut s,
        "SELECT count(*) FROM f WHERE c <> 2 OR t IS NULL",
    )
    .await;
    assert!(rows.contains("| 3 "), "{rows}");
}
