//! The request target: which byte strings Envoy accepts, and how an absolute-form
//! target splits into scheme, authority and path.
//!
//! `target_is_valid` mirrors Envoy's `isUrlValid` (balsa_parser.cc, itself matching
//! http-parser): origin form `/...` or `*...`, authority form for CONNECT, absolute
//! form `scheme://host[:port][/path][?query]`; path and query bytes are `!`..`~` or
//! form feed. `split_absolute` mirrors `Utility::Url::initialize`: the authority is
//! host and port (userinfo dropped), a path that is empty becomes `/` (before the
//! query, if any: `http://h?x=1` is `/?x=1`). Borrowing only.

/// Path and query bytes Envoy accepts (`c == 12 || '!' <= c <= '~'`; its HTAB is a
/// request-line separator, so it never reaches here).
fn is_path_byte(b: u8) -> bool {
    PATH[b as usize]
}

const fn path_byte(b: u8) -> bool {
    b == 0x0c || (b >= b'!' && b <= b'~')
}
static PATH: [bool; 256] = super::rules::byte_table!(path_byte);

fn is_host_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b'-'
                | b'.'
                | b':'
                | b';'
                | b'='
                | b'@'
                | b'['
                | b']'
                | b'_'
                | b'~'
        )
}

/// Whether the request target is one Envoy's parser accepts.
pub(crate) fn target_is_valid(url: &[u8], is_connect: bool) -> bool {
    let Some(&first) = url.first() else {
        return false;
    };
    if first == b'/' || first == b'*' {
        return url[1..].iter().all(|&b| is_path_byte(b));
    }
    let mut rest = url;
    if !is_connect {
        let Some((_, after)) = split_scheme(url) else {
            return false;
        };
        rest = after;
    }
    let split = rest.iter().position(|&b| b == b'/' || b == b'?').unwrap_or(rest.len());
    let (host, path) = rest.split_at(split);
    host.iter().all(|&b| is_host_byte(b))
        && !host.windows(2).any(|w| w == b"@@")
        && path.iter().all(|&b| is_path_byte(b))
}

/// `scheme "://"`: scheme is ALPHA *(ALPHA / DIGIT / "+" / "-" / ".").
fn split_scheme(url: &[u8]) -> Option<(&[u8], &[u8])> {
    if !url.first()?.is_ascii_alphabetic() {
        return None;
    }
    let end = url.iter().position(|&b| !(b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')))?;
    let (scheme, rest) = url.split_at(end);
    rest.strip_prefix(b"://").map(|rest| (scheme, rest))
}

/// An absolute-form (or CONNECT authority-form) target, split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AbsoluteUrl<'a> {
    /// Empty for CONNECT.
    pub scheme: &'a [u8],
    /// `host[:port]`, brackets kept for IPv6 literals, userinfo dropped.
    pub host_and_port: &'a [u8],
    /// Path, query and fragment as in the URL (empty for CONNECT); see [`Self::slash`].
    pub path_and_query: &'a [u8],
    /// The URL's path is empty: `:path` is `/` followed by `path_and_query`
    /// (`http://h?x=1` is `/?x=1`, `http://h` is `/`).
    pub slash: bool,
}

/// Split an already validated target as `Utility::Url::initialize` does; `None` when it
/// has no host or a malformed port (Envoy's 400 `http1.invalid_url`).
pub(crate) fn split_absolute(url: &[u8], is_connect: bool) -> Option<AbsoluteUrl<'_>> {
    let (scheme, rest) = if is_connect { (&b""[..], url) } else { split_scheme(url)? };
    let split = rest.iter().position(|&b| matches!(b, b'/' | b'?' | b'#')).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    // Userinfo ends at the last '@'; Envoy keeps host and port only.
    let host_and_port = match authority.iter().rposition(|&b| b == b'@') {
        Some(at) => &authority[at + 1..],
        None => authority,
    };
    if !host_and_port_is_valid(host_and_port) {
        return None;
    }
    if is_connect && !path.is_empty() {
        return None;
    }
    let slash = !is_connect && path.first() != Some(&b'/');
    Some(AbsoluteUrl { scheme, host_and_port, path_and_query: path, slash })
}

/// A non-empty host (reg-name or `[...]` literal) and an optional port of 1-5 digits
/// no larger than 65535, as http-parser's URL parser requires.
fn host_and_port_is_valid(hp: &[u8]) -> bool {
    let port = if hp.first() == Some(&b'[') {
        let Some(close) = hp.iter().position(|&b| b == b']') else {
            return false;
        };
        let inner = &hp[1..close];
        if inner.is_empty() || !inner.iter().all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.') {
            return false;
        }
        match &hp[close + 1..] {
            [] => None,
            [b':', port @ ..] => Some(port),
            _ => return false,
        }
    } else {
        let (host, port) = match hp.iter().position(|&b| b == b':') {
            Some(colon) => (&hp[..colon], Some(&hp[colon + 1..])),
            None => (hp, None),
        };
        if host.is_empty() || host.iter().any(|&b| b == b'[' || b == b']') {
            return false;
        }
        port
    };
    match port {
        None => true,
        Some(p) => {
            !p.is_empty()
                && p.len() <= 5
                && p.iter().all(u8::is_ascii_digit)
                && p.iter().fold(0u32, |n, &d| n * 10 + u32::from(d - b'0')) <= 65535
        }
    }
}
