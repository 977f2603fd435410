//! PII redaction. A `Redactor` finds personal data and secrets in text (e-mail addresses, phone
//! numbers, payment card numbers that pass Luhn, IBANs that pass mod-97, US social security
//! numbers, IPv4 and IPv6 addresses, and API keys, tokens and private keys of the common
//! formats) and rewrites them per policy: `mask` replaces each with its kind (`[EMAIL]`);
//! `hash` replaces each with a keyed hash of its normalised value (`[EMAIL:9f86d081884c7d65]`),
//! so the same address always gives the same token under one key and joins still work, while
//! the value cannot be recovered without the key.
//!
//! Patterns find candidates; checks (`checks`) keep only the real ones, so a 16-digit number
//! that fails Luhn, an invalid IBAN or a date that looks like a phone number stays as it is.

mod checks;
mod stream;

pub use stream::{Released, StreamRedactor};

use hmac::{Hmac, Mac};
use regex::Regex;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use utoipa::ToSchema;

/// What kind of personal data or secret a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PiiKind {
    /// An e-mail address.
    Email,
    /// A phone number.
    Phone,
    /// A payment card number (Luhn-valid).
    CardNumber,
    /// An IBAN (checksum-valid).
    Iban,
    /// A US social security number.
    UsSsn,
    /// An IPv4 or IPv6 address.
    IpAddress,
    /// An API key, access token, password value or private key.
    Secret,
}

impl PiiKind {
    /// The label used in masks, e.g. `EMAIL`.
    pub fn label(self) -> &'static str {
        match self {
            PiiKind::Email => "EMAIL",
            PiiKind::Phone => "PHONE",
            PiiKind::CardNumber => "CARD",
            PiiKind::Iban => "IBAN",
            PiiKind::UsSsn => "SSN",
            PiiKind::IpAddress => "IP",
            PiiKind::Secret => "SECRET",
        }
    }

    /// The value as compared for hashing: formatting removed, so `+1 (415) 555-0132` and
    /// `+14155550132` give the same token.
    fn normalise(self, value: &str) -> String {
        match self {
            PiiKind::Email => value.to_lowercase(),
            PiiKind::Phone => {
                let plus = if value.trim_start().starts_with('+') { "+" } else { "" };
                format!("{plus}{}", value.chars().filter(char::is_ascii_digit).collect::<String>())
            }
            PiiKind::CardNumber | PiiKind::UsSsn => value.chars().filter(char::is_ascii_digit).collect(),
            PiiKind::Iban => value.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_ascii_uppercase(),
            PiiKind::IpAddress => value.to_lowercase(),
            PiiKind::Secret => value.to_owned(),
        }
    }
}

/// What to do with what is found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum PiiPolicy {
    /// Leave text as it is.
    #[default]
    Off,
    /// Replace each finding with its kind, e.g. `[EMAIL]`.
    Mask,
    /// Replace each finding with `[KIND:hash]`, an HMAC-SHA256 of its normalised value under
    /// this key (the first 16 hex digits).
    Hash {
        /// The secret key (from the environment, never from config files).
        key: Vec<u8>,
    },
}

/// One piece of personal data found in a text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// What it is.
    pub kind: PiiKind,
    /// Byte offset of its start.
    pub start: usize,
    /// Byte offset just past its end.
    pub end: usize,
}

/// A text after redaction, with what was found in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redaction {
    /// The rewritten text (the input itself when the policy is `Off`).
    pub text: String,
    /// The findings, in the input's offsets, in order.
    pub findings: Vec<Finding>,
}

/// One detector: a pattern, the part of a match that is the value, and a check.
struct Detector {
    kind: PiiKind,
    pattern: Regex,
    /// Capture group holding the value (0: the whole match).
    group: usize,
    check: fn(&str) -> bool,
}

/// Finds and rewrites PII (see the module docs). Build once and share: patterns compile once.
pub struct Redactor {
    policy: PiiPolicy,
    detectors: Vec<Detector>,
}

fn any(_: &str) -> bool {
    true
}

