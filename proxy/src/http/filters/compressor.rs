//! The compressor filter (`envoy.extensions.filters.http.compressor.v3.Compressor`),
//! as Envoy's `common/compressor/compressor.cc`.
//!
//! Responses are compressed as they stream (each chunk flushed, the last one
//! finishing the stream) when the direction is enabled (runtime flag), the request's
//! `Accept-Encoding` picks this filter's encoding (q-values; `*` picks the chain's
//! first compressor; `identity` or `q=0` refuse), and the response allows it: not
//! the end of the stream, `Content-Length` absent or ≥ `min_content_length`, its
//! media type in `content_type` (Envoy's list by default), no `Cache-Control:
//! no-transform`, no `Content-Encoding`, no compression in `Transfer-Encoding`, no
//! `ETag` under `disable_on_etag_header`, a status not in
//! `uncompressible_response_codes`. A compressed response loses `Content-Length`,
//! gets `Content-Encoding`, and a strong `ETag` becomes weak. `Vary: Accept-Encoding`
//! is added to every response that could have been compressed. Requests are
//! compressed likewise when `request_direction_config` enables it.
//!
//! Stats: `http.<stat_prefix>.compressor.<library name>.<library>.[response.|request.]*`
//! with Envoy's names.

use std::sync::Arc;

use sluice_config::filters::compression::{CompressorKind, RuntimeFeatureFlag};
use sluice_config::filters::compressor::{Compressor, DirectionConfig};

use crate::http::filter::{DataStatus, FilterCallbacks, HeadersStatus, StreamContext, StreamFilter};
use crate::http::filters::compression_lib::Encoder;
use crate::http::filters::per_route::{PerRouteFilter, RouteView};
use crate::http::filters::CounterSet;
use crate::http::{HeaderMap, RequestHead, ResponseHead};
use crate::stats::SharedCounter;

/// Counters of one direction (Envoy's `CompressorStats`; the response-only ones unused
/// on requests).
#[derive(Debug)]
pub struct DirectionStats {
    compressed: Arc<SharedCounter>,
    not_compressed: Arc<SharedCounter>,
    total_uncompressed_bytes: Arc<SharedCounter>,
    total_compressed_bytes: Arc<SharedCounter>,
    content_length_too_small: Arc<SharedCounter>,
    no_accept_header: Arc<SharedCounter>,
    header_identity: Arc<SharedCounter>,
    header_gzip: Arc<SharedCounter>,
    header_compressor_used: Arc<SharedCounter>,
    header_compressor_overshadowed: Arc<SharedCounter>,
    header_wildcard: Arc<SharedCounter>,
    header_not_valid: Arc<SharedCounter>,
    not_compressed_etag: Arc<SharedCounter>,
}

impl DirectionStats {
    fn new(p: &str, counters: &mut CounterSet) -> DirectionStats {
        let mut c = |n: &str| counters.counter(format!("{p}{n}"));
        DirectionStats {
            compressed: c("compressed"),
            not_compressed: c("not_compressed"),
            total_uncompressed_bytes: c("total_uncompressed_bytes"),
            total_compressed_bytes: c("total_compressed_bytes"),
            content_length_too_small: c("content_length_too_small"),
            no_accept_header: c("no_accept_header"),
            header_identity: c("header_identity"),
            header_gzip: c("header_gzip"),
            header_compressor_used: c("header_compressor_used"),
            header_compressor_overshadowed: c("header_compressor_overshadowed"),
            header_wildcard: c("header_wildcard"),
            header_not_valid: c("header_not_valid"),
            not_compressed_etag: c("not_compressed_etag"),
        }
    }
}

/// One compressor of the chain as the encoding choice sees it.
#[derive(Debug, Clone)]
pub struct Registered {
    pub encoding: &'static str,
    pub content_types: Vec<String>,
}

/// The filter's compiled config.
#[derive(Debug)]
pub struct CompressorConfig {
    config: Compressor,
    encoding: &'static str,
    /// Every compressor filter of the chain, in order (Envoy's per-stream registry).
    pub(crate) chain: Vec<Registered>,
    response: DirectionStats,
    request: DirectionStats,
}

impl CompressorConfig {
    pub fn new(c: &Compressor, prefix: &str, counters: &mut CounterSet) -> CompressorConfig {
        let base = format!("{prefix}compressor.{}.{}", c.library.name, c.library.stats_prefix());
        let response_prefix = if c.response_stats_segment { format!("{base}response.") } else { base.clone() };
        CompressorConfig {
            encoding: c.library.content_encoding(),
            chain: Vec::new(),
            response: DirectionStats::new(&response_prefix, counters),
            request: DirectionStats::new(&format!("{base}request."), counters),
            config: c.clone(),
        }
    }

