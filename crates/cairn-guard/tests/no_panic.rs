//! Property tests: no text makes a PII detector or the redactor panic, and every finding is a
//! valid range of the text.

use cairn_guard::{PiiPolicy, Redactor};
use proptest::prelude::*;

/// Text dense in the characters detectors look at: digits, separators, `@`, dots, keys.
fn pii_like() -> impl Strategy<Value = String> {
    prop_oneof!["(?s).{0,300}", "([0-9]{1,5}|[ .+()@-]|[a-zé]{1,8}|sk-[A-Za-z0-9]{0,30}|IBAN|DE[0-9]{2}|\\n){0,60}",]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn redaction_never_panics(text in pii_like()) {
        for policy in [PiiPolicy::Mask, PiiPolicy::Hash { key: b"k".to_vec() }] {
            let r = Redactor::new(policy);
            for f in r.find(&text) {
                prop_assert!(f.start < f.end && f.end <= text.len());
                prop_assert!(text.is_char_boundary(f.start) && text.is_char_boundary(f.end));
            }
            let _ = r.redact(&text);
        }
    }
}
