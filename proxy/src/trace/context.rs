//! Trace context on the wire: W3C `traceparent`/`tracestate` (the OpenTelemetry
//! tracer) and B3, multi-header (`x-b3-*`) and single-header (`b3`) (the Zipkin
//! tracer), read from a request and written into the upstream request, as Envoy's
//! `SpanContextExtractor`s and `injectContext` do. Parsing never panics: a malformed
//! header is an error the caller turns into "no span".

use crate::http::HeaderMap;

pub const TRACEPARENT: &[u8] = b"traceparent";
pub const TRACESTATE: &[u8] = b"tracestate";
pub const B3: &[u8] = b"b3";
pub const X_B3_TRACE_ID: &[u8] = b"x-b3-traceid";
pub const X_B3_SPAN_ID: &[u8] = b"x-b3-spanid";
pub const X_B3_PARENT_SPAN_ID: &[u8] = b"x-b3-parentspanid";
pub const X_B3_SAMPLED: &[u8] = b"x-b3-sampled";

/// A span's identity and sampling decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanContext {
    /// 128 bits; the high half is zero for a 64-bit (B3) trace id.
    pub trace_id: u128,
    pub span_id: u64,
    /// The parent's span id (B3 `x-b3-parentspanid`; zero: none).
    pub parent_id: u64,
    pub sampled: bool,
}

/// The incoming header was present but malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidContext;

fn hex_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 16 || !s.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(s).ok()?, 16).ok()
}

fn hex_trace_id(s: &[u8]) -> Option<u128> {
    match s.len() {
        32 => Some(((hex_u64(&s[..16])? as u128) << 64) | hex_u64(&s[16..])? as u128),
        1..=16 => hex_u64(s).map(u128::from),
        _ => None,
    }
}

/// W3C `traceparent` (version `00`): `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`.
/// `Ok(None)`: absent.
pub fn extract_w3c(h: &HeaderMap) -> Result<Option<SpanContext>, InvalidContext> {
    let Some(v) = h.get(TRACEPARENT) else { return Ok(None) };
    if v.len() != 55 || v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
        return Err(InvalidContext);
    }
    let lower_hex = |s: &[u8]| s.iter().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b));
    if !lower_hex(&v[..2]) || !lower_hex(&v[3..35]) || !lower_hex(&v[36..52]) || !lower_hex(&v[53..]) {
        return Err(InvalidContext);
    }
    if &v[..2] == b"ff" {
        return Err(InvalidContext);
    }
    let trace_id = hex_trace_id(&v[3..35]).ok_or(InvalidContext)?;
    let span_id = hex_u64(&v[36..52]).ok_or(InvalidContext)?;
    let flags = u8::from_str_radix(std::str::from_utf8(&v[53..]).map_err(|_| InvalidContext)?, 16)
        .map_err(|_| InvalidContext)?;
    if trace_id == 0 || span_id == 0 {
        return Err(InvalidContext);
    }
    Ok(Some(SpanContext { trace_id, span_id, parent_id: 0, sampled: flags & 1 == 1 }))
}

/// Write `traceparent` (and the incoming `tracestate`, unchanged) for `ctx`.
pub fn inject_w3c(h: &mut HeaderMap, ctx: &SpanContext) {
    // Written in place: no formatting machinery, no allocation.
    let mut v = *b"00-00000000000000000000000000000000-0000000000000000-00";
    hex_into(&mut v[3..19], (ctx.trace_id >> 64) as u64);
    hex_into(&mut v[19..35], ctx.trace_id as u64);
    hex_into(&mut v[36..52], ctx.span_id);
    if ctx.sampled {
        v[54] = b'1';
    }
    h.set(TRACEPARENT, &v);
}

/// Write `v` as 16 lower-case hex digits into `out` (16 bytes long).
pub fn hex_into(out: &mut [u8], v: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in out.iter_mut().take(16).enumerate() {
        *b = DIGITS[((v >> (60 - 4 * i)) & 0xf) as usize];
    }
}

