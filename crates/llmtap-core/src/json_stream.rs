//! An incremental splitter for streamed JSON arrays of objects, for decoding a *copy* of a
//! Gemini `:streamGenerateContent` response sent without `alt=sse`: the body is one JSON array
//! (`[{...}\n,\r\n{...}\n]`) delivered in arbitrary pieces, and each element is one response
//! chunk that must be handled as soon as it is complete, not when the array closes.
//!
//! - Elements are the top-level `{...}` objects, found by counting braces and brackets outside
//!   strings (escapes honoured). The enclosing `[`, the `,` separators and whitespace between
//!   elements are skipped, so a plain sequence of objects (NDJSON) splits the same way.
//! - Anything else between elements (a stray scalar, garbage) is skipped and counted.
//! - Memory is bounded: an element larger than `max_element_bytes` is discarded to its end and
//!   counted, never buffered. Invalid UTF-8 is decoded lossily and counted. Nothing here panics.

use std::borrow::Cow;

/// Default element size bound, the same as the SSE decoder's event bound.
pub const DEFAULT_MAX_ELEMENT_BYTES: usize = crate::sse::DEFAULT_MAX_EVENT_BYTES;

/// What the splitter had to tolerate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JsonStreamStats {
    /// Elements dispatched.
    pub elements: u64,
    /// Elements discarded for exceeding the size bound.
    pub oversized_elements: u64,
    /// Elements that were not valid UTF-8 (decoded lossily).
    pub invalid_utf8_elements: u64,
    /// Bytes between elements that were neither whitespace, `[`, `]` nor `,`.
    pub junk_bytes: u64,
    /// An element was still open when the stream ended.
    pub unterminated: bool,
}

impl JsonStreamStats {
    /// Whether the stream had anything undecodable (an unterminated element is a cut, reported
    /// separately).
    pub fn had_errors(&self) -> bool {
        self.oversized_elements > 0 || self.invalid_utf8_elements > 0 || self.junk_bytes > 0
    }
}

/// Incremental JSON-array splitter. One per stream.
#[derive(Debug)]
pub struct JsonArraySplitter {
    buf: Vec<u8>,
    /// Inside an element: its brace/bracket depth (0 = between elements).
    depth: usize,
    in_string: bool,
    escaped: bool,
    /// The current element outgrew the bound: bytes are scanned but not kept.
    oversized: bool,
    max_element_bytes: usize,
    stats: JsonStreamStats,
    /// The array's closing `]` was seen (outside any element).
    closed: bool,
}

impl Default for JsonArraySplitter {
    fn default() -> Self {
        Self::new()
    }
}

impl JsonArraySplitter {
    /// A splitter with the [`DEFAULT_MAX_ELEMENT_BYTES`] bound.
    pub fn new() -> Self {
        Self::with_max_element_bytes(DEFAULT_MAX_ELEMENT_BYTES)
    }

    /// A splitter that discards elements larger than `max_element_bytes`.
    pub fn with_max_element_bytes(max_element_bytes: usize) -> Self {
        Self {
            buf: Vec::new(),
            depth: 0,
            in_string: false,
            escaped: false,
            oversized: false,
            max_element_bytes,
            stats: JsonStreamStats::default(),
            closed: false,
        }
    }

    /// Whether the top-level array's closing `]` has been seen: the stream's last byte of meaning.
    pub fn closed(&self) -> bool {
        self.closed
    }

    /// Counters so far.
    pub fn stats(&self) -> JsonStreamStats {
        self.stats
    }

