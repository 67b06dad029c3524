//! [`peek_model`]: the request's top-level `"model"` without parsing the body.
//!
//! The proxy starts a call's span before the request goes upstream, and the model is one of the
//! attributes a sampler sees at start. A full parse of an agent's 200 KB conversation takes
//! ~100 µs; doing it before forwarding would add that to every call's time to first byte. This
//! scan only tracks nesting and jumps over strings (`memchr` for the closing quote), so the full
//! parse can run after the request has been handed to the upstream connection.

use crate::codec::common::bounded;

/// The last top-level `"model"` string of a JSON object body (the one a JSON parser keeps when a
/// key repeats), bounded like every recorded short string. `None` when the body is not a JSON
/// object, is cut off, or has no string `model` at the top level. Never panics.
pub fn peek_model(body: &[u8]) -> Option<String> {
    let mut i = skip_ws(body, 0);
    if body.get(i) != Some(&b'{') {
        return None;
    }
    i += 1;
    let mut depth = 1usize;
    let mut expect_key = true;
    let mut found = None;
    while let Some(&byte) = body.get(i) {
        match byte {
            b'"' => {
                let end = string_end(body, i + 1)?;
                if depth == 1 && expect_key {
                    let is_model = decode(body.get(i..=end)?).as_deref() == Some("model");
                    i = skip_ws(body, end + 1);
                    if body.get(i) != Some(&b':') {
                        return None;
                    }
                    i = skip_ws(body, i + 1);
                    expect_key = false;
                    if is_model {
                        // A non-string model is what a parser would not record either.
                        found = None;
                        if body.get(i) == Some(&b'"') {
                            let value_end = string_end(body, i + 1)?;
                            found = decode(body.get(i..=value_end)?).map(|m| bounded(&m));
                            i = value_end + 1;
                        }
                    }
                    continue;
                }
                i = end + 1;
            }
            b'{' | b'[' => {
                depth += 1;
                i += 1;
            }
            b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    return found;
                }
                i += 1;
            }
            b',' => {
                expect_key = depth == 1;
                i += 1;
            }
            _ => i += 1,
        }
    }
    None
}

fn skip_ws(body: &[u8], mut i: usize) -> usize {
    while body.get(i).is_some_and(u8::is_ascii_whitespace) {
        i += 1;
    }
    i
}

/// Index of the quote closing a string whose content starts at `from`.
fn string_end(body: &[u8], mut from: usize) -> Option<usize> {
    loop {
        let at = from + memchr::memchr2(b'"', b'\\', body.get(from..)?)?;
        if body.get(at) == Some(&b'\\') {
            from = at + 2;
        } else {
            return Some(at);
        }
    }
}

/// A quoted JSON string (quotes included) as text; escapes are decoded by serde_json.
fn decode(quoted: &[u8]) -> Option<std::borrow::Cow<'_, str>> {
    let inner = quoted.get(1..quoted.len().checked_sub(1)?)?;
    if memchr::memchr(b'\\', inner).is_none() {
        return std::str::from_utf8(inner)
            .ok()
            .map(std::borrow::Cow::Borrowed);
    }
    serde_json::from_slice::<String>(quoted)
        .ok()
        .map(std::borrow::Cow::Owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn finds_the_top_level_model_wherever_it_is() {
        assert_eq!(
            peek_model(br#"{"model":"gpt-4o","messages":[]}"#).as_deref(),
            Some("gpt-4o")
        );
        // openai-python writes `messages` first; nested `model` keys are not the call's model.
        let body =
            br#" { "messages" : [ {"role":"user","content":"say \"model\": x","model":"inner"} ],
            "tools":[{"function":{"name":"f","parameters":{"model":{"type":"string"}}}}],
            "model" : "claude-sonnet-4-5" , "stream":true } "#;
        assert_eq!(peek_model(body).as_deref(), Some("claude-sonnet-4-5"));
    }

    #[test]
    fn agrees_with_a_json_parser_on_edge_cases() {
        let cases: &[&[u8]] = &[
            br#"{"model":"a","model":"b"}"#,
            br#"{"model":"a","model":7}"#,
            br#"{"mod\u0065l":"escaped-key"}"#,
            br#"{"model":"tab\there \u00e9 \ud83d\ude00"}"#,
            br#"{"model":null}"#,
            br#"{"x":"\\","model":"after-backslash"}"#,
            br#"{}"#,
            br#"[{"model":"array"}]"#,
            br#""model""#,
            br#"{"model":"cut"#,
            br#"{"model":"unclosed-object""#,
            b"",
            b"{\"model\":\"\xff\"}",
        ];
        for case in cases {
            assert_eq!(
                peek_model(case),
                reference(case),
                "{}",
                String::from_utf8_lossy(case)
            );
        }
    }

    /// What the full parser records: the model of a well-formed object body.
    fn reference(body: &[u8]) -> Option<String> {
        let v: serde_json::Value = serde_json::from_slice(body).ok()?;
        v.get("model")?.as_str().map(bounded)
    }

    proptest! {
        #[test]
        fn matches_the_parser_on_generated_bodies(
            model in "\\PC{0,40}",
            before in proptest::collection::vec(("[a-z]{1,6}", "\\PC{0,20}"), 0..4),
            nested in "\\PC{0,20}",
        ) {
            let mut obj = serde_json::Map::new();
            for (k, v) in &before {
                obj.insert(k.clone(), serde_json::json!({"model": v, "list": [v, {"model": nested}]}));
            }
            obj.insert("model".into(), serde_json::Value::String(model.clone()));
            let body = serde_json::to_vec(&serde_json::Value::Object(obj)).unwrap_or_default();
            prop_assert_eq!(peek_model(&body), reference(&body));
            let pretty = serde_json::to_vec_pretty(&serde_json::from_slice::<serde_json::Value>(&body).unwrap_or_default()).unwrap_or_default();
            prop_assert_eq!(peek_model(&pretty), reference(&pretty));
        }
    }
}
