//! Preparing a document for indexing, the pure part of ingestion: parse the bytes, redact
//! personal data per the collection's policy, cut the result into chunks, and fingerprint it.
//! Redaction runs on the whole text before chunking, so no value can be split across two
//! chunks and slip past the detectors, and chunk offsets point into the text that is stored.
//! The fingerprint covers what the index would hold (text after redaction, title, chunking
//! settings), so re-ingesting the same content with the same settings is recognised as a no-op.

use cairn_core::knowledge::PiiMode;
use cairn_guard::{PiiKind, PiiPolicy, Redactor};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::chunk::{chunk_text, Chunk, ChunkOptions, TokenCounter};
use crate::parse::{parse, Format, ParseError, TextField};

/// The redactor for a collection's PII policy; `key` keys the `hash` policy.
pub fn redactor(mode: PiiMode, key: &[u8]) -> Redactor {
    Redactor::new(match mode {
        PiiMode::Off => PiiPolicy::Off,
        PiiMode::Mask => PiiPolicy::Mask,
        PiiMode::Hash => PiiPolicy::Hash { key: key.to_vec() },
    })
}

/// A document as it is accepted, before anything about it is written: text, title and
/// metadata redacted per the collection's policy, so neither the job queue nor the document
/// row ever holds the raw values. Returns what was redacted, by kind.
pub struct Redacted {
    /// The normalised, redacted text.
    pub text: String,
    /// The redacted title.
    pub title: Option<String>,
    /// The metadata with every string value redacted, but in top-level fields `exempt`.
    pub metadata: Value,
    /// Values redacted, by kind.
    pub counts: Vec<(PiiKind, usize)>,
}

/// Redacts an incoming document (see `Redacted`).
pub fn redact_upload(
    text: &str,
    title: Option<&str>,
    metadata: Value,
    redactor: &Redactor,
    exempt: &[String],
) -> Redacted {
    let mut counts: Vec<(PiiKind, usize)> = Vec::new();
    let mut count = |findings: &[cairn_guard::Finding]| {
        for f in findings {
            match counts.iter_mut().find(|(k, _)| *k == f.kind) {
                Some((_, n)) => *n += 1,
                None => counts.push((f.kind, 1)),
            }
        }
    };
    let body = redactor.redact(&crate::parse::normalise(text));
    count(&body.findings);
    let title = title.map(|t| {
        let r = redactor.redact(t);
        count(&r.findings);
        r.text
    });
    let metadata = match metadata {
        Value::Object(fields) => Value::Object(
            fields
                .into_iter()
                .map(|(k, v)| {
                    let v = if exempt.contains(&k) { v } else { redact_value(v, redactor, &mut count) };
                    (k, v)
                })
                .collect(),
        ),
        other => other,
    };
    Redacted { text: body.text, title, metadata, counts }
}

/// Every string inside `v` redacted (keys are field names, kept).
fn redact_value(v: Value, redactor: &Redactor, count: &mut dyn FnMut(&[cairn_guard::Finding])) -> Value {
    match v {
        Value::String(s) => {
            let r = redactor.redact(&s);
            count(&r.findings);
            Value::String(r.text)
        }
        Value::Array(items) => Value::Array(items.into_iter().map(|i| redact_value(i, redactor, count)).collect()),
        Value::Object(fields) => {
            Value::Object(fields.into_iter().map(|(k, i)| (k, redact_value(i, redactor, count))).collect())
        }
        other => other,
    }
}

/// How a collection prepares its documents.
pub struct Preparation<'a> {
    /// Chunk budget and overlap.
    pub chunking: ChunkOptions,
    /// The collection's redactor (its policy may be off).
    pub redactor: &'a Redactor,
    /// The collection's tokenizer.
    pub counter: &'a dyn TokenCounter,
}

/// One document ready to embed and store.
#[derive(Clone, Debug, PartialEq)]
pub struct Prepared {
    /// Title from the document itself, if any.
    pub title: Option<String>,
    /// Fields found beside the text (JSON formats).
    pub metadata: Map<String, Value>,
    /// The text as stored: normalised and redacted.
    pub text: String,
    /// Its chunks.
    pub chunks: Vec<Chunk>,
    /// Hex SHA-256 over the stored text, title and chunking settings.
    pub fingerprint: String,
    /// How many values of each kind were redacted.
    pub redacted: Vec<(PiiKind, usize)>,
}

