//! True and false positives for every kind, overlaps, and both rewriting policies.

use super::*;

fn kinds(text: &str) -> Vec<(PiiKind, String)> {
    let r = Redactor::new(PiiPolicy::Mask);
    r.find(text).into_iter().map(|f| (f.kind, text[f.start..f.end].to_owned())).collect()
}

fn masked(text: &str) -> String {
    Redactor::new(PiiPolicy::Mask).redact(text).text
}

#[test]
fn every_pattern_compiles() {
    assert_eq!(Redactor::new(PiiPolicy::Mask).detectors.len(), 11);
}

#[test]
fn emails() {
    assert_eq!(masked("Write to Jane.Doe+news@mail.example.co.uk today."), "Write to [EMAIL] today.");
    assert!(kinds("user@localhost, a@b, @handle, name@domain.c").is_empty());
}

#[test]
fn cards_must_pass_luhn() {
    assert_eq!(masked("card 4111 1111 1111 1111 exp 12/29"), "card [CARD] exp 12/29");
    assert_eq!(masked("card 5500-0000-0000-0004."), "card [CARD].");
    // Same shape, wrong check digit: an order number, left alone.
    assert_eq!(masked("order 4111 1111 1111 1112"), "order 4111 1111 1111 1112");
    assert_eq!(masked("ref 1234567812345678"), "ref 1234567812345678");
}

#[test]
fn ibans_must_pass_mod_97() {
    assert_eq!(masked("IBAN: GB82 WEST 1234 5698 7654 32, thanks"), "IBAN: [IBAN], thanks");
    assert_eq!(masked("DE89370400440532013000"), "[IBAN]");
    assert_eq!(masked("GB82 WEST 1234 5698 7654 33"), "GB82 WEST 1234 5698 7654 33");
}

#[test]
fn us_ssns() {
    assert_eq!(masked("SSN 123-45-6789."), "SSN [SSN].");
    assert_eq!(masked("SSN 000-45-6789 and 666-12-3456"), "SSN 000-45-6789 and 666-12-3456");
}

#[test]
fn ip_addresses() {
    assert_eq!(masked("from 203.0.113.7 via 2001:db8::8a2e:370:7334 ok"), "from [IP] via [IP] ok");
    assert_eq!(masked("version 999.1.1.1, at 12:30:45"), "version 999.1.1.1, at 12:30:45");
}

#[test]
fn phones_but_not_dates_or_short_numbers() {
    assert_eq!(masked("Call +1 415-555-0132 or (020) 7946 0958."), "Call [PHONE] or [PHONE].");
    assert_eq!(masked("+44 20 7946 0958"), "[PHONE]");
    for text in ["on 2024-01-15", "on 15.01.2024", "room 12-34", "page 42", "1.5 kg"] {
        assert_eq!(masked(text), text, "{text}");
    }
}

#[test]
fn secrets_of_common_formats() {
    for secret in [
        "sk-proj-abcdefghijklmnopqrstuvwxyz012345",
        "sk-ant-api03-abcdefghijklmnopqrstuvwx",
        "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
        "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
        "AKIAIOSFODNN7EXAMPLE",
        "xoxb-123456789012-abcdefghij",
        "AIzaSyA-abcdefghijklmnopqrstuvwxyz01234",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    ] {
        assert_eq!(masked(&format!("key={secret} end")), "key=[SECRET] end", "{secret}");
    }
    assert_eq!(
        masked("password: hunter22 and api_key = \"abcd1234\""),
        "password: [SECRET] and api_key = \"[SECRET]\""
    );
    let pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nabc\n-----END RSA PRIVATE KEY-----";
    assert_eq!(masked(&format!("key:\n{pem}\nbye")), "key:\n[SECRET]\nbye");
    // Ordinary words near such names are not secrets.
    assert_eq!(masked("the password policy is strict; sk-short"), "the password policy is strict; sk-short");
}

#[test]
fn overlapping_matches_keep_the_first_and_longest() {
    // The e-mail contains digits that alone could look like other things.
    let text = "reach 4155550132@example.com now";
    assert_eq!(kinds(text), [(PiiKind::Email, "4155550132@example.com".to_owned())]);
}

#[test]
fn keyed_hashes_are_stable_normalised_and_key_dependent() {
    let a = Redactor::new(PiiPolicy::Hash { key: b"k1".to_vec() });
    let b = Redactor::new(PiiPolicy::Hash { key: b"k2".to_vec() });
    let one = a.redact("mail Jane@Example.com, call +1 415 555 0132").text;
    let two = a.redact("mail jane@example.com, call +1 (415) 555-0132").text;
    assert_eq!(one, two, "same values, same tokens, whatever the formatting");
    assert!(one.starts_with("mail [EMAIL:") && one.contains(", call [PHONE:"), "{one}");
    assert!(!one.contains("jane") && !one.contains("555"));
    assert_ne!(one, b.redact("mail jane@example.com, call +1 415 555 0132").text, "another key, other tokens");
    let other = a.redact("mail john@example.com").text;
    assert_ne!(&one[..28], &other[..28]);
}

#[test]
fn off_changes_nothing_and_offsets_are_the_input_s() {
    let text = "é jane@example.com";
    let r = Redactor::new(PiiPolicy::Off).redact(text);
    assert_eq!((r.text.as_str(), r.findings.len()), (text, 0));
    let f = &Redactor::new(PiiPolicy::Mask).redact(text).findings[0];
    assert_eq!(&text[f.start..f.end], "jane@example.com");
}
