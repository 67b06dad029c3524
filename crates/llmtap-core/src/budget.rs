//! Byte budgets for captured JSON: over budget, the capture is cut at a JSON value boundary so the
//! result still parses (and still follows the gen_ai message schema as far as possible).
//!
//! Rules of the cut, in document order:
//! - a string that doesn't fit keeps its longest prefix (at a char boundary) and ends with the
//!   marker `…[truncated N bytes]`, N being the UTF-8 bytes dropped from that string;
//! - an array keeps its leading elements; the first element that doesn't fit is itself cut, and
//!   the elements after it are dropped;
//! - an object first reserves room for the smallest form of each member (short strings and
//!   numbers whole, long strings as a bare marker, containers as `[]`/`{}` or their own smallest
//!   form), so small fields like `role`, `type`, `finish_reason` survive while the big one is cut;
//!   members whose smallest form doesn't fit are dropped;
//! - a number, bool or null that doesn't fit is dropped.
//!
//! Dropped elements and members carry no in-band marker (it would break the message schema);
//! the returned flag (→ `llmtap.capture.truncated`) says a cut happened.

use std::io;

use serde_json::{Map, Value};

const MARK_PREFIX: &str = "…[truncated ";
const MARK_SUFFIX: &str = " bytes]";

/// Serializes `value` compactly within `max_bytes`. Returns the JSON text and whether it was cut.
///
/// The text always parses as JSON and is at most `max_bytes` long when `max_bytes >= 4` (a value
/// that can't be cut at all — a long number — becomes `null`). Below 4 bytes the result is `""`
/// unless the value fits; callers use budgets of at least 64 bytes.
pub fn truncate_json(value: &Value, max_bytes: usize) -> (String, bool) {
    if let Some(text) = serialize_within(value, max_bytes) {
        return (text, false);
    }
    match fit(value, max_bytes) {
        Some(text) if text.len() <= max_bytes => (text, true),
        _ if max_bytes >= 4 => ("null".to_owned(), true),
        _ => (String::new(), true),
    }
}

/// Counts bytes without building the text.
struct CountingWriter(usize);

impl io::Write for CountingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 = self.0.saturating_add(buf.len());
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Length of the compact serialization of `value`.
pub fn compact_len(value: &Value) -> usize {
    let mut counter = CountingWriter(0);
    match serde_json::to_writer(&mut counter, value) {
        Ok(()) => counter.0,
        Err(_) => usize::MAX,
    }
}

/// Counts like [`CountingWriter`] but gives up past `cap`, so sizing a 1 MB conversation
/// against a 64 KiB budget serializes ~64 KiB, not all of it.
struct CappedCounter {
    count: usize,
    cap: usize,
}

impl io::Write for CappedCounter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.count = self.count.saturating_add(buf.len());
        if self.count > self.cap {
            return Err(io::Error::other("over the cap"));
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `min(compact_len(value), cap + 1)`: the exact length when it is at most `cap`, else any
/// number above `cap`.
fn compact_len_capped(value: &Value, cap: usize) -> usize {
    let mut counter = CappedCounter { count: 0, cap };
    match serde_json::to_writer(&mut counter, value) {
        Ok(()) => counter.count,
        Err(_) => cap.saturating_add(1),
    }
}

fn string_len(s: &str) -> usize {
    s.chars().map(escaped_len).fold(2, usize::saturating_add)
}

/// Bytes serde_json writes for `c` inside a string.
fn escaped_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\n' | '\r' | '\t' | '\u{08}' | '\u{0c}' => 2,
        c if (c as u32) < 0x20 => 6,
        c => c.len_utf8(),
    }
}

fn digits(mut n: usize) -> usize {
    let mut d = 1;
    while n >= 10 {
        n /= 10;
        d += 1;
    }
    d
}

/// Serialized length of a string cut to nothing but the marker (worst case for `original_len`).
fn marker_only_len(original_len: usize) -> usize {
    2 + MARK_PREFIX.len() + digits(original_len) + MARK_SUFFIX.len()
}

/// The smallest text [`fit`] can produce for `value` (or its full length if that is smaller).
fn min_len(value: &Value) -> usize {
    let smallest = match value {
        Value::String(s) => marker_only_len(s.len()),
        Value::Array(_) => 2,
        Value::Object(map) => object_min_len(map),
        _ => return compact_len(value),
    };
    compact_len_capped(value, smallest).min(smallest)
}

fn object_min_len(map: &Map<String, Value>) -> usize {
    let mut total: usize = 2;
    for (i, (key, member)) in map.iter().enumerate() {
        let sep = usize::from(i > 0);
        total = total
            .saturating_add(sep)
            .saturating_add(string_len(key) + 1)
            .saturating_add(min_len(member));
    }
    total
}

