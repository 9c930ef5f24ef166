//! `config.route.v3.DirectResponseAction`: a status (200..=599) and an optional body
//! from a `core.v3.DataSource` (`inline_string`, base64 `inline_bytes`, or `filename`,
//! read at load).

use crate::decode::{Decode, Decoder, Fields};
use crate::error::ErrorKind;
use crate::node::Node;

/// `config.route.v3.DirectResponseAction`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectResponseAction {
    /// 200..=599
    pub status: u16,
    /// `None` when no body is configured.
    pub body: Option<Vec<u8>>,
    pub line: u32,
}

impl Decode for DirectResponseAction {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let line = f.line();
        let status: Option<u32> = f.req(d, "status");
        let body = match f.take("body") {
            Some(n) => decode_data_source(d, n, &f.field_path("body")),
            None => None,
        };
        f.unsupported(d, &["body_format"]);
        f.finish(d);
        let status = status?;
        if !(200..600).contains(&status) {
            d.error(
                ErrorKind::Invalid,
                &format!("{path}.status"),
                line,
                format!("status {status} is not in 200..=599"),
            );
            return None;
        }
        Some(DirectResponseAction { status: status as u16, body, line })
    }
}

/// `core.v3.DataSource`: `inline_string`, `inline_bytes` (base64) or `filename` (read
/// now, at load).
fn decode_data_source(d: &mut Decoder, node: &Node, path: &str) -> Option<Vec<u8>> {
    let mut f = Fields::of(d, node, path)?;
    let line = f.line();
    let inline_string: Option<String> = f.opt(d, "inline_string");
    let inline_bytes: Option<String> = f.opt(d, "inline_bytes");
    let filename: Option<String> = f.opt(d, "filename");
    f.unsupported(d, &["environment_variable", "watched_directory"]);
    f.finish(d);
    let count = [inline_string.is_some(), inline_bytes.is_some(), filename.is_some()].iter().filter(|b| **b).count();
    if count != 1 {
        d.error(ErrorKind::Invalid, path, line, "set exactly one of `inline_string`, `inline_bytes`, `filename`");
        return None;
    }
    if let Some(s) = inline_string {
        return Some(s.into_bytes());
    }
    if let Some(b) = inline_bytes {
        return match decode_base64(&b) {
            Some(v) => Some(v),
            None => {
                d.error(ErrorKind::Invalid, &format!("{path}.inline_bytes"), line, "not valid base64");
                None
            }
        };
    }
    let name = filename?;
    if name.is_empty() {
        d.error(ErrorKind::Invalid, &format!("{path}.filename"), line, "must not be empty");
        return None;
    }
    match std::fs::read(&name) {
        Ok(v) => Some(v),
        Err(e) => {
            d.error(ErrorKind::Invalid, &format!("{path}.filename"), line, format!("cannot read `{name}`: {e}"));
            None
        }
    }
}

/// proto3 JSON `bytes`: standard or URL-safe base64, padding optional.
pub fn decode_base64(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for b in s.bytes() {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // A single leftover 6-bit group cannot encode a byte.
    if bits >= 6 {
        return None;
    }
    Some(out)
}