/// Prepares `bytes` in `format` (JSON formats take their text from `field`): one document,
/// or one per line for JSON Lines.
pub fn prepare(
    bytes: &[u8],
    format: Format,
    field: &TextField,
    p: &Preparation<'_>,
) -> Result<Vec<Prepared>, ParseError> {
    Ok(parse(bytes, format, field)?.into_iter().map(|doc| prepare_text(doc.text, doc.title, doc.metadata, p)).collect())
}

/// Prepares text that is already parsed (documents sent as JSON text, not files).
pub fn prepare_text(
    text: String,
    title: Option<String>,
    metadata: Map<String, Value>,
    p: &Preparation<'_>,
) -> Prepared {
    let redaction = p.redactor.redact(&crate::parse::normalise(&text));
    let title = title.map(|t| p.redactor.redact(&t).text);
    let mut counts: Vec<(PiiKind, usize)> = Vec::new();
    for f in &redaction.findings {
        match counts.iter_mut().find(|(k, _)| *k == f.kind) {
            Some((_, n)) => *n += 1,
            None => counts.push((f.kind, 1)),
        }
    }
    let chunks = chunk_text(&redaction.text, p.chunking, p.counter);
    let mut h = Sha256::new();
    h.update(redaction.text.as_bytes());
    h.update([0]);
    h.update(title.as_deref().unwrap_or_default().as_bytes());
    h.update([0]);
    h.update(format!("{}:{}", p.chunking.max_tokens, p.chunking.overlap_tokens).as_bytes());
    Prepared { title, metadata, text: redaction.text, chunks, fingerprint: hex::encode(h.finalize()), redacted: counts }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::WordCounter;

    fn prep(redactor: &Redactor) -> Preparation<'_> {
        Preparation { chunking: ChunkOptions { max_tokens: 8, overlap_tokens: 0 }, redactor, counter: &WordCounter }
    }

    #[test]
    fn redacts_before_chunking_so_offsets_point_into_the_stored_text() {
        let mask = Redactor::new(PiiPolicy::Mask);
        let field = TextField::default();
        let md = b"# Contact jane@example.com\n\nWrite to jane@example.com or call +1 415 555 0132 today please. Card 4111 1111 1111 1111.";
        let docs = prepare(md, Format::Markdown, &field, &prep(&mask)).unwrap();
        let d = &docs[0];
        assert_eq!(d.title.as_deref(), Some("Contact [EMAIL]"));
        assert!(!d.text.contains("jane") && !d.text.contains("4111") && !d.text.contains("555"));
        assert_eq!(d.redacted, [(PiiKind::Email, 2), (PiiKind::Phone, 1), (PiiKind::CardNumber, 1)]);
        for c in &d.chunks {
            assert_eq!(&d.text[c.start..c.end], c.text);
            assert!(!c.text.contains('@'));
        }
        assert_eq!(d.chunks[0].headings, ["Contact [EMAIL]"]);
    }

    #[test]
    fn fingerprints_follow_content_and_settings() {
        let off = Redactor::new(PiiPolicy::Off);
        let field = TextField::default();
        let p = prep(&off);
        let a = &prepare(b"Same text.\r\n", Format::Text, &field, &p).unwrap()[0];
        let b = &prepare(b"Same text.\n", Format::Text, &field, &p).unwrap()[0];
        assert_eq!(a.fingerprint, b.fingerprint, "formatting that normalises away changes nothing");
        let c = &prepare(b"Other text.", Format::Text, &field, &p).unwrap()[0];
        assert_ne!(a.fingerprint, c.fingerprint);
        let wider = Preparation { chunking: ChunkOptions { max_tokens: 100, overlap_tokens: 0 }, ..p };
        assert_ne!(a.fingerprint, prepare(b"Same text.", Format::Text, &field, &wider).unwrap()[0].fingerprint);
    }

    #[test]
    fn jsonl_gives_one_prepared_document_per_line_and_errors_pass_through() {
        let off = Redactor::new(PiiPolicy::Off);
        let field = TextField::default();
        let p = prep(&off);
        let docs = prepare(b"{\"text\": \"one\", \"n\": 1}\n{\"text\": \"two\", \"n\": 2}", Format::Jsonl, &field, &p)
            .unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].metadata["n"], 2);
        assert!(prepare(b"{oops", Format::Jsonl, &field, &p).is_err());
        let counted = Preparation { counter: &|t: &str| t.len(), ..prep(&off) };
        assert!(
            prepare(b"abcdefghij klmnop", Format::Text, &field, &counted).unwrap()[0].chunks.len() >= 2,
            "the counter decides the budget"
        );
    }
}
