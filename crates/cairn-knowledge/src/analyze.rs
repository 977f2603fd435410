//! Text analysis for keyword search: lowercase, split into words (letters and digits, any
//! script), drop English stop words, and reduce each word to its Snowball stem, so "proteins"
//! and "protein" meet. Queries and documents go through the same analyzer.

use rust_stemmers::{Algorithm, Stemmer};

/// Lucene's English stop words (what Anserini and Elasticsearch use by default).
const STOP_WORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it", "no", "not", "of",
    "on", "or", "such", "that", "the", "their", "then", "there", "these", "they", "this", "to", "was", "will", "with",
];

/// Turns text into index terms (see the module docs).
pub struct Analyzer {
    stemmer: Stemmer,
}

impl Default for Analyzer {
    fn default() -> Self {
        Self::english()
    }
}

impl Analyzer {
    /// The English analyzer.
    pub fn english() -> Self {
        Self { stemmer: Stemmer::create(Algorithm::English) }
    }

    /// The terms of `text`, in order (repeats kept: term frequency matters).
    pub fn terms(&self, text: &str) -> Vec<String> {
        self.words(text).filter_map(|(_, w)| self.term(w)).collect()
    }

    /// Each word of `text` with its byte offset, before stop-word removal and stemming
    /// (for highlighting: a word matches when `term` of it is a query term).
    pub fn words<'a>(&self, text: &'a str) -> impl Iterator<Item = (usize, &'a str)> + 'a {
        text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(move |w| {
            // `split` yields slices of `text`, so the pointer difference is the byte offset.
            (w.as_ptr() as usize - text.as_ptr() as usize, w)
        })
    }

    /// The index term of one word, or `None` for a stop word.
    pub fn term(&self, word: &str) -> Option<String> {
        let lower = word.to_lowercase();
        if STOP_WORDS.contains(&lower.as_str()) {
            return None;
        }
        Some(self.stemmer.stem(&lower).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stems_lowercases_and_drops_stop_words() {
        let a = Analyzer::english();
        assert_eq!(a.terms("The Proteins are binding to receptors"), ["protein", "bind", "receptor"]);
        assert_eq!(a.terms("COVID-19 vaccines, 2021"), ["covid", "19", "vaccin", "2021"]);
        assert_eq!(a.terms("Ärzte und Straße"), ["ärzte", "und", "straße"]);
        assert!(a.terms("  ,;  ").is_empty());
    }

    #[test]
    fn words_carry_their_offsets() {
        let a = Analyzer::english();
        let text = "é, Gene expression";
        let words: Vec<_> = a.words(text).collect();
        assert_eq!(words, [(0, "é"), (4, "Gene"), (9, "expression")]);
    }
}
