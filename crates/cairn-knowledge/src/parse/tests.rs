//! Every format, the normalisation, and the errors.

use serde_json::json;

use super::*;

fn one(bytes: &[u8], format: Format) -> Parsed {
    let mut docs = parse(bytes, format, &TextField::default()).unwrap();
    assert_eq!(docs.len(), 1);
    docs.remove(0)
}

#[test]
fn formats_by_extension_and_mime() {
    assert_eq!(Format::from_extension("Report.PDF"), Some(Format::Pdf));
    assert_eq!(Format::from_extension("notes.md"), Some(Format::Markdown));
    assert_eq!(Format::from_extension("data.ndjson"), Some(Format::Jsonl));
    assert_eq!(Format::from_extension("image.png"), None);
    assert_eq!(Format::from_extension("README"), None);
    assert_eq!(Format::from_mime("text/html; charset=utf-8"), Some(Format::Html));
    assert_eq!(Format::from_mime("application/octet-stream"), None);
}

#[test]
fn plain_text_is_normalised() {
    let d = one(b"\xEF\xBB\xBF  Line one\r\nLine\x07 two\r\n\r\n\r\n\r\nLast\t line  ", Format::Text);
    assert_eq!(d.text, "Line one\nLine two\n\nLast\t line");
    assert_eq!(d.title, None);
    assert_eq!(parse(b"ok \xFF\xFE", Format::Text, &TextField::default()), Err(ParseError::NotUtf8(3)));
    assert_eq!(parse(b" \n\t ", Format::Text, &TextField::default()), Err(ParseError::Empty));
}

#[test]
fn markdown_keeps_its_structure_and_names_its_title() {
    let d = one(b"# Guide\n\nIntro.\n\n## Install\n\nRun it.\n", Format::Markdown);
    assert_eq!(d.title.as_deref(), Some("Guide"));
    assert!(d.text.contains("## Install"));
}

#[test]
fn html_becomes_text_with_headings() {
    let html = br#"<!DOCTYPE html><html><head><title>The  Page</title><style>p{color:red}</style>
        <script>var x = "<p>no</p>";</script></head><body>
        <h1>Main   title</h1><p>First <b>bold</b> paragraph &amp; more&nbsp;text.</p>
        <!-- a comment <p>hidden</p> -->
        <h2>Part&#32;two</h2><ul><li>one</li><li>two &#x2713;</li></ul>
        <pre>  keep   spacing
  here</pre><p>a &lt; b &unknown; c</p><table><tr><td>x</td><td>y</td></tr></table>2 < 3</body></html>"#;
    let d = one(html, Format::Html);
    assert_eq!(d.title.as_deref(), Some("The Page"));
    let expected = "# Main title\n\nFirst bold paragraph & more text.\n\n## Part two\n\n- one\n- two ✓\n\nkeep   spacing\nhere\n\na < b &unknown; c\n\nx y\n\n2 < 3";
    assert_eq!(d.text, expected);
    assert!(!d.text.contains("color") && !d.text.contains("var x") && !d.text.contains("hidden"));
}

#[test]
fn json_and_jsonl_take_a_text_field_and_keep_the_rest_as_metadata() {
    let doc = br#"{"title": "T", "body": {"content": "Hello"}, "year": 2024, "tags": ["a"]}"#;
    let field = TextField { text: "body.content".into(), title: Some("title".into()) };
    let d = parse(doc, Format::Json, &field).unwrap().remove(0);
    assert_eq!((d.text.as_str(), d.title.as_deref()), ("Hello", Some("T")));
    assert_eq!(serde_json::Value::Object(d.metadata), json!({"year": 2024, "tags": ["a"]}));

    let lines = b"{\"text\": \"one\", \"id\": 1}\n\n{\"text\": \"two\", \"id\": 2}\n";
    let docs = parse(lines, Format::Jsonl, &TextField::default()).unwrap();
    assert_eq!(docs.iter().map(|d| d.text.as_str()).collect::<Vec<_>>(), ["one", "two"]);
    assert_eq!(docs[1].metadata["id"], 2);

    let err = |b: &[u8], f: Format| parse(b, f, &TextField::default()).unwrap_err().to_string();
    assert!(err(b"{\"text\": 5}", Format::Json).contains("not a string"));
    assert!(err(b"{\"body\": \"x\"}", Format::Json).contains("no text field 'text'"));
    assert!(err(b"[1, 2]", Format::Json).contains("expected a JSON object"));
    assert!(err(b"{\"text\": \"a\"}\n{broken", Format::Jsonl).starts_with("line 2: invalid JSON"));
}

/// A one-page PDF saying `words`, built with lopdf.
fn pdf(words: &str) -> Vec<u8> {
    use lopdf::content::{Content, Operation};
    use lopdf::{dictionary, Document, Object, Stream};
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let font_id = doc.add_object(dictionary! { "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Courier" });
    let resources_id = doc.add_object(dictionary! { "Font" => dictionary! { "F1" => font_id } });
    let content = Content {
        operations: vec![
            Operation::new("BT", vec![]),
            Operation::new("Tf", vec!["F1".into(), 24.into()]),
            Operation::new("Td", vec![72.into(), 700.into()]),
            Operation::new("Tj", vec![Object::string_literal(words)]),
            Operation::new("ET", vec![]),
        ],
    };
    let content_id = doc.add_object(Stream::new(dictionary! {}, content.encode().unwrap()));
    let page_id = doc.add_object(dictionary! { "Type" => "Page", "Parent" => pages_id, "Contents" => content_id });
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages", "Kids" => vec![page_id.into()], "Count" => 1, "Resources" => resources_id,
            "MediaBox" => vec![0.into(), 0.into(), 595.into(), 842.into()],
        }),
    );
    let catalog_id = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    doc.trailer.set("Root", catalog_id);
    let mut out = Vec::new();
    doc.save_to(&mut out).unwrap();
    out
}

#[test]
fn pdf_text_is_extracted_and_damage_is_an_error() {
    let d = one(&pdf("Hello from a PDF"), Format::Pdf);
    assert_eq!(d.text, "Hello from a PDF");
    let mut broken = pdf("Hello");
    broken.truncate(broken.len() / 3);
    assert!(matches!(parse(&broken, Format::Pdf, &TextField::default()), Err(ParseError::Pdf(_))));
    assert!(matches!(parse(b"not a pdf at all", Format::Pdf, &TextField::default()), Err(ParseError::Pdf(_))));
}

#[test]
fn malformed_html_never_panics() {
    for input in [
        "<",
        "&",
        "<<>>",
        "</",
        "<a",
        "&#;",
        "&#xFFFFFFFF;",
        "&#99999999999;",
        "<!--",
        "<!-- x",
        "</pre></pre>x",
        "<script>never closed",
        "<title>t",
        "é<b>é</b>&é;",
        "<h7>x</h7>",
        "<h1>",
        "a<br/>b<br>c",
        "<li>",
    ] {
        let (text, _) = html::to_text(input);
        assert!(!text.contains('\u{0}'), "{input}");
    }
    assert_eq!(html::to_text("a<br/>b").0, "a\nb");
}