/// A detector as written in the table: kind, pattern, value group, check.
type DetectorSpec = (PiiKind, &'static str, usize, fn(&str) -> bool);

impl Redactor {
    /// A redactor applying `policy`.
    pub fn new(policy: PiiPolicy) -> Self {
        // Order matters where matches overlap: earlier detectors win ties (see `find`).
        let table: &[DetectorSpec] = &[
            (PiiKind::Secret, r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----", 0, any),
            (PiiKind::Secret, r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}", 0, any),
            (
                PiiKind::Secret,
                r"\b(?:sk-(?:ant-|proj-|cairn-)?[A-Za-z0-9_-]{20,}|(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{40,}|xox[abposr]-[A-Za-z0-9-]{10,}|AKIA[0-9A-Z]{16}|AIza[0-9A-Za-z_-]{35}|glpat-[A-Za-z0-9_-]{20})",
                0,
                any,
            ),
            (
                PiiKind::Secret,
                r#"(?i)\b(?:password|passwd|pwd|secret|api[_-]?key|access[_-]?token|auth[_-]?token|client[_-]?secret)\b["']?\s*[:=]\s*["']?([^\s"',;]{4,})"#,
                1,
                any,
            ),
            (
                PiiKind::Email,
                r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,}\b",
                0,
                any,
            ),
            (PiiKind::Iban, r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b", 0, checks::iban),
            (PiiKind::CardNumber, r"\b\d(?:[ -]?\d){12,18}\b", 0, checks::luhn),
            (PiiKind::UsSsn, r"\b\d{3}-\d{2}-\d{4}\b", 0, checks::ssn),
            (PiiKind::IpAddress, r"\b(?:\d{1,3}\.){3}\d{1,3}\b", 0, checks::ipv4),
            (PiiKind::IpAddress, r"(?i)(?:[0-9a-f]{0,4}:){2,7}[0-9a-f]{0,4}", 0, checks::ipv6),
            (
                PiiKind::Phone,
                r"(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]\d{2,4}){1,4}\b",
                0,
                checks::phone,
            ),
        ];
        let detectors = table
            .iter()
            .filter_map(|&(kind, pattern, group, check)| {
                // The patterns are constants; one that fails to compile is a bug caught by tests.
                Regex::new(pattern).ok().map(|pattern| Detector { kind, pattern, group, check })
            })
            .collect();
        Self { policy, detectors }
    }

    /// The policy in force.
    pub fn policy(&self) -> &PiiPolicy {
        &self.policy
    }

    /// Every finding in `text`, in order, without overlaps (where two overlap, the one that
    /// starts first wins; at the same start, the longer; at the same span, the earlier detector).
    pub fn find(&self, text: &str) -> Vec<Finding> {
        let mut all = Vec::new();
        for (rank, d) in self.detectors.iter().enumerate() {
            for caps in d.pattern.captures_iter(text) {
                let Some(m) = caps.get(d.group) else { continue };
                if (d.check)(m.as_str()) {
                    all.push((m.start(), std::cmp::Reverse(m.end()), rank, d.kind));
                }
            }
        }
        all.sort();
        let mut out: Vec<Finding> = Vec::new();
        for (start, std::cmp::Reverse(end), _, kind) in all {
            if out.last().is_some_and(|last| start < last.end) {
                continue;
            }
            out.push(Finding { kind, start, end });
        }
        out
    }

    /// Rewrites `text` per the policy.
    pub fn redact(&self, text: &str) -> Redaction {
        if self.policy == PiiPolicy::Off {
            return Redaction { text: text.to_owned(), findings: Vec::new() };
        }
        let findings = self.find(text);
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for f in &findings {
            out.push_str(&text[at..f.start]);
            out.push_str(&self.token(f.kind, &text[f.start..f.end]));
            at = f.end;
        }
        out.push_str(&text[at..]);
        Redaction { text: out, findings }
    }

    /// The replacement for one value.
    fn token(&self, kind: PiiKind, value: &str) -> String {
        match &self.policy {
            PiiPolicy::Off => value.to_owned(),
            PiiPolicy::Mask => format!("[{}]", kind.label()),
            PiiPolicy::Hash { key } => {
                // HMAC takes keys of any length; should that ever fail, mask rather than leak.
                let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(key) else {
                    return format!("[{}]", kind.label());
                };
                mac.update(kind.label().as_bytes());
                mac.update(b":");
                mac.update(kind.normalise(value).as_bytes());
                let digest = mac.finalize().into_bytes();
                format!("[{}:{}]", kind.label(), hex::encode(&digest[..8]))
            }
        }
    }
}

#[cfg(test)]
mod tests;
