//! Environment access behind a trait, so configuration code can be tested with a map instead of
//! mutating the process environment (which is global and racy under parallel tests).

use std::collections::HashMap;

/// A source of environment-style `KEY=value` strings.
pub trait EnvSource {
    /// The value of `key`, if set. Empty values are returned as `Some("")`; callers decide
    /// whether empty means unset (the OTel spec says it does for most variables).
    fn var(&self, key: &str) -> Option<String>;

    /// The value of `key` with surrounding whitespace trimmed, treating empty as unset.
    fn non_empty(&self, key: &str) -> Option<String> {
        self.var(key)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }
}

/// The real process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl EnvSource for ProcessEnv {
    fn var(&self, key: &str) -> Option<String> {
        std::env::var(key).ok()
    }
}

impl EnvSource for HashMap<String, String> {
    fn var(&self, key: &str) -> Option<String> {
        self.get(key).cloned()
    }
}

impl EnvSource for HashMap<&str, &str> {
    fn var(&self, key: &str) -> Option<String> {
        self.get(key).map(|v| (*v).to_owned())
    }
}

impl<const N: usize> EnvSource for [(&str, &str); N] {
    fn var(&self, key: &str) -> Option<String> {
        self.iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| (*v).to_owned())
    }
}

/// A yes/no setting: `1`/`true`/`yes`/`on` or `0`/`false`/`no`/`off`, any case; anything else
/// is `None` so the caller can name the variable in its error.
pub fn parse_bool(raw: &str) -> Option<bool> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// Whether a path-or-off setting (`LLMTAP_JSONL`, `--jsonl`) says off: `off`, `none` or
/// `false`, any case. Every reader of such a setting asks here, so `OFF` never becomes a file.
pub fn is_off(raw: &str) -> bool {
    matches!(
        raw.trim().to_ascii_lowercase().as_str(),
        "off" | "none" | "false"
    )
}

/// A byte size: a plain number of bytes, or a number with a unit — `KB`/`MB`/`GB` (powers of
/// 1000) or `KiB`/`MiB`/`GiB` (powers of 1024), any case, space allowed (`10MB`, `64 KiB`).
/// `None` for anything else (negative, fractional, overflowing, unknown unit).
pub fn parse_bytes(raw: &str) -> Option<u64> {
    let raw = raw.trim();
    let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (digits, unit) = raw.split_at(split);
    let number: u64 = digits.parse().ok()?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        _ => return None,
    };
    number.checked_mul(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_source_and_empty_handling() {
        let env = [("A", "1"), ("B", "  "), ("C", " x ")];
        assert_eq!(env.var("A").as_deref(), Some("1"));
        assert_eq!(env.non_empty("B"), None);
        assert_eq!(env.non_empty("C").as_deref(), Some("x"));
        assert_eq!(env.var("D"), None);
    }

    #[test]
    fn bools_offs_and_byte_sizes() {
        assert_eq!(parse_bool(" TRUE "), Some(true));
        assert_eq!(parse_bool("Off"), Some(false));
        assert_eq!(parse_bool("maybe"), None);
        for off in ["off", "OFF", "None", " false "] {
            assert!(is_off(off), "{off}");
        }
        assert!(!is_off("traces.jsonl"));
        assert!(!is_off("offline.jsonl"));
        assert_eq!(parse_bytes("8388608"), Some(8_388_608));
        assert_eq!(parse_bytes("10MB"), Some(10_000_000));
        assert_eq!(parse_bytes("64 KiB"), Some(65_536));
        assert_eq!(parse_bytes("1gib"), Some(1 << 30));
        for bad in [
            "",
            "lots",
            "-1",
            "1.5MB",
            "10 parsecs",
            "MB",
            "99999999999999GiB",
        ] {
            assert_eq!(parse_bytes(bad), None, "{bad}");
        }
    }
}
