//! Redaction of text that arrives in pieces (a streamed answer). A value may be split across
//! pieces (`jane.doe@exa` then `mple.com`), so the tail of what has arrived is held back until
//! it can no longer be part of a value: text is released only up to a whitespace at least
//! `HOLD` bytes behind the newest byte, never inside a finding, and never after the start of a
//! private-key block still open. What is released is redacted exactly as the whole text would
//! be; what is held goes out (redacted) when the stream ends.

use std::sync::Arc;

use super::{Finding, Redactor};

/// Bytes always held back: longer than any value that contains spaces (an IBAN with its
/// groups, a formatted phone number), so such a value is whole before any of it is released.
const HOLD: usize = 64;
/// Most bytes held when no whitespace comes (one long token): released as they are, redacted.
const MAX_HOLD: usize = 16 * 1024;

/// Text released by a `StreamRedactor`: the same bytes as they came and as redacted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Released {
    /// The text as it came.
    pub raw: String,
    /// The text redacted per the redactor's policy.
    pub redacted: String,
    /// What was found in it (offsets into `raw`).
    pub findings: Vec<Finding>,
}

/// Redacts a stream of text pieces (see the module docs). One per stream of text.
pub struct StreamRedactor {
    redactor: Arc<Redactor>,
    held: String,
}

impl StreamRedactor {
    /// A redactor for one stream.
    pub fn new(redactor: Arc<Redactor>) -> Self {
        Self { redactor, held: String::new() }
    }

    /// Takes the next piece; returns what may be released now (often nothing).
    pub fn push(&mut self, piece: &str) -> Released {
        self.held.push_str(piece);
        if self.held.len() <= HOLD {
            return Released::default();
        }
        let cut = self.cut();
        self.release(cut)
    }

    /// The stream ended: releases everything held.
    pub fn finish(&mut self) -> Released {
        self.release(self.held.len())
    }

    /// Where the held text may be cut: see the module docs.
    fn cut(&self) -> usize {
        let text = self.held.as_str();
        let mut limit = floor_boundary(text, text.len() - HOLD);
        // An unfinished private key: hold from its start until its end marker arrives.
        if let Some(open) = text.rfind("-----BEGIN ") {
            let closed = text[open..].find("-----END ").is_some_and(|end| text[open + end..].contains("KEY-----"));
            if !closed {
                limit = limit.min(open);
            }
        }
        let mut cut = text[..limit].rfind(char::is_whitespace).unwrap_or(0);
        if cut == 0 && text.len() > MAX_HOLD {
            cut = limit; // one endless token: release it rather than hold without bound
        }
        for f in self.redactor.find(text) {
            if f.start < cut && cut < f.end {
                cut = f.start;
            }
        }
        cut
    }

    fn release(&mut self, cut: usize) -> Released {
        if cut == 0 {
            return Released::default();
        }
        let rest = self.held.split_off(cut);
        let raw = std::mem::replace(&mut self.held, rest);
        let redaction = self.redactor.redact(&raw);
        Released { raw, redacted: redaction.text, findings: redaction.findings }
    }
}

/// The largest char boundary of `s` at or below `at`.
fn floor_boundary(s: &str, mut at: usize) -> usize {
    while at > 0 && !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PiiPolicy;

    fn stream(pieces: &[&str]) -> (String, usize) {
        let mut s = StreamRedactor::new(Arc::new(Redactor::new(PiiPolicy::Mask)));
        let mut out = String::new();
        let mut found = 0;
        for p in pieces {
            let r = s.push(p);
            out.push_str(&r.redacted);
            found += r.findings.len();
        }
        let r = s.finish();
        out.push_str(&r.redacted);
        (out, found + r.findings.len())
    }

    #[test]
    fn values_split_across_pieces_are_redacted() {
        let text = "Please write to jane.doe@example.com or call +1 (415) 555-0132 before Friday; \
                    the card on file is 4111 1111 1111 1111 and the IBAN GB82 WEST 1234 5698 7654 32. Thanks!";
        let whole = Redactor::new(PiiPolicy::Mask).redact(text).text;
        for size in [1, 2, 3, 5, 7, 16, 64, 1000] {
            let chars: Vec<char> = text.chars().collect();
            let pieces: Vec<String> = chars.chunks(size).map(|c| c.iter().collect()).collect();
            let refs: Vec<&str> = pieces.iter().map(String::as_str).collect();
            let (out, found) = stream(&refs);
            assert_eq!(out, whole, "pieces of {size}");
            assert_eq!(found, 4, "pieces of {size}");
        }
    }

    #[test]
    fn nothing_raw_is_released_early() {
        let mut s = StreamRedactor::new(Arc::new(Redactor::new(PiiPolicy::Mask)));
        let mut released = String::new();
        for piece in [
            "Contact: jane.",
            "doe@exam",
            "ple.com ",
            "and more words follow here to push the text past the hold ",
            "window entirely.",
        ] {
            released.push_str(&s.push(piece).redacted);
            assert!(!released.contains("jane") && !released.contains("exam"), "{released}");
        }
        released.push_str(&s.finish().redacted);
        assert!(released.starts_with("Contact: [EMAIL] and more"), "{released}");
    }

    #[test]
    fn open_private_keys_are_held_until_closed() {
        let key = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\n\
                   abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz 0123 4567\n-----END PRIVATE KEY-----";
        let text = format!("here it is: {key} done and some trailing words to flush the hold window out.");
        let pieces: Vec<String> = text.chars().collect::<Vec<_>>().chunks(9).map(|c| c.iter().collect()).collect();
        let refs: Vec<&str> = pieces.iter().map(String::as_str).collect();
        let (out, found) = stream(&refs);
        assert_eq!(found, 1);
        assert!(out.starts_with("here it is: [SECRET] done"), "{out}");
    }

    #[test]
    fn unicode_pieces_keep_their_boundaries() {
        let text = "naïve café — ünïcödé text ".repeat(10) + "mail me: zoë@example.org";
        let pieces: Vec<String> = text.chars().collect::<Vec<_>>().chunks(3).map(|c| c.iter().collect()).collect();
        let refs: Vec<&str> = pieces.iter().map(String::as_str).collect();
        let (out, _) = stream(&refs);
        assert_eq!(out, Redactor::new(PiiPolicy::Mask).redact(&text).text);
    }
}