fn sampling_flag(c: u8, otherwise: bool) -> bool {
    match c {
        b'0' => false,
        b'1' | b'd' => true,
        _ => otherwise,
    }
}

/// Zipkin's `extractSampled`: the B3 sampling state, else the connection manager's
/// decision `traced`.
pub fn b3_sampled(h: &HeaderMap, traced: bool) -> bool {
    match h.get(B3) {
        None => match h.get(X_B3_SAMPLED) {
            None => traced,
            Some(v) => v == b"1" || v == b"true",
        },
        Some(b3) => match b3.len() {
            1 => sampling_flag(b3[0], traced),
            35 | 51 | 52 | 68 => {
                let pos = if b3.len() == 52 || b3.len() == 68 { b3.len() - 18 } else { b3.len() - 1 };
                sampling_flag(b3[pos], traced)
            }
            _ => traced,
        },
    }
}

/// Zipkin's `extractSpanContext`: the single `b3` header if present, else
/// `x-b3-traceid` with `x-b3-spanid` (both needed; either alone is no context).
pub fn extract_b3(h: &HeaderMap, sampled: bool) -> Result<Option<SpanContext>, InvalidContext> {
    if let Some(b3) = h.get(B3) {
        if b3.len() == 1 {
            // Only a sampling state: no context.
            return Ok(None);
        }
        let mut parts = b3.split(|&b| b == b'-');
        let trace = parts.next().ok_or(InvalidContext)?;
        let span = parts.next().ok_or(InvalidContext)?;
        let trace_id = if trace.len() == 16 || trace.len() == 32 { hex_trace_id(trace) } else { None };
        let trace_id = trace_id.ok_or(InvalidContext)?;
        let span_id = if span.len() == 16 { hex_u64(span) } else { None }.ok_or(InvalidContext)?;
        let mut parent_id = 0;
        if let Some(flag) = parts.next() {
            if flag.len() != 1 {
                return Err(InvalidContext);
            }
            if let Some(parent) = parts.next() {
                parent_id = if parent.len() == 16 { hex_u64(parent) } else { None }.ok_or(InvalidContext)?;
            }
        }
        if parts.next().is_some() {
            return Err(InvalidContext);
        }
        return Ok(Some(SpanContext { trace_id, span_id, parent_id, sampled }));
    }
    let (Some(t), Some(s)) = (h.get(X_B3_TRACE_ID), h.get(X_B3_SPAN_ID)) else { return Ok(None) };
    let trace_id = hex_trace_id(t).ok_or(InvalidContext)?;
    let span_id = hex_u64(s).ok_or(InvalidContext)?;
    let parent_id = match h.get(X_B3_PARENT_SPAN_ID) {
        Some(p) if !p.is_empty() => hex_u64(p).ok_or(InvalidContext)?,
        _ => 0,
    };
    Ok(Some(SpanContext { trace_id, span_id, parent_id, sampled }))
}

