//! The hostile corpus: requests that each used to crash, hang or exhaust
//! Quiver, sent through both doors. Each must be answered in time with an
//! error carrying the documented code (or a result where the request is
//! legitimate), and the server must stay up.

#![allow(clippy::result_large_err)] // tonic::Status is what the Milvus client returns.

use std::fmt;
use std::time::{Duration, Instant};

use milvus::proto::common::{KeyValuePair, PlaceholderGroup, PlaceholderType, PlaceholderValue};
use milvus::proto::milvus::milvus_service_client::MilvusServiceClient;
use milvus::proto::milvus::*;
use prost::Message;
use tonic::transport::Channel;

use super::server::Server;

/// A hostile request must be answered within this time (debug build).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);
const TABLE: &str = "fz";

#[derive(Default)]
pub struct Outcome {
    sql: usize,
    milvus: usize,
    slowest: Duration,
    slowest_case: String,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} SQL statements, {} Milvus requests; slowest {:?} ({})",
            self.sql, self.milvus, self.slowest, self.slowest_case
        )
    }
}

impl Outcome {
    fn timed(&mut self, case: &str, started: Instant) {
        let took = started.elapsed();
        if took > self.slowest {
            self.slowest = took;
            self.slowest_case = case.chars().take(80).collect();
        }
    }
}

pub async fn setup(server: &Server) {
    let client = server.client().await.unwrap();
    let rows = (1..=200)
        .map(|i| format!("({i}, 't{i}', '[{i},1,2,3]')"))
        .collect::<Vec<_>>()
        .join(",");
    client
        .batch_execute(&format!(
            "CREATE TABLE {TABLE} (id BIGINT PRIMARY KEY, tag TEXT, v vector(4));
             INSERT INTO {TABLE} VALUES {rows};
             CREATE INDEX ON {TABLE} USING hnsw (v vector_l2_ops);"
        ))
        .await
        .expect("the fuzz table is created");
    let mut milvus = milvus(server).await;
    let _ = milvus
        .load_collection(LoadCollectionRequest {
            collection_name: TABLE.into(),
            ..Default::default()
        })
        .await;
}

async fn milvus(server: &Server) -> MilvusServiceClient<Channel> {
    let channel = Channel::from_shared(format!("http://127.0.0.1:{}", server.milvus_port))
        .unwrap()
        .connect()
        .await
        .expect("the Milvus door accepts a client");
    MilvusServiceClient::new(channel)
        .max_decoding_message_size(256 << 20)
        .max_encoding_message_size(256 << 20)
}

fn chain(first: &str, op: &str, term: &str, terms: usize) -> String {
    let mut s = String::with_capacity(terms * (op.len() + term.len() + 2));
    s.push_str(first);
    for _ in 1..terms {
        s.push(' ');
        s.push_str(op);
        s.push(' ');
        s.push_str(term);
    }
    s
}

