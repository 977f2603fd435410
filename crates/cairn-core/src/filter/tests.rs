//! Every operator, lists, missing fields, dates, nesting, and the errors bad filters get.

use serde_json::json;

use super::*;

fn check(filter: Value, metadata: Value) -> bool {
    Filter::parse(&filter).unwrap().matches(&metadata)
}

fn error(filter: Value) -> String {
    Filter::parse(&filter).unwrap_err().to_string()
}

#[test]
fn equality_membership_and_lists() {
    let m =
        json!({"lang": "en", "year": 2024, "tags": ["oncology", "trial"], "draft": false, "author": {"name": "Ada"}});
    assert!(check(json!({"field": "lang", "eq": "en"}), m.clone()));
    assert!(check(json!({"field": "year", "eq": 2024.0}), m.clone()), "numbers compare by value");
    assert!(check(json!({"field": "tags", "eq": "trial"}), m.clone()), "eq on a list: any element");
    assert!(check(json!({"field": "tags", "in": ["x", "oncology"]}), m.clone()));
    assert!(!check(json!({"field": "tags", "ne": "trial"}), m.clone()));
    assert!(check(json!({"field": "author.name", "eq": "Ada"}), m.clone()));
    assert!(check(json!({"field": "draft", "eq": false}), m.clone()));
    assert!(!check(json!({"field": "lang", "in": ["de", "fr"]}), m));
}

#[test]
fn ranges_on_numbers_and_dates() {
    let r = json!({"field": "n", "gt": 1, "lte": 3});
    assert!(check(r.clone(), json!({"n": 3})) && !check(r.clone(), json!({"n": 1})) && !check(r, json!({"n": 4})));
    let m = json!({"year": 2021, "published": "2024-03-15", "updated": "2024-03-15T10:00:00+02:00"});
    assert!(check(json!({"field": "year", "gte": 2021}), m.clone()));
    assert!(!check(json!({"field": "year", "gt": 2021}), m.clone()));
    assert!(check(json!({"field": "published", "lt": "2024-07-01"}), m.clone()));
    assert!(check(json!({"field": "published", "gte": "2024-03-15T00:00:00Z"}), m.clone()));
    assert!(check(json!({"field": "updated", "lt": "2024-03-15T09:00:00Z"}), m.clone()), "offsets count");
    assert!(!check(json!({"field": "year", "lt": "2024-01-01"}), m.clone()), "a number is not a date");
    assert!(!check(json!({"field": "published", "gt": 5}), m));
}

#[test]
fn missing_fields_and_exists() {
    let m = json!({"a": 1, "nothing": null});
    assert!(!check(json!({"field": "b", "eq": 1}), m.clone()));
    assert!(check(json!({"field": "b", "ne": 1}), m.clone()));
    assert!(check(json!({"field": "b", "exists": false}), m.clone()));
    assert!(check(json!({"field": "nothing", "exists": false}), m.clone()), "null counts as missing");
    assert!(check(json!({"field": "a", "exists": true}), m.clone()));
    assert!(!check(json!({"field": "b", "gte": 0}), m));
}

#[test]
fn and_or_not_nest() {
    let f = json!({"and": [
        {"field": "year", "gte": 2020},
        {"or": [{"field": "lang", "eq": "en"}, {"field": "lang", "eq": "de"}]},
        {"not": {"field": "draft", "eq": true}}
    ]});
    assert!(check(f.clone(), json!({"year": 2022, "lang": "de"})));
    assert!(!check(f.clone(), json!({"year": 2022, "lang": "de", "draft": true})));
    assert!(!check(f, json!({"year": 2019, "lang": "en"})));
}

#[test]
fn bad_filters_are_explained_with_their_place() {
    assert_eq!(error(json!([1])), "filter: expected an object");
    assert_eq!(error(json!({"and": []})), "filter at and: expected at least one filter");
    assert_eq!(
        error(json!({"and": [{"field": "a", "eq": 1}, {"or": [{"field": "b", "like": "x"}]}]})),
        "filter at and[1].or[0]: unknown operator 'like'"
    );
    assert!(error(json!({"field": "a"})).contains("takes one of"));
    assert!(error(json!({"field": "a", "eq": 1, "ne": 2})).contains("takes one of"));
    assert!(error(json!({"field": "a", "gt": 1, "gte": 2})).contains("takes one of"), "two lower bounds");
    assert!(error(json!({"field": "a", "gt": 1, "lt": "x"})).contains("is not a date"));
    assert!(error(json!({"field": "", "eq": 1})).contains("dotted path"));
    assert!(error(json!({"field": "a..b", "eq": 1})).contains("dotted path"));
    assert!(error(json!({"field": "a", "eq": [1]})).contains("string, number or boolean"));
    assert!(error(json!({"field": "a", "in": []})).contains("non-empty list"));
    assert!(error(json!({"field": "d", "gte": "yesterday"})).contains("is not a date"));
    assert!(error(json!({"field": "d", "gte": "2024-02-30"})).contains("is not a date"));
    assert!(error(json!({"field": "a", "exists": "yes"})).contains("true or false"));
    assert!(error(json!({"not": {"field": "a", "eq": 1}, "and": []})).contains("only key"));
    assert!(error(json!({"lang": "en"})).contains("expected 'and', 'or', 'not'"));
    let mut deep = json!({"field": "a", "eq": 1});
    for _ in 0..20 {
        deep = json!({"not": deep});
    }
    assert!(error(deep).contains("nested deeper"));
}

#[test]
fn instants() {
    assert_eq!(instant("1970-01-02"), Some(86_400_000));
    assert_eq!(instant("1970-01-01T00:00:01.5Z"), Some(1_500));
    assert_eq!(instant("1970-01-01T01:00:00+01:00"), Some(0));
    assert_eq!(instant("1970-01-01 00:00:00-00:30"), Some(1_800_000));
    for bad in ["1970-01-01T25:00:00Z", "1970-01-01T00:00:00", "1970-01-01T00:00:00.Z", "1970-13-01", "x"] {
        assert_eq!(instant(bad), None, "{bad}");
    }
}
