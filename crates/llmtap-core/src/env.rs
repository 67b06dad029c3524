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
}