    pub fn registered(&self) -> Registered {
        Registered { encoding: self.encoding, content_types: self.config.response.common.content_type.clone() }
    }
}

/// A per-route `CompressorPerRoute.overrides`.
#[derive(Debug)]
pub struct CompressorOverrides {
    pub remove_accept_encoding_header: Option<bool>,
    pub library: Option<CompressorKind>,
}

/// The compressor filter on one stream.
#[derive(Debug)]
pub struct CompressorFilter {
    config: Arc<CompressorConfig>,
    library: CompressorKind,
    remove_accept_encoding: bool,
    accept_encoding: Option<String>,
    response_enabled: bool,
    request: Option<Encoder>,
    response: Option<Encoder>,
}

fn flag(cx: &StreamContext<'_>, f: &RuntimeFeatureFlag) -> bool {
    if f.runtime_key.is_empty() {
        f.default_value
    } else {
        cx.runtime.get_boolean(&f.runtime_key, f.default_value)
    }
}

/// The media type of `Content-Type` (before `;`, trimmed).
fn media_type(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get_str(b"content-type")?;
    Some(v.split(';').next().unwrap_or("").trim())
}

fn content_type_allowed(d: &DirectionConfig, headers: &HeaderMap) -> bool {
    match media_type(headers) {
        Some(t) if !d.content_type.is_empty() => d.content_type.iter().any(|c| c.eq_ignore_ascii_case(t)),
        _ => true,
    }
}

/// Envoy's `isMinimumContentLength`: a `Content-Length` at least the minimum; a body
/// of unknown length is long enough.
fn minimum_length(d: &DirectionConfig, headers: &HeaderMap, stats: &DirectionStats) -> bool {
    let Some(v) = headers.get(b"content-length") else {
        return true;
    };
    let ok = std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .is_some_and(|n| n >= u64::from(d.min_content_length));
    if !ok {
        stats.content_length_too_small.inc();
    }
    ok
}

/// Envoy's `caseFindToken(value, ",", token)`.
fn has_token(value: Option<&str>, token: &str) -> bool {
    value.is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

/// `Transfer-Encoding` names no compression.
fn transfer_encoding_allowed(headers: &HeaderMap, own: &str) -> bool {
    let Some(v) = headers.get_str(b"transfer-encoding") else {
        return true;
    };
    !v.split(',').map(str::trim).any(|t| {
        t.eq_ignore_ascii_case(own)
            || ["gzip", "deflate", "compress", "br", "zstd"].iter().any(|k| t.eq_ignore_ascii_case(k))
    })
}

/// How `Accept-Encoding` was read (Envoy's `EncodingDecision::HeaderStat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HeaderStat {
    NotValid,
    Identity,
    Wildcard,
    ValidCompressor,
}

/// Envoy's `chooseEncoding`: the encoding the client accepts with the highest q among
/// the chain's compressors allowed for this content type.
fn choose_encoding(accept: &str, chain: &[Registered], content_type: Option<&str>) -> (String, HeaderStat) {
    let mut allowed: Vec<&str> = Vec::new();
    for r in chain {
        if let Some(ct) = content_type.filter(|t| !t.is_empty()) {
            if !r.content_types.is_empty() && !r.content_types.iter().any(|c| c.eq_ignore_ascii_case(ct)) {
                continue;
            }
        }
        if !allowed.contains(&r.encoding) {
            allowed.push(r.encoding);
        }
    }
    let mut pairs: Vec<(&str, f32)> = Vec::new();
    for token in accept.split(',').filter(|t| !t.is_empty()) {
        let name = token.split(';').next().unwrap_or("").trim();
        let mut q = 1.0f32;
        if let Some((_, params)) = token.split_once(';') {
            if let Some((k, v)) = params.split_once('=') {
                if k.trim().eq_ignore_ascii_case("q") {
                    match v.trim().parse::<f32>() {
                        Ok(x) if x.is_finite() => q = x,
                        _ => continue,
                    }
                }
            }
        }
        pairs.push((name, q));
        if q == 0.0 {
            allowed.retain(|e| *e != name);
        }
    }
    if pairs.is_empty() || allowed.is_empty() {
        return ("identity".into(), HeaderStat::NotValid);
    }
    let mut choice = ("identity", 0.0f32);
    for (name, q) in pairs {
        if q > choice.1 && (allowed.contains(&name) || name == "identity" || name == "*") {
            choice = (name, q);
        }
    }
    if choice.1 == 0.0 {
        return ("identity".into(), HeaderStat::NotValid);
    }
    match choice.0 {
        "identity" => ("identity".into(), HeaderStat::Identity),
        "*" => (allowed[0].to_string(), HeaderStat::Wildcard),
        name => (name.to_string(), HeaderStat::ValidCompressor),
    }
}

