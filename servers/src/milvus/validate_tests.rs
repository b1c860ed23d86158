//! Unit tests of the Milvus door's request validation.

use super::*;

fn code_and_message(e: DoorError) -> (i32, String) {
    (e.code, e.message)
}

#[test]
fn collection_names_follow_milvus_rules() {
    assert!(collection_name("c_1").is_ok());
    assert!(collection_name("_x").is_ok());
    assert!(collection_name(&"a".repeat(255)).is_ok());
    let (code, msg) = code_and_message(collection_name(&"a".repeat(256)).unwrap_err());
    assert_eq!(code, 1100);
    assert!(
        msg.ends_with(
            "the length of a collection name must be less than 255 characters: invalid parameter"
        ),
        "{msg}"
    );
    let (code, msg) = code_and_message(collection_name(&"n".repeat(10_000)).unwrap_err());
    assert_eq!(code, 1100);
    assert!(msg.starts_with("Invalid collection name: nnn"), "{msg}");
    let (_, msg) = code_and_message(collection_name("1abc").unwrap_err());
    assert_eq!(
        msg,
        "Invalid collection name: 1abc. the first character of a collection name must be an underscore or letter: invalid parameter"
    );
    let (_, msg) = code_and_message(collection_name("a-b").unwrap_err());
    assert_eq!(
        msg,
        "Invalid collection name: a-b. collection name can only contain numbers, letters and underscores: invalid parameter"
    );
    let (_, msg) = code_and_message(collection_name("  ").unwrap_err());
    assert_eq!(
        msg,
        "collection name should not be empty: invalid parameter"
    );
    // Multi-byte characters are no letters.
    assert!(collection_name("café").is_err());
}

#[test]
fn alias_names_say_alias() {
    assert!(alias_name("al_1").is_ok());
    let (code, msg) = code_and_message(alias_name("9").unwrap_err());
    assert_eq!(code, 1100);
    assert!(msg.contains("collection alias"), "{msg}");
}

#[test]
fn partition_names_allow_digits_first_and_dashes() {
    for ok in ["p1", "1p", "a-b", "_x", "2024-01"] {
        assert!(partition_name(ok).is_ok(), "{ok}");
    }
    for bad in ["", "-p", "a b", "p.q"] {
        let (code, _) = code_and_message(partition_name(bad).unwrap_err());
        assert_eq!(code, 1100, "{bad}");
    }
    let (_, msg) = code_and_message(partition_name(&"p".repeat(256)).unwrap_err());
    assert!(
        msg.ends_with(
            "The length of a partition name must be less than 255 characters.: invalid parameter"
        ),
        "{msg}"
    );
}

#[test]
fn field_names_answer_field_name_invalid() {
    assert!(field_name("vec_1").is_ok());
    let (code, msg) = code_and_message(field_name("1b").unwrap_err());
    assert_eq!(code, 1701);
    assert_eq!(
        msg,
        "Invalid field name: 1b. The first character of a field name must be an underscore or letter.: field name invalid[field=1b]"
    );
    let (code, _) = code_and_message(field_name(&"f".repeat(256)).unwrap_err());
    assert_eq!(code, 1701);
}

#[test]
fn index_names_may_be_empty() {
    assert!(index_name("").is_ok());
    assert!(index_name("vec_idx").is_ok());
    let (code, msg) = code_and_message(index_name("bad-name").unwrap_err());
    assert_eq!(code, 1100);
    assert!(msg.starts_with("Invalid index name: bad-name."), "{msg}");
    assert!(index_name(&"i".repeat(256)).is_err());
}

#[test]
fn database_names_answer_invalid_database_name() {
    assert!(database_name("db_1").is_ok());
    let (code, msg) = code_and_message(database_name("d-b").unwrap_err());
    assert_eq!(code, 802);
    assert_eq!(
        msg,
        "database name can only contain numbers, letters and underscores: invalid database name[database=d-b]"
    );
    assert_eq!(database_name(&"d".repeat(256)).unwrap_err().code, 802);
    assert_eq!(database_name("").unwrap_err().code, 802);
}

