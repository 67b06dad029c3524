//! Time for the `--since`/`--until` flags and for printing span times, without a date crate:
//! RFC 3339 timestamps (any offset, optional fraction) and relative ages (`90s`, `30m`, `1h`,
//! `7d`, `2w`) in, UTC RFC 3339 with milliseconds out.

use std::time::{SystemTime, UNIX_EPOCH};

const NANOS_PER_SEC: i128 = 1_000_000_000;

/// Nanoseconds since the Unix epoch, now.
pub fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Parses `--since`/`--until`: RFC 3339 (`2026-05-01T12:00:00Z`, `…+02:00`, `…T12:00:00.5Z`,
/// a space instead of `T` is accepted) or an age before `now` (`30m`, `1h`, `7d`; units s, m,
/// h, d, w). Returns Unix nanoseconds.
pub fn parse_time(text: &str, now: u64) -> Result<u64, String> {
    let text = text.trim();
    if let Some(age) = parse_age(text) {
        return age
            .map(|nanos| now.saturating_sub(nanos))
            .ok_or_else(|| format!("`{text}`: age too large"));
    }
    parse_rfc3339(text).ok_or_else(|| {
        format!(
            "`{text}` is neither an RFC 3339 time (2026-05-01T12:00:00Z) nor an age (30m, 1h, 7d)"
        )
    })
}

/// `Some(Some(nanos))` for a well-formed age, `Some(None)` on overflow, `None` when `text` is
/// not an age at all.
fn parse_age(text: &str) -> Option<Option<u64>> {
    let unit_at = text.find(|c: char| !c.is_ascii_digit())?;
    let (digits, unit) = text.split_at(unit_at);
    if digits.is_empty() {
        return None;
    }
    let seconds_per_unit: u64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return None,
    };
    let n: u64 = digits.parse().ok()?;
    Some(
        n.checked_mul(seconds_per_unit)
            .and_then(|s| s.checked_mul(1_000_000_000)),
    )
}

/// RFC 3339 `date-time` to Unix nanoseconds; `None` if malformed or before 1970.
pub fn parse_rfc3339(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let s = text.get(from..from + len)?;
        if !s.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    let sep = |at: usize, allowed: &[u8]| b.get(at).is_some_and(|c| allowed.contains(c));
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt ") && sep(13, b":") && sep(16, b":")) {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut pos = 19;
    let mut frac_nanos: i128 = 0;
    if b.get(pos) == Some(&b'.') {
        pos += 1;
        let start = pos;
        while b.get(pos).is_some_and(u8::is_ascii_digit) {
            pos += 1;
        }
        let digits = text.get(start..pos)?;
        if digits.is_empty() {
            return None;
        }
        // Nanosecond precision; further digits are truncated.
        let kept: String = digits.chars().take(9).collect();
        let scale = 10i128.pow(9 - u32::try_from(kept.len()).ok()?);
        frac_nanos = kept.parse::<i128>().ok()? * scale;
    }
    let offset_seconds: i64 = match text.get(pos..)? {
        "Z" | "z" => 0,
        rest if rest.len() == 6 && (rest.starts_with('+') || rest.starts_with('-')) => {
            if rest.as_bytes().get(3) != Some(&b':') {
                return None;
            }
            let oh = num(pos + 1, 2)?;
            let om = num(pos + 4, 2)?;
            if oh > 23 || om > 59 {
                return None;
            }
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            sign * (oh * 3600 + om * 60)
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_seconds;
    let nanos = i128::from(seconds) * NANOS_PER_SEC + frac_nanos;
    u64::try_from(nanos).ok()
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Unix nanoseconds as UTC RFC 3339 with milliseconds: `2026-05-01T12:00:00.123Z`.
pub fn format_rfc3339_millis(nanos: u64) -> String {
    let secs = i64::try_from(nanos / 1_000_000_000).unwrap_or(i64::MAX);
    let millis = (nanos % 1_000_000_000) / 1_000_000;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn rfc3339_with_offsets_and_fractions() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        // 2026-05-01 is day 20574 since the epoch.
        assert_eq!(
            parse_rfc3339("2026-05-01T12:30:15Z"),
            Some((20_574 * 86_400 + 12 * 3600 + 30 * 60 + 15) * S)
        );
        assert_eq!(
            parse_rfc3339("2026-05-01T14:30:15+02:00"),
            parse_rfc3339("2026-05-01T12:30:15Z")
        );
        assert_eq!(
            parse_rfc3339("2026-05-01 07:30:15-05:00"),
            parse_rfc3339("2026-05-01T12:30:15Z")
        );
        assert_eq!(
            parse_rfc3339("1970-01-01T00:00:01.5Z"),
            Some(S + 500_000_000)
        );
        assert_eq!(
            parse_rfc3339("1970-01-01T00:00:00.1234567891Z"),
            Some(123_456_789)
        );
        assert_eq!(
            parse_rfc3339("2024-02-29T00:00:00Z"),
            Some(19_782 * 86_400 * S)
        );
    }

    #[test]
    fn rfc3339_rejects_malformed() {
        for bad in [
            "",
            "2026-05-01",
            "2026-05-01T12:30:15",
            "2026-13-01T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "2026-05-01T24:00:00Z",
            "2026-05-01T12:30:15.Z",
            "2026-05-01T12:30:15+0200",
            "1969-12-31T23:59:59Z",
            "2026-05-01T12:30:15Zjunk",
            "２026-05-01T12:30:15Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn ages_count_back_from_now() {
        let now = 1_000_000 * S;
        assert_eq!(parse_time("90s", now), Ok(now - 90 * S));
        assert_eq!(parse_time("30m", now), Ok(now - 1800 * S));
        assert_eq!(parse_time("1h", now), Ok(now - 3600 * S));
        assert_eq!(parse_time("7d", now), Ok(now - 7 * 86_400 * S));
        assert_eq!(parse_time("1w", now), Ok(now - 7 * 86_400 * S));
        // Older than the epoch clamps to it.
        assert_eq!(parse_time("10000w", now), Ok(0));
        assert!(parse_time("99999999999999999999d", now).is_err());
        assert!(parse_time("5y", now).is_err());
        assert!(parse_time("h", now).is_err());
        assert_eq!(
            parse_time("1970-01-01T00:00:10Z", now),
            Ok(10 * S),
            "absolute times ignore now"
        );
    }

    #[test]
    fn formats_utc_with_millis_and_round_trips() {
        assert_eq!(format_rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        let t = parse_rfc3339("2026-05-01T12:30:15.123Z").unwrap_or_default();
        assert_eq!(format_rfc3339_millis(t), "2026-05-01T12:30:15.123Z");
        let leap = parse_rfc3339("2000-02-29T23:59:59.999Z").unwrap_or_default();
        assert_eq!(format_rfc3339_millis(leap), "2000-02-29T23:59:59.999Z");
        for days in [0i64, 59, 365, 10_957, 20_574, 50_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