/// SQL that must be refused with one of `codes` (empty: any answer).
fn sql_cases() -> Vec<(String, &'static [&'static str])> {
    const TOO_COMPLEX: &[&str] = &["54001"];
    const TOO_DEEP: &[&str] = &["54001", "42601"];
    const ANY: &[&str] = &[];
    let n = 100_000;
    let mut cases: Vec<(String, &'static [&'static str])> = Vec::new();
    for op in ["+", "-", "*", "/", "%"] {
        cases.push((format!("SELECT {}", chain("1", op, "1", n)), TOO_COMPLEX));
    }
    cases.push((
        format!("SELECT {}", chain("'a'", "||", "'a'", n)),
        TOO_COMPLEX,
    ));
    for op in ["AND", "OR"] {
        cases.push((
            format!(
                "SELECT id FROM {TABLE} WHERE {}",
                chain("id > 0", op, "id > 0", n)
            ),
            TOO_COMPLEX,
        ));
    }
    for op in ["=", "<", "<>", ">=", "<->"] {
        cases.push((format!("SELECT {}", chain("1", op, "1", n)), TOO_COMPLEX));
    }
    cases.push((
        format!("SELECT {}1{}", "(".repeat(n), ")".repeat(n)),
        TOO_DEEP,
    ));
    cases.push((
        format!("SELECT {}1{}", "abs(".repeat(n), ")".repeat(n)),
        TOO_DEEP,
    ));
    cases.push((format!("SELECT {}1", "-".repeat(n)), TOO_DEEP));
    cases.push((format!("SELECT {}true", "NOT ".repeat(n)), TOO_DEEP));
    cases.push((
        format!(
            "SELECT CASE {} ELSE 0 END",
            "WHEN random() < 0 THEN 1 ".repeat(n)
        ),
        TOO_COMPLEX,
    ));
    // 50 MB statements: one literal (legitimate, answered or refused by a
    // limit) and a 50 MB chain.
    cases.push((format!("SELECT length('{}')", "x".repeat(50 << 20)), ANY));
    cases.push((
        format!("SELECT {}", chain("1", "+", "1", 12 << 20)),
        TOO_COMPLEX,
    ));
    // 10,000-character names.
    let long = "n".repeat(10_000);
    cases.push((
        format!("CREATE TABLE {long} (id BIGINT PRIMARY KEY)"),
        &["42622"],
    ));
    cases.push((format!("SELECT * FROM \"{long}\""), &["42622"]));
    // Huge LIMIT / OFFSET values around a vector search.
    for tail in [
        "LIMIT 9223372036854775807",
        "LIMIT 100000000",
        "LIMIT -1",
        "LIMIT 5 OFFSET 9223372036854775807",
        "LIMIT 99999999999999999999999",
    ] {
        cases.push((
            format!("SELECT id FROM {TABLE} ORDER BY v <-> '[1,1,2,3]' {tail}"),
            ANY,
        ));
    }
    // Big but flat lists are data, not expression chains: answered...
    let list = (0..n).map(|i| i.to_string()).collect::<Vec<_>>().join(",");
    cases.push((
        format!("SELECT count(*) FROM {TABLE} WHERE id IN ({list})"),
        ANY,
    ));
    // ... up to the list-item limit: a 20 MB list is refused.
    cases.push((
        format!(
            "SELECT count(*) FROM {TABLE} WHERE id IN (1{})",
            ",1".repeat(10_000_000)
        ),
        TOO_DEEP,
    ));
    cases
}

pub async fn run(server: &Server) -> Outcome {
    let mut outcome = Outcome::default();
    for (sql, codes) in sql_cases() {
        let client = server.client().await.expect("a client connects");
        let started = Instant::now();
        let answer = tokio::time::timeout(ANSWER_TIMEOUT, client.simple_query(&sql))
            .await
            .unwrap_or_else(|_| panic!("no answer in time to {}", preview(&sql)));
        outcome.timed(&sql, started);
        outcome.sql += 1;
        if !codes.is_empty() {
            let err = answer
                .err()
                .unwrap_or_else(|| panic!("{} was accepted", preview(&sql)));
            let code = err.as_db_error().map(|d| d.code().code().to_string());
            assert!(
                code.as_deref().is_some_and(|c| codes.contains(&c)),
                "{}: {code:?} {err:?}",
                preview(&sql)
            );
        }
        server.assert_healthy(&format!("after {}", preview(&sql)));
    }
    milvus_cases(server, &mut outcome).await;
    outcome
}

fn preview(text: &str) -> String {
    let head: String = text.chars().take(60).collect();
    format!("{head}... ({} bytes)", text.len())
}

fn params(pairs: &[(&str, &str)]) -> Vec<KeyValuePair> {
    pairs
        .iter()
        .map(|(k, v)| KeyValuePair {
            key: k.to_string(),
            value: v.to_string(),
        })
        .collect()
}

fn search(nq: usize, pairs: &[(&str, &str)], filter: &str) -> SearchRequest {
    let vector: Vec<u8> = [1.0f32, 1.0, 2.0, 3.0]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    let group = PlaceholderGroup {
        placeholders: vec![PlaceholderValue {
            tag: "$0".into(),
            r#type: PlaceholderType::FloatVector as i32,
            values: vec![vector; nq],
            ..Default::default()
        }],
    };
    SearchRequest {
        collection_name: TABLE.into(),
        dsl: filter.into(),
        search_input: Some(search_request::SearchInput::PlaceholderGroup(
            group.encode_to_vec(),
        )),
        search_params: params(pairs),
        nq: nq as i64,
        ..Default::default()
    }
}

