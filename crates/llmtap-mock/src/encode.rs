//! Compressed answers, as real APIs send them to clients that ask: the whole document in one
//! coded body, or a stream flushed event by event so each event reaches the client at once.

use std::io::Write;

use bytes::Bytes;

use crate::body::MockBody;
use crate::scenario::Coding;

/// A streaming compressor writing into a `Vec` that is drained after every piece.
enum Compressor {
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Deflate(flate2::write::ZlibEncoder<Vec<u8>>),
    Brotli(Box<brotli::CompressorWriter<Vec<u8>>>),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
}

impl Compressor {
    fn new(coding: Coding) -> std::io::Result<Self> {
        let level = flate2::Compression::fast();
        Ok(match coding {
            Coding::Gzip => Self::Gzip(flate2::write::GzEncoder::new(Vec::new(), level)),
            Coding::Deflate => Self::Deflate(flate2::write::ZlibEncoder::new(Vec::new(), level)),
            Coding::Brotli => Self::Brotli(Box::new(brotli::CompressorWriter::new(
                Vec::new(),
                4096,
                5,
                22,
            ))),
            Coding::Zstd => Self::Zstd(zstd::stream::write::Encoder::new(Vec::new(), 3)?),
        })
    }

    /// Compresses `piece` and flushes, returning the bytes that make it decodable on its own.
    fn piece(&mut self, piece: &[u8]) -> std::io::Result<Bytes> {
        let out = match self {
            Self::Gzip(w) => {
                w.write_all(piece)?;
                w.flush()?;
                w.get_mut()
            }
            Self::Deflate(w) => {
                w.write_all(piece)?;
                w.flush()?;
                w.get_mut()
            }
            Self::Brotli(w) => {
                w.write_all(piece)?;
                w.flush()?;
                w.get_mut()
            }
            Self::Zstd(w) => {
                w.write_all(piece)?;
                w.flush()?;
                w.get_mut()
            }
        };
        Ok(Bytes::from(std::mem::take(out)))
    }

    /// The coding's trailer (checksums, end-of-stream marks).
    fn finish(self) -> std::io::Result<Bytes> {
        Ok(Bytes::from(match self {
            Self::Gzip(w) => w.finish()?,
            Self::Deflate(w) => w.finish()?,
            Self::Brotli(w) => w.into_inner(),
            Self::Zstd(w) => w.finish()?,
        }))
    }
}

/// Compresses `body` with `coding`, piece by piece. On a compressor failure (which writing to
/// memory does not produce) the body is left as it was and `false` returned, so the caller does
/// not label an unencoded body as encoded.
pub(crate) fn encode_body(body: &mut MockBody, coding: Coding) -> bool {
    let Ok(mut compressor) = Compressor::new(coding) else {
        return false;
    };
    let mut failed = false;
    let mut probe = body.clone_pieces();
    let coded: Vec<Bytes> = probe
        .drain(..)
        .map(|piece| {
            compressor.piece(&piece).unwrap_or_else(|_| {
                failed = true;
                Bytes::new()
            })
        })
        .collect();
    let tail = compressor.finish().unwrap_or_else(|_| {
        failed = true;
        Bytes::new()
    });
    if failed {
        return false;
    }
    let mut coded = coded.into_iter();
    body.map_pieces(|_| coded.next().unwrap_or_default(), tail);
    true
}
