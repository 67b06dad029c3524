//! Secret redaction for captured content: API keys, bearer tokens, JWTs, private keys and email
//! addresses are replaced by `[REDACTED:<kind>]` before anything is recorded.
//!
//! The built-in patterns run as ONE alternation regex (a single pass over the text, linear time);
//! user patterns (see `capture`) run afterwards, each replaced by `[REDACTED:custom]`.
//! Redaction of JSON content works on string values ([`Redactor::redact_json_within`]), never on
//! the serialized text, so no pattern can break the JSON structure.

use std::borrow::Cow;
use std::sync::{Arc, LazyLock};

use regex::{Captures, Regex};

/// A built-in pattern: the `kind` shown in the replacement and its regex.
struct Pattern {
    kind: &'static str,
    regex: &'static str,
}

/// Order matters where prefixes overlap (`sk-ant-` before `sk-`): at the same start position the
/// regex takes the first alternative that matches.
const BUILTIN: &[Pattern] = &[
    Pattern {
        kind: "private_key",
        regex: r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----",
    },
    Pattern {
        kind: "bearer",
        regex: r"(?i:\bbearer)\s+[A-Za-z0-9\-._~+/]{16,}=*",
    },
    Pattern {
        kind: "jwt",
        regex: r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*",
    },
    Pattern {
        kind: "anthropic_key",
        regex: r"\bsk-ant-[A-Za-z0-9_\-]{20,}",
    },
    Pattern {
        kind: "openai_key",
        regex: r"\bsk-(?:proj-|svcacct-|admin-|None-)?[A-Za-z0-9_\-]{20,}",
    },
    Pattern {
        kind: "google_api_key",
        regex: r"\bAIza[0-9A-Za-z_\-]{35}",
    },
    Pattern {
        kind: "groq_key",
        regex: r"\bgsk_[A-Za-z0-9]{20,}",
    },
    Pattern {
        kind: "xai_key",
        regex: r"\bxai-[A-Za-z0-9]{20,}",
    },
    Pattern {
        kind: "huggingface_token",
        regex: r"\bhf_[A-Za-z0-9]{20,}",
    },
    Pattern {
        kind: "aws_access_key_id",
        regex: r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
    },
    Pattern {
        kind: "github_token",
        regex: r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{22,})",
    },
    Pattern {
        kind: "slack_token",
        regex: r"\bxox[abposr]-[A-Za-z0-9-]{10,}",
    },
    Pattern {
        kind: "email",
        regex: r"\b[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}\b",
    },
];

/// The compiled built-in alternation. Built once per process; a pattern that failed to compile
/// would be skipped rather than panic (a unit test proves they all compile).
static BUILTIN_REGEX: LazyLock<Option<(Regex, Vec<&'static str>)>> = LazyLock::new(|| {
    let mut kinds = Vec::with_capacity(BUILTIN.len());
    let mut alternation = String::new();
    for (i, p) in BUILTIN.iter().enumerate() {
        if Regex::new(p.regex).is_err() {
            continue;
        }
        if !alternation.is_empty() {
            alternation.push('|');
        }
        alternation.push_str(&format!("(?P<k{i}>{})", p.regex));
        kinds.push(p.kind);
    }
    Regex::new(&alternation).ok().map(|re| (re, kinds))
});

/// How far past the capture budget a long string is still redacted: longer than any secret the
/// patterns match (an 8192-bit RSA private key in PEM is ~6.5 KB), so none can straddle into
/// what a budgeted capture keeps.
pub const STRADDLE_MARGIN: usize = 16 * 1024;

/// At most the length of `value`'s compact serialization, cheaply: strings and keys count their
/// bytes and quotes (escaping only adds), every other value one byte.
fn serialized_len_lower_bound(value: &serde_json::Value) -> usize {
    match value {
        serde_json::Value::String(s) => s.len() + 2,
        serde_json::Value::Array(items) => items
            .iter()
            .map(serialized_len_lower_bound)
            .fold(2, usize::saturating_add),
        serde_json::Value::Object(members) => members
            .iter()
            .map(|(k, v)| k.len() + 3 + serialized_len_lower_bound(v))
            .fold(2, usize::saturating_add),
        _ => 1,
    }
}

/// A user pattern could not be compiled.
#[derive(Debug, thiserror::Error)]
#[error("invalid redaction pattern {pattern:?}: {reason}")]
pub struct PatternError {
    pub pattern: String,
    pub reason: String,
}

/// Replaces secrets in text with `[REDACTED:<kind>]`. Cheap to clone (shared regexes).
#[derive(Debug, Clone)]
pub struct Redactor {
    builtin: bool,
    extra: Arc<Vec<Regex>>,
}

impl Default for Redactor {
    fn default() -> Self {
        Self::new()
    }
}

