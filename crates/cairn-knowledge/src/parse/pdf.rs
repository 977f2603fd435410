//! PDF text: the text layer of every page, in page order, pages separated by blank lines.
//! Scanned PDFs (images only) have no text layer and are refused as empty. A PDF is untrusted
//! input: its page count, what its streams inflate to (all together), the text it yields and
//! the time it takes are bounded, and it is refused as soon as it passes one of them.

use super::{Limits, ParseError};

/// The text of `bytes`, a PDF file, within `limits`.
pub(super) fn text(bytes: &[u8], limits: &Limits) -> Result<String, ParseError> {
    let options =
        lopdf::LoadOptions { max_decompressed_size: Some(limits.max_inflated_bytes), ..lopdf::LoadOptions::default() };
    let doc = lopdf::Document::load_mem_with_options(bytes, options).map_err(|e| pdf_error(e, limits))?;
    if doc.is_encrypted() {
        return Err(ParseError::Pdf("the file is encrypted".into()));
    }
    limits.check_time()?;
    let pages: Vec<u32> = doc.get_pages().keys().copied().collect();
    if pages.is_empty() {
        return Err(ParseError::Pdf("the file has no pages".into()));
    }
    if pages.len() > limits.max_pdf_pages {
        return Err(ParseError::TooLarge(format!(
            "the PDF has {} pages; the limit is {} (knowledge.max_pdf_pages)",
            pages.len(),
            limits.max_pdf_pages
        )));
    }
    let mut out = String::new();
    // Every page's content counts against one budget, so many pages of moderate streams
    // cannot add up to what one bomb would.
    let mut inflated = 0usize;
    for p in pages {
        limits.check_time()?;
        let budget = limits.max_inflated_bytes.saturating_sub(inflated);
        let page = doc.extract_text_with_limit(&[p], budget).map_err(|e| pdf_error(e, limits))?;
        inflated += page.len();
        out.push_str(page.trim());
        out.push_str("\n\n");
        if out.len() > limits.max_document_bytes {
            return Err(ParseError::TooLarge(format!(
                "the PDF has more than {} bytes of text (knowledge.max_document_bytes)",
                limits.max_document_bytes
            )));
        }
    }
    Ok(out)
}

fn pdf_error(e: lopdf::Error, limits: &Limits) -> ParseError {
    let message = e.to_string();
    if matches!(e, lopdf::Error::Decompress(lopdf::DecompressError::MemoryLimitExceeded { .. })) {
        ParseError::TooLarge(format!(
            "the PDF inflates to more than {} bytes (knowledge.max_pdf_inflated_bytes)",
            limits.max_inflated_bytes
        ))
    } else {
        ParseError::Pdf(message)
    }
}
