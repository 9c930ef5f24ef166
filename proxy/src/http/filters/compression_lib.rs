//! Streaming compressors and decompressors for the compressor and decompressor
//! filters (Envoy's `Compression::Compressor` / `Decompressor`): gzip (zlib-rs: its own
//! `Deflate` for compression, which takes Envoy's memory level and strategy; flate2 for
//! decompression), brotli and zstd.
//!
//! A compressor takes body chunks as they come and returns what can be sent now: each
//! call flushes (Envoy's `State::Flush`) so the peer can decode every byte received
//! so far, and the last one finishes the stream (`State::Finish`). A decompressor
//! returns the bytes decoded so far; corrupt input or an output past the inflate ratio
//! is an error, after which it yields nothing more. Output grows in `chunk_size` steps.
//! Nothing here panics on input.

use std::io::Write;

use flate2::{Decompress, FlushDecompress, Status};
use sluice_config::filters::compression::{BrotliMode, CompressorKind, DecompressorKind, GzipStrategy, ZstdStrategy};

/// One stream's compressor.
pub enum Encoder {
    Gzip {
        z: Box<zlib_rs::Deflate>,
        chunk: usize,
    },
    Brotli(Option<Box<brotli::CompressorWriter<Vec<u8>>>>),
    /// Boxed, as the other libraries' state: a stream's filters stay small when they
    /// do not compress.
    Zstd(Option<Box<zstd::stream::write::Encoder<'static, Vec<u8>>>>),
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Encoder::Gzip { .. } => "Encoder::Gzip",
            Encoder::Brotli(_) => "Encoder::Brotli",
            Encoder::Zstd(_) => "Encoder::Zstd",
        })
    }
}

fn zstd_strategy(s: ZstdStrategy) -> Option<zstd::zstd_safe::Strategy> {
    use zstd::zstd_safe::Strategy as S;
    Some(match s {
        ZstdStrategy::Default => return None,
        ZstdStrategy::Fast => S::ZSTD_fast,
        ZstdStrategy::Dfast => S::ZSTD_dfast,
        ZstdStrategy::Greedy => S::ZSTD_greedy,
        ZstdStrategy::Lazy => S::ZSTD_lazy,
        ZstdStrategy::Lazy2 => S::ZSTD_lazy2,
        ZstdStrategy::Btlazy2 => S::ZSTD_btlazy2,
        ZstdStrategy::Btopt => S::ZSTD_btopt,
        ZstdStrategy::Btultra => S::ZSTD_btultra,
        ZstdStrategy::Btultra2 => S::ZSTD_btultra2,
    })
}

/// zlib's `deflateInit2` for Envoy's gzip settings (`ZlibCompressorImpl::init`): the
/// window bits plus 16 for a gzip header and trailer. `None` outside zlib's ranges (the
/// config refuses those, so this only guards `Deflate`'s assertion).
fn gzip_deflate(level: u32, strategy: GzipStrategy, window_bits: u32, memory_level: u32) -> Option<zlib_rs::Deflate> {
    if level > 9 || !(9..=15).contains(&window_bits) || !(1..=9).contains(&memory_level) {
        return None;
    }
    let strategy = match strategy {
        GzipStrategy::Default => zlib_rs::Strategy::Default,
        GzipStrategy::Filtered => zlib_rs::Strategy::Filtered,
        GzipStrategy::HuffmanOnly => zlib_rs::Strategy::HuffmanOnly,
        GzipStrategy::Rle => zlib_rs::Strategy::Rle,
        GzipStrategy::Fixed => zlib_rs::Strategy::Fixed,
    };
    Some(zlib_rs::Deflate::new_with_config(zlib_rs::DeflateConfig {
        level: level as i32,
        method: zlib_rs::Method::Deflated,
        window_bits: window_bits as i32 + 16,
        mem_level: memory_level as i32,
        strategy,
    }))
}

