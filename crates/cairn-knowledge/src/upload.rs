//! Files uploaded to a collection (`POST /v1/collections/{id}/files`, `cairn ingest`). Files
//! are parsed here, at upload, so a corrupt PDF or an unsupported type is refused at once with
//! a 4xx naming the file, and nothing of the upload is stored: every file is parsed and checked
//! before any document is written. The parsed text then takes the same path as JSON uploads
//! (pending document, `knowledge.ingest` job). Document ids default to the file name (a part
//! without one gets new ids), so
//! uploading the same file again replaces (or, unchanged, keeps) the same document.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_core::config::KnowledgeConfig;
use cairn_core::tenancy::Role;
use cairn_core::{CallContext, Error, Result};
use serde_json::{Map, Value};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::parse::{parse_within, Format, Limits, ParseError, TextField};
use crate::service::{Accepted, KnowledgeService, NewDocument};

/// How much one upload may cost, and how many run at once.
#[derive(Clone)]
pub(crate) struct UploadLimits {
    slots: Arc<Semaphore>,
    max_documents: usize,
    max_pdf_pages: usize,
    max_pdf_inflated_bytes: usize,
    parse_timeout: Duration,
}

impl From<&KnowledgeConfig> for UploadLimits {
    fn from(c: &KnowledgeConfig) -> Self {
        UploadLimits {
            slots: Arc::new(Semaphore::new(c.max_concurrent_uploads.max(1))),
            max_documents: c.max_documents_per_upload,
            max_pdf_pages: c.max_pdf_pages,
            max_pdf_inflated_bytes: c.max_pdf_inflated_bytes,
            parse_timeout: Duration::from_secs(c.parse_timeout_secs),
        }
    }
}

