//! PDF text: the text layer of every page, in page order, pages separated by blank lines.
//! Scanned PDFs (images only) have no text layer and are refused as empty.

use super::ParseError;

/// The text of `bytes`, a PDF file.
pub(super) fn text(bytes: &[u8]) -> Result<String, ParseError> {
    let doc = lopdf::Document::load_mem(bytes).map_err(|e| ParseError::Pdf(e.to_string()))?;
    if doc.is_encrypted() {
        return Err(ParseError::Pdf("the file is encrypted".into()));
    }
    let pages: Vec<u32> = doc.get_pages().keys().copied().collect();
    if pages.is_empty() {
        return Err(ParseError::Pdf("the file has no pages".into()));
    }
    let mut out = String::new();
    for p in pages {
        let page = doc.extract_text(&[p]).map_err(|e| ParseError::Pdf(format!("page {p}: {e}")))?;
        out.push_str(page.trim());
        out.push_str("\n\n");
    }
    Ok(out)
}