impl Encoder {
    /// A compressor with the library's settings (`None`: the library failed to start).
    pub fn new(kind: &CompressorKind) -> Option<Encoder> {
        Some(match *kind {
            CompressorKind::Gzip { level, strategy, window_bits, memory_level, chunk_size } => Encoder::Gzip {
                z: Box::new(gzip_deflate(level, strategy, window_bits, memory_level)?),
                chunk: chunk_size as usize,
            },
            CompressorKind::Brotli {
                quality,
                mode,
                window_bits,
                input_block_bits,
                disable_literal_context_modeling,
                chunk_size,
            } => {
                use brotli::enc::backward_references::BrotliEncoderMode as M;
                let p = brotli::enc::BrotliEncoderParams {
                    quality: quality as i32,
                    lgwin: window_bits as i32,
                    lgblock: input_block_bits as i32,
                    mode: match mode {
                        BrotliMode::Default | BrotliMode::Generic => M::BROTLI_MODE_GENERIC,
                        BrotliMode::Text => M::BROTLI_MODE_TEXT,
                        BrotliMode::Font => M::BROTLI_MODE_FONT,
                    },
                    disable_literal_context_modeling: i32::from(disable_literal_context_modeling),
                    ..Default::default()
                };
                let w = brotli::CompressorWriter::with_params(Vec::new(), chunk_size as usize, &p);
                Encoder::Brotli(Some(Box::new(w)))
            }
            CompressorKind::Zstd { level, checksum, strategy, .. } => {
                let mut raw = zstd::stream::raw::Encoder::new(level as i32).ok()?;
                use zstd::stream::raw::CParameter;
                raw.set_parameter(CParameter::ChecksumFlag(checksum)).ok()?;
                if let Some(s) = zstd_strategy(strategy) {
                    raw.set_parameter(CParameter::Strategy(s)).ok()?;
                }
                Encoder::Zstd(Some(Box::new(zstd::stream::write::Encoder::with_encoder(Vec::new(), raw))))
            }
        })
    }

    /// Compress `input` and append what can be sent to `out`; `finish` ends the
    /// stream. `false`: the library failed (the output so far is all there is).
    pub fn compress(&mut self, input: &[u8], finish: bool, out: &mut Vec<u8>) -> bool {
        match self {
            Encoder::Gzip { z, chunk } => {
                use zlib_rs::{DeflateFlush, Status as Z};
                let flush = if finish { DeflateFlush::Finish } else { DeflateFlush::SyncFlush };
                let mut at = 0usize;
                loop {
                    // Room for one chunk; what deflate did not fill is cut off again.
                    let start = out.len();
                    out.resize(start + *chunk, 0);
                    let (in_before, out_before) = (z.total_in(), z.total_out());
                    let status = z.compress(&input[at..], &mut out[start..], flush);
                    let consumed = (z.total_in() - in_before) as usize;
                    let produced = (z.total_out() - out_before) as usize;
                    out.truncate(start + produced.min(*chunk));
                    at += consumed;
                    match status {
                        Err(_) => return false,
                        Ok(Z::StreamEnd) => return true,
                        // Flushed: all input taken and the output not full.
                        Ok(_) if at >= input.len() && produced < *chunk && !finish => return true,
                        // No progress possible (a finished stream, or no room).
                        Ok(Z::BufError) if consumed == 0 && produced == 0 => return !finish,
                        Ok(_) => {}
                    }
                }
            }
            Encoder::Brotli(w) => {
                let Some(writer) = w.as_mut() else { return false };
                if writer.write_all(input).is_err() {
                    return false;
                }
                if finish {
                    let Some(writer) = w.take() else { return false };
                    out.extend_from_slice(&writer.into_inner());
                    return true;
                }
                if writer.flush().is_err() {
                    return false;
                }
                out.append(writer.get_mut());
                true
            }
            Encoder::Zstd(e) => {
                let Some(enc) = e.as_mut() else { return false };
                if enc.write_all(input).is_err() {
                    return false;
                }
                if finish {
                    let Some(enc) = e.take() else { return false };
                    match enc.finish() {
                        Ok(v) => out.extend_from_slice(&v),
                        Err(_) => return false,
                    }
                    return true;
                }
                if enc.flush().is_err() {
                    return false;
                }
                out.append(enc.get_mut());
                true
            }
        }
    }
}

