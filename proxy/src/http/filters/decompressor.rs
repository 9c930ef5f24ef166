//! The decompressor filter (`envoy.extensions.filters.http.decompressor.v3.Decompressor`),
//! as Envoy's `decompressor_filter.cc`.
//!
//! In each enabled direction, a message whose first `Content-Encoding` is the
//! library's encoding is decoded as it streams: that encoding leaves
//! `Content-Encoding` (the header goes when none is left) and `Content-Length` goes.
//! `Cache-Control: no-transform` keeps a message as it is unless
//! `ignore_no_transform_header`. With response decompression enabled and
//! `advertise_accept_encoding` (default), the library's encoding is appended to the
//! request's `Accept-Encoding`. A body that does not decode stops there (what decoded
//! so far goes on) and counts the library's error stat.
//!
//! Stats: `http.<stat_prefix>.decompressor.<library name>.<library>.{request,response}.
//! {decompressed,not_decompressed,total_uncompressed_bytes,total_compressed_bytes}` and
//! `...<library>.decompressor_library.<error>`.

use std::sync::Arc;

use sluice_config::filters::compression::{DecompressorKind, RuntimeFeatureFlag};
use sluice_config::filters::decompressor::{DecompressDirection, Decompressor};

use crate::http::filter::{DataStatus, FilterCallbacks, HeadersStatus, StreamContext, StreamFilter};
use crate::http::filters::compression_lib::Decoder;
use crate::http::filters::CounterSet;
use crate::http::{HeaderMap, RequestHead, ResponseHead};
use crate::stats::SharedCounter;

#[derive(Debug)]
struct DirectionStats {
    decompressed: Arc<SharedCounter>,
    not_decompressed: Arc<SharedCounter>,
    total_uncompressed_bytes: Arc<SharedCounter>,
    total_compressed_bytes: Arc<SharedCounter>,
}

impl DirectionStats {
    fn new(p: &str, counters: &mut CounterSet) -> DirectionStats {
        let mut c = |n: &str| counters.counter(format!("{p}{n}"));
        DirectionStats {
            decompressed: c("decompressed"),
            not_decompressed: c("not_decompressed"),
            total_uncompressed_bytes: c("total_uncompressed_bytes"),
            total_compressed_bytes: c("total_compressed_bytes"),
        }
    }
}

/// The filter's compiled config.
#[derive(Debug)]
pub struct DecompressorConfig {
    config: Decompressor,
    encoding: &'static str,
    request: DirectionStats,
    response: DirectionStats,
    /// The library's error stat (`zlib_data_error`, `brotli_error`, `zstd_generic_error`).
    library_error: Arc<SharedCounter>,
}

impl DecompressorConfig {
    pub fn new(c: &Decompressor, prefix: &str, counters: &mut CounterSet) -> DecompressorConfig {
        let base = format!("{prefix}decompressor.{}.{}", c.library.name, c.library.stats_prefix());
        let error = match c.library.kind {
            DecompressorKind::Gzip { .. } => "zlib_data_error",
            DecompressorKind::Brotli { .. } => "brotli_error",
            DecompressorKind::Zstd { .. } => "zstd_generic_error",
        };
        DecompressorConfig {
            encoding: c.library.content_encoding(),
            request: DirectionStats::new(&format!("{base}request."), counters),
            response: DirectionStats::new(&format!("{base}response."), counters),
            library_error: counters.counter(format!("{base}decompressor_library.{error}")),
            config: c.clone(),
        }
    }
}

/// The decompressor filter on one stream.
#[derive(Debug)]
pub struct DecompressorFilter {
    config: Arc<DecompressorConfig>,
    response_enabled: bool,
    request: Option<Decoder>,
    response: Option<Decoder>,
}

fn flag(cx: &StreamContext<'_>, f: &RuntimeFeatureFlag) -> bool {
    if f.runtime_key.is_empty() {
        f.default_value
    } else {
        cx.runtime.get_boolean(&f.runtime_key, f.default_value)
    }
}

impl DecompressorFilter {
    pub fn new(config: Arc<DecompressorConfig>) -> DecompressorFilter {
        DecompressorFilter { config, response_enabled: false, request: None, response: None }
    }

    /// Envoy's `maybeInitDecompress`.
    fn start(
        &self,
        enabled: bool,
        d: &DecompressDirection,
        headers: &mut HeaderMap,
        stats: &DirectionStats,
    ) -> Option<Decoder> {
        let no_transform = !d.ignore_no_transform_header
            && headers
                .get_str(b"cache-control")
                .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("no-transform")));
        let value = headers.get_str(b"content-encoding").unwrap_or("");
        let (first, rest) = match value.split_once(',') {
            Some((a, b)) => (a.trim(), b.trim().to_string()),
            None => (value.trim(), String::new()),
        };
        if enabled && !no_transform && first.eq_ignore_ascii_case(self.config.encoding) {
            if let Some(dec) = Decoder::new(&self.config.config.library.kind) {
                stats.decompressed.inc();
                if rest.is_empty() {
                    headers.remove(b"content-encoding");
                } else {
                    headers.set(b"content-encoding", rest.as_bytes());
                }
                headers.remove(b"content-length");
                return Some(dec);
            }
        }
        stats.not_decompressed.inc();
        None
    }

    fn decompress(&self, decoder: &mut Option<Decoder>, data: &mut Vec<u8>, stats: &DirectionStats) {
        let Some(d) = decoder.as_mut() else { return };
        stats.total_compressed_bytes.add(data.len() as u64);
        let mut out = Vec::with_capacity(data.len() * 2 + 64);
        if d.decompress(data, &mut out).is_err() {
            self.config.library_error.inc();
        }
        stats.total_uncompressed_bytes.add(out.len() as u64);
        *data = out;
    }
}

impl StreamFilter for DecompressorFilter {
    fn decode_headers(
        &mut self,
        head: &mut RequestHead,
        _end_stream: bool,
        cx: &StreamContext<'_>,
        _cb: &mut FilterCallbacks,
    ) -> HeadersStatus {
        let c = &self.config.config;
        self.response_enabled = flag(cx, &c.response.enabled);
        if self.response_enabled && c.advertise_accept_encoding {
            let v = match head.headers.get_str(b"accept-encoding") {
                Some(v) if !v.is_empty() => format!("{v},{}", self.config.encoding),
                _ => self.config.encoding.to_string(),
            };
            head.headers.set(b"accept-encoding", v.as_bytes());
        }
        let enabled = flag(cx, &c.request.enabled);
        self.request = self.start(enabled, &c.request, &mut head.headers, &self.config.request);
        HeadersStatus::Continue
    }

    fn decode_data(&mut self, data: &mut Vec<u8>, _end_stream: bool, _cb: &mut FilterCallbacks) -> DataStatus {
        let mut d = self.request.take();
        self.decompress(&mut d, data, &self.config.request);
        self.request = d;
        DataStatus::Continue
    }

    fn encode_headers(
        &mut self,
        head: &mut ResponseHead,
        _end_stream: bool,
        _cb: &mut FilterCallbacks,
    ) -> HeadersStatus {
        let c = &self.config.config;
        self.response = self.start(self.response_enabled, &c.response, &mut head.headers, &self.config.response);
        HeadersStatus::Continue
    }

    fn encode_data(&mut self, data: &mut Vec<u8>, _end_stream: bool, _cb: &mut FilterCallbacks) -> DataStatus {
        let mut d = self.response.take();
        self.decompress(&mut d, data, &self.config.response);
        self.response = d;
        DataStatus::Continue
    }
}