/// `value` serialized within `budget` bytes, cut per the module rules; `None` if not even its
/// smallest form fits.
fn fit(value: &Value, budget: usize) -> Option<String> {
    fit_with_flag(value, budget).map(|(text, _)| text)
}

/// [`fit`], and whether the value had to be cut. A value that fits is serialized once (into a
/// buffer that gives up past `budget`), not measured first and serialized again.
fn fit_with_flag(value: &Value, budget: usize) -> Option<(String, bool)> {
    if let Some(whole) = serialize_within(value, budget) {
        return Some((whole, false));
    }
    let cut = match value {
        Value::String(s) => cut_string(s, budget),
        Value::Array(items) => fit_array(items, budget),
        Value::Object(map) => fit_object(map, budget),
        _ => None,
    };
    cut.map(|text| (text, true))
}

/// Writes into a `Vec` until it would pass `cap`.
struct CappedBuffer {
    buf: Vec<u8>,
    cap: usize,
}

impl io::Write for CappedBuffer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.buf.len().saturating_add(buf.len()) > self.cap {
            return Err(io::Error::other("over the cap"));
        }
        self.buf.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// At most the length of `value`'s compact serialization, cheaply: strings and keys count their
/// bytes and quotes (escaping only adds), every other value one byte.
pub(crate) fn serialized_len_lower_bound(value: &Value) -> usize {
    match value {
        Value::String(s) => s.len() + 2,
        Value::Array(items) => items
            .iter()
            .map(serialized_len_lower_bound)
            .fold(2, usize::saturating_add),
        Value::Object(members) => members
            .iter()
            .map(|(k, v)| k.len() + 3 + serialized_len_lower_bound(v))
            .fold(2, usize::saturating_add),
        _ => 1,
    }
}

/// The compact serialization of `value` when it is at most `cap` bytes.
fn serialize_within(value: &Value, cap: usize) -> Option<String> {
    // Sized once from below: the buffer grows by doubling from there, not from empty.
    let mut out = CappedBuffer {
        buf: Vec::with_capacity(serialized_len_lower_bound(value).min(cap)),
        cap,
    };
    serde_json::to_writer(&mut out, value).ok()?;
    String::from_utf8(out.buf).ok()
}

fn cut_string(s: &str, budget: usize) -> Option<String> {
    let reserve = marker_only_len(s.len());
    let avail = budget.checked_sub(reserve)?;
    let mut used = 0usize;
    let mut keep = 0usize;
    for (idx, c) in s.char_indices() {
        let len = escaped_len(c);
        if used + len > avail {
            break;
        }
        used += len;
        keep = idx + c.len_utf8();
    }
    let kept = s.get(..keep)?;
    let dropped = s.len() - keep;
    let mut cut = String::with_capacity(keep + reserve);
    cut.push_str(kept);
    cut.push_str(MARK_PREFIX);
    cut.push_str(&dropped.to_string());
    cut.push_str(MARK_SUFFIX);
    let text = serde_json::to_string(&cut).ok()?;
    (text.len() <= budget).then_some(text)
}

fn fit_array(items: &[Value], budget: usize) -> Option<String> {
    let mut remaining = budget.checked_sub(2)?;
    let mut out = String::from("[");
    for (i, item) in items.iter().enumerate() {
        let sep = usize::from(i > 0);
        let Some(avail) = remaining.checked_sub(sep) else {
            break;
        };
        let Some((piece, was_cut)) = fit_with_flag(item, avail).filter(|(p, _)| p.len() <= avail)
        else {
            break;
        };
        if sep == 1 {
            out.push(',');
        }
        out.push_str(&piece);
        remaining -= sep + piece.len();
        if was_cut {
            break;
        }
    }
    out.push(']');
    Some(out)
}