/// Write the B3 headers of `ctx` (Zipkin's `injectContext`); a single `b3` header that
/// came in is replaced by the new context in the same format.
pub fn inject_b3(h: &mut HeaderMap, ctx: &SpanContext) {
    // Hex digits on the stack: no formatting machinery, no allocation.
    let mut trace = [0u8; 32];
    let trace_len = if ctx.trace_id >> 64 == 0 {
        hex_into(&mut trace[..16], ctx.trace_id as u64);
        16
    } else {
        hex_into(&mut trace[..16], (ctx.trace_id >> 64) as u64);
        hex_into(&mut trace[16..], ctx.trace_id as u64);
        32
    };
    let trace = &trace[..trace_len];
    let mut span = [0u8; 16];
    hex_into(&mut span, ctx.span_id);
    let mut parent = [0u8; 16];
    hex_into(&mut parent, ctx.parent_id);
    h.set(X_B3_TRACE_ID, trace);
    h.set(X_B3_SPAN_ID, &span);
    if ctx.parent_id != 0 {
        h.set(X_B3_PARENT_SPAN_ID, &parent);
    } else {
        h.remove(X_B3_PARENT_SPAN_ID);
    }
    h.set(X_B3_SAMPLED, if ctx.sampled { b"1" } else { b"0" });
    if h.contains(B3) {
        let mut single = Vec::with_capacity(70);
        single.extend_from_slice(trace);
        single.push(b'-');
        single.extend_from_slice(&span);
        single.extend_from_slice(if ctx.sampled { b"-1" } else { b"-0" });
        if ctx.parent_id != 0 {
            single.push(b'-');
            single.extend_from_slice(&parent);
        }
        h.set(B3, &single);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(list: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in list {
            h.append(n.as_bytes(), v.as_bytes());
        }
        h
    }

    #[test]
    fn w3c() {
        let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let c = extract_w3c(&headers(&[("traceparent", tp)])).unwrap().unwrap();
        assert_eq!(c.trace_id, 0x0af7651916cd43dd8448eb211c80319c);
        assert_eq!(c.span_id, 0xb7ad6b7169203331);
        assert!(c.sampled);
        let mut h = HeaderMap::new();
        inject_w3c(&mut h, &SpanContext { span_id: 1, sampled: false, ..c });
        assert_eq!(h.get_str(TRACEPARENT), Some("00-0af7651916cd43dd8448eb211c80319c-0000000000000001-00"));
        assert_eq!(extract_w3c(&HeaderMap::new()), Ok(None));
        for bad in [
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-zz",
        ] {
            assert_eq!(extract_w3c(&headers(&[("traceparent", bad)])), Err(InvalidContext), "{bad}");
        }
    }

    #[test]
    fn b3_multi_and_single() {
        let h = headers(&[
            ("x-b3-traceid", "463ac35c9f6413ad"),
            ("x-b3-spanid", "a2fb4a1d1a96d312"),
            ("x-b3-sampled", "0"),
        ]);
        assert!(!b3_sampled(&h, true));
        let c = extract_b3(&h, false).unwrap().unwrap();
        assert_eq!((c.trace_id, c.span_id, c.parent_id), (0x463ac35c9f6413ad, 0xa2fb4a1d1a96d312, 0));
        assert!(b3_sampled(&headers(&[]), true) && !b3_sampled(&headers(&[]), false));
        assert_eq!(extract_b3(&headers(&[("x-b3-traceid", "463ac35c9f6413ad")]), true), Ok(None));
        assert_eq!(extract_b3(&headers(&[("x-b3-traceid", "xyz"), ("x-b3-spanid", "1")]), true), Err(InvalidContext));

        let single = "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90";
        let h = headers(&[("b3", single)]);
        assert!(b3_sampled(&h, false));
        let c = extract_b3(&h, true).unwrap().unwrap();
        assert_eq!(c.trace_id, 0x80f198ee56343ba864fe8b2a57d3eff7);
        assert_eq!((c.span_id, c.parent_id), (0xe457b5a2e4d86bd1, 0x05e3ac9a4f6e3b90));
        assert!(!b3_sampled(&headers(&[("b3", "0")]), true));
        assert_eq!(extract_b3(&headers(&[("b3", "0")]), false), Ok(None));
        assert_eq!(extract_b3(&headers(&[("b3", "abc-def")]), false), Err(InvalidContext));

        let mut h = headers(&[("b3", single)]);
        inject_b3(&mut h, &SpanContext { trace_id: 5, span_id: 6, parent_id: 7, sampled: true });
        assert_eq!(h.get_str(X_B3_TRACE_ID), Some("0000000000000005"));
        assert_eq!(h.get_str(X_B3_SPAN_ID), Some("0000000000000006"));
        assert_eq!(h.get_str(X_B3_PARENT_SPAN_ID), Some("0000000000000007"));
        assert_eq!(h.get_str(X_B3_SAMPLED), Some("1"));
        assert_eq!(h.get_str(B3), Some("0000000000000005-0000000000000006-1-0000000000000007"));
    }
}
