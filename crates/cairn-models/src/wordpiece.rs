//! The BERT WordPiece tokenizer, read from a model's `tokenizer.json`: BertNormalizer (clean
//! text, pad CJK characters, strip accents, lowercase), BertPreTokenizer (split on whitespace
//! and punctuation), then greedy longest-match WordPiece with `##` continuations. It follows
//! the Hugging Face `tokenizers` implementation rule for rule, so ids match the reference.

use std::collections::HashMap;

use serde::Deserialize;
use unicode_general_category::{get_general_category, GeneralCategory as G};
use unicode_normalization::UnicodeNormalization;

use crate::ModelError;

/// A WordPiece tokenizer.
pub struct WordPiece {
    vocab: HashMap<String, u32>,
    unk: u32,
    cls: u32,
    sep: u32,
    prefix: String,
    max_word_chars: usize,
    lowercase: bool,
    strip_accents: bool,
    chinese_chars: bool,
    clean_text: bool,
}

#[derive(Deserialize)]
struct TokenizerJson {
    normalizer: Option<NormalizerJson>,
    model: ModelJson,
}

#[derive(Deserialize)]
struct NormalizerJson {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default = "yes")]
    clean_text: bool,
    #[serde(default = "yes")]
    handle_chinese_chars: bool,
    strip_accents: Option<bool>,
    #[serde(default = "yes")]
    lowercase: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
struct ModelJson {
    #[serde(rename = "type")]
    kind: String,
    vocab: HashMap<String, u32>,
    unk_token: String,
    #[serde(default = "default_prefix")]
    continuing_subword_prefix: String,
    #[serde(default = "default_max_chars")]
    max_input_chars_per_word: usize,
}

fn default_prefix() -> String {
    "##".into()
}

fn default_max_chars() -> usize {
    100
}

impl WordPiece {
    /// Parses a `tokenizer.json` holding a WordPiece model.
    pub fn from_json(text: &str) -> Result<Self, ModelError> {
        let t: TokenizerJson =
            serde_json::from_str(text).map_err(|e| ModelError::Invalid(format!("tokenizer.json: {e}")))?;
        if t.model.kind != "WordPiece" {
            return Err(ModelError::Invalid(format!("tokenizer.json: model type {} is not WordPiece", t.model.kind)));
        }
        let id = |tok: &str| {
            t.model.vocab.get(tok).copied().ok_or_else(|| ModelError::Invalid(format!("vocabulary lacks {tok}")))
        };
        let (unk, cls, sep) = (id(&t.model.unk_token)?, id("[CLS]")?, id("[SEP]")?);
        let n = t.normalizer.as_ref().filter(|n| n.kind == "BertNormalizer");
        let lowercase = n.is_none_or(|n| n.lowercase);
        Ok(Self {
            unk,
            cls,
            sep,
            prefix: t.model.continuing_subword_prefix,
            max_word_chars: t.model.max_input_chars_per_word,
            lowercase,
            // As in `tokenizers`: unset strip_accents follows lowercase.
            strip_accents: n.and_then(|n| n.strip_accents).unwrap_or(lowercase),
            chinese_chars: n.is_none_or(|n| n.handle_chinese_chars),
            clean_text: n.is_none_or(|n| n.clean_text),
            vocab: t.model.vocab,
        })
    }

    /// Token ids for `text`: `[CLS] pieces... [SEP]`, at most `max_len` ids in all.
    pub fn encode(&self, text: &str, max_len: usize) -> Vec<u32> {
        let budget = max_len.saturating_sub(2);
        let mut ids = Vec::with_capacity(budget.min(64) + 2);
        ids.push(self.cls);
        let normalized = self.normalize(text);
        'words: for word in pre_tokenize(&normalized) {
            for id in self.word_pieces(word) {
                if ids.len() > budget {
                    break 'words;
                }
                ids.push(id);
            }
        }
        ids.push(self.sep);
        ids
    }

    /// Word pieces in `text`, without `[CLS]`/`[SEP]` and without truncation: what a chunk
    /// budget measured in this model's tokens needs.
    pub fn count(&self, text: &str) -> usize {
        let normalized = self.normalize(text);
        pre_tokenize(&normalized).into_iter().map(|word| self.word_pieces(word).len()).sum()
    }

    fn normalize(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len() + 8);
        for c in text.chars() {
            if self.clean_text {
                if c == '\0' || c == '\u{fffd}' || is_control(c) {
                    continue;
                }
                if is_whitespace(c) {
                    out.push(' ');
                    continue;
                }
            }
            if self.chinese_chars && is_chinese_char(c) {
                out.push(' ');
                out.push(c);
                out.push(' ');
            } else {
                out.push(c);
            }
        }
        if self.strip_accents {
            out = out.nfd().filter(|c| get_general_category(*c) != G::NonspacingMark).collect();
        }
        if self.lowercase {
            out = out.chars().flat_map(char::to_lowercase).collect();
        }
        out
    }

    fn word_pieces(&self, word: &str) -> Vec<u32> {
        if word.chars().count() > self.max_word_chars {
            return vec![self.unk];
        }
        let mut pieces = Vec::new();
        let mut start = 0;
        let mut candidate = String::with_capacity(word.len() + self.prefix.len());
        while start < word.len() {
            let mut end = word.len();
            let mut found = None;
            while start < end {
                candidate.clear();
                if start > 0 {
                    candidate.push_str(&self.prefix);
                }
                candidate.push_str(&word[start..end]);
                if let Some(&id) = self.vocab.get(&candidate) {
                    found = Some(id);
                    break;
                }
                // Step back one character, staying on a char boundary.
                end -= word[..end].chars().next_back().map_or(1, char::len_utf8);
            }
            match found {
                Some(id) => pieces.push(id),
                None => return vec![self.unk],
            }
            start = end;
        }
        pieces
    }
}

