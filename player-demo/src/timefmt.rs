//! Date formatting without a date crate: HTTP dates (IMF-fixdate, RFC 9110 §5.6.7) for
//! `Last-Modified`, and RFC 3339 UTC timestamps with milliseconds for
//! `EXT-X-PROGRAM-DATE-TIME`.
//!
//! Both are derived from the Unix time with the days-to-civil-date conversion of the
//! proleptic Gregorian calendar. Times before the Unix epoch are clamped to the epoch (the
//! test tooling never needs them).

use std::time::{SystemTime, UNIX_EPOCH};

/// Splits a time into (days since epoch, seconds of day, milliseconds).
fn split(t: SystemTime) -> (i64, u64, u32) {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX / 2);
    (days, secs % 86_400, since.subsec_millis())
}

/// Converts days since 1970-01-01 into (year, month 1..=12, day 1..=31).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // Shift the epoch to 0000-03-01 so that leap days fall at the end of a "year".
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of era, 0..=146096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // 0..=399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // 0..=365
    let mp = (5 * doy + 2) / 153; // month from March, 0..=11
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Formats `t` as an HTTP date, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
pub fn http_date(t: SystemTime) -> String {
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (days, sod, _) = split(t);
    let (y, m, d) = civil_from_days(days);
    let weekday = WEEKDAYS[days.rem_euclid(7) as usize];
    let month = MONTHS[(m as usize).saturating_sub(1).min(11)];
    format!(
        "{weekday}, {d:02} {month} {y:04} {:02}:{:02}:{:02} GMT",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

/// Formats `t` as an RFC 3339 UTC timestamp with milliseconds, e.g.
/// `2024-02-29T23:59:59.250Z` (the form ffmpeg writes in `EXT-X-PROGRAM-DATE-TIME`).
pub fn rfc3339_millis(t: SystemTime) -> String {
    let (days, sod, ms) = split(t);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64, ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(ms)
    }

    #[test]
    fn http_date_matches_rfc_example() {
        // RFC 9110's example date.
        assert_eq!(
            http_date(at(784_111_777, 0)),
            "Sun, 06 Nov 1994 08:49:37 GMT"
        );
        assert_eq!(http_date(at(0, 0)), "Thu, 01 Jan 1970 00:00:00 GMT");
    }

    #[test]
    fn rfc3339_handles_leap_days_and_millis() {
        // 2024-02-29T23:59:59.250Z
        assert_eq!(
            rfc3339_millis(at(1_709_251_199, 250)),
            "2024-02-29T23:59:59.250Z"
        );
        // 2000-03-01T00:00:00.000Z (century leap year boundary)
        assert_eq!(
            rfc3339_millis(at(951_868_800, 0)),
            "2000-03-01T00:00:00.000Z"
        );
        // 2100-03-01 (2100 is not a leap year)
        assert_eq!(
            rfc3339_millis(at(4_107_542_400, 7)),
            "2100-03-01T00:00:00.007Z"
        );
    }

    #[test]
    fn times_before_epoch_clamp_to_epoch() {
        let before = UNIX_EPOCH - Duration::from_secs(10);
        assert_eq!(rfc3339_millis(before), "1970-01-01T00:00:00.000Z");
    }
}
