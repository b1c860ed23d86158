//! Filter tests: JSON paths, the dynamic field, json_contains*, Array
//! fields and function arguments.

use super::*;

#[test]
fn json_path_comparisons() {
    check_ok(&[
        (
            r#"meta["price"] > 10"#,
            r#"((json_get_float("meta", 'price') > 10) IS TRUE)"#,
        ),
        (
            r#"meta["a"]["b"] == "x""#,
            r#"((json_get_str("meta", 'a', 'b') = 'x') IS TRUE)"#,
        ),
        (
            r#"meta["arr"][0] == 3"#,
            r#"((json_get_float("meta", 'arr', 0) = 3) IS TRUE)"#,
        ),
        (
            "meta['flag'] == true",
            r#"((json_get_bool("meta", 'flag') = TRUE) IS TRUE)"#,
        ),
        (
            r#"2.5 <= meta["p"]"#,
            r#"((2.5 <= json_get_float("meta", 'p')) IS TRUE)"#,
        ),
        // A missing key (or another type) makes `!=` true, as in Milvus.
        (
            r#"meta["color"] != "red""#,
            r#"((json_get_str("meta", 'color') <> 'red') IS NOT FALSE)"#,
        ),
        // Integers that f64 cannot hold are compared as integers.
        (
            r#"meta["id"] == 9007199254740993"#,
            r#"((json_get_int("meta", 'id') = 9007199254740993) IS TRUE)"#,
        ),
        (
            r#"meta["id"] > 9007199254740993"#,
            r#"((json_get_float("meta", 'id') > 9007199254740993) IS TRUE)"#,
        ),
        (
            r#"meta["n"] == age"#,
            r#"((json_get_float("meta", 'n') = "age") IS TRUE)"#,
        ),
        (
            r#"s == meta["s"]"#,
            r#"(("s" = json_get_str("meta", 's')) IS TRUE)"#,
        ),
        (
            r#"meta["n"] == {n}"#,
            r#"((json_get_float("meta", 'n') = 7) IS TRUE)"#,
        ),
        (
            r#"meta["k"] == {str}"#,
            r#"((json_get_str("meta", 'k') = 'it''s') IS TRUE)"#,
        ),
        (
            r#"meta["it's"] == 1"#,
            r#"((json_get_float("meta", 'it''s') = 1) IS TRUE)"#,
        ),
        (
            r#"1 < meta["p"] <= 5"#,
            r#"((1 < json_get_float("meta", 'p') AND json_get_float("meta", 'p') <= 5) IS TRUE)"#,
        ),
        (
            r#"meta["a"] > 1 and not (meta["b"] == "x")"#,
            r#"(((json_get_float("meta", 'a') > 1) IS TRUE) AND (((json_get_str("meta", 'b') = 'x') IS TRUE) = FALSE))"#,
        ),
    ]);
}

#[test]
fn json_path_arithmetic() {
    check_ok(&[
        (
            r#"meta["p"] + 1 > 2 * meta["q"]"#,
            r#"(((json_get_float("meta", 'p') + 1) > (2 * json_get_float("meta", 'q'))) IS TRUE)"#,
        ),
        (
            r#"meta["p"] % 2 == 0"#,
            r#"(((json_get_float("meta", 'p') % 2) = 0) IS TRUE)"#,
        ),
        (
            r#"-meta["p"] < 0"#,
            r#"(((- json_get_float("meta", 'p')) < 0) IS TRUE)"#,
        ),
        (
            r#"meta["p"] ** 2 > 4"#,
            r#"((power(json_get_float("meta", 'p'), 2) > 4) IS TRUE)"#,
        ),
        (
            r#"a + meta["p"] in [1, 2]"#,
            r#"((("a" + json_get_float("meta", 'p')) IN (1, 2)) IS TRUE)"#,
        ),
    ]);
}