impl Redactor {
    /// The built-in patterns only.
    pub fn new() -> Self {
        Self {
            builtin: true,
            extra: Arc::new(Vec::new()),
        }
    }

    /// No redaction at all (for tests and explicit opt-outs).
    pub fn disabled() -> Self {
        Self {
            builtin: false,
            extra: Arc::new(Vec::new()),
        }
    }

    /// This redactor plus user regexes (Rust `regex` syntax), each match replaced by
    /// `[REDACTED:custom]`. Empty patterns are ignored.
    pub fn with_extra<I, S>(self, patterns: I) -> Result<Self, PatternError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut extra: Vec<Regex> = self.extra.as_ref().clone();
        for pattern in patterns {
            let pattern = pattern.as_ref();
            if pattern.is_empty() {
                continue;
            }
            let regex = Regex::new(pattern).map_err(|e| PatternError {
                pattern: pattern.to_owned(),
                reason: e.to_string(),
            })?;
            extra.push(regex);
        }
        Ok(Self {
            builtin: self.builtin,
            extra: Arc::new(extra),
        })
    }

    /// Number of user patterns.
    pub fn extra_count(&self) -> usize {
        self.extra.len()
    }

    /// `text` with every secret replaced; borrowed (no allocation) when nothing matched.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out: Cow<'a, str> = Cow::Borrowed(text);
        // `is_match` first: it runs without capture slots, and almost no text holds a secret,
        // while `replace_all` sets up a captures search on every call.
        if self.builtin
            && let Some((regex, kinds)) = BUILTIN_REGEX.as_ref()
            && regex.is_match(text)
            && let Cow::Owned(replaced) = regex.replace_all(text, |caps: &Captures<'_>| {
                let kind = (0..kinds.len())
                    .find(|&i| caps.get(i + 1).is_some())
                    .and_then(|i| kinds.get(i))
                    .copied()
                    .unwrap_or("secret");
                format!("[REDACTED:{kind}]")
            })
        {
            out = Cow::Owned(replaced);
        }
        for regex in self.extra.iter() {
            if regex.is_match(&out)
                && let Cow::Owned(replaced) = regex.replace_all(&out, "[REDACTED:custom]")
            {
                out = Cow::Owned(replaced);
            }
        }
        out
    }

    /// Redacts, in place, every string of `value` that
    /// [`truncate_json`](crate::budget::truncate_json)`(value, max_bytes)` could show, and skips
    /// the rest: array elements past the budget (the cut drops them) and, in a string longer
    /// than the budget, the tail past `max_bytes + STRADDLE_MARGIN` bytes of redacted text. A
    /// long conversation is then scanned for ~the budget, not for its whole size.
    ///
    /// A secret that straddles where the scan stops starts at least `max_bytes` bytes into the
    /// redacted text (given secrets shorter than [`STRADDLE_MARGIN`]), past anything the cut
    /// keeps. Object members are always redacted (the cut keeps small members of any object).
    /// With `usize::MAX` every string and key is redacted.
    pub fn redact_json_within(&self, value: &mut serde_json::Value, max_bytes: usize) {
        if !self.builtin && self.extra.is_empty() {
            return;
        }
        match value {
            serde_json::Value::String(s) => {
                self.redact_string_prefix(s, max_bytes.saturating_add(STRADDLE_MARGIN));
            }
            serde_json::Value::Array(items) => {
                // The cut keeps leading elements while their serialized total fits; a lower
                // bound of that total (no escaping pass) is enough to know where it must stop.
                let mut shown = 0usize;
                for item in items.iter_mut() {
                    self.redact_json_within(item, max_bytes);
                    shown = shown.saturating_add(serialized_len_lower_bound(item));
                    if shown > max_bytes {
                        break;
                    }
                }
            }
            serde_json::Value::Object(members) => {
                for (_, member) in members.iter_mut() {
                    self.redact_json_within(member, max_bytes);
                }
                self.redact_keys(members);
            }
            _ => {}
        }
    }

    /// Redacts a prefix of `s` that is at least `keep` bytes long once redacted (all of `s` when
    /// it is shorter); the tail is left as is.
    fn redact_string_prefix(&self, s: &mut String, keep: usize) {
        let mut end = keep;
        loop {
            if end >= s.len() {
                if let Cow::Owned(replaced) = self.redact(s) {
                    *s = replaced;
                }
                return;
            }
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            let Some(prefix) = s.get(..end) else {
                return;
            };
            let redacted = self.redact(prefix);
            if redacted.len() >= keep {
                if let Cow::Owned(mut replaced) = redacted {
                    replaced.push_str(s.get(end..).unwrap_or_default());
                    *s = replaced;
                }
                return;
            }
            // Redaction shrank the prefix below `keep`: scan further.
            end += keep - redacted.len();
        }
    }

    /// Keys are data too (model-written tool arguments can key by email); the map is rebuilt
    /// only in the rare case a key changes.
    fn redact_keys(&self, members: &mut serde_json::Map<String, serde_json::Value>) {
        if members
            .keys()
            .any(|k| matches!(self.redact(k), Cow::Owned(_)))
        {
            let old = std::mem::take(members);
            for (key, member) in old {
                members.insert(self.redact(&key).into_owned(), member);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Secrets shaped like the real ones (random, not live).
    const SECRETS: &[(&str, &str)] = &[
        (
            "openai_key",
            "sk-abcdefghijklmnopqrstT3BlbkFJabcdefghijklmnopqrst",
        ),
        (
            "openai_key",
            "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7cDe0fGh3iJk6lMn9oPq2rSt5uVw8xYz_AbCdEf-GhIjKlMn",
        ),
        (
            "openai_key",
            "sk-svcacct-Xy12Ab34Cd56Ef78Gh90Ij12Kl34Mn56Op78Qr90St12Uv34",
        ),
        (
            "anthropic_key",
            "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-AbCdEfGhIjKlMnOpQrSt_uvwxyzAA",
        ),
        ("google_api_key", "AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q"),
        (
            "groq_key",
            "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",
        ),
        (
            "xai_key",
            "xai-Ab12Cd34Ef56Gh78Ij90Kl12Mn34Op56Qr78St90Uv12Wx34Yz56Ab12Cd34Ef56Gh78Ij",
        ),
        ("huggingface_token", "hf_AbCdEfGhIjKlMnOpQrStUvWxYz01234567"),
        ("aws_access_key_id", "AKIAIOSFODNN7EXAMPLE"),
        ("github_token", "ghp_16C7e42F292c6912E7710c838347Ae178B4a"),
        ("github_token", "gho_16C7e42F292c6912E7710c838347Ae178B4a"),
        (
            "github_token",
            "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWX",
        ),
        (
            "slack_token",
            "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
        ),
        ("slack_token", "xoxp-123456789012-123456789012-abcdef"),
        (
            "jwt",
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
        ),
        ("email", "jane.doe+llm@example.co.uk"),
    ];

    #[test]
    fn all_builtin_patterns_compile() {
        let (_, kinds) = BUILTIN_REGEX.as_ref().expect("alternation compiles");
        assert_eq!(kinds.len(), BUILTIN.len());
    }

    #[test]
    fn no_secret_survives_in_any_context() {
        let r = Redactor::new();
        for (kind, secret) in SECRETS {
            for text in [
                secret.to_string(),
                format!("my key is {secret}, use it"),
                format!("\"{secret}\""),
                format!("key={secret}\nnext line"),
            ] {
                let out = r.redact(&text);
                assert!(!out.contains(secret), "{kind} survived in {out:?}");
                assert!(
                    out.contains(&format!("[REDACTED:{kind}]")),
                    "{kind} not labelled in {out:?}"
                );
            }
        }
    }

    #[test]
    fn bearer_tokens_and_pem_keys() {
        let r = Redactor::new();
        let text = "Authorization: Bearer abcDEF123456ghiJKL789.xyz== trailing";
        let out = r.redact(text);
        assert_eq!(out, "Authorization: [REDACTED:bearer] trailing");
        let pem =
            "x -----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY----- y";
        assert_eq!(r.redact(pem), "x [REDACTED:private_key] y");
    }

    #[test]
    fn ordinary_text_is_untouched_and_borrowed() {
        let r = Redactor::new();
        for text in [
            "Say hello in French.",
            "Use scikit-learn (sk-learn) and the risk-adjusted model.",
            "The bearer of this letter is a friend.",
            "ask-anything-you-want about task-management",
            "Call get_weather(city=\"Paris\") at 10:30 @ home",
            "UUID 550e8400-e29b-41d4-a716-446655440000 and sha 3f786850e387550fdab836ed7e6dc881de23001b",
            "a@b is not an email, nor is user@localhost",
            "",
        ] {
            let out = r.redact(text);
            assert!(
                matches!(out, Cow::Borrowed(_)),
                "changed: {text:?} -> {out:?}"
            );
        }
    }

    #[test]
    fn extra_patterns() {
        let r = Redactor::new().with_extra(["ACME-[0-9]{6}", ""]).unwrap();
        assert_eq!(r.extra_count(), 1);
        assert_eq!(
            r.redact("ticket ACME-123456 for bob@example.com"),
            "ticket [REDACTED:custom] for [REDACTED:email]"
        );
        let err = Redactor::new().with_extra(["(unclosed"]).unwrap_err();
        assert!(err.to_string().contains("(unclosed"), "{err}");
    }

    #[test]
    fn disabled_redacts_nothing() {
        let r = Redactor::disabled();
        assert_eq!(r.redact("bob@example.com"), "bob@example.com");
    }

    #[test]
    fn json_values_and_keys_redacted() {
        let r = Redactor::new();
        let mut v = serde_json::json!({
            "bob@example.com": ["key sk-abcdefghijklmnopqrstuvwxyz012345", 3, {"x": "AKIAIOSFODNN7EXAMPLE"}]
        });
        r.redact_json_within(&mut v, usize::MAX);
        assert_eq!(
            v,
            serde_json::json!({
                "[REDACTED:email]": ["key [REDACTED:openai_key]", 3, {"x": "[REDACTED:aws_access_key_id]"}]
            })
        );
    }

    /// Secrets a budgeted capture must never show, however they are placed.
    fn planted() -> Vec<String> {
        let pem = format!(
            "-----BEGIN RSA PRIVATE KEY-----\n{}\n-----END RSA PRIVATE KEY-----",
            "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV9ffmd\n".repeat(50)
        );
        vec![
            "sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcd".to_owned(),
            "alice.secret@example.com".to_owned(),
            pem,
        ]
    }

    fn leaks(text: &str) -> bool {
        planted().iter().any(|secret| {
            // Any 16-byte window of a secret is a leak (a cut can keep a prefix).
            let bytes = secret.as_bytes();
            bytes
                .windows(16.min(bytes.len()))
                .any(|w| text.contains(std::str::from_utf8(w).unwrap_or("\u{0}")))
        })
    }

    #[test]
    fn bounded_redaction_skips_what_the_cut_drops_and_leaks_nothing() {
        let r = Redactor::new();
        let budget = 4096;
        let secret = &planted()[0];
        // A 1 MB conversation with a secret in its last message: past the budget, not scanned.
        let mut messages: Vec<serde_json::Value> = (0..1000)
            .map(|i| serde_json::json!({"role": "user", "content": format!("{i} {}", "x".repeat(1000))}))
            .collect();
        messages.push(serde_json::json!({"role": "user", "content": format!("key {secret}")}));
        let mut v = serde_json::Value::Array(messages);
        r.redact_json_within(&mut v, budget);
        assert!(
            v.to_string().contains(secret.as_str()),
            "the tail was scanned"
        );
        let (text, cut) = crate::budget::truncate_json(&v, budget);
        assert!(cut && !leaks(&text), "{text}");
        // A secret inside the budget is redacted, in values and keys; unredacted, the same
        // budgeted output would show it (the leak check can fail).
        let raw = serde_json::json!([{"content": format!("key {secret}"), "alice.secret@example.com": 1}]);
        assert!(leaks(&crate::budget::truncate_json(&raw, budget).0));
        let mut v = raw.clone();
        r.redact_json_within(&mut v, budget);
        assert!(!leaks(&v.to_string()), "{v}");
    }

    #[test]
    fn a_secret_straddling_the_scanned_prefix_is_still_redacted() {
        // A private key that starts 1,000 bytes before the budget: the cut keeps its first
        // ~975 bytes unless the scan reaches past the key's end.
        let budget = 8192;
        let pem = planted().pop().unwrap_or_default();
        let text = format!("{}{pem} and more", "a".repeat(budget - 1000));
        let mut v = serde_json::Value::String(text);
        Redactor::new().redact_json_within(&mut v, budget);
        let (out, cut) = crate::budget::truncate_json(&v, budget);
        assert!(!leaks(&out), "{out}");
        assert!(!cut, "the redacted text fits the budget again");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        /// Wherever secrets sit (in long strings around the cut, in later array elements, in
        /// keys), budgeted output after bounded redaction never shows any of them.
        #[test]
        fn bounded_redaction_never_leaks_into_budgeted_output(
            budget in 64usize..40_000,
            fillers in proptest::collection::vec(0usize..30_000, 1..6),
            which in proptest::collection::vec(0usize..3, 1..6),
            offsets in proptest::collection::vec(0usize..30_000, 1..6),
        ) {
            let secrets = planted();
            let mut parts = Vec::new();
            for (i, filler) in fillers.iter().enumerate() {
                let mut text = "word ".repeat(filler / 5);
                let secret = &secrets[which[i % which.len()]];
                let at = offsets[i % offsets.len()].min(text.len());
                text.insert_str(at, &format!(" {secret} "));
                parts.push(serde_json::json!({"type": "text", "content": text}));
            }
            let mut v = serde_json::json!([
                {"role": "user", "parts": parts},
                {"role": "system", "parts": [{"type": "text", "content": secrets[1]}]},
            ]);
            Redactor::new().redact_json_within(&mut v, budget);
            let (text, _) = crate::budget::truncate_json(&v, budget);
            proptest::prop_assert!(!leaks(&text), "budget {} leaked: {}", budget, text);
        }
    }
}