impl CompressorFilter {
    pub fn new(config: Arc<CompressorConfig>, route: &RouteView<'_>, k: usize) -> CompressorFilter {
        let mut library = config.config.library.kind.clone();
        let mut remove_accept_encoding = config.config.response.remove_accept_encoding_header;
        if let Some(PerRouteFilter::Compressor(o)) = route.most_specific(k) {
            if let Some(r) = o.remove_accept_encoding_header {
                remove_accept_encoding = r;
            }
            if let Some(l) = &o.library {
                library = l.clone();
            }
        }
        CompressorFilter {
            config,
            library,
            remove_accept_encoding,
            accept_encoding: None,
            response_enabled: false,
            request: None,
            response: None,
        }
    }

    fn encoding(&self) -> &'static str {
        match self.library {
            CompressorKind::Gzip { .. } => "gzip",
            CompressorKind::Brotli { .. } => "br",
            CompressorKind::Zstd { .. } => "zstd",
        }
    }

    /// Envoy's `isAcceptEncodingAllowed` with `shouldCompress`'s stats.
    fn accept_encoding_allowed(&self, headers: &HeaderMap) -> bool {
        let stats = &self.config.response;
        let Some(accept) = self.accept_encoding.as_deref() else {
            stats.no_accept_header.inc();
            return false;
        };
        let (encoding, stat) = choose_encoding(accept, &self.config.chain, media_type(headers));
        let own = self.encoding();
        let should = own.eq_ignore_ascii_case(&encoding);
        match stat {
            HeaderStat::ValidCompressor if should => {
                stats.header_compressor_used.inc();
                if own == "gzip" {
                    stats.header_gzip.inc();
                }
            }
            HeaderStat::ValidCompressor => stats.header_compressor_overshadowed.inc(),
            HeaderStat::Identity => stats.header_identity.inc(),
            HeaderStat::Wildcard => stats.header_wildcard.inc(),
            HeaderStat::NotValid => stats.header_not_valid.inc(),
        }
        should
    }

    fn compress(encoder: &mut Option<Encoder>, data: &mut Vec<u8>, end: bool, stats: &DirectionStats) {
        let Some(e) = encoder.as_mut() else { return };
        stats.total_uncompressed_bytes.add(data.len() as u64);
        let mut out = Vec::with_capacity(data.len() / 2 + 64);
        if !e.compress(data, end, &mut out) {
            tracing::debug!("compressor failed; the rest of the body is dropped");
            *encoder = None;
        }
        stats.total_compressed_bytes.add(out.len() as u64);
        *data = out;
    }
}

/// Envoy's `insertVaryHeader`.
fn insert_vary(headers: &mut HeaderMap) {
    match headers.get_str(b"vary") {
        Some(v) if has_token(Some(v), "accept-encoding") => {}
        Some(v) => {
            let joined = format!("{v}, Accept-Encoding");
            headers.set(b"vary", joined.as_bytes());
        }
        None => headers.set(b"vary", b"Accept-Encoding"),
    }
}

impl StreamFilter for CompressorFilter {
    fn decode_headers(
        &mut self,
        head: &mut RequestHead,
        end_stream: bool,
        cx: &StreamContext<'_>,
        _cb: &mut FilterCallbacks,
    ) -> HeadersStatus {
        self.accept_encoding = head.headers.get_str(b"accept-encoding").map(str::to_string);
        self.response_enabled = flag(cx, &self.config.config.response.common.enabled);
        if self.response_enabled && self.remove_accept_encoding {
            head.headers.remove(b"accept-encoding");
        }
        let Some(rq) = &self.config.config.request else {
            return HeadersStatus::Continue;
        };
        let stats = &self.config.request;
        let h = &head.headers;
        if !end_stream
            && flag(cx, &rq.enabled)
            && minimum_length(rq, h, stats)
            && content_type_allowed(rq, h)
            && h.get(b"content-encoding").is_none()
            && transfer_encoding_allowed(h, self.encoding())
        {
            if let Some(e) = Encoder::new(&self.library) {
                head.headers.remove(b"content-length");
                head.headers.set(b"content-encoding", self.encoding().as_bytes());
                stats.compressed.inc();
                self.request = Some(e);
                return HeadersStatus::Continue;
            }
        }
        stats.not_compressed.inc();
        HeadersStatus::Continue
    }

