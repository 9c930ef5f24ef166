//! Envoy's path and host utilities: `PathUtil` (path_utility.cc) and the host helpers of
//! `HeaderUtility` (`stripPortFromHost`, `stripTrailingHostDot`).
//!
//! Each function takes the `:path` (path and query) or the host and returns the new
//! value, or `None` when it leaves the input as it is, so the common case allocates
//! nothing. `canonical_path` is Envoy's `normalize_path`: dot segments with parameters
//! reduced first (`/..;x` is `/..`), then Chromium's `url::CanonicalizePath` (the
//! googleurl version Envoy links): RFC 3986 dot-segment removal (`.`, `..`, `%2e`),
//! `\` as `/`, percent-decoding of unreserved characters (`%41` is `A`), escaping of
//! characters that may not appear raw, and refusal (`None`) of an escaped or raw NUL.
//! The query is never touched. Nothing here panics on any input.

/// A character of the path is copied as it is.
const PASS: u8 = 0;
/// Needs a look (dot, backslash, percent, or one of the two below).
const SPECIAL: u8 = 1;
/// Written percent-encoded in the canonical path.
const ESCAPE: u8 = 2 | SPECIAL;
/// Percent-decoded when it arrives encoded.
const UNESCAPE: u8 = 4;
/// Never valid in a path, raw or encoded: the path is refused.
const INVALID: u8 = 8 | SPECIAL;

/// googleurl's `kPathCharLookup`: unreserved characters are decoded, the others stay
/// as they arrive, controls, space, `"#%<>?\^`{|}` and bytes >= 0x80 are escaped.
static PATH_CHARS: [u8; 256] = {
    let mut t = [ESCAPE; 256];
    t[0] = INVALID;
    let mut c = 0x21;
    while c < 0x7f {
        t[c] = match c as u8 {
            b'"' | b'#' | b'%' | b'<' | b'>' | b'?' | b'\\' | b'^' | b'`' | b'{' | b'|' | b'}' => ESCAPE,
            b'.' => SPECIAL,
            b'-' | b'_' | b'~' | b'0'..=b'9' | b'A'..=b'Z' | b'a'..=b'z' => UNESCAPE,
            _ => PASS,
        };
        c += 1;
    }
    t
};

/// `/` or `\` (googleurl's `IsURLSlash`).
fn is_url_slash(b: u8) -> bool {
    b == b'/' || b == b'\\'
}

/// The length of a dot at `i`: 1 for `.`, 3 for `%2e`/`%2E`, 0 for anything else.
fn dot_len(s: &[u8], i: usize) -> usize {
    match s.get(i..) {
        Some([b'.', ..]) => 1,
        Some([b'%', b'2', b'e' | b'E', ..]) => 3,
        _ => 0,
    }
}

/// The byte a `%XX` at `i` encodes, when it is a complete escape.
fn decode_escaped(s: &[u8], i: usize) -> Option<u8> {
    match s.get(i..i + 3)? {
        [b'%', h, l] => Some((hex_value(*h)? << 4) | hex_value(*l)?),
        _ => None,
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn push_escaped(out: &mut Vec<u8>, b: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]]);
}

enum AfterDot {
    /// Part of a name (`.a`, `..b`).
    Name,
    /// `.` as a whole segment; consumes that many more bytes (its slash).
    Current(usize),
    /// `..` as a whole segment; consumes that many more bytes (second dot and slash).
    Up(usize),
}

/// googleurl's `ClassifyAfterDot`: what the dot before `at` means.
fn classify_after_dot(s: &[u8], at: usize) -> AfterDot {
    match s.get(at) {
        None => return AfterDot::Current(0),
        Some(&b) if is_url_slash(b) => return AfterDot::Current(1),
        Some(_) => {}
    }
    let second = dot_len(s, at);
    if second > 0 {
        match s.get(at + second) {
            None => return AfterDot::Up(second),
            Some(&b) if is_url_slash(b) => return AfterDot::Up(second + 1),
            Some(_) => {}
        }
    }
    AfterDot::Name
}

/// googleurl's `BackUpToPreviousSlash`: drop the last segment of `out` (which ends in
/// `/`), never above the leading slash.
fn back_up_to_previous_slash(out: &mut Vec<u8>) {
    let Some(mut i) = out.len().checked_sub(1) else {
        return;
    };
    if i == 0 {
        return;
    }
    i -= 1;
    while i > 0 && out[i] != b'/' {
        i -= 1;
    }
    out.truncate(i + 1);
}

/// googleurl's `CanonicalizePath` of a path without query: the canonical path, or
/// `None` when it holds a NUL (raw or `%00`).
fn canonicalize(path: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(path.len() + 1);
    if path.first().is_none_or(|&b| !is_url_slash(b)) {
        out.push(b'/');
    }
    let mut ok = true;
    let mut i = 0;
    while i < path.len() {
        let c = path[i];
        let flags = PATH_CHARS[usize::from(c)];
        if flags & SPECIAL == 0 {
            out.push(c);
            i += 1;
            continue;
        }
        let dot = dot_len(path, i);
        if dot > 0 {
            if out.last() == Some(&b'/') {
                match classify_after_dot(path, i + dot) {
                    AfterDot::Name => {
                        out.push(b'.');
                        i += dot;
                    }
                    AfterDot::Current(more) => i += dot + more,
                    AfterDot::Up(more) => {
                        back_up_to_previous_slash(&mut out);
                        i += dot + more;
                    }
                }
            } else {
                out.push(b'.');
                i += dot;
            }
        } else if c == b'\\' {
            out.push(b'/');
            i += 1;
        } else if c == b'%' {
            match decode_escaped(path, i) {
                Some(v) => {
                    let f = PATH_CHARS[usize::from(v)];
                    if f & UNESCAPE != 0 {
                        out.push(v);
                    } else {
                        // Kept as sent (hex case included); an escaped NUL is refused.
                        out.extend_from_slice(&path[i..i + 3]);
                        ok &= f != INVALID;
                    }
                    i += 3;
                }
                None => {
                    out.push(b'%');
                    i += 1;
                }
            }
        } else {
            push_escaped(&mut out, c);
            ok &= flags != INVALID;
            i += 1;
        }
    }
    ok.then_some(out)
}

