//! Wall-clock helpers: Cairn stores instants as Unix milliseconds (portable across SQLite and
//! PostgreSQL) and renders days as ISO dates without pulling in a calendar crate.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds in one day.
pub const DAY_MS: i64 = 86_400_000;

/// The current time as Unix milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// The current time as Unix seconds (OpenAI's `created` fields).
pub fn now_secs() -> i64 {
    now_ms() / 1000
}

/// Converts days since 1970-01-01 to a (year, month, day) civil date (proleptic Gregorian).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // Howard Hinnant's algorithm: exact for every day in range, no tables.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Converts a civil date to days since 1970-01-01.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Formats the UTC day containing `ms` as `YYYY-MM-DD`.
pub fn iso_day(ms: i64) -> String {
    let (y, m, d) = civil_from_days(ms.div_euclid(DAY_MS));
    format!("{y:04}-{m:02}-{d:02}")
}

/// Formats `ms` as an ISO 8601 UTC instant to the second, e.g. `2026-11-21T09:05:00Z`.
pub fn iso_datetime(ms: i64) -> String {
    let secs = ms.div_euclid(1000).rem_euclid(86_400);
    format!("{}T{:02}:{:02}:{:02}Z", iso_day(ms), secs / 3600, secs / 60 % 60, secs % 60)
}

/// Parses `YYYY-MM-DD` into the Unix milliseconds of that day's UTC midnight.
pub fn parse_iso_day(s: &str) -> Option<i64> {
    // Exactly `YYYY-MM-DD`: no sign, no short or long fields.
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' || !digits(0..4) || !digits(5..7) || !digits(8..10) {
        return None;
    }
    let mut parts = s.splitn(3, '-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: u32 = parts.next()?.parse().ok()?;
    let d: u32 = parts.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let days = days_from_civil(y, m, d);
    // Reject dates like 2026-02-31 that normalise into another month.
    (civil_from_days(days) == (y, m, d)).then_some(days * DAY_MS)
}

/// Unix milliseconds of the first instant of the UTC month containing `ms`.
pub fn month_start_ms(ms: i64) -> i64 {
    let (y, m, _) = civil_from_days(ms.div_euclid(DAY_MS));
    days_from_civil(y, m, 1) * DAY_MS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_days() {
        for days in [-1000, 0, 1, 59, 60, 365, 10_957, 20_000, 40_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(iso_day(0), "1970-01-01");
        assert_eq!(iso_day(1_795_219_200_000), "2026-11-21");
        assert_eq!(iso_datetime(1_795_219_200_000 + 32_705_000), "2026-11-21T09:05:05Z");
    }

    #[test]
    fn parses_and_rejects_days() {
        assert_eq!(parse_iso_day("1970-01-02"), Some(DAY_MS));
        assert_eq!(parse_iso_day("2026-02-31"), None);
        assert_eq!(parse_iso_day("2026-13-01"), None);
        assert_eq!(parse_iso_day("yesterday"), None);
        assert_eq!(parse_iso_day("+2026-01-01"), None);
        assert_eq!(parse_iso_day("2026-1-01"), None);
    }

    #[test]
    fn month_start() {
        let ms = parse_iso_day("2026-11-21").unwrap() + 5000;
        assert_eq!(month_start_ms(ms), parse_iso_day("2026-11-01").unwrap());
    }
}