    fn decode_data(&mut self, data: &mut Vec<u8>, end_stream: bool, _cb: &mut FilterCallbacks) -> DataStatus {
        Self::compress(&mut self.request, data, end_stream, &self.config.request);
        DataStatus::Continue
    }

    fn encode_headers(
        &mut self,
        head: &mut ResponseHead,
        end_stream: bool,
        _cb: &mut FilterCallbacks,
    ) -> HeadersStatus {
        let c = &self.config.config.response;
        let stats = &self.config.response;
        let h = &head.headers;
        let big_enough = self.response_enabled && minimum_length(&c.common, h, stats);
        let etag_allowed = || {
            let ok = !(c.disable_on_etag_header && h.get(b"etag").is_some());
            if !ok {
                stats.not_compressed_etag.inc();
            }
            ok
        };
        let upgrade = head.status == 101;
        let compressible = big_enough
            && !upgrade
            && content_type_allowed(&c.common, h)
            && !has_token(h.get_str(b"cache-control"), "no-transform")
            && etag_allowed()
            && h.get(b"content-encoding").is_none()
            && !c.uncompressible_response_codes.contains(&u32::from(head.status));
        let compress = !end_stream
            && big_enough
            && self.accept_encoding_allowed(h)
            && compressible
            && transfer_encoding_allowed(h, self.encoding());
        if compress {
            if let Some(e) = Encoder::new(&self.library) {
                if let Some(etag) = head.headers.get(b"etag") {
                    let weak = etag.len() > 2 && (etag[0] == b'w' || etag[0] == b'W') && etag[1] == b'/';
                    if etag.len() > 2 && !weak {
                        let v = [b"W/".as_slice(), etag].concat();
                        head.headers.set(b"etag", &v);
                    }
                }
                head.headers.remove(b"content-length");
                head.headers.set(b"content-encoding", self.encoding().as_bytes());
                stats.compressed.inc();
                self.response = Some(e);
            } else {
                stats.not_compressed.inc();
            }
        } else {
            stats.not_compressed.inc();
        }
        if compressible {
            insert_vary(&mut head.headers);
        }
        HeadersStatus::Continue
    }

    fn encode_data(&mut self, data: &mut Vec<u8>, end_stream: bool, _cb: &mut FilterCallbacks) -> DataStatus {
        Self::compress(&mut self.response, data, end_stream, &self.config.response);
        DataStatus::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(encs: &[&'static str]) -> Vec<Registered> {
        encs.iter().map(|e| Registered { encoding: e, content_types: vec!["text/plain".into()] }).collect()
    }

    #[test]
    fn q_values_choose_as_envoy() {
        let gz = chain(&["gzip"]);
        assert_eq!(choose_encoding("gzip", &gz, None), ("gzip".into(), HeaderStat::ValidCompressor));
        assert_eq!(choose_encoding("gzip;q=0,*;q=1", &gz, None).1, HeaderStat::NotValid);
        assert_eq!(choose_encoding("*;q=0,gzip;q=1", &gz, None), ("gzip".into(), HeaderStat::ValidCompressor));
        assert_eq!(choose_encoding("*", &gz, None), ("gzip".into(), HeaderStat::Wildcard));
        assert_eq!(choose_encoding("identity", &gz, None).1, HeaderStat::Identity);
        assert_eq!(choose_encoding("deflate", &gz, None).1, HeaderStat::NotValid);
        assert_eq!(choose_encoding("br;q=0.9, gzip;q=0.5", &gz, None).0, "gzip");
        let both = chain(&["gzip", "br"]);
        assert_eq!(choose_encoding("gzip;q=0.5, br", &both, None).0, "br");
        assert_eq!(choose_encoding("gzip, br", &both, None).0, "gzip", "equal q: the first listed");
        assert_eq!(choose_encoding("gzip;q=x, br", &both, None).0, "br", "an unparsable q skips the token");
        assert_eq!(choose_encoding("gzip", &both, Some("image/png")).1, HeaderStat::NotValid);
    }

    #[test]
    fn vary_is_merged() {
        let mut h = HeaderMap::default();
        insert_vary(&mut h);
        assert_eq!(h.get_str(b"vary"), Some("Accept-Encoding"));
        let mut h = HeaderMap::default();
        h.set(b"vary", b"Origin");
        insert_vary(&mut h);
        assert_eq!(h.get_str(b"vary"), Some("Origin, Accept-Encoding"));
        insert_vary(&mut h);
        assert_eq!(h.get_str(b"vary"), Some("Origin, Accept-Encoding"));
    }
}
