//! Content codings (`content-encoding: gzip | deflate | br | zstd`) undone for capture only.
//!
//! Real APIs compress their answers for clients that ask (`accept-encoding: gzip, deflate, br`),
//! and some clients compress their uploads. The traffic keeps its original bytes; only the
//! capture copy is decoded here, incrementally, chunk by chunk, with maintained decoders
//! (`flate2`, `brotli-decompressor`, `zstd`).
//!
//! Decoding is bounded: [`Decoder::feed`] stops with [`DecodeError::OverBudget`] as soon as the
//! decoded output passes the decoder's budget — across the whole body for a buffered body, per
//! input chunk for a stream (whose decoded bytes are consumed as they come). A body that expands a
//! thousandfold therefore never holds more than the budget in memory.

use std::io::Write;

use crate::semconv::capture_error;

/// A `content-encoding` this module can undo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentCoding {
    /// No coding (absent header, `identity`).
    Identity,
    /// `gzip` / `x-gzip` (RFC 1952).
    Gzip,
    /// `deflate`: zlib-wrapped (RFC 1950) as the RFC says, or raw deflate as some servers send.
    Deflate,
    /// `br` (RFC 7932).
    Brotli,
    /// `zstd` (RFC 8878).
    Zstd,
}

/// A `content-encoding` value the capture cannot undo (the body still passes through untouched).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported content-encoding `{0}`")]
pub struct UnsupportedCoding(pub String);

impl ContentCoding {
    /// Reads a `content-encoding` header value. One coding (besides `identity`) is supported;
    /// stacked codings (`gzip, br`) and unknown names are [`UnsupportedCoding`].
    pub fn from_header(value: Option<&str>) -> Result<Self, UnsupportedCoding> {
        let Some(value) = value else {
            return Ok(Self::Identity);
        };
        let mut found = Self::Identity;
        for token in value.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let coding = if token.eq_ignore_ascii_case("identity") {
                continue;
            } else if token.eq_ignore_ascii_case("gzip") || token.eq_ignore_ascii_case("x-gzip") {
                Self::Gzip
            } else if token.eq_ignore_ascii_case("deflate") {
                Self::Deflate
            } else if token.eq_ignore_ascii_case("br") {
                Self::Brotli
            } else if token.eq_ignore_ascii_case("zstd") {
                Self::Zstd
            } else {
                return Err(UnsupportedCoding(bounded(token)));
            };
            if found != Self::Identity {
                return Err(UnsupportedCoding(bounded(value)));
            }
            found = coding;
        }
        Ok(found)
    }
}

/// Header values are attacker-controlled: keep at most 64 bytes of one in an error.
fn bounded(value: &str) -> String {
    value
        .get(..value.floor_char_boundary(64))
        .unwrap_or_default()
        .to_owned()
}

/// Why decoding stopped. The capture is then marked; the traffic is never affected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The decoded bytes passed the budget.
    #[error("decoded body over the capture budget")]
    OverBudget,
    /// The compressed bytes were not valid for their coding.
    #[error("body does not decode as its content-encoding")]
    Corrupt,
}

impl DecodeError {
    /// The `llmtap.capture.error` value for this failure.
    pub fn capture_error(self) -> &'static str {
        match self {
            Self::OverBudget => capture_error::BODY_OVER_BUDGET,
            Self::Corrupt => capture_error::CONTENT_ENCODING_INVALID,
        }
    }
}

/// Whether the budget covers the whole decoded body or each fed chunk's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// The whole decoded body may not pass this many bytes (a buffered body).
    Total(usize),
    /// One fed chunk may not decode to more than this many bytes (a stream, consumed as it goes).
    PerChunk(usize),
}