async fn milvus_cases(server: &Server, outcome: &mut Outcome) {
    let mut client = milvus(server).await;
    let with = |topk: &'static str, rest: &[(&'static str, &'static str)]| {
        let mut pairs = vec![("topk", topk), ("metric_type", "L2"), ("anns_field", "v")];
        pairs.extend_from_slice(rest);
        pairs
    };
    // Searches that must be refused (status code not 0).
    let refused: Vec<(&str, SearchRequest)> = vec![
        (
            "topk u64::MAX + offset",
            search(1, &with("18446744073709551615", &[("offset", "1")]), ""),
        ),
        ("topk 16385", search(1, &with("16385", &[]), "")),
        (
            "topk + offset over 16384",
            search(1, &with("16384", &[("offset", "1")]), ""),
        ),
        ("negative topk", search(1, &with("-1", &[]), "")),
        ("nq 16385", search(16_385, &with("1", &[]), "")),
        (
            "params json",
            search(1, &with("1", &[("params", "{\"ef\": ")]), ""),
        ),
        (
            "ef -1",
            search(1, &with("1", &[("params", "{\"ef\": -1}")]), ""),
        ),
        (
            "ef 1e8",
            search(1, &with("1", &[("params", "{\"ef\": 1e8}")]), ""),
        ),
        (
            "ef 2^31",
            search(1, &with("1", &[("params", "{\"ef\": 2147483648}")]), ""),
        ),
        (
            "ef < k",
            search(1, &with("50", &[("params", "{\"ef\": 10}")]), ""),
        ),
        (
            "filter + chain 10^5",
            search(1, &with("1", &[]), &chain("id", "+", "1", 100_000)),
        ),
        (
            "filter nesting 10^5",
            search(
                1,
                &with("1", &[]),
                &format!("{}id == 1{}", "(".repeat(100_000), ")".repeat(100_000)),
            ),
        ),
        (
            "filter not x 10^5",
            search(
                1,
                &with("1", &[]),
                &format!("{}id == 1", "not ".repeat(100_000)),
            ),
        ),
    ];
    for (name, request) in refused {
        let started = Instant::now();
        let reply = tokio::time::timeout(ANSWER_TIMEOUT, client.search(request))
            .await
            .unwrap_or_else(|_| panic!("Milvus search `{name}` not answered in time"));
        outcome.timed(name, started);
        outcome.milvus += 1;
        let code = match reply {
            Ok(reply) => reply.into_inner().status.unwrap_or_default().code,
            Err(status) => status.code() as i32,
        };
        assert_ne!(code, 0, "Milvus search `{name}` was accepted");
        server.assert_healthy(&format!("after Milvus search `{name}`"));
    }
    // Filters of every shape through Query: answered (refused with 1100
    // when over the limits), never a crash.
    let filters = [
        vec!["id == 1"; 2_000].join(" or "),
        vec!["id == 1"; 100_000].join(" or "),
        vec!["id > 0"; 100_000].join(" and "),
        chain("id", "+", "1", 10_000),
        chain("id", "*", "1", 100_000),
        format!("{}id == 1{}", "(".repeat(100_000), ")".repeat(100_000)),
        format!("tag like \"{}\"", "%".repeat(60_000)),
    ];
    for filter in filters {
        let started = Instant::now();
        let reply = tokio::time::timeout(
            ANSWER_TIMEOUT,
            client.query(QueryRequest {
                collection_name: TABLE.into(),
                expr: filter.clone(),
                output_fields: vec!["id".into()],
                query_params: params(&[("limit", "10")]),
                ..Default::default()
            }),
        )
        .await
        .unwrap_or_else(|_| panic!("Milvus query {} not answered in time", preview(&filter)));
        outcome.timed(&filter, started);
        outcome.milvus += 1;
        if let Ok(reply) = reply {
            let code = reply.into_inner().status.unwrap_or_default().code;
            assert!(
                code == 0 || code == 1100,
                "{}: code {code}",
                preview(&filter)
            );
        }
        server.assert_healthy(&format!("after Milvus query {}", preview(&filter)));
    }
    // Names: 10,000 characters, and characters Milvus forbids.
    for name in ["c".repeat(10_000), "bad name!".to_string(), String::new()] {
        let reply = client
            .describe_collection(DescribeCollectionRequest {
                collection_name: name.clone(),
                ..Default::default()
            })
            .await;
        outcome.milvus += 1;
        if let Ok(reply) = reply {
            let code = reply.into_inner().status.unwrap_or_default().code;
            assert_ne!(code, 0, "describe of {} was accepted", preview(&name));
        }
    }
    // Query limit / offset far out of range.
    for (limit, offset) in [("18446744073709551615", "1"), ("16384", "1"), ("-5", "0")] {
        let reply = client
            .query(QueryRequest {
                collection_name: TABLE.into(),
                expr: "id > 0".into(),
                output_fields: vec!["id".into()],
                query_params: params(&[("limit", limit), ("offset", offset)]),
                ..Default::default()
            })
            .await;
        outcome.milvus += 1;
        if let Ok(reply) = reply {
            let code = reply.into_inner().status.unwrap_or_default().code;
            assert_ne!(code, 0, "query limit {limit} offset {offset} was accepted");
        }
    }
    server.assert_healthy("after the Milvus corpus");
}