/// Splits on whitespace (dropped) and punctuation (kept, one character per token).
fn pre_tokenize(text: &str) -> Vec<&str> {
    let mut words = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        if is_whitespace(c) || is_punctuation(c) {
            if let Some(s) = start.take() {
                words.push(&text[s..i]);
            }
            if !is_whitespace(c) {
                words.push(&text[i..i + c.len_utf8()]);
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(s) = start {
        words.push(&text[s..]);
    }
    words
}

fn is_whitespace(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r') || c.is_whitespace()
}

fn is_control(c: char) -> bool {
    if matches!(c, '\t' | '\n' | '\r') {
        return false;
    }
    matches!(get_general_category(c), G::Control | G::Format | G::Unassigned | G::PrivateUse)
}

fn is_punctuation(c: char) -> bool {
    c.is_ascii_punctuation()
        || matches!(
            get_general_category(c),
            G::ConnectorPunctuation
                | G::DashPunctuation
                | G::ClosePunctuation
                | G::FinalPunctuation
                | G::InitialPunctuation
                | G::OtherPunctuation
                | G::OpenPunctuation
        )
}

fn is_chinese_char(c: char) -> bool {
    matches!(c as u32,
        0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0x20000..=0x2A6DF | 0x2A700..=0x2B73F
        | 0x2B740..=0x2B81F | 0x2B920..=0x2CEAF | 0xF900..=0xFAFF | 0x2F800..=0x2FA1F)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> WordPiece {
        let vocab: Vec<&str> = vec![
            "[PAD]", "[UNK]", "[CLS]", "[SEP]", "hello", "world", "##s", "un", "##aff", "##able", ",", "cafe", "中",
        ];
        let vocab: HashMap<&str, usize> = vocab.into_iter().enumerate().map(|(i, t)| (t, i)).collect();
        let json = serde_json::json!({
            "normalizer": {"type": "BertNormalizer", "lowercase": true, "strip_accents": null},
            "model": {"type": "WordPiece", "unk_token": "[UNK]", "vocab": vocab}
        });
        WordPiece::from_json(&json.to_string()).unwrap()
    }

    #[test]
    fn splits_normalises_and_matches_longest_pieces() {
        let t = tiny();
        assert_eq!(t.encode("Hello, WORLDS!", 64), vec![2, 4, 10, 5, 6, 1, 3]);
        assert_eq!(t.encode("unaffable", 64), vec![2, 7, 8, 9, 3]);
        assert_eq!(t.encode("Café\u{0}\u{7}", 64), vec![2, 11, 3], "accents stripped, controls dropped");
        assert_eq!(t.encode("x中y", 64), vec![2, 1, 12, 1, 3], "CJK characters stand alone");
        assert_eq!(t.encode("", 64), vec![2, 3]);
    }

    #[test]
    fn truncates_to_the_window() {
        let t = tiny();
        let ids = t.encode(&"hello ".repeat(50), 10);
        assert_eq!(ids.len(), 10);
        assert_eq!((ids[0], ids[9]), (2, 3));
    }

    #[test]
    fn counts_every_piece_without_special_tokens_or_truncation() {
        let t = tiny();
        assert_eq!(t.count("Hello, WORLDS!"), 5);
        assert_eq!(t.count("unaffable"), 3);
        assert_eq!(t.count(&"hello ".repeat(500)), 500, "no window");
        assert_eq!(t.count(""), 0);
    }
}