/// The input is not a valid stream of the decoder's encoding, or inflates past its
/// ratio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeError;

/// One stream's decompressor.
pub enum Decoder {
    Gzip {
        z: Box<Decompress>,
        chunk: usize,
        max_ratio: u64,
        done: bool,
    },
    Brotli(Box<brotli::DecompressorWriter<Vec<u8>>>),
    /// Boxed, as the other libraries' state.
    Zstd(Box<zstd::stream::write::Decoder<'static, Vec<u8>>>),
    /// Failed: nothing more comes out.
    Failed,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Decoder")
    }
}

impl Decoder {
    pub fn new(kind: &DecompressorKind) -> Option<Decoder> {
        Some(match *kind {
            DecompressorKind::Gzip { window_bits, chunk_size, max_inflate_ratio } => Decoder::Gzip {
                z: Box::new(Decompress::new_gzip(window_bits as u8)),
                chunk: chunk_size as usize,
                max_ratio: u64::from(max_inflate_ratio),
                done: false,
            },
            DecompressorKind::Brotli { chunk_size } => {
                Decoder::Brotli(Box::new(brotli::DecompressorWriter::new(Vec::new(), chunk_size as usize)))
            }
            DecompressorKind::Zstd { .. } => {
                Decoder::Zstd(Box::new(zstd::stream::write::Decoder::new(Vec::new()).ok()?))
            }
        })
    }

