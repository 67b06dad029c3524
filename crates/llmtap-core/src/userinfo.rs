//! Credentials in URLs (`https://user:password@host`) are configuration secrets: an upstream or a
//! collector endpoint may carry them, and they must never reach a banner, an error message or a
//! log line. [`mask_userinfo`] hides them in any text before it is shown.

use std::borrow::Cow;

/// What replaces a URL's `user:password`.
pub const MASK: &str = "***";

/// `text` with the user-info part of every `scheme://user:password@host` replaced by [`MASK`],
/// and of every bare `user:password@host` too (HTTP client logs print authorities without their
/// scheme). Linear in `text`; borrows when there is nothing to hide.
pub fn mask_userinfo(text: &str) -> Cow<'_, str> {
    match mask_after_scheme(text) {
        Cow::Borrowed(_) => mask_bare(text),
        Cow::Owned(masked) => Cow::Owned(mask_bare(&masked).into_owned()),
    }
}

/// Characters that end a word around a bare `user:password@`.
fn is_boundary(c: char) -> bool {
    matches!(
        c,
        '/' | '"' | '\'' | '<' | '>' | '`' | '(' | ')' | '[' | ']' | ',' | '=' | ';'
    ) || c.is_whitespace()
}

fn mask_bare(text: &str) -> Cow<'_, str> {
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut word_start = 0;
    for (i, c) in text.char_indices() {
        if is_boundary(c) {
            word_start = i + c.len_utf8();
        } else if c == '@' {
            let word = &text[word_start.max(copied)..i];
            if word.contains(':') {
                let buf = out.get_or_insert_with(|| String::with_capacity(text.len()));
                buf.push_str(&text[copied..word_start.max(copied)]);
                buf.push_str(MASK);
                copied = i;
            }
            word_start = i + 1;
        }
    }
    match out {
        Some(mut buf) => {
            buf.push_str(&text[copied..]);
            Cow::Owned(buf)
        }
        None => Cow::Borrowed(text),
    }
}

fn mask_after_scheme(text: &str) -> Cow<'_, str> {
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut search = 0;
    while let Some(found) = text[search..].find("://") {
        let authority_start = search + found + 3;
        let authority_len = text[authority_start..]
            .find(|c: char| {
                matches!(
                    c,
                    '/' | '?' | '#' | '"' | '\'' | '<' | '>' | '`' | ')' | ']' | ','
                ) || c.is_whitespace()
            })
            .unwrap_or(text.len() - authority_start);
        let authority_end = authority_start + authority_len;
        if let Some(at) = text[authority_start..authority_end].rfind('@') {
            let buf = out.get_or_insert_with(|| String::with_capacity(text.len()));
            buf.push_str(&text[copied..authority_start]);
            buf.push_str(MASK);
            copied = authority_start + at;
        }
        search = authority_end.max(authority_start);
    }
    match out {
        Some(mut buf) => {
            buf.push_str(&text[copied..]);
            Cow::Owned(buf)
        }
        None => Cow::Borrowed(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hides_user_and_password_keeps_the_rest() {
        assert_eq!(
            mask_userinfo("openai → https://bob:hunter2@api.example.com/v1, gemini → http://h"),
            "openai → https://***@api.example.com/v1, gemini → http://h"
        );
        assert_eq!(
            mask_userinfo("invalid value \"http://u:p@127.0.0.1:1?x\" for --x"),
            "invalid value \"http://***@127.0.0.1:1?x\" for --x"
        );
        assert_eq!(
            mask_userinfo("grpc://token@collector:4317"),
            "grpc://***@collector:4317"
        );
        assert_eq!(mask_userinfo("a@b.c http://x/a@b"), "a@b.c http://x/a@b");
        assert!(matches!(mask_userinfo("no url here"), Cow::Borrowed(_)));
        assert_eq!(mask_userinfo("http://"), "http://");
        assert_eq!(mask_userinfo("x://@"), "x://***@");
    }

    #[test]
    fn hides_bare_authorities_as_client_logs_print_them() {
        assert_eq!(
            mask_userinfo("pooling idle connection for (\"http\", bob:hunter2@127.0.0.1:44451)"),
            "pooling idle connection for (\"http\", ***@127.0.0.1:44451)"
        );
        assert_eq!(
            mask_userinfo("mail bob@example.com at 12:30"),
            "mail bob@example.com at 12:30"
        );
        assert_eq!(
            mask_userinfo("http://u:p@h and u:p@h"),
            "http://***@h and ***@h"
        );
    }
}