#[test]
fn search_window_checks_each_and_the_sum_without_overflow() {
    assert_eq!(search_window(Some("10"), None).unwrap(), (10, 0));
    assert_eq!(search_window(Some("16384"), Some("0")).unwrap(), (16384, 0));
    assert_eq!(search_window(Some("1"), Some("16383")).unwrap(), (1, 16383));
    // The overflow of the issue: 2^64 - 1 with offset 1.
    let (code, msg) =
        code_and_message(search_window(Some("18446744073709551615"), Some("1")).unwrap_err());
    assert_eq!(code, 1100);
    assert_eq!(msg, "topk [18446744073709551615] is invalid");
    let (_, msg) = code_and_message(
        search_window(Some("9223372036854775807"), Some("9223372036854775807")).unwrap_err(),
    );
    assert_eq!(
        msg,
        "topk [9223372036854775807] is invalid, it should be in range [1, 16384], but got 9223372036854775807"
    );
    let (_, msg) = code_and_message(search_window(Some("1"), Some("16384")).unwrap_err());
    assert_eq!(
        msg,
        "offset+topk [16385] is invalid, it should be in range [1, 16384], but got 16385"
    );
    let (_, msg) = code_and_message(search_window(Some("3"), Some("-1")).unwrap_err());
    assert_eq!(
        msg,
        "offset [-1] is invalid, it should be in range [1, 16384], but got -1"
    );
    let (_, msg) = code_and_message(search_window(Some("0"), None).unwrap_err());
    assert!(msg.starts_with("topk [0] is invalid"), "{msg}");
    let (_, msg) = code_and_message(search_window(Some("3"), Some("x")).unwrap_err());
    assert_eq!(msg, "offset [x] is invalid");
    let (_, msg) = code_and_message(search_window(None, None).unwrap_err());
    assert_eq!(msg, "topk not found in search_params");
    assert_eq!(search_window(Some("0x10"), None).unwrap(), (16, 0));
}

#[test]
fn hybrid_window_names_limit() {
    let (_, msg) =
        code_and_message(hybrid_window(Some("18446744073709551615"), Some("1")).unwrap_err());
    assert_eq!(msg, "limit [18446744073709551615] is invalid");
    let (_, msg) = code_and_message(hybrid_window(Some("16384"), Some("1")).unwrap_err());
    assert!(msg.starts_with("offset+limit [16385] is invalid"), "{msg}");
    assert_eq!(hybrid_window(Some("5"), Some("2")).unwrap(), (5, 2));
}

#[test]
fn query_window_checks_limit_offset_and_depth() {
    assert_eq!(query_window(None, None).unwrap(), (None, 0));
    assert_eq!(query_window(Some("10"), Some("5")).unwrap(), (Some(10), 5));
    assert_eq!(query_window(None, Some("5")).unwrap(), (None, 5));
    let (_, msg) = code_and_message(query_window(Some("16000"), Some("1000")).unwrap_err());
    assert_eq!(
        msg,
        "(offset+limit) should be in range [1, 16384], but got 17000"
    );
    let (_, msg) = code_and_message(
        query_window(Some("9223372036854775807"), Some("9223372036854775807")).unwrap_err(),
    );
    assert!(msg.ends_with("but got 9223372036854775807"), "{msg}");
    let (_, msg) = code_and_message(query_window(Some("3"), Some("-1")).unwrap_err());
    assert_eq!(msg, "offset [-1] is invalid, should be gte than 0");
    let (_, msg) = code_and_message(query_window(Some("0"), None).unwrap_err());
    assert_eq!(msg, "limit [0] is invalid, should be greater than 0");
    let (_, msg) = code_and_message(query_window(Some("1e3"), None).unwrap_err());
    assert_eq!(msg, "limit [1e3] is invalid");
}

#[test]
fn nq_is_bounded() {
    assert!(nq(1).is_ok());
    assert!(nq(16_384).is_ok());
    let (code, msg) = code_and_message(nq(16_385).unwrap_err());
    assert_eq!(code, 1100);
    assert_eq!(
        msg,
        "nq (number of search vector per search request) should be in range [1, 16384], but got 16385"
    );
    assert!(nq(0).is_err());
}

fn params_error(text: &str, kind: IndexKind, k: usize) -> String {
    search_params(Some(text), kind, k).unwrap_err().message
}