    /// Splits `chunk`, calling `on_element` with the text of every element completed in it.
    pub fn feed(&mut self, chunk: &[u8], mut on_element: impl FnMut(&str)) {
        let mut i = 0;
        while i < chunk.len() {
            if self.depth == 0 {
                // Between elements: skip separators until an object starts.
                let Some(&b) = chunk.get(i) else { break };
                i += 1;
                match b {
                    b'{' => {
                        self.depth = 1;
                        self.in_string = false;
                        self.escaped = false;
                        self.oversized = false;
                        self.buf.clear();
                        self.buf.push(b'{');
                    }
                    b']' => self.closed = true,
                    b'[' => self.closed = false,
                    b' ' | b'\t' | b'\r' | b'\n' | b',' => {}
                    _ => self.stats.junk_bytes += 1,
                }
                continue;
            }
            // Inside an element: find where it ends in this chunk.
            let start = i;
            let mut end = None;
            while let Some(&b) = chunk.get(i) {
                i += 1;
                if self.in_string {
                    if self.escaped {
                        self.escaped = false;
                    } else if b == b'\\' {
                        self.escaped = true;
                    } else if b == b'"' {
                        self.in_string = false;
                    }
                    continue;
                }
                match b {
                    b'"' => self.in_string = true,
                    b'{' | b'[' => self.depth = self.depth.saturating_add(1),
                    b'}' | b']' => {
                        self.depth = self.depth.saturating_sub(1);
                        if self.depth == 0 {
                            end = Some(i);
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let piece = chunk.get(start..end.unwrap_or(i)).unwrap_or_default();
            self.keep(piece);
            if end.is_some() {
                self.dispatch(&mut on_element);
            }
        }
    }

    /// Ends the stream. An element still open is dropped (it was cut) and noted.
    pub fn finish(&mut self) {
        if self.depth > 0 {
            self.stats.unterminated = true;
        }
        self.depth = 0;
        self.buf.clear();
        self.oversized = false;
    }

    fn keep(&mut self, piece: &[u8]) {
        if self.oversized {
            return;
        }
        if self.buf.len().saturating_add(piece.len()) > self.max_element_bytes {
            self.oversized = true;
            self.buf.clear();
            self.buf.shrink_to(4096);
            return;
        }
        self.buf.extend_from_slice(piece);
    }

    fn dispatch(&mut self, on_element: &mut impl FnMut(&str)) {
        if self.oversized {
            self.stats.oversized_elements += 1;
            self.oversized = false;
            self.buf.clear();
            return;
        }
        let text = String::from_utf8_lossy(&self.buf);
        if matches!(text, Cow::Owned(_)) {
            self.stats.invalid_utf8_elements += 1;
        }
        self.stats.elements += 1;
        on_element(&text);
        self.buf.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split_all(chunks: &[&[u8]]) -> (Vec<String>, JsonStreamStats) {
        let mut s = JsonArraySplitter::new();
        let mut out = Vec::new();
        for c in chunks {
            s.feed(c, |e| out.push(e.to_owned()));
        }
        s.finish();
        (out, s.stats())
    }

    #[test]
    fn splits_a_gemini_array_with_crlf_separators() {
        let body = b"[{\"a\": 1}\r\n,\r\n{\"b\": [1, {\"c\": \"}]{\\\"\"}]}\r\n]";
        let (out, stats) = split_all(&[body]);
        assert_eq!(
            out,
            vec!["{\"a\": 1}", "{\"b\": [1, {\"c\": \"}]{\\\"\"}]}"]
        );
        assert_eq!(stats.elements, 2);
        assert!(!stats.had_errors() && !stats.unterminated);
    }

    #[test]
    fn any_split_gives_the_same_elements() {
        let body: &[u8] = "[{\"t\":\"é\\\\\"},{\"u\":{\"v\":[\"]\"]}}]".as_bytes();
        let (whole, _) = split_all(&[body]);
        for cut in 0..body.len() {
            let (a, b) = body.split_at(cut);
            assert_eq!(split_all(&[a, b]).0, whole, "cut at {cut}");
        }
        let bytes: Vec<&[u8]> = body.chunks(1).collect();
        assert_eq!(split_all(&bytes).0, whole);
    }

    #[test]
    fn cut_element_is_unterminated_and_not_dispatched() {
        let (out, stats) = split_all(&[b"[{\"a\":1},{\"b\":"]);
        assert_eq!(out, vec!["{\"a\":1}"]);
        assert!(stats.unterminated);
    }

    #[test]
    fn oversized_elements_are_skipped_and_counted() {
        let mut s = JsonArraySplitter::with_max_element_bytes(16);
        let mut out = Vec::new();
        s.feed(b"[{\"long\":\"0123456789abcdef\"},{\"ok\":1}]", |e| {
            out.push(e.to_owned())
        });
        assert_eq!(out, vec!["{\"ok\":1}"]);
        assert_eq!(s.stats().oversized_elements, 1);
        assert!(s.stats().had_errors());
    }

    /// A JSON value (objects, arrays, strings with escapes and `]`/`}` inside) as text.
    fn arb_element() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            any::<i64>().prop_map(|n| n.to_string()),
            "[a-z\\]\\[{}\"\\\\é ,]{0,12}".prop_map(|s| serde_json::Value::String(s).to_string()),
            Just("null".to_owned()),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4)
                    .prop_map(|items| format!("[{}]", items.join(","))),
                proptest::collection::vec(("[a-z]{1,4}", inner), 0..4).prop_map(|members| {
                    let body: Vec<String> = members
                        .into_iter()
                        .map(|(k, v)| format!("{:?}:{v}", k))
                        .collect();
                    format!("{{{}}}", body.join(","))
                }),
            ]
        })
        .prop_map(|v| format!("{{\"v\":{v}}}"))
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
        /// Arbitrary bytes in arbitrary chunks never panic, and what comes out are bracketed
        /// elements only (whether each parses is the codec's business: it marks the span).
        #[test]
        fn arbitrary_bytes_never_panic(
            chunks in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64), 0..8),
        ) {
            let refs: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
            let (out, _) = split_all(&refs);
            for element in out {
                let (first, last) = (element.bytes().next(), element.bytes().last());
                proptest::prop_assert!(
                    matches!(first, Some(b'{' | b'[')) && matches!(last, Some(b'}' | b']')),
                    "{:?}",
                    element
                );
            }
        }

        /// A well-formed array split at arbitrary points gives back exactly its elements.
        #[test]
        fn every_element_of_a_well_formed_array_comes_out_whole(
            elements in proptest::collection::vec(arb_element(), 0..6),
            cuts in proptest::collection::vec(proptest::prelude::any::<proptest::sample::Index>(), 0..8),
        ) {
            let body = format!("[{}]", elements.join(",\r\n"));
            let bytes = body.as_bytes();
            let mut points: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
            points.sort_unstable();
            let mut chunks = Vec::new();
            let mut last = 0;
            for p in points {
                chunks.push(&bytes[last..p]);
                last = p;
            }
            chunks.push(&bytes[last..]);
            let (out, stats) = split_all(&chunks);
            proptest::prop_assert_eq!(out, elements);
            proptest::prop_assert!(!stats.had_errors() && !stats.unterminated);
        }
    }

    #[test]
    fn junk_between_elements_is_counted() {
        let (out, stats) = split_all(&[b"[{\"a\":1}, 42, {\"b\":2}]"]);
        assert_eq!(out.len(), 2);
        assert_eq!(stats.junk_bytes, 2);
    }
}
