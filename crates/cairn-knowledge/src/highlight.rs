//! Highlighted snippets for search results: the window of a chunk with the most query terms,
//! with each matching word wrapped in `<mark>`. A word matches when its analysed term (stemmed,
//! lowercased) is one of the query's, so "proteins" lights up for "protein". The snippet is
//! HTML-escaped before the marks go in, so it is safe to render as HTML whatever the document
//! held.

use std::collections::HashSet;

use crate::analyze::Analyzer;

/// Longest snippet, in characters of the original text (before escaping and marks).
pub const SNIPPET_CHARS: usize = 240;

/// Highlights one query's terms: analysed once, applied to every hit.
pub struct Highlighter<'a> {
    analyzer: &'a Analyzer,
    wanted: HashSet<String>,
}

impl<'a> Highlighter<'a> {
    /// A highlighter of `query`'s terms.
    pub fn new(analyzer: &'a Analyzer, query: &str) -> Self {
        Self { analyzer, wanted: analyzer.terms(query).into_iter().collect() }
    }

    /// The snippet of `text` (see the module docs).
    pub fn snippet(&self, text: &str) -> String {
        snippet_of(self.analyzer, &self.wanted, text)
    }
}

/// The snippet of `text` for `query` (see the module docs).
pub fn snippet(analyzer: &Analyzer, text: &str, query: &str) -> String {
    Highlighter::new(analyzer, query).snippet(text)
}

fn snippet_of(analyzer: &Analyzer, wanted: &HashSet<String>, text: &str) -> String {
    let hits: Vec<(usize, usize)> = analyzer
        .words(text)
        .filter(|(_, w)| analyzer.term(w).is_some_and(|t| wanted.contains(&t)))
        .map(|(at, w)| (at, at + w.len()))
        .collect();
    let (start, end) = window(text, &hits);
    let mut out = String::with_capacity(end - start + 32);
    if start > 0 {
        out.push('…');
    }
    let mut at = start;
    for &(s, e) in hits.iter().filter(|(s, e)| *s >= start && *e <= end) {
        escape_into(&mut out, &text[at..s]);
        out.push_str("<mark>");
        escape_into(&mut out, &text[s..e]);
        out.push_str("</mark>");
        at = e;
    }
    escape_into(&mut out, &text[at..end]);
    if end < text.len() {
        out.push('…');
    }
    out
}

/// The byte range of at most `SNIPPET_CHARS` characters holding the most hits, widened to word
/// boundaries where it cuts the text.
fn window(text: &str, hits: &[(usize, usize)]) -> (usize, usize) {
    let chars: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
    if chars.len() <= SNIPPET_CHARS {
        return (0, text.len());
    }
    let byte_at = |ci: usize| chars.get(ci).copied().unwrap_or(text.len());
    // Slide a window that starts at each hit; keep the one covering the most hits.
    let mut best = (0, 0usize);
    for (i, &(s, _)) in hits.iter().enumerate() {
        let ci = chars.partition_point(|&b| b < s);
        let limit = byte_at(ci + SNIPPET_CHARS);
        let covered = hits[i..].iter().take_while(|(_, e)| *e <= limit).count();
        if covered > best.1 {
            best = (ci, covered);
        }
    }
    // Start a little before the first hit, for context.
    let first = best.0.saturating_sub(SNIPPET_CHARS / 6).min(chars.len() - SNIPPET_CHARS);
    let (mut start, mut end) = (byte_at(first), byte_at(first + SNIPPET_CHARS));
    if start > 0 {
        start = text[start..end].find(char::is_whitespace).map_or(start, |i| start + i + 1);
    }
    if end < text.len() {
        end = text[start..end].rfind(char::is_whitespace).map_or(end, |i| start + i);
    }
    (start, end)
}

fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_stemmed_matches_and_escapes_html() {
        let a = Analyzer::english();
        let s = snippet(&a, "Proteins <b>fold</b> & the protein folds.", "protein folding");
        assert_eq!(
            s,
            "<mark>Proteins</mark> &lt;b&gt;<mark>fold</mark>&lt;/b&gt; &amp; the <mark>protein</mark> <mark>folds</mark>."
        );
        assert_eq!(snippet(&a, "Nothing here.", "protein"), "Nothing here.");
    }

    #[test]
    fn long_text_gives_the_window_with_the_most_hits() {
        let a = Analyzer::english();
        let filler = "lorem ipsum dolor sit amet ".repeat(30);
        let text = format!("{filler}aspirin once. {filler}aspirin lowers fever; aspirin thins blood. {filler}");
        let s = snippet(&a, &text, "aspirin");
        assert_eq!(s.matches("<mark>aspirin</mark>").count(), 2, "{s}");
        assert!(s.starts_with('…') && s.ends_with('…'));
        let plain = s.replace("<mark>", "").replace("</mark>", "");
        assert!(plain.chars().count() <= SNIPPET_CHARS + 2, "{}", plain.chars().count());
        assert!(text.contains(plain.trim_matches('…')), "cut at word boundaries inside the text");
    }
}
