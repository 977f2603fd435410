//! Document parsing: bytes in a known format become normalised text (with Markdown-style
//! headings where the format has structure, so the chunker can follow it), a title when the
//! document names one, and, for JSON Lines, one document per line with its other fields as
//! metadata. Every failure is a `ParseError` a caller can show as a 400; nothing panics.

mod html;
mod json;
mod pdf;

use std::time::{Duration, Instant};

use serde_json::{Map, Value};

pub use json::TextField;

/// What one parse may cost: hostile files (a decompression bomb in a small PDF, a JSON Lines
/// file of millions of lines) are refused as soon as they pass a bound, not after.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Most pages read from one PDF.
    pub max_pdf_pages: usize,
    /// Most bytes a PDF's streams may inflate to, all together.
    pub max_inflated_bytes: usize,
    /// Most documents one file may hold (JSON Lines).
    pub max_documents: usize,
    /// Most bytes of text one document may have.
    pub max_document_bytes: usize,
    /// When to give up.
    pub deadline: Instant,
}

impl Limits {
    /// Generous bounds for trusted input (tests, the evaluation corpus), `within` from now.
    pub fn generous(within: Duration) -> Limits {
        Limits {
            max_pdf_pages: 10_000,
            max_inflated_bytes: 1 << 30,
            max_documents: usize::MAX,
            max_document_bytes: usize::MAX,
            deadline: Instant::now() + within,
        }
    }

    /// Fails once the deadline has passed.
    pub(crate) fn check_time(&self) -> Result<(), ParseError> {
        if Instant::now() >= self.deadline {
            Err(ParseError::TooSlow)
        } else {
            Ok(())
        }
    }
}

/// A format Cairn reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// UTF-8 plain text.
    Text,
    /// Markdown (kept as is: its headings guide chunking).
    Markdown,
    /// HTML (converted to text with Markdown headings).
    Html,
    /// A PDF's text layer.
    Pdf,
    /// One JSON object; its text is in a chosen field.
    Json,
    /// One JSON object per line, each a document.
    Jsonl,
}

impl Format {
    /// The format of a file, by its extension.
    pub fn from_extension(name: &str) -> Option<Format> {
        let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
        Some(match ext.as_str() {
            "txt" | "text" | "log" | "csv" | "tsv" => Format::Text,
            "md" | "markdown" | "mdx" => Format::Markdown,
            "html" | "htm" | "xhtml" => Format::Html,
            "pdf" => Format::Pdf,
            "json" => Format::Json,
            "jsonl" | "ndjson" => Format::Jsonl,
            _ => return None,
        })
    }

    /// The format of a MIME type (parameters such as `charset` ignored).
    pub fn from_mime(mime: &str) -> Option<Format> {
        let essence = mime.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        Some(match essence.as_str() {
            "text/plain" | "text/csv" => Format::Text,
            "text/markdown" | "text/x-markdown" => Format::Markdown,
            "text/html" | "application/xhtml+xml" => Format::Html,
            "application/pdf" => Format::Pdf,
            "application/json" => Format::Json,
            "application/jsonl" | "application/x-ndjson" | "application/ndjson" => Format::Jsonl,
            _ => return None,
        })
    }
}

/// Why a document could not be read.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum ParseError {
    /// Text formats must be UTF-8.
    #[error("the document is not valid UTF-8 (at byte {0})")]
    NotUtf8(usize),
    /// The PDF is damaged, encrypted or has no text layer.
    #[error("cannot read the PDF: {0}")]
    Pdf(String),
    /// The JSON is malformed or lacks the text field.
    #[error("{0}")]
    Json(String),
    /// Nothing to index.
    #[error("the document has no text")]
    Empty,
    /// The file passes a size bound (`Limits`).
    #[error("{0}")]
    TooLarge(String),
    /// Reading the file took longer than allowed.
    #[error("reading the file took too long")]
    TooSlow,
}

/// One parsed document.
#[derive(Clone, Debug, PartialEq)]
pub struct Parsed {
    /// Normalised text: `\n` line ends, no control characters, trimmed.
    pub text: String,
    /// The title the document gives itself, if any.
    pub title: Option<String>,
    /// Fields found next to the text (JSON formats), to merge into the document's metadata.
    pub metadata: Map<String, Value>,
}

/// Parses `bytes` as `format` within generous bounds (see `parse_within`).
pub fn parse(bytes: &[u8], format: Format, field: &TextField) -> Result<Vec<Parsed>, ParseError> {
    parse_within(bytes, format, field, &Limits::generous(Duration::from_secs(600)))
}

/// Parses `bytes` as `format`, refusing it as soon as it passes one of `limits`; JSON formats
/// take their text from `field`. JSON Lines yields one document per non-empty line; every
/// other format yields one.
pub fn parse_within(
    bytes: &[u8],
    format: Format,
    field: &TextField,
    limits: &Limits,
) -> Result<Vec<Parsed>, ParseError> {
    let docs = match format {
        Format::Text => vec![plain(utf8(bytes)?, None)],
        Format::Markdown => {
            let text = utf8(bytes)?;
            let title = text.lines().find_map(|l| l.strip_prefix("# ")).map(|t| t.trim().to_owned());
            vec![plain(text, title)]
        }
        Format::Html => {
            let (text, title) = html::to_text(utf8(bytes)?);
            vec![plain(&text, title)]
        }
        Format::Pdf => vec![plain(&pdf::text(bytes, limits)?, None)],
        Format::Json => vec![json::document(utf8(bytes)?, field)?],
        Format::Jsonl => json::lines(utf8(bytes)?, field, limits)?,
    };
    if docs.iter().all(|d| d.text.is_empty()) {
        return Err(ParseError::Empty);
    }
    Ok(docs.into_iter().filter(|d| !d.text.is_empty()).collect())
}

fn utf8(bytes: &[u8]) -> Result<&str, ParseError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    std::str::from_utf8(bytes).map_err(|e| ParseError::NotUtf8(e.valid_up_to()))
}

/// A document from text: line ends unified, control characters (but tab and newline) dropped,
/// runs of more than two newlines shortened, ends trimmed.
pub(crate) fn plain(text: &str, title: Option<String>) -> Parsed {
    Parsed { text: normalise(text), title: title.filter(|t| !t.is_empty()), metadata: Map::new() }
}

/// See `plain`.
pub(crate) fn normalise(text: &str) -> String {
    let unified = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut out = String::with_capacity(unified.len());
    let mut newlines = 0;
    for c in unified.chars() {
        if c == '\n' {
            newlines += 1;
            if newlines <= 2 {
                out.push('\n');
            }
            continue;
        }
        if c.is_control() && c != '\t' {
            continue;
        }
        newlines = 0;
        out.push(c);
    }
    out.trim().to_owned()
}

#[cfg(test)]
mod tests;