#[test]
fn json_path_in_like_and_null() {
    check_ok(&[
        (
            r#"meta["p"] in [1, 2.5]"#,
            r#"((json_get_float("meta", 'p') IN (1, 2.5)) IS TRUE)"#,
        ),
        (
            r#"meta["c"] in ["red", "blue"]"#,
            r#"((json_get_str("meta", 'c') IN ('red', 'blue')) IS TRUE)"#,
        ),
        (
            r#"meta["c"] not in ["red"]"#,
            r#"((json_get_str("meta", 'c') NOT IN ('red')) IS NOT FALSE)"#,
        ),
        // Mixed types: the value is read once per type.
        (
            r#"meta["p"] in ["a", 1, true, 2]"#,
            r#"((json_get_str("meta", 'p') IN ('a') OR json_get_float("meta", 'p') IN (1, 2) OR json_get_bool("meta", 'p') IN (TRUE)) IS TRUE)"#,
        ),
        (
            r#"meta["p"] not in {ids}"#,
            r#"((json_get_float("meta", 'p') NOT IN (1, 2)) IS NOT FALSE)"#,
        ),
        (
            r#"meta["p"] in [9007199254740993, 1]"#,
            r#"((json_get_int("meta", 'p') IN (9007199254740993, 1)) IS TRUE)"#,
        ),
        (r#"meta["p"] in []"#, "FALSE"),
        (
            r#"meta["name"] like "ab%""#,
            r#"((json_get_str("meta", 'name') LIKE 'ab%') IS TRUE)"#,
        ),
        (
            r#"meta["p"] is null"#,
            r#"(json_as_text("meta", 'p') IS NULL)"#,
        ),
        (
            r#"meta["a"][0] IS NOT NULL"#,
            r#"(json_as_text("meta", 'a', 0) IS NOT NULL)"#,
        ),
    ]);
}

#[test]
fn json_path_errors() {
    check_err(&[
        (
            r#"meta["a"] == meta["b"]"#,
            10,
            "cannot compare JSON value with JSON value using '=='",
        ),
        (
            r#"meta["a"]"#,
            0,
            "filter expression must be boolean, got JSON value",
        ),
        (
            r#"meta["a"] and flag"#,
            0,
            "operand of 'and' must be boolean, got JSON value",
        ),
        (
            r#"meta["a"] < true"#,
            10,
            "cannot compare JSON value with boolean using '<'",
        ),
        (
            "meta == 1",
            0,
            r#"JSON field meta cannot be used directly; use a key path such as meta["key"]"#,
        ),
        (r#"meta[""] == 1"#, 5, "JSON key must not be empty"),
        (
            "meta[-1] == 1",
            5,
            "expected a quoted JSON key or an array index, found '-'",
        ),
        (
            "meta[01] == 1",
            5,
            "expected a quoted JSON key or an array index, found '01'",
        ),
        (
            "meta[a] == 1",
            5,
            "expected a quoted JSON key or an array index, found 'a'",
        ),
        (r#"meta["a" == 1"#, 9, "expected ']', found '=='"),
        (
            "meta[99999999999999999999] == 1",
            5,
            "integer literal out of range",
        ),
        (
            "age[0] == 1",
            0,
            "field age is not a JSON or array field and cannot be indexed",
        ),
        (
            r#"meta["a"] + 1 is null"#,
            12,
            "operand of 'is null' must be a field",
        ),
    ]);
}

fn dynamic_fields() -> Vec<FilterField<'static>> {
    vec![
        field("id", FieldKind::Int),
        field("meta", FieldKind::Json),
        field("$meta", FieldKind::Json),
    ]
}

#[test]
fn dynamic_field_keys() {
    let cases = [
        (
            "color == 'red'",
            r#"((json_get_str("$meta", 'color') = 'red') IS TRUE)"#,
        ),
        (
            r#"color["x"][1] > 1"#,
            r#"((json_get_float("$meta", 'color', 'x', 1) > 1) IS TRUE)"#,
        ),
        (
            "$meta['a'] == 1 and id > 1",
            r#"(((json_get_float("$meta", 'a') = 1) IS TRUE) AND ("id" > 1))"#,
        ),
        (
            "color is null",
            r#"(json_as_text("$meta", 'color') IS NULL)"#,
        ),
        (
            "json_contains(tags, 'x')",
            r#"(array_has(json_get_array("$meta", 'tags'), '"x"') IS TRUE)"#,
        ),
        (
            "array_length(tags) == 2",
            r#"((cardinality(json_get_array("$meta", 'tags')) = 2) IS TRUE)"#,
        ),
        // Declared fields win over dynamic keys.
        (
            r#"meta["k"] == 1"#,
            r#"((json_get_float("meta", 'k') = 1) IS TRUE)"#,
        ),
        ("id > 1", r#"("id" > 1)"#),
    ];
    let none = HashMap::new();
    for (expr, want) in cases {
        let got = filter_to_sql(expr, &dynamic_fields(), &none)
            .unwrap_or_else(|e| panic!("{expr:?} failed: {}", e.describe(expr)));
        assert_eq!(got, want, "input: {expr:?}");
    }
    let e = filter_to_sql("$meta == 1", &dynamic_fields(), &none).unwrap_err();
    assert_eq!(e.position, 0);
    // Without a dynamic field, unknown names stay errors.
    check_err(&[
        ("color == 'red'", 0, "field color not exist"),
        ("$meta['a'] == 1", 0, "field $meta not exist"),
    ]);
}

#[test]
fn json_contains_functions() {
    check_ok(&[
        (
            r#"json_contains(meta["tags"], "sale")"#,
            r#"(array_has(json_get_array("meta", 'tags'), '"sale"') IS TRUE)"#,
        ),
        (
            r#"JSON_CONTAINS(meta["tags"], 3)"#,
            r#"(array_has(TRY_CAST(json_get_array("meta", 'tags') AS DOUBLE[]), 3) IS TRUE)"#,
        ),
        (
            "json_contains(meta, true)",
            r#"(array_has(json_get_array("meta"), 'true') IS TRUE)"#,
        ),
        (
            r#"json_contains(meta["a"][0], -1.5)"#,
            r#"(array_has(TRY_CAST(json_get_array("meta", 'a', 0) AS DOUBLE[]), -1.5) IS TRUE)"#,
        ),
        (
            r#"json_contains(meta["t"], {str})"#,
            r#"(array_has(json_get_array("meta", 't'), '"it''s"') IS TRUE)"#,
        ),
        (
            r#"json_contains_all(meta["tags"], ["a", "b"])"#,
            r#"(array_has_all(json_get_array("meta", 'tags'), make_array('"a"', '"b"')) IS TRUE)"#,
        ),
        (
            r#"JSON_CONTAINS_ANY(meta["tags"], [1, 2.5])"#,
            r#"(array_has_any(TRY_CAST(json_get_array("meta", 'tags') AS DOUBLE[]), make_array(1, 2.5)) IS TRUE)"#,
        ),
        (
            r#"json_contains_any(meta["tags"], ["a", 1, false])"#,
            r#"((array_has_any(json_get_array("meta", 'tags'), make_array('"a"')) OR array_has_any(TRY_CAST(json_get_array("meta", 'tags') AS DOUBLE[]), make_array(1)) OR array_has_any(json_get_array("meta", 'tags'), make_array('false'))) IS TRUE)"#,
        ),
        (
            r#"json_contains_all(meta["tags"], [1, "a"])"#,
            r#"((array_has_all(TRY_CAST(json_get_array("meta", 'tags') AS DOUBLE[]), make_array(1)) AND array_has_all(json_get_array("meta", 'tags'), make_array('"a"'))) IS TRUE)"#,
        ),
        (
            r#"json_contains_any(meta["ids"], [9007199254740993])"#,
            r#"(array_has_any(TRY_CAST(json_get_array("meta", 'ids') AS BIGINT[]), make_array(9007199254740993)) IS TRUE)"#,
        ),
        (
            r#"json_contains_any(meta["tags"], {names})"#,
            r#"(array_has_any(json_get_array("meta", 'tags'), make_array('"a"', '"b"')) IS TRUE)"#,
        ),
        (
            r#"json_contains_all(meta["tags"], [])"#,
            r#"(json_get_array("meta", 'tags') IS NOT NULL)"#,
        ),
        (r#"json_contains_any(meta["tags"], [])"#, "FALSE"),
        (
            r#"not json_contains(meta["tags"], "x") and flag"#,
            r#"(((array_has(json_get_array("meta", 'tags'), '"x"') IS TRUE) = FALSE) AND "flag")"#,
        ),
    ]);
}

#[test]
fn json_contains_strings_use_compact_json_text() {
    check_ok(&[
        (
            r#"json_contains(meta["t"], "say \"hi\"\n\\ é")"#,
            r#"(array_has(json_get_array("meta", 't'), '"say \"hi\"\n\\ é"') IS TRUE)"#,
        ),
        (
            r#"json_contains(meta["t"], "\u0001/")"#,
            r#"(array_has(json_get_array("meta", 't'), '"\u0001/"') IS TRUE)"#,
        ),
    ]);
}

#[test]
fn array_fields() {
    check_ok(&[
        ("nums[0] > 3", r#"((json_get_int("nums", 0) > 3) IS TRUE)"#),
        (
            "ratios[2] <= 0.5",
            r#"((json_get_float("ratios", 2) <= 0.5) IS TRUE)"#,
        ),
        (
            "words[1] like 'a%'",
            r#"((json_get_str("words", 1) LIKE 'a%') IS TRUE)"#,
        ),
        (
            "bits[0] == true",
            r#"((json_get_bool("bits", 0) = TRUE) IS TRUE)"#,
        ),
        // Untyped arrays type their elements like JSON values.
        (
            "tags[0] == 'x'",
            r#"((json_get_str("tags", 0) = 'x') IS TRUE)"#,
        ),
        (
            "nums[0] in [1, 2]",
            r#"((json_get_int("nums", 0) IN (1, 2)) IS TRUE)"#,
        ),
        (
            "words[0] != 'a'",
            r#"((json_get_str("words", 0) <> 'a') IS NOT FALSE)"#,
        ),
        ("nums[3] is null", r#"(json_as_text("nums", 3) IS NULL)"#),
        ("nums is not null", r#"("nums" IS NOT NULL)"#),
        (
            "array_contains(nums, 5)",
            r#"(array_has(TRY_CAST(json_get_array("nums") AS BIGINT[]), 5) IS TRUE)"#,
        ),
        (
            "ARRAY_CONTAINS(ratios, 2)",
            r#"(array_has(TRY_CAST(json_get_array("ratios") AS DOUBLE[]), 2) IS TRUE)"#,
        ),
        (
            "array_contains(words, \"red\")",
            r#"(array_has(json_get_array("words"), '"red"') IS TRUE)"#,
        ),
        (
            "array_contains(bits, false)",
            r#"(array_has(json_get_array("bits"), 'false') IS TRUE)"#,
        ),
        (
            "array_contains_all(nums, [1, 2])",
            r#"(array_has_all(TRY_CAST(json_get_array("nums") AS BIGINT[]), make_array(1, 2)) IS TRUE)"#,
        ),
        (
            "array_contains_any(nums, [1, 2.5])",
            r#"(array_has_any(TRY_CAST(json_get_array("nums") AS DOUBLE[]), make_array(1, 2.5)) IS TRUE)"#,
        ),
        (
            "array_contains_any(words, {names})",
            r#"(array_has_any(json_get_array("words"), make_array('"a"', '"b"')) IS TRUE)"#,
        ),
        (
            r#"array_contains(meta["tags"], 1)"#,
            r#"(array_has(TRY_CAST(json_get_array("meta", 'tags') AS DOUBLE[]), 1) IS TRUE)"#,
        ),
        (
            "array_length(nums) == 3",
            r#"((json_length("nums") = 3) IS TRUE)"#,
        ),
        (
            "ARRAY_LENGTH(tags) > 0",
            r#"((json_length("tags") > 0) IS TRUE)"#,
        ),
        (
            r#"array_length(meta["a"]) + 1 >= 2"#,
            r#"(((cardinality(json_get_array("meta", 'a')) + 1) >= 2) IS TRUE)"#,
        ),
    ]);
    check_err(&[
        (
            "nums == 1",
            0,
            "array field nums cannot be used directly; use an index such as nums[0], array_contains or array_length",
        ),
        (
            "nums['a'] == 1",
            4,
            "array field nums can only be indexed with an integer",
        ),
        (
            "nums[0][1] == 1",
            0,
            "elements of array field nums are scalars; use a single index",
        ),
        (
            "nums[0] == 'a'",
            8,
            "cannot compare number with string using '=='",
        ),
        (
            "array_contains(nums, 'a')",
            21,
            "array field nums holds integer elements; array_contains cannot look for a string",
        ),
        (
            "array_contains_any(words, ['a', 1])",
            32,
            "array field words holds string elements; array_contains_any cannot look for a number",
        ),
    ]);
}

#[test]
fn function_argument_errors() {
    let what = "must be a JSON field, a JSON path or an array field";
    check_err(&[
        (r#"json_contains(meta["t"])"#, 23, "json_contains expects 2 arguments"),
        ("json_contains()", 14, "json_contains expects 2 arguments"),
        (
            r#"json_contains(meta["t"], 1, 2)"#,
            26,
            "json_contains expects 2 arguments",
        ),
        ("array_length(nums, 1) == 1", 17, "array_length expects 1 argument"),
        (
            r#"json_contains(meta["t"] 1)"#,
            24,
            "expected ',', found '1'",
        ),
        (
            r#"json_contains(meta["t"], 1"#,
            26,
            "expected ')', found end of expression",
        ),
        (
            "json_contains(age, 1)",
            14,
            &format!("first argument of json_contains {what}, got field age"),
        ),
        (
            "json_contains(1, 1)",
            14,
            &format!("first argument of json_contains {what}"),
        ),
        (
            "array_contains(nums[0], 1)",
            15,
            &format!("first argument of array_contains {what}, got an array element"),
        ),
        (
            "array_length(name) == 1",
            13,
            &format!("first argument of array_length {what}, got field name"),
        ),
        (
            "json_contains(nope, 1)",
            14,
            "field nope not exist",
        ),
        (
            r#"json_contains(meta["t"], [1, 2])"#,
            25,
            "json_contains with an array value is not supported yet; use json_contains_all or json_contains_any",
        ),
        (
            r#"json_contains(meta["t"], {ids})"#,
            25,
            "json_contains with an array value is not supported yet; use json_contains_all or json_contains_any",
        ),
        (
            r#"json_contains(meta["t"], age)"#,
            25,
            "expected a literal, found 'age'",
        ),
        (
            r#"json_contains_all(meta["t"], 1)"#,
            29,
            "expected an array as the second argument of json_contains_all, found '1'",
        ),
        (
            r#"json_contains_any(meta["t"], {n})"#,
            29,
            "template variable n must be an array in json_contains_any",
        ),
        (
            "array_length(nums) == 'a'",
            19,
            "cannot compare number with string using '=='",
        ),
    ]);
}

#[test]
fn unsupported_functions() {
    check_err(&[
        (
            "text_match(name, 'x')",
            0,
            "text_match is not supported yet",
        ),
        (
            "flag and phrase_match(name, 'x')",
            9,
            "phrase_match is not supported yet",
        ),
        (
            "random_sample(0.5)",
            0,
            "random_sample is not supported yet",
        ),
        ("foo(a) == 1", 0, "foo is not supported yet"),
        (r#"exists meta["a"]"#, 0, "exists is not supported yet"),
    ]);
}
