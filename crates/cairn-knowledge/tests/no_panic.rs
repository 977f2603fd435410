//! Property tests: no input makes the filter parser, the date parser, the document parsers or
//! the chunker panic. Each runs a few hundred generated cases per CI run (proptest's corpus of
//! past failures is kept in `proptest-regressions/`).

use cairn_knowledge::chunk::{chunk_text, ChunkOptions, WordCounter};
use cairn_knowledge::filter::{instant, Filter};
use cairn_knowledge::parse::{parse, Format, TextField};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

/// Keys the filter language knows, mixed with arbitrary ones, so generated filters reach deep.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec!["and", "or", "not", "field", "eq", "ne", "in", "gt", "gte", "lt", "lte", "exists"])
            .prop_map(str::to_owned),
        ".{0,12}",
    ]
}

/// Dates and near-dates, including multi-byte characters where digits belong.
fn date_like() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9:]{8}(\\.[0-9]{0,4})?([Zz]|[+-][0-9é:]{5}))?",
        "[0-9é: T+.-]{0,30}",
        ".{0,30}",
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        date_like().prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn dates_never_panic(s in date_like()) {
        let _ = instant(&s);
    }

    #[test]
    fn filters_never_panic(filter in json_value(), metadata in json_value()) {
        if let Ok(f) = Filter::parse(&filter) {
            let _ = f.matches(&metadata);
        }
    }

    #[test]
    fn text_formats_never_panic(text in "(?s).{0,400}", bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let field = TextField::default();
        for format in [Format::Text, Format::Markdown, Format::Html, Format::Json, Format::Jsonl] {
            let _ = parse(text.as_bytes(), format, &field);
            let _ = parse(&bytes, format, &field);
        }
    }

    #[test]
    fn markup_never_panics(text in "([<>/#*`\\-\\n ]|<h[1-6]>|</?(p|div|script|style|title|li|pre|table)>|&[a-z#0-9]{0,6};?|[a-zé]{1,6}){0,80}") {
        for format in [Format::Markdown, Format::Html] {
            let _ = parse(text.as_bytes(), format, &TextField::default());
        }
    }

    #[test]
    fn json_documents_never_panic(doc in json_value()) {
        let line = doc.to_string();
        let _ = parse(line.as_bytes(), Format::Json, &TextField::default());
        let lines = format!("{line}\n{line}\n");
        let _ = parse(lines.as_bytes(), Format::Jsonl, &TextField::default());
    }

    #[test]
    fn pdf_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..2000)) {
        let mut pdf = b"%PDF-1.4\n".to_vec();
        pdf.extend(bytes);
        let _ = parse(&pdf, Format::Pdf, &TextField::default());
    }

    #[test]
    fn chunks_are_well_formed(text in "(?s)(#{1,3} [^\\n]{0,20}\\n|```\\n|[^\\n]{0,60}[.!?]? ?\\n{0,2}){0,40}", max in 1usize..64, overlap in 0usize..32) {
        let options = ChunkOptions { max_tokens: max, overlap_tokens: overlap.min(max / 2) };
        for c in chunk_text(&text, options, &WordCounter) {
            prop_assert!(c.start <= c.end && c.end <= text.len());
            prop_assert!(text.is_char_boundary(c.start) && text.is_char_boundary(c.end));
        }
    }
}

#[test]
fn a_multi_byte_offset_is_not_a_date() {
    assert_eq!(instant("2024-01-01T00:00:00+0é00"), None);
    assert_eq!(instant("2024-01-01T0é:00:00Z"), None);
    assert_eq!(instant("2024-01-01T+1:00:00Z"), None);
    assert_eq!(instant("2024-01-01T01:00:00+01:00"), instant("2024-01-01T00:00:00Z"));
    let bad = json!({"field": "published", "gte": "2024-01-01T00:00:00+0é00"});
    assert!(Filter::parse(&bad).is_err());
}