fn fit_object(map: &Map<String, Value>, budget: usize) -> Option<String> {
    let inner_budget = budget.checked_sub(2)?;

    // Pick members whose smallest form fits, in order.
    struct Member<'a> {
        key: &'a str,
        value: &'a Value,
        key_len: usize,
        min: usize,
    }
    let mut chosen: Vec<Member<'_>> = Vec::new();
    let mut reserved = 0usize;
    for (key, value) in map {
        let key_len = string_len(key) + 1;
        let min = min_len(value);
        let sep = usize::from(!chosen.is_empty());
        let cost = sep.saturating_add(key_len).saturating_add(min);
        if reserved.saturating_add(cost) <= inner_budget {
            reserved += cost;
            chosen.push(Member {
                key,
                value,
                key_len,
                min,
            });
        }
    }

    // Write them, each getting its minimum plus whatever slack the ones before left over.
    let mut out = String::from("{");
    let mut remaining = inner_budget;
    let mut rest_min: usize = chosen
        .iter()
        .enumerate()
        .map(|(i, m)| usize::from(i > 0) + m.key_len + m.min)
        .sum();
    let mut written = 0usize;
    for (i, member) in chosen.iter().enumerate() {
        let own_min = usize::from(i > 0) + member.key_len + member.min;
        rest_min = rest_min.saturating_sub(own_min);
        let sep = usize::from(written > 0);
        let Some(allowed) = remaining
            .checked_sub(rest_min)
            .and_then(|r| r.checked_sub(sep + member.key_len))
        else {
            continue;
        };
        let Some(piece) = fit(member.value, allowed).filter(|p| p.len() <= allowed) else {
            continue;
        };
        let key = serde_json::to_string(member.key).ok()?;
        if sep == 1 {
            out.push(',');
        }
        out.push_str(&key);
        out.push(':');
        out.push_str(&piece);
        remaining = remaining.saturating_sub(sep + member.key_len + piece.len());
        written += 1;
    }
    out.push('}');
    (out.len() <= budget).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn fits_unchanged() {
        let v = json!([{"role": "user", "parts": [{"type": "text", "content": "hi"}]}]);
        let (text, cut) = truncate_json(&v, 1000);
        assert!(!cut);
        assert_eq!(text, serde_json::to_string(&v).unwrap());
        let (text, cut) = truncate_json(&v, text.len());
        assert!(!cut, "{text}");
    }

    #[test]
    fn long_string_cut_with_marker() {
        let v = json!("abcdefghij".repeat(100));
        let (text, cut) = truncate_json(&v, 64);
        assert!(cut);
        assert!(text.len() <= 64, "{}", text.len());
        let back: String = serde_json::from_str(&text).unwrap();
        assert!(back.starts_with("abcdefghij"));
        let kept = back.find('…').unwrap();
        assert!(
            back.ends_with(&format!("…[truncated {} bytes]", 1000 - kept)),
            "{back}"
        );
    }

    #[test]
    fn multibyte_cut_at_char_boundary() {
        let v = json!("日本語のテキスト".repeat(50));
        for budget in 30..120 {
            let (text, _) = truncate_json(&v, budget);
            assert!(text.len() <= budget);
            let back: String = serde_json::from_str(&text).unwrap();
            assert!(back.contains("[truncated"));
        }
    }

    #[test]
    fn message_schema_fields_survive() {
        let big = "x".repeat(10_000);
        let v = json!([
            {"role": "system", "parts": [{"type": "text", "content": "be brief"}]},
            {"role": "user", "parts": [{"type": "text", "content": big}]},
            {"role": "user", "parts": [{"type": "text", "content": "last"}]}
        ]);
        let (text, cut) = truncate_json(&v, 300);
        assert!(cut);
        assert!(text.len() <= 300);
        let back: Value = serde_json::from_str(&text).unwrap();
        let msgs = back.as_array().unwrap();
        assert_eq!(msgs.len(), 2, "{text}");
        assert_eq!(msgs[0]["parts"][0]["content"], "be brief");
        assert_eq!(msgs[1]["role"], "user", "{text}");
        assert_eq!(msgs[1]["parts"][0]["type"], "text", "{text}");
        let content = msgs[1]["parts"][0]["content"].as_str().unwrap();
        assert!(
            content.starts_with("xxx") && content.contains("[truncated"),
            "{text}"
        );
    }

    #[test]
    fn uncuttable_scalar_becomes_null() {
        let v = json!(12345678901234_i64);
        assert_eq!(truncate_json(&v, 5), ("null".to_owned(), true));
        assert_eq!(truncate_json(&v, 2), (String::new(), true));
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            "\\PC{0,40}".prop_map(Value::String),
            "[\\x00-\\x1f\"\\\\a-z]{0,30}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 96, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                prop::collection::btree_map("\\PC{0,8}", inner, 0..8)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn always_valid_and_within_budget(v in arb_json(), max in 4usize..600) {
            let (text, cut) = truncate_json(&v, max);
            prop_assert!(text.len() <= max, "len {} > {}", text.len(), max);
            let parsed: Result<Value, _> = serde_json::from_str(&text);
            prop_assert!(parsed.is_ok(), "invalid JSON: {}", text);
            let full = serde_json::to_string(&v).unwrap();
            if full.len() <= max {
                prop_assert!(!cut);
                prop_assert_eq!(text, full);
            } else {
                prop_assert!(cut);
            }
        }

        #[test]
        fn compact_len_matches_serialization(v in arb_json()) {
            prop_assert_eq!(compact_len(&v), serde_json::to_string(&v).unwrap().len());
        }

        #[test]
        fn min_len_is_achievable(v in arb_json()) {
            let min = min_len(&v);
            let text = fit(&v, min);
            prop_assert!(text.as_ref().is_some_and(|t| t.len() <= min), "{:?} min {}", text, min);
        }
    }
}
