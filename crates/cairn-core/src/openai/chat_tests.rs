//! Tests of the chat wire types.

use super::*;

#[test]
fn keeps_unknown_fields() {
    let r: ChatRequest =
        serde_json::from_str(r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"presence_penalty":0.5}"#)
            .unwrap();
    assert_eq!(r.extra["presence_penalty"], 0.5);
    let back = serde_json::to_value(&r).unwrap();
    assert_eq!(back["presence_penalty"], 0.5);
    assert!(back.get("stream").is_none());
}

#[test]
fn validates_ranges() {
    let mut r: ChatRequest =
        serde_json::from_str(r#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}]}"#)
            .unwrap();
    assert!(r.validate().is_ok());
    assert_eq!(r.messages[0].text_content(), "hi");
    r.temperature = Some(3.0);
    assert!(r.validate().is_err());
    r.temperature = None;
    r.n = Some(2);
    assert!(r.validate().is_err());
}

#[test]
fn chunk_usage_null_vs_absent() {
    let mut c = ChatChunk {
        id: "x".into(),
        object: "chat.completion.chunk".into(),
        created: 1,
        model: "m".into(),
        choices: vec![],
        usage: UsageField::Absent,
        system_fingerprint: None,
        extra: Extra::new(),
    };
    assert!(serde_json::to_value(&c).unwrap().get("usage").is_none());
    c.usage = UsageField::Null;
    assert!(serde_json::to_value(&c).unwrap()["usage"].is_null());
    let parsed: ChatChunk =
        serde_json::from_str(r#"{"id":"x","object":"o","created":1,"model":"m","choices":[],"usage":null}"#).unwrap();
    assert_eq!(parsed.usage, UsageField::Null);
}