#[test]
fn hnsw_ef_is_checked_as_knowhere_does() {
    let knobs = search_params(Some(r#"{"ef": 64}"#), IndexKind::Hnsw, 10).unwrap();
    assert_eq!(knobs["ef"], 64);
    // Strings holding integers are taken, as knowhere's FormatAndCheck does.
    let knobs = search_params(Some(r#"{"ef": "32"}"#), IndexKind::Hnsw, 10).unwrap();
    assert_eq!(knobs["ef"], 32);
    assert_eq!(
        params_error(r#"{"ef": -1}"#, IndexKind::Hnsw, 10),
        "Out of range in json: param 'ef' (-1) should be in range [1, 2147483647]: invalid parameter"
    );
    assert_eq!(
        params_error(r#"{"ef": 1e8}"#, IndexKind::Hnsw, 10),
        "Type conflict in json: param 'ef' (100000000.0) should be integer: invalid parameter"
    );
    assert_eq!(
        params_error(r#"{"ef": 32.0}"#, IndexKind::Hnsw, 10),
        "Type conflict in json: param 'ef' (32.0) should be integer: invalid parameter"
    );
    assert!(
        params_error(r#"{"ef": true}"#, IndexKind::Hnsw, 10).contains("(true) should be integer")
    );
    assert!(
        params_error(r#"{"ef": null}"#, IndexKind::Hnsw, 10).contains("(null) should be integer")
    );
    assert!(
        params_error(r#"{"ef": 3000000000}"#, IndexKind::Hnsw, 10).starts_with(
            "Arithmetic overflow: param 'ef' (3000000000) should not bigger than 2147483647"
        )
    );
    assert!(
        params_error(r#"{"ef": 18446744073709551615}"#, IndexKind::Hnsw, 10)
            .starts_with("Arithmetic overflow")
    );
    assert_eq!(
        params_error(r#"{"ef": 1}"#, IndexKind::Hnsw, 10),
        "ef(1) should be larger than k(10): invalid parameter"
    );
    assert!(params_error(r#"{"ef": "abc"}"#, IndexKind::Hnsw, 10)
        .starts_with("invalid integer value, key: 'ef', value: 'abc'"));
    assert!(params_error(r#"{"ef": "12abc"}"#, IndexKind::Hnsw, 10)
        .starts_with("wrong data type in json, key: 'ef'"));
    // ef = k is enough; a large integer ef is within knowhere's range.
    assert!(search_params(Some(r#"{"ef": 10}"#), IndexKind::Hnsw, 10).is_ok());
    assert!(search_params(Some(r#"{"ef": 100000000}"#), IndexKind::Hnsw, 10).is_ok());
}

#[test]
fn ivf_nprobe_is_checked() {
    assert!(search_params(Some(r#"{"nprobe": 16}"#), IndexKind::Ivf, 10).is_ok());
    assert_eq!(
        params_error(r#"{"nprobe": -1}"#, IndexKind::Ivf, 10),
        "Out of range in json: param 'nprobe' (-1) should be in range [1, 65536]: invalid parameter"
    );
    assert!(params_error(r#"{"nprobe": 65537}"#, IndexKind::Ivf, 10).starts_with("Out of range"));
    assert!(params_error(r#"{"nprobe": 32.0}"#, IndexKind::Ivf, 10).contains("should be integer"));
}

#[test]
fn parameters_of_other_indexes_are_ignored() {
    // Milvus checks only what the index in use reads.
    assert!(search_params(Some(r#"{"ef": -1}"#), IndexKind::Flat, 10).is_ok());
    assert!(search_params(Some(r#"{"nprobe": -1}"#), IndexKind::Hnsw, 10).is_ok());
    assert!(search_params(Some(r#"{"ef": -1}"#), IndexKind::Ivf, 10).is_ok());
}

#[test]
fn malformed_params_json_is_refused() {
    for text in [r#"{"ef": 64"#, "{{{", "not json", r#"{"ef": 6"4}"#] {
        let e = search_params(Some(text), IndexKind::Flat, 10).unwrap_err();
        assert_eq!(e.code, 1100, "{text}");
        assert!(
            e.message
                .starts_with("failed to parse search params as JSON"),
            "{text}: {}",
            e.message
        );
    }
    for text in ["[1, 2]", "5", "\"ef\""] {
        let e = search_params(Some(text), IndexKind::Flat, 10).unwrap_err();
        assert!(
            e.message.starts_with("search params must be a JSON object"),
            "{}",
            e.message
        );
    }
    assert!(search_params(None, IndexKind::Hnsw, 10).unwrap().is_empty());
    assert!(search_params(Some(""), IndexKind::Hnsw, 10)
        .unwrap()
        .is_empty());
}

#[test]
fn range_search_bounds_must_be_numbers() {
    let knobs = search_params(Some(r#"{"radius": "0.5"}"#), IndexKind::Flat, 10).unwrap();
    assert_eq!(knobs["radius"], 0.5);
    assert!(params_error(r#"{"radius": "x"}"#, IndexKind::Flat, 10)
        .starts_with("invalid float value, key: 'radius', value: 'x'"));
    assert!(
        params_error(r#"{"range_filter": [1]}"#, IndexKind::Flat, 10)
            .starts_with("Type conflict in json: param 'range_filter' ([1]) should be a number")
    );
    assert!(params_error(r#"{"radius": 1e300}"#, IndexKind::Flat, 10)
        .starts_with("float value out of range"));
}

#[test]
fn go_style_integers() {
    assert_eq!(parse_int("42"), Some(42));
    assert_eq!(parse_int("-7"), Some(-7));
    assert_eq!(parse_int("0x1F"), Some(31));
    assert_eq!(parse_int("18446744073709551615"), None);
    assert_eq!(parse_int(""), None);
    assert_eq!(parse_int("--1"), None);
    assert_eq!(parse_int("1.5"), None);
}