/// A place among the uploads being read at once; released when dropped.
pub struct UploadSlot(#[allow(dead_code)] OwnedSemaphorePermit);

/// One uploaded file.
#[derive(Clone, Debug)]
pub struct UploadedFile {
    /// Its name as sent (a relative path for `cairn ingest`).
    pub name: String,
    /// Its declared MIME type, if any.
    pub content_type: Option<String>,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// Options applying to every file of an upload.
#[derive(Clone, Debug, Default)]
pub struct UploadOptions {
    /// Read every file in this format instead of guessing from its name and type.
    pub format: Option<String>,
    /// JSON formats: the dotted path of the text (default `text`).
    pub text_field: Option<String>,
    /// JSON formats: the dotted path of the title (default `title`).
    pub title_field: Option<String>,
    /// Metadata added to every document (a JSON object).
    pub metadata: Option<Value>,
}

/// Formats by name, for `UploadOptions::format`.
fn named_format(name: &str) -> Option<Format> {
    Format::from_extension(&format!("x.{name}"))
}

fn format_of(file: &UploadedFile, forced: Option<Format>) -> Option<Format> {
    forced
        .or_else(|| Format::from_extension(&file.name))
        .or_else(|| file.content_type.as_deref().and_then(Format::from_mime))
}

impl KnowledgeService {
    /// A place among the uploads this process reads at once (`knowledge.max_concurrent_uploads`):
    /// taken before the body is read, so a flood of large uploads waits at the door with 429.
    pub fn upload_slot(&self) -> Result<UploadSlot> {
        self.uploads.slots.clone().try_acquire_owned().map(UploadSlot).map_err(|_| Error::RateLimited {
            message: "too many uploads are being read right now; retry in a moment".into(),
            retry_after: Duration::from_secs(1),
        })
    }

    /// Parses `files` and queues their documents (see the module docs).
    pub async fn add_files(
        &self,
        ctx: &CallContext,
        collection_id: &str,
        files: Vec<UploadedFile>,
        opts: UploadOptions,
    ) -> Result<Vec<Accepted>> {
        ctx.principal.require(Role::Member)?;
        self.collection(&ctx.principal, collection_id).await?;
        if files.is_empty() {
            return Err(Error::invalid_param("file", "send at least one file (a multipart field named 'file')"));
        }
        let forced = match opts.format.as_deref() {
            Some(f) => Some(named_format(f).ok_or_else(|| {
                Error::invalid_param("format", format!("unknown format '{f}' (text, md, html, pdf, json, jsonl)"))
            })?),
            None => None,
        };
        let extra = match opts.metadata {
            None => Map::new(),
            Some(Value::Object(m)) => m,
            Some(_) => return Err(Error::invalid_param("metadata", "metadata must be a JSON object")),
        };
        let field = TextField {
            text: opts.text_field.unwrap_or_else(|| "text".into()),
            title: Some(opts.title_field.unwrap_or_else(|| "title".into())),
        };
        let max = self.max_document_bytes();
        let limits = Limits {
            max_pdf_pages: self.uploads.max_pdf_pages,
            max_inflated_bytes: self.uploads.max_pdf_inflated_bytes,
            max_documents: self.uploads.max_documents,
            max_document_bytes: max,
            deadline: Instant::now() + self.uploads.parse_timeout,
        };
        let mut docs = Vec::new();
        for (i, file) in files.into_iter().enumerate() {
            let param = format!("file[{i}]");
            // A part without a file name is named by its place; its documents get new ids.
            let named = !file.name.trim().is_empty();
            let name = if named { file.name.trim().to_owned() } else { param.clone() };
            let Some(format) = format_of(&file, forced) else {
                return Err(Error::invalid_param(
                    param,
                    format!(
                        "'{name}' is of an unsupported type ({}); send .txt, .md, .html, .pdf, .json or .jsonl, or set format",
                        file.content_type.as_deref().unwrap_or("no content type")
                    ),
                ));
            };
            let bytes = file.bytes;
            let field = field.clone();
            // Parsing is CPU work: off the async workers, bounded by `limits` (the parser
            // checks them as it goes; the timeout is the backstop).
            let left = limits.deadline.saturating_duration_since(Instant::now()) + Duration::from_secs(1);
            let task = tokio::task::spawn_blocking(move || parse_within(&bytes, format, &field, &limits));
            let parsed = tokio::time::timeout(left, task)
                .await
                .map_err(|_| too_slow(&name, self.uploads.parse_timeout))?
                .map_err(|e| Error::Internal(format!("parser task: {e}")))?;
            let parsed = parsed.map_err(|e| match e {
                ParseError::Empty => Error::invalid_param(param.clone(), format!("'{name}' has no text")),
                ParseError::TooLarge(m) => Error::TooLarge(format!("'{name}': {m}")),
                ParseError::TooSlow => too_slow(&name, self.uploads.parse_timeout),
                e => Error::invalid_param(param.clone(), format!("'{name}': {e}")),
            })?;
            if docs.len() + parsed.len() > limits.max_documents {
                return Err(Error::TooLarge(format!(
                    "the upload holds more than {} documents (knowledge.max_documents_per_upload)",
                    limits.max_documents
                )));
            }
            let many = parsed.len() > 1 || format == Format::Jsonl;
            for (line, p) in parsed.into_iter().enumerate() {
                if p.text.len() > max {
                    return Err(Error::TooLarge(format!(
                        "'{name}' has {} bytes of text; the limit per document is {max} (knowledge.max_document_bytes)",
                        p.text.len()
                    )));
                }
                let mut metadata = p.metadata;
                metadata.extend(extra.clone());
                let id = match (named, many) {
                    (true, true) => Some(format!("{name}#{}", line + 1)),
                    (true, false) => Some(name.clone()),
                    (false, _) => None,
                };
                docs.push(NewDocument {
                    id,
                    title: p.title.or_else(|| named.then(|| file_stem(&name))),
                    source: named.then(|| name.clone()),
                    text: p.text,
                    metadata: Some(Value::Object(metadata)),
                });
            }
        }
        self.add_documents(ctx, collection_id, docs).await
    }
}

fn too_slow(name: &str, limit: Duration) -> Error {
    Error::TooLarge(format!(
        "reading '{name}' took longer than {}s (knowledge.parse_timeout_secs); split it into smaller files",
        limit.as_secs()
    ))
}

/// The file name without folders or extension, as a fallback title.
fn file_stem(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    base.rsplit_once('.').map_or(base, |(stem, _)| stem).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_come_from_the_option_the_name_or_the_type() {
        let f = |name: &str, ct: Option<&str>| UploadedFile {
            name: name.into(),
            content_type: ct.map(str::to_owned),
            bytes: Vec::new(),
        };
        assert_eq!(format_of(&f("a/b.PDF", None), None), Some(Format::Pdf));
        assert_eq!(format_of(&f("notes", Some("text/markdown; charset=utf-8")), None), Some(Format::Markdown));
        assert_eq!(format_of(&f("x.bin", Some("application/octet-stream")), None), None);
        assert_eq!(format_of(&f("x.bin", None), named_format("jsonl")), Some(Format::Jsonl));
        assert_eq!(named_format("exe"), None);
        assert_eq!(file_stem("docs/guide.v2.md"), "guide.v2");
        assert_eq!(file_stem("README"), "README");
    }
}
