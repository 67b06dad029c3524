//! Free-form call metadata keys: `x-llmtap-meta-<k>` headers and the SDK's `.meta(k, v)` both
//! become `llmtap.meta.<k>` with `<k>` read the same way.

use crate::headers::HEADER_META_PREFIX;

/// A metadata key as recorded: trimmed, lower case, `-` as `_` (`User-Tier` → `user_tier`).
pub fn normalise_key(key: &str) -> String {
    key.trim().to_ascii_lowercase().replace('-', "_")
}

/// The request header carrying a recorded key (`user_tier` → `x-llmtap-meta-user-tier`): the
/// proxy reads it back as the same key.
pub fn header_name(key: &str) -> String {
    format!("{HEADER_META_PREFIX}{}", key.replace('_', "-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_the_header() {
        assert_eq!(normalise_key(" User-Tier "), "user_tier");
        assert_eq!(header_name("user_tier"), "x-llmtap-meta-user-tier");
        let header = header_name(&normalise_key("User-Tier"));
        let back = header.strip_prefix(HEADER_META_PREFIX).map(normalise_key);
        assert_eq!(back.as_deref(), Some("user_tier"));
    }
}
