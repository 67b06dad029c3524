//! An incremental, allocation-light Server-Sent Events decoder following the WHATWG
//! "event stream interpretation" rules, for decoding a *copy* of a streamed response.
//!
//! - Bytes arrive in arbitrary chunks; lines end in `\n`, `\r\n` or `\r`, and a `\r\n` split
//!   across two chunks is still one line end. A leading UTF-8 BOM is skipped.
//! - Comment lines (`:`...) are ignored; `field` without a colon means an empty value; one space
//!   after the colon is dropped; `data` lines join with `\n`; `id` persists across events (spec's
//!   "last event ID"); `retry` and unknown fields are ignored.
//! - Memory is bounded: an event (its pending line plus data and type so far) larger than
//!   `max_event_bytes` is discarded up to its terminating blank line and counted, never buffered.
//! - Invalid UTF-8 is decoded lossily (U+FFFD) and counted. Nothing here can panic.
//! - Buffers are reused between events; a line that lies entirely inside one chunk is parsed in
//!   place without copying.
//!
//! Unlike a browser, [`SseDecoder::finish`] dispatches a final event that lacks its terminating
//! blank line: a recorder wants the last chunk of a stream the server closed early.

use std::borrow::Cow;

/// Default event size bound: far above any real LLM chunk, small enough to never matter for
/// memory.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 4 * 1024 * 1024;

const BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];

/// One dispatched event. Borrowed from the decoder; copy what you keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SseEvent<'a> {
    /// The `event:` type; `None` means the default type (`message`).
    pub event: Option<&'a str>,
    /// All `data:` lines of the event joined with `\n`.
    pub data: &'a str,
    /// The last event id seen on the stream so far, if any.
    pub id: Option<&'a str>,
}

/// What the decoder had to tolerate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SseStats {
    /// Events dispatched.
    pub events: u64,
    /// Events discarded for exceeding the size bound.
    pub oversized_events: u64,
    /// Lines that were not valid UTF-8 (decoded lossily).
    pub invalid_utf8_lines: u64,
}

impl SseStats {
    /// Whether the stream had anything undecodable.
    pub fn had_errors(&self) -> bool {
        self.oversized_events > 0 || self.invalid_utf8_lines > 0
    }
}

/// Incremental SSE decoder. One per stream.
#[derive(Debug)]
pub struct SseDecoder {
    /// Bytes of a line that started in an earlier chunk.
    line: Vec<u8>,
    data: String,
    event: String,
    last_id: String,
    /// The previous chunk ended in `\r`: a leading `\n` in the next chunk belongs to it.
    pending_cr: bool,
    /// BOM bytes matched so far while at the start of the stream.
    bom_matched: usize,
    started: bool,
    /// Discarding an oversized event up to its blank line.
    skipping: bool,
    /// While skipping: the current line already has bytes (so it is not the blank line).
    skip_line_has_bytes: bool,
    max_event_bytes: usize,
    stats: SseStats,
}

impl Default for SseDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl SseDecoder {
    /// A decoder with the [`DEFAULT_MAX_EVENT_BYTES`] bound.
    pub fn new() -> Self {
        Self::with_max_event_bytes(DEFAULT_MAX_EVENT_BYTES)
    }