/// Split `:path` at the first `?` (the query keeps its `?`).
fn split_query(path: &str) -> (&str, &str) {
    path.split_at(path.find('?').unwrap_or(path.len()))
}

/// `PathUtil::canonicalPath` (Envoy's `normalize_path`): the normalised path with the
/// query kept as it is, or `None` when the path is refused (Envoy's 400).
pub fn canonical_path(path: &str) -> Option<String> {
    let stripped = strip_parameters_from_dot_segments(path);
    let path = stripped.as_deref().unwrap_or(path);
    let (p, query) = split_query(path);
    let mut out = canonicalize(p.as_bytes())?;
    out.extend_from_slice(query.as_bytes());
    // Every byte written is ASCII or copied from the (ASCII) input.
    String::from_utf8(out).ok()
}

/// `PathUtil::mergeSlashes`: runs of `/` in the path (not the query) become one; `None`
/// when there are none.
pub fn merge_slashes(path: &str) -> Option<String> {
    let (p, query) = split_query(path);
    if !p.contains("//") {
        return None;
    }
    let mut out = String::with_capacity(path.len());
    if p.starts_with('/') {
        out.push('/');
    }
    for (n, segment) in p.split('/').filter(|s| !s.is_empty()).enumerate() {
        if n > 0 {
            out.push('/');
        }
        out.push_str(segment);
    }
    if p.ends_with('/') {
        out.push('/');
    }
    out.push_str(query);
    // Only slashes: Envoy writes `//` back (prefix and suffix), so it stays as it is.
    (out.len() != path.len()).then_some(out)
}

/// `PathUtil::stripParametersFromDotSegments`: a segment `..;x` becomes `..` and `.;x`
/// becomes `.` (path only, before `?` or `#`); `None` when no segment starts so.
pub fn strip_parameters_from_dot_segments(path: &str) -> Option<String> {
    let end = path.find(['?', '#']).unwrap_or(path.len());
    let (p, rest) = path.split_at(end);
    if !p.contains(".;") {
        return None;
    }
    let mut out = String::with_capacity(path.len());
    for (n, segment) in p.split('/').enumerate() {
        if n > 0 {
            out.push('/');
        }
        out.push_str(if segment.starts_with("..;") {
            ".."
        } else if segment.starts_with(".;") {
            "."
        } else {
            segment
        });
    }
    out.push_str(rest);
    (out.len() != path.len()).then_some(out)
}

/// `PathUtil::unescapeSlashes`: `%2F`/`%2f` become `/` and `%5C`/`%5c` become `\` in
/// the path (not the query); `None` when there was none (`NotFound`).
pub fn unescape_slashes(path: &str) -> Option<String> {
    let (p, query) = split_query(path);
    let b = p.as_bytes();
    if !b.contains(&b'%') {
        return None;
    }
    let mut out = Vec::with_capacity(path.len());
    let mut i = 0;
    while i < b.len() {
        match b.get(i..i + 3) {
            Some([b'%', b'2', b'f' | b'F']) => {
                out.push(b'/');
                i += 3;
            }
            Some([b'%', b'5', b'c' | b'C']) => {
                out.push(b'\\');
                i += 3;
            }
            _ => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    if out.len() == b.len() {
        return None;
    }
    out.extend_from_slice(query.as_bytes());
    // Only ASCII sequences were replaced: still UTF-8.
    String::from_utf8(out).ok()
}

/// `HeaderUtility::getPortStart`: where the `:port` of a host starts (not inside an
/// IPv6 literal).
fn port_start(host: &str) -> Option<usize> {
    let colon = host.rfind(':')?;
    match host.rfind(']') {
        Some(close) if close > colon => None,
        _ => Some(colon),
    }
}

/// absl's `SimpleAtoi` into a `u32` as the host's port uses it: an optional `+`, then
/// decimal digits that fit.
fn parse_port(s: &str) -> Option<u32> {
    let digits = s.strip_prefix('+').unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// `HeaderUtility::stripPortFromHost`: the host without its port when it has a numeric
/// one and, with `listener_port`, only when it is that port (`strip_matching_host_port`;
/// without it, `strip_any_host_port`). `None` when the host stays as it is.
pub fn strip_port_from_host(host: &str, listener_port: Option<u16>) -> Option<&str> {
    let colon = port_start(host)?;
    let port = parse_port(&host[colon + 1..])?;
    if listener_port.is_some_and(|l| u32::from(l) != port) {
        return None;
    }
    Some(&host[..colon])
}

/// `HeaderUtility::stripTrailingHostDot`: `example.com.` and `example.com.:8080` lose
/// the dot; `None` when the host has none.
pub fn strip_trailing_host_dot(host: &str) -> Option<String> {
    let dot = host.rfind('.')?;
    if dot + 1 == host.len() {
        return Some(host[..dot].to_string());
    }
    // A dot right before a colon precedes the port (never so inside an IPv6 literal).
    if host.as_bytes()[dot + 1] == b':' {
        return Some(format!("{}{}", &host[..dot], &host[dot + 1..]));
    }
    None
}

#[cfg(test)]
mod tests;