    /// Decode `input`, appending to `out`. `Err`: the input is not a valid stream of
    /// this encoding (or inflates past `max_inflate_ratio`); the decoder is spent.
    pub fn decompress(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), DecodeError> {
        let r = match self {
            Decoder::Failed => return Err(DecodeError),
            Decoder::Gzip { z, chunk, max_ratio, done } => {
                let mut at = 0usize;
                let mut r = Ok(());
                while at < input.len() && !*done {
                    if out.capacity() - out.len() < 64 {
                        out.reserve(*chunk);
                    }
                    let (bi, bo) = (z.total_in(), z.total_out());
                    match z.decompress_vec(&input[at..], out, FlushDecompress::None) {
                        Ok(Status::StreamEnd) => *done = true,
                        Ok(_) => {}
                        Err(_) => {
                            r = Err(DecodeError);
                            break;
                        }
                    }
                    at += (z.total_in() - bi) as usize;
                    if z.total_out() > z.total_in().max(1).saturating_mul(*max_ratio) {
                        r = Err(DecodeError);
                        break;
                    }
                    if z.total_in() == bi && z.total_out() == bo && out.capacity() > out.len() {
                        break;
                    }
                }
                r
            }
            Decoder::Brotli(w) => {
                if w.write_all(input).and_then(|_| w.flush()).is_err() {
                    Err(DecodeError)
                } else {
                    out.append(w.get_mut());
                    Ok(())
                }
            }
            Decoder::Zstd(w) => {
                if w.write_all(input).and_then(|_| w.flush()).is_err() {
                    Err(DecodeError)
                } else {
                    out.append(w.get_mut());
                    Ok(())
                }
            }
        };
        if r.is_err() {
            *self = Decoder::Failed;
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn text() -> Vec<u8> {
        (0..4000).flat_map(|i| format!("line {i} of some compressible text\n").into_bytes()).collect()
    }

    fn roundtrip(kind: CompressorKind) -> Vec<u8> {
        let body = text();
        let mut e = Encoder::new(&kind).unwrap();
        let mut out = Vec::new();
        for c in body.chunks(7000) {
            assert!(e.compress(c, false, &mut out));
        }
        assert!(e.compress(b"", true, &mut out));
        assert!(out.len() < body.len() / 4, "{} of {}", out.len(), body.len());
        out
    }

    #[test]
    fn gzip_streams_and_decodes() {
        let z = roundtrip(CompressorKind::Gzip {
            level: 6,
            strategy: GzipStrategy::Default,
            window_bits: 12,
            memory_level: 5,
            chunk_size: 4096,
        });
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&z[..]).read_to_end(&mut back).unwrap();
        assert_eq!(back, text());
        let mut d =
            Decoder::new(&DecompressorKind::Gzip { window_bits: 15, chunk_size: 4096, max_inflate_ratio: 1032 })
                .unwrap();
        let mut out = Vec::new();
        for c in z.chunks(100) {
            d.decompress(c, &mut out).unwrap();
        }
        assert_eq!(out, text());
    }

    /// Envoy's `memory_level` and `compression_strategy` reach zlib: each setting yields
    /// a valid gzip stream, and the streams differ where zlib's output does.
    #[test]
    fn gzip_memory_level_and_strategy_shape_the_stream() {
        let gz = |memory_level, strategy| {
            let z = roundtrip_loose(CompressorKind::Gzip {
                level: 6,
                strategy,
                window_bits: 10,
                memory_level,
                chunk_size: 4096,
            });
            let mut back = Vec::new();
            flate2::read::GzDecoder::new(&z[..]).read_to_end(&mut back).unwrap();
            assert_eq!(back, text(), "memLevel {memory_level} {strategy:?}");
            z
        };
        let default = gz(5, GzipStrategy::Default);
        // memLevel sizes zlib's symbol buffer (1 << (memLevel + 6)), so blocks end sooner.
        assert_ne!(gz(1, GzipStrategy::Default), default, "memLevel 1: shorter deflate blocks");
        gz(9, GzipStrategy::Default);
        assert!(gz(3, GzipStrategy::HuffmanOnly).len() > default.len() * 2, "Huffman only: no string matching");
        for s in [GzipStrategy::Filtered, GzipStrategy::Rle, GzipStrategy::Fixed] {
            gz(3, s);
        }
    }

    /// Compress `text()` in chunks, without a ratio expectation.
    fn roundtrip_loose(kind: CompressorKind) -> Vec<u8> {
        let mut e = Encoder::new(&kind).unwrap();
        let mut out = Vec::new();
        for c in text().chunks(7000) {
            assert!(e.compress(c, false, &mut out));
        }
        assert!(e.compress(b"", true, &mut out));
        out
    }

    #[test]
    fn brotli_and_zstd_roundtrip() {
        let b = roundtrip(CompressorKind::Brotli {
            quality: 3,
            mode: BrotliMode::Default,
            window_bits: 18,
            input_block_bits: 24,
            disable_literal_context_modeling: false,
            chunk_size: 4096,
        });
        let mut d = Decoder::new(&DecompressorKind::Brotli { chunk_size: 4096 }).unwrap();
        let mut out = Vec::new();
        d.decompress(&b, &mut out).unwrap();
        assert_eq!(out, text());
        let z = roundtrip(CompressorKind::Zstd {
            level: 3,
            checksum: true,
            strategy: ZstdStrategy::Default,
            chunk_size: 4096,
        });
        let mut d = Decoder::new(&DecompressorKind::Zstd { chunk_size: 4096 }).unwrap();
        let mut out = Vec::new();
        d.decompress(&z, &mut out).unwrap();
        assert_eq!(out, text());
    }

    #[test]
    fn corrupt_input_is_an_error_not_a_panic() {
        let mut d =
            Decoder::new(&DecompressorKind::Gzip { window_bits: 15, chunk_size: 4096, max_inflate_ratio: 1032 })
                .unwrap();
        let mut out = Vec::new();
        assert!(d.decompress(b"\x1f\x8b\x08\x00garbage garbage garbage", &mut out).is_err());
        assert!(d.decompress(b"more", &mut out).is_err());
    }

    #[test]
    fn inflate_ratio_is_bounded() {
        let zeros = vec![0u8; 1 << 20];
        let mut e = Encoder::new(&CompressorKind::Gzip {
            level: 9,
            strategy: GzipStrategy::Default,
            window_bits: 15,
            memory_level: 5,
            chunk_size: 4096,
        })
        .unwrap();
        let mut z = Vec::new();
        e.compress(&zeros, true, &mut z);
        let mut d =
            Decoder::new(&DecompressorKind::Gzip { window_bits: 15, chunk_size: 4096, max_inflate_ratio: 10 }).unwrap();
        assert!(d.decompress(&z, &mut Vec::new()).is_err());
    }
}