    /// A decoder that discards events larger than `max_event_bytes`.
    pub fn with_max_event_bytes(max_event_bytes: usize) -> Self {
        Self {
            line: Vec::new(),
            data: String::new(),
            event: String::new(),
            last_id: String::new(),
            pending_cr: false,
            bom_matched: 0,
            started: false,
            skipping: false,
            skip_line_has_bytes: false,
            max_event_bytes,
            stats: SseStats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> SseStats {
        self.stats
    }

    /// Decodes `chunk`, calling `on_event` for every complete event in it.
    pub fn feed(&mut self, chunk: &[u8], mut on_event: impl FnMut(SseEvent<'_>)) {
        let mut input = chunk;
        if !self.started {
            while self.bom_matched < BOM.len() {
                match input.split_first() {
                    Some((&b, rest)) if Some(&b) == BOM.get(self.bom_matched) => {
                        self.bom_matched += 1;
                        input = rest;
                    }
                    Some(_) => break,
                    None => return, // still could be a BOM; wait for more bytes
                }
            }
            self.started = true;
            if self.bom_matched < BOM.len() {
                // Not a BOM after all: the bytes we held back are ordinary input.
                let held = BOM.get(..self.bom_matched).unwrap_or_default();
                self.process(held, &mut on_event);
            }
        }
        self.process(input, &mut on_event);
    }

    /// End of stream: decodes what is left, including a last event that lacks its blank line,
    /// and resets the decoder for reuse (stats are kept).
    pub fn finish(&mut self, mut on_event: impl FnMut(SseEvent<'_>)) {
        if !self.started && self.bom_matched < BOM.len() {
            let held = BOM.get(..self.bom_matched).unwrap_or_default();
            self.started = true;
            self.process(held, &mut on_event);
        }
        if !self.skipping && !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.process_line(&line);
            self.line = line;
            self.line.clear();
        }
        if !self.skipping {
            self.dispatch(&mut on_event);
        }
        let stats = self.stats;
        let max = self.max_event_bytes;
        let line = std::mem::take(&mut self.line);
        *self = Self::with_max_event_bytes(max);
        self.stats = stats;
        self.line = line;
    }

    fn process(&mut self, mut input: &[u8], on_event: &mut impl FnMut(SseEvent<'_>)) {
        while !input.is_empty() {
            if self.pending_cr {
                self.pending_cr = false;
                if let Some((b'\n', rest)) = input.split_first() {
                    input = rest;
                    continue;
                }
            }
            let Some(pos) = input.iter().position(|&b| b == b'\n' || b == b'\r') else {
                self.buffer_partial_line(input);
                return;
            };
            let (part, rest) = input.split_at(pos);
            let Some((&terminator, rest)) = rest.split_first() else {
                return;
            };
            input = rest;
            self.pending_cr = terminator == b'\r';
            self.end_of_line(part, on_event);
        }
    }

    /// A line ended; `part` is its bytes in the current chunk.
    fn end_of_line(&mut self, part: &[u8], on_event: &mut impl FnMut(SseEvent<'_>)) {
        if self.skipping {
            let blank = !self.skip_line_has_bytes && part.is_empty();
            self.skip_line_has_bytes = false;
            if blank {
                self.skipping = false;
                self.data.clear();
                self.event.clear();
            }
            return;
        }
        if self.line.is_empty() {
            if part.is_empty() {
                self.dispatch(on_event);
            } else if self.fits(part.len()) {
                self.process_line(part);
            } else {
                self.start_skipping(false);
            }
            return;
        }
        if !self.fits(self.line.len().saturating_add(part.len())) {
            self.start_skipping(false);
            return;
        }
        let mut line = std::mem::take(&mut self.line);
        line.extend_from_slice(part);
        self.process_line(&line);
        line.clear();
        self.line = line;
    }

    fn buffer_partial_line(&mut self, part: &[u8]) {
        if self.skipping {
            self.skip_line_has_bytes = true;
        } else if self.fits(self.line.len().saturating_add(part.len())) {
            self.line.extend_from_slice(part);
        } else {
            self.start_skipping(true);
        }
    }

    /// Whether `extra` more bytes keep the event within bounds.
    fn fits(&self, extra: usize) -> bool {
        self.data
            .len()
            .saturating_add(self.event.len())
            .saturating_add(extra)
            <= self.max_event_bytes
    }

    fn start_skipping(&mut self, mid_line: bool) {
        self.stats.oversized_events += 1;
        self.skipping = true;
        self.skip_line_has_bytes = mid_line;
        self.line.clear();
        self.data.clear();
        self.event.clear();
        // Give back memory an oversized event may have grown.
        self.line.shrink_to(1024);
        self.data.shrink_to(1024);
    }

    /// One complete, non-empty line.
    fn process_line(&mut self, raw: &[u8]) {
        let line: Cow<'_, str> = match std::str::from_utf8(raw) {
            Ok(s) => Cow::Borrowed(s),
            Err(_) => {
                self.stats.invalid_utf8_lines += 1;
                String::from_utf8_lossy(raw)
            }
        };
        if line.starts_with(':') {
            return; // comment
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_ref(), ""),
        };
        match field {
            "data" => {
                // Lossy decoding can grow a line (1 byte → 3); re-check the bound.
                if !self.fits(value.len() + 1) {
                    self.start_skipping(false);
                    return;
                }
                self.data.push_str(value);
                self.data.push('\n');
            }
            "event" => {
                if !self.fits(value.len().saturating_sub(self.event.len())) {
                    self.start_skipping(false);
                    return;
                }
                self.event.clear();
                self.event.push_str(value);
            }
            "id" if !value.contains('\0') && value.len() <= self.max_event_bytes => {
                self.last_id.clear();
                self.last_id.push_str(value);
            }
            _ => {} // retry and unknown fields
        }
    }

    fn dispatch(&mut self, on_event: &mut impl FnMut(SseEvent<'_>)) {
        if self.data.is_empty() {
            self.event.clear();
            return;
        }
        if self.data.ends_with('\n') {
            self.data.pop();
        }
        self.stats.events += 1;
        on_event(SseEvent {
            event: (!self.event.is_empty()).then_some(self.event.as_str()),
            data: &self.data,
            id: (!self.last_id.is_empty()).then_some(self.last_id.as_str()),
        });
        self.data.clear();
        self.event.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    type Owned = (Option<String>, String, Option<String>);

    fn own(ev: SseEvent<'_>) -> Owned {
        (
            ev.event.map(str::to_owned),
            ev.data.to_owned(),
            ev.id.map(str::to_owned),
        )
    }

    fn decode_chunks(chunks: &[&[u8]], max: usize) -> (Vec<Owned>, SseStats) {
        let mut dec = SseDecoder::with_max_event_bytes(max);
        let mut out = Vec::new();
        for c in chunks {
            dec.feed(c, |ev| out.push(own(ev)));
        }
        dec.finish(|ev| out.push(own(ev)));
        (out, dec.stats())
    }

    fn decode(bytes: &[u8]) -> Vec<Owned> {
        decode_chunks(&[bytes], DEFAULT_MAX_EVENT_BYTES).0
    }

    fn ev(event: Option<&str>, data: &str, id: Option<&str>) -> Owned {
        (event.map(Into::into), data.into(), id.map(Into::into))
    }

    #[test]
    fn basic_fields_and_multiline_data() {
        let s = b"event: add\ndata: 1\ndata:2\nid: 7\n\n: comment\ndata\n\ndata: x\n\n";
        assert_eq!(
            decode(s),
            vec![
                ev(Some("add"), "1\n2", Some("7")),
                ev(None, "", Some("7")),
                ev(None, "x", Some("7")),
            ]
        );
    }

    #[test]
    fn line_endings_and_bom() {
        let s = b"\xEF\xBB\xBFdata: a\r\rdata: b\r\n\r\ndata: c\n\n";
        assert_eq!(
            decode(s),
            vec![
                ev(None, "a", None),
                ev(None, "b", None),
                ev(None, "c", None)
            ]
        );
        // CR at a chunk end followed by LF in the next chunk is one line end.
        let (events, _) = decode_chunks(&[b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"], 1024);
        assert_eq!(events, vec![ev(None, "a\nb", None)]);
    }

    #[test]
    fn empty_event_is_not_dispatched_and_resets_type() {
        let s = b"event: x\n\ndata: y\n\n";
        assert_eq!(decode(s), vec![ev(None, "y", None)]);
    }

    #[test]
    fn value_space_handling_and_empty_id() {
        let s = b"data:  two spaces\nid\n\n";
        assert_eq!(decode(s), vec![ev(None, " two spaces", None)]);
        let s = b"id: a\0b\ndata: z\n\n";
        assert_eq!(decode(s), vec![ev(None, "z", None)]);
    }

    #[test]
    fn finish_flushes_unterminated_event() {
        assert_eq!(decode(b"data: [DONE]"), vec![ev(None, "[DONE]", None)]);
        assert_eq!(decode(b"data: a\n"), vec![ev(None, "a", None)]);
        assert_eq!(decode(b"\xEF\xBB"), vec![]);
    }

    #[test]
    fn oversized_events_are_skipped_and_counted() {
        let big = format!("data: {}\n\ndata: ok\n\n", "x".repeat(100));
        let (events, stats) = decode_chunks(&[big.as_bytes()], 32);
        assert_eq!(events, vec![ev(None, "ok", None)]);
        assert_eq!(stats.oversized_events, 1);
        assert_eq!(stats.events, 1);
        // Oversized by many data lines, delivered in tiny chunks.
        let many = format!("{}\ndata: ok\n\n", "data: 0123456789\n".repeat(10));
        let chunks: Vec<&[u8]> = many.as_bytes().chunks(3).collect();
        let (events, stats) = decode_chunks(&chunks, 32);
        assert_eq!(events, vec![ev(None, "ok", None)]);
        assert_eq!(stats.oversized_events, 1);
        assert!(stats.had_errors());
    }

    #[test]
    fn memory_stays_bounded_without_newlines() {
        let mut dec = SseDecoder::with_max_event_bytes(1024);
        let junk = vec![b'a'; 4096];
        for _ in 0..1000 {
            dec.feed(&junk, |_| panic!("no event expected"));
        }
        assert!(dec.line.capacity() <= 4096 && dec.data.capacity() <= 4096);
        assert_eq!(dec.stats().oversized_events, 1);
    }

    #[test]
    fn invalid_utf8_is_lossy_and_counted() {
        let (events, stats) = decode_chunks(&[b"data: a\xFFb\n\n"], 1024);
        assert_eq!(events, vec![ev(None, "a\u{FFFD}b", None)]);
        assert_eq!(stats.invalid_utf8_lines, 1);
    }

    fn sse_like() -> impl Strategy<Value = Vec<u8>> {
        let token = prop_oneof![
            Just(b"data".to_vec()),
            Just(b"data: ".to_vec()),
            Just(b"event".to_vec()),
            Just(b"id".to_vec()),
            Just(b"retry".to_vec()),
            Just(b":".to_vec()),
            Just(b" ".to_vec()),
            Just(b"\n".to_vec()),
            Just(b"\n\n".to_vec()),
            Just(b"\r".to_vec()),
            Just(b"\r\n".to_vec()),
            Just("é{\"x\":1}".as_bytes().to_vec()),
            Just(b"\xEF\xBB\xBF".to_vec()),
            Just(b"\xEF\xBB".to_vec()),
            Just(b"\xFF".to_vec()),
            Just(b"\0".to_vec()),
            Just(b"[DONE]".to_vec()),
            "[a-z0-9]{1,12}".prop_map(String::into_bytes),
        ];
        prop::collection::vec(token, 0..60).prop_map(|v| v.concat())
    }

    fn split_at_points(bytes: &[u8], mut points: Vec<usize>) -> Vec<&[u8]> {
        points.iter_mut().for_each(|p| *p %= bytes.len() + 1);
        points.sort_unstable();
        let mut chunks = Vec::new();
        let mut start = 0;
        for p in points {
            chunks.push(&bytes[start..p]);
            start = p;
        }
        chunks.push(&bytes[start..]);
        chunks
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]
        #[test]
        fn any_split_decodes_identically(
            bytes in sse_like(),
            points in prop::collection::vec(any::<usize>(), 0..12),
            max in prop_oneof![Just(DEFAULT_MAX_EVENT_BYTES), 8usize..64],
        ) {
            let whole = decode_chunks(&[&bytes], max);
            let chunks = split_at_points(&bytes, points);
            let split = decode_chunks(&chunks, max);
            prop_assert_eq!(&whole, &split);
            // Byte-at-a-time too.
            let singles: Vec<&[u8]> = bytes.chunks(1).collect();
            prop_assert_eq!(&whole, &decode_chunks(&singles, max));
        }

        #[test]
        fn arbitrary_bytes_never_panic(
            bytes in prop::collection::vec(any::<u8>(), 0..512),
            points in prop::collection::vec(any::<usize>(), 0..8),
            max in 0usize..128,
        ) {
            let chunks = split_at_points(&bytes, points);
            let (events, stats) = decode_chunks(&chunks, max);
            prop_assert_eq!(events.len() as u64, stats.events);
            for (event, data, _) in events {
                prop_assert!(data.len() + event.map_or(0, |e| e.len()) <= max);
            }
        }
    }
}