/// The decoded output of the running decoder, capped so a bomb errors instead of growing.
#[derive(Debug)]
struct Output {
    bytes: Vec<u8>,
    cap: usize,
    over: bool,
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len() + buf.len() > self.cap {
            self.over = true;
            return Err(std::io::Error::other("decoded output over budget"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

enum Inner {
    Gzip(flate2::write::MultiGzDecoder<Output>),
    Zlib(flate2::write::ZlibDecoder<Output>),
    RawDeflate(flate2::write::DeflateDecoder<Output>),
    /// `deflate` before its first byte told zlib from raw.
    DeflateUnknown(Output),
    Brotli(Box<brotli_decompressor::DecompressorWriter<Output>>),
    Zstd(zstd::stream::write::Decoder<'static, Output>),
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Gzip(_) => "Gzip",
            Self::Zlib(_) => "Zlib",
            Self::RawDeflate(_) => "RawDeflate",
            Self::DeflateUnknown(_) => "DeflateUnknown",
            Self::Brotli(_) => "Brotli",
            Self::Zstd(_) => "Zstd",
        })
    }
}

/// An incremental decoder for one body.
#[derive(Debug)]
pub struct Decoder {
    inner: Option<Inner>,
    budget: Budget,
    decoded_total: usize,
    failed: Option<DecodeError>,
}

impl Decoder {
    /// A decoder for `coding`, or `None` for [`ContentCoding::Identity`] (nothing to undo).
    pub fn new(coding: ContentCoding, budget: Budget) -> Option<Self> {
        let cap = match budget {
            Budget::Total(n) | Budget::PerChunk(n) => n,
        };
        let out = Output {
            bytes: Vec::new(),
            cap,
            over: false,
        };
        let inner = match coding {
            ContentCoding::Identity => return None,
            ContentCoding::Gzip => Inner::Gzip(flate2::write::MultiGzDecoder::new(out)),
            ContentCoding::Deflate => Inner::DeflateUnknown(out),
            // 4 KiB: the decoder's own buffer between its window and `Output`.
            ContentCoding::Brotli => Inner::Brotli(Box::new(
                brotli_decompressor::DecompressorWriter::new(out, 4096),
            )),
            ContentCoding::Zstd => match zstd::stream::write::Decoder::new(out) {
                Ok(decoder) => Inner::Zstd(decoder),
                // Only an allocation failure in libzstd's context; treat as undecodable.
                Err(_) => {
                    return Some(Self {
                        inner: None,
                        budget,
                        decoded_total: 0,
                        failed: Some(DecodeError::Corrupt),
                    });
                }
            },
        };
        Some(Self {
            inner: Some(inner),
            budget,
            decoded_total: 0,
            failed: None,
        })
    }

    /// The failure that stopped decoding, if any.
    pub fn error(&self) -> Option<DecodeError> {
        self.failed
    }

    /// Decodes one chunk of the encoded body and hands the decoded bytes to `sink`. After the
    /// first error every call does nothing and returns that error.
    pub fn feed(&mut self, input: &[u8], sink: impl FnMut(&[u8])) -> Result<(), DecodeError> {
        self.run(input, false, sink)
    }

    /// The end of the body: flushes what the decoder still holds. A body that stopped in the
    /// middle of its coding's frame is not an error here (the cut is reported by the caller).
    pub fn finish(&mut self, sink: impl FnMut(&[u8])) -> Result<(), DecodeError> {
        self.run(&[], true, sink)
    }

    fn run(
        &mut self,
        input: &[u8],
        end: bool,
        mut sink: impl FnMut(&[u8]),
    ) -> Result<(), DecodeError> {
        if let Some(err) = self.failed {
            return Err(err);
        }
        let Some(inner) = self.inner.as_mut() else {
            return Err(DecodeError::Corrupt);
        };
        if let Inner::DeflateUnknown(out) = inner {
            let Some(&first) = input.first() else {
                return Ok(());
            };
            let out = std::mem::replace(
                out,
                Output {
                    bytes: Vec::new(),
                    cap: 0,
                    over: false,
                },
            );
            // RFC 1950: CM = 8 in the low nibble; the check bits need the second byte, but CM
            // alone tells zlib from a raw stream in practice (raw deflate's first byte has
            // BTYPE in bits 1-2, which is never 0b11, and low nibble 8 is rare).
            *inner = if first & 0x0f == 8 {
                Inner::Zlib(flate2::write::ZlibDecoder::new(out))
            } else {
                Inner::RawDeflate(flate2::write::DeflateDecoder::new(out))
            };
        }
        let result = match inner {
            Inner::Gzip(d) => drive(d, input, end),
            Inner::Zlib(d) => drive(d, input, end),
            Inner::RawDeflate(d) => drive(d, input, end),
            Inner::Brotli(d) => drive(d.as_mut(), input, end),
            Inner::Zstd(d) => drive(d, input, end),
            Inner::DeflateUnknown(_) => Ok(()),
        };
        let out = match inner {
            Inner::Gzip(d) => d.get_mut(),
            Inner::Zlib(d) => d.get_mut(),
            Inner::RawDeflate(d) => d.get_mut(),
            Inner::Brotli(d) => d.get_mut(),
            Inner::Zstd(d) => d.get_mut(),
            Inner::DeflateUnknown(out) => out,
        };
        let over = out.over;
        if !out.bytes.is_empty() {
            self.decoded_total = self.decoded_total.saturating_add(out.bytes.len());
            sink(&out.bytes);
            out.bytes.clear();
        }
        match self.budget {
            // The whole body counts: what is left of the budget is what the next chunk may add.
            Budget::Total(n) => out.cap = n.saturating_sub(self.decoded_total),
            Budget::PerChunk(_) => {}
        }
        let failure = if over {
            Some(DecodeError::OverBudget)
        } else {
            result.err()
        };
        if let Some(err) = failure {
            self.failed = Some(err);
            // Free the decoder's window now: nothing more will be decoded.
            self.inner = None;
            return Err(err);
        }
        Ok(())
    }
}

/// Decodes a whole buffered body (a request copy) of `coding` into at most `limit` bytes.
/// `Ok(None)`: identity, use the bytes as they are.
pub fn decode_whole(
    coding: ContentCoding,
    body: &[u8],
    limit: usize,
) -> Result<Option<Vec<u8>>, DecodeError> {
    let Some(mut decoder) = Decoder::new(coding, Budget::Total(limit)) else {
        return Ok(None);
    };
    let mut out = Vec::new();
    decoder.feed(body, |b| out.extend_from_slice(b))?;
    decoder.finish(|b| out.extend_from_slice(b))?;
    Ok(Some(out))
}

/// Pushes `input` through a write-side decoder (and flushes at the end of the body).
fn drive<W: Write + ?Sized>(decoder: &mut W, input: &[u8], end: bool) -> Result<(), DecodeError> {
    if !input.is_empty() {
        decoder.write_all(input).map_err(|_| DecodeError::Corrupt)?;
    }
    if end {
        decoder.flush().map_err(|_| DecodeError::Corrupt)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    fn decode_all(coding: ContentCoding, budget: Budget, body: &[u8], split: usize) -> Vec<u8> {
        let mut dec = Decoder::new(coding, budget).unwrap();
        let mut out = Vec::new();
        for chunk in body.chunks(split.max(1)) {
            dec.feed(chunk, |b| out.extend_from_slice(b)).unwrap();
        }
        dec.finish(|b| out.extend_from_slice(b)).unwrap();
        out
    }

    #[test]
    fn whole_bodies_decode_within_their_limit() {
        let body = gzip(b"{\"model\":\"gpt-4o\"}");
        assert_eq!(
            decode_whole(ContentCoding::Gzip, &body, 1024),
            Ok(Some(b"{\"model\":\"gpt-4o\"}".to_vec()))
        );
        assert_eq!(decode_whole(ContentCoding::Identity, b"x", 1), Ok(None));
        assert_eq!(
            decode_whole(ContentCoding::Gzip, &gzip(&[b'a'; 4096]), 1024),
            Err(DecodeError::OverBudget)
        );
    }

    #[test]
    fn header_values() {
        assert_eq!(
            ContentCoding::from_header(None),
            Ok(ContentCoding::Identity)
        );
        assert_eq!(
            ContentCoding::from_header(Some(" GZIP ")),
            Ok(ContentCoding::Gzip)
        );
        assert_eq!(
            ContentCoding::from_header(Some("identity, br")),
            Ok(ContentCoding::Brotli)
        );
        assert!(ContentCoding::from_header(Some("gzip, br")).is_err());
        assert_eq!(
            ContentCoding::from_header(Some("compress")),
            Err(UnsupportedCoding("compress".into()))
        );
    }

    #[test]
    fn every_coding_round_trips_at_any_split() {
        let text =
            br#"{"id":"chatcmpl-1","choices":[{"message":{"content":"hello hello hello"}}]}"#
                .repeat(50);
        let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        zlib.write_all(&text).unwrap();
        let mut raw = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        raw.write_all(&text).unwrap();
        let mut br = Vec::new();
        {
            let mut w = brotli_decompressor_test_encoder(&mut br);
            w.write_all(&text).unwrap();
        }
        let zst = zstd::stream::encode_all(&text[..], 1).unwrap();
        let cases = [
            (ContentCoding::Gzip, gzip(&text)),
            (ContentCoding::Deflate, zlib.finish().unwrap()),
            (ContentCoding::Deflate, raw.finish().unwrap()),
            (ContentCoding::Zstd, zst),
        ];
        for (coding, body) in cases
            .iter()
            .chain(std::iter::once(&(ContentCoding::Brotli, br)))
        {
            for split in [1, 7, 4096] {
                let out = decode_all(*coding, Budget::Total(1 << 20), body, split);
                assert_eq!(out, text, "{coding:?} split {split}");
            }
        }
    }

    /// A brotli stream with no compression (metablocks of stored bytes), written by hand per
    /// RFC 7932 so the test needs no encoder crate: WBITS=16, then uncompressed metablocks.
    fn brotli_decompressor_test_encoder(out: &mut Vec<u8>) -> StoredBrotli<'_> {
        StoredBrotli {
            out,
            data: Vec::new(),
        }
    }

    struct StoredBrotli<'a> {
        out: &'a mut Vec<u8>,
        data: Vec<u8>,
    }

    impl Write for StoredBrotli<'_> {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.data.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Drop for StoredBrotli<'_> {
        fn drop(&mut self) {
            let mut bits = BitWriter::default();
            bits.put(0, 1); // WBITS = 16
            for block in self.data.chunks(1 << 16) {
                bits.put(0, 1); // ISLAST = 0
                bits.put(0, 2); // MNIBBLES = 4
                bits.put((block.len() - 1) as u64, 16); // MLEN - 1
                bits.put(1, 1); // ISUNCOMPRESSED
                bits.align();
                bits.bytes.extend_from_slice(block);
            }
            bits.put(1, 1); // ISLAST
            bits.put(1, 1); // ISLASTEMPTY
            bits.align();
            self.out.extend_from_slice(&bits.bytes);
        }
    }

    #[derive(Default)]
    struct BitWriter {
        bytes: Vec<u8>,
        acc: u64,
        n: u32,
    }

    impl BitWriter {
        fn put(&mut self, value: u64, bits: u32) {
            self.acc |= value << self.n;
            self.n += bits;
            while self.n >= 8 {
                self.bytes.push(self.acc as u8);
                self.acc >>= 8;
                self.n -= 8;
            }
        }
        fn align(&mut self) {
            if self.n > 0 {
                self.bytes.push(self.acc as u8);
                self.acc = 0;
                self.n = 0;
            }
        }
    }

    #[test]
    fn a_bomb_stops_at_the_budget() {
        let zeros = vec![0u8; 64 << 20];
        let body = gzip(&zeros);
        assert!(body.len() < 1 << 20, "{}", body.len());
        let mut dec = Decoder::new(ContentCoding::Gzip, Budget::Total(1 << 20)).unwrap();
        let mut seen = 0usize;
        let mut result = Ok(());
        for chunk in body.chunks(16 << 10) {
            result = dec.feed(chunk, |b| seen += b.len());
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(DecodeError::OverBudget));
        assert!(seen <= 1 << 20, "{seen}");
        assert_eq!(dec.feed(b"more", |_| ()), Err(DecodeError::OverBudget));
    }

    #[test]
    fn per_chunk_budget_lets_a_long_stream_through() {
        let text = b"data: {\"choices\":[]}\n\n".repeat(20_000);
        let body = gzip(&text);
        let out = decode_all(ContentCoding::Gzip, Budget::PerChunk(1 << 20), &body, 256);
        assert_eq!(out, text);
    }

    #[test]
    fn garbage_is_corrupt_not_a_panic() {
        let garbage = b"\xff\xfe this is not compressed at all \x00\x01".repeat(40);
        for coding in [
            ContentCoding::Gzip,
            ContentCoding::Deflate,
            ContentCoding::Zstd,
        ] {
            let mut dec = Decoder::new(coding, Budget::Total(1 << 20)).unwrap();
            let fed = dec.feed(&garbage, |_| ());
            let err = fed.and_then(|()| dec.finish(|_| ()));
            assert_eq!(err, Err(DecodeError::Corrupt), "{coding:?}");
        }
        // Brotli accepts some garbage prefixes as a window size; it must only never panic.
        let mut dec = Decoder::new(ContentCoding::Brotli, Budget::Total(1 << 20)).unwrap();
        let mut out = Vec::new();
        let _ = dec.feed(&garbage, |b| out.extend_from_slice(b));
        let _ = dec.finish(|b| out.extend_from_slice(b));
        assert_ne!(out, garbage);
    }
}
