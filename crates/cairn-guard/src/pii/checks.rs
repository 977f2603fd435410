//! Checksums and validity rules that turn a pattern match into a finding: a 16-digit number
//! that fails Luhn is not a card, an IBAN whose mod-97 check fails is not an IBAN.

/// Luhn check over the digits of `s` (other characters ignored).
pub(crate) fn luhn(s: &str) -> bool {
    let digits: Vec<u32> = s.chars().filter_map(|c| c.to_digit(10)).collect();
    if !(13..=19).contains(&digits.len()) || digits.iter().all(|&d| d == digits[0]) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                if d * 2 > 9 {
                    d * 2 - 9
                } else {
                    d * 2
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// ISO 13616 check: country letters, check digits, then the account; mod 97 of the
/// rearranged number must be 1. Spaces are ignored.
pub(crate) fn iban(s: &str) -> bool {
    let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_ascii_uppercase();
    if !(15..=34).contains(&compact.len()) || !compact.is_ascii() {
        return false;
    }
    let (head, rest) = compact.split_at(4);
    let b = head.as_bytes();
    if !(b[0].is_ascii_uppercase() && b[1].is_ascii_uppercase() && b[2].is_ascii_digit() && b[3].is_ascii_digit()) {
        return false;
    }
    let mut rem: u32 = 0;
    for c in rest.chars().chain(head.chars()) {
        let v = match c {
            '0'..='9' => c as u32 - '0' as u32,
            'A'..='Z' => c as u32 - 'A' as u32 + 10,
            _ => return false,
        };
        rem = if v >= 10 { (rem * 100 + v) % 97 } else { (rem * 10 + v) % 97 };
    }
    rem == 1
}

/// US Social Security number rules for `AAA-GG-SSSS`: no area 000, 666 or 9xx, no group 00,
/// no serial 0000.
pub(crate) fn ssn(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    let [area, group, serial] = parts[..] else { return false };
    area != "000" && area != "666" && !area.starts_with('9') && group != "00" && serial != "0000"
}

/// A dotted quad whose every part is 0-255 without leading zeros.
pub(crate) fn ipv4(s: &str) -> bool {
    s.parse::<std::net::Ipv4Addr>().is_ok()
}

/// A valid IPv6 address with at least two colons (so times like `10:30` never count).
pub(crate) fn ipv6(s: &str) -> bool {
    s.matches(':').count() >= 2 && s.parse::<std::net::Ipv6Addr>().is_ok()
}

/// Phone-number plausibility: 7 to 15 digits (11 without a `+` prefix), and not a date.
pub(crate) fn phone(s: &str) -> bool {
    let digits = s.chars().filter(char::is_ascii_digit).count();
    // Longer numbers need their `+country` prefix: national formats stop at 11 digits, and a
    // long bare digit run is more likely an account or order number.
    let max = if s.starts_with('+') { 15 } else { 11 };
    if !(7..=max).contains(&digits) {
        return false;
    }
    // ISO dates (2024-01-15) and dotted dates (15.01.2024) are not phone numbers.
    let groups: Vec<&str> = s.split(|c: char| !c.is_ascii_digit()).filter(|g| !g.is_empty()).collect();
    let looks_like_date = groups.len() == 3
        && ((groups[0].len() == 4 && groups[1].len() <= 2 && groups[2].len() <= 2)
            || (groups[0].len() <= 2 && groups[1].len() <= 2 && groups[2].len() == 4));
    // `ddd-dd-dddd` is the SSN layout; one that fails the SSN rules is not a phone either.
    let ssn_layout =
        groups.len() == 3 && [groups[0].len(), groups[1].len(), groups[2].len()] == [3, 2, 4] && s.contains('-');
    !looks_like_date && !ssn_layout
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_accepts_real_test_numbers_and_rejects_near_misses() {
        for ok in ["4111 1111 1111 1111", "5500-0000-0000-0004", "340000000000009", "6011000990139424"] {
            assert!(luhn(ok), "{ok}");
        }
        for bad in ["4111 1111 1111 1112", "1234567812345678", "0000000000000000", "411111111111"] {
            assert!(!luhn(bad), "{bad}");
        }
    }

    #[test]
    fn iban_checks_mod_97() {
        for ok in ["GB82 WEST 1234 5698 7654 32", "DE89370400440532013000", "FR1420041010050500013M02606"] {
            assert!(iban(ok), "{ok}");
        }
        for bad in ["GB82 WEST 1234 5698 7654 33", "DE00370400440532013000", "XX12"] {
            assert!(!iban(bad), "{bad}");
        }
    }

    #[test]
    fn ssn_rules() {
        assert!(ssn("123-45-6789"));
        for bad in ["000-12-3456", "666-12-3456", "912-12-3456", "123-00-4567", "123-45-0000"] {
            assert!(!ssn(bad), "{bad}");
        }
    }

    #[test]
    fn addresses_and_phones() {
        assert!(ipv4("192.168.1.20") && !ipv4("999.1.1.1") && !ipv4("1.2.3"));
        assert!(ipv6("2001:db8::8a2e:370:7334") && !ipv6("10:30") && !ipv6("12:34:56"));
        assert!(phone("+1 415-555-0132") && phone("(020) 7946 0958"));
        assert!(!phone("2024-01-15") && !phone("15.01.2024") && !phone("12-34"));
        assert!(!phone("1234 5698 7654 33") && phone("+44 1234 5698 7654"));
    }
}
