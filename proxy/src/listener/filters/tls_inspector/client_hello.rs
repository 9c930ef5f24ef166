//! The ClientHello handshake message: a checked zero-copy view and the facts the
//! tls_inspector takes from it.
//!
//! [`ClientHello::new_checked`] walks every length prefix once (BoringSSL's
//! `ssl_parse_client_hello_with_trailing_data` plus its duplicate-extension check), so
//! the accessors cannot panic. [`ClientHelloRepr::parse`] then applies the rest of what
//! BoringSSL does before Envoy's SNI callback fires: version negotiation (TLS 1.0 to
//! 1.3, `supported_versions`), `TLS_FALLBACK_SCSV`, the compression rule and the strict
//! `server_name` rules. ALPN is read the lenient way Envoy's `onALPN` reads it: a
//! malformed list is ignored, not an error. Nothing here allocates.

use super::WireError;

/// `HandshakeType.client_hello`.
pub const HANDSHAKE_CLIENT_HELLO: u8 = 1;
/// The handshake header: type (1) and a 24-bit length.
pub const HANDSHAKE_HEADER_LEN: usize = 4;
/// BoringSSL refuses a ClientHello longer than this (`ssl_max_handshake_message_len`).
pub const MAX_CLIENT_HELLO_LEN: usize = 16384;

/// Extension code points.
pub mod ext {
    pub const SERVER_NAME: u16 = 0;
    pub const ALPN: u16 = 16;
    pub const SUPPORTED_VERSIONS: u16 = 43;
}

/// `TLS_FALLBACK_SCSV` (RFC 7507).
const FALLBACK_SCSV: u16 = 0x5600;
/// BoringSSL's versions, most preferred first (the inspector allows TLS 1.0 to 1.3).
const VERSIONS: [u16; 4] = [0x0304, 0x0303, 0x0302, 0x0301];
const TLS1_3: u16 = 0x0304;
/// Longest host name BoringSSL accepts (`TLSEXT_MAXLEN_host_name`).
const MAX_HOST_NAME_LEN: usize = 255;

/// Read the handshake header at the start of `data`: (type, body length).
pub fn handshake_header(data: &[u8]) -> Result<(u8, usize), WireError> {
    match data {
        [ty, a, b, c, ..] => Ok((*ty, usize::from(*a) << 16 | usize::from(*b) << 8 | usize::from(*c))),
        _ => Err(WireError::Truncated),
    }
}

/// A cursor over a length-prefixed TLS structure; every read is bounds-checked.
#[derive(Clone, Copy)]
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.bytes(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.bytes(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
    fn prefixed8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()?;
        self.bytes(usize::from(n))
    }
    fn prefixed16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.bytes(usize::from(n))
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The body of a ClientHello handshake message (after the 4-byte handshake header).
#[derive(Debug, Clone, Copy)]
pub struct ClientHello<T: AsRef<[u8]>> {
    buffer: T,
}

/// Offsets of the variable-length fields, recomputed from the validated prefixes.
struct Layout<'a> {
    version: u16,
    session_id: &'a [u8],
    cipher_suites: &'a [u8],
    compression_methods: &'a [u8],
    /// `None` when the message ends after the compression methods.
    extensions: Option<&'a [u8]>,
}

fn layout(data: &[u8]) -> Option<Layout<'_>> {
    let mut c = Cursor(data);
    let version = c.u16()?;
    c.bytes(32)?; // random
    let session_id = c.prefixed8()?;
    let cipher_suites = c.prefixed16()?;
    let compression_methods = c.prefixed8()?;
    let extensions = if c.is_empty() { None } else { Some(c.prefixed16()?) };
    c.is_empty().then_some(Layout { version, session_id, cipher_suites, compression_methods, extensions })
}

impl<T: AsRef<[u8]>> ClientHello<T> {
    /// Imbue a handshake body with ClientHello structure, without checks.
    pub const fn new_unchecked(buffer: T) -> ClientHello<T> {
        ClientHello { buffer }
    }

    /// Shorthand for [`ClientHello::new_unchecked`] followed by [`ClientHello::check_len`].
    pub fn new_checked(buffer: T) -> Result<ClientHello<T>, WireError> {
        let hello = Self::new_unchecked(buffer);
        hello.check_len()?;
        Ok(hello)
    }

    /// Validate every length prefix: session id at most 32 bytes, a non-empty and even
    /// cipher suite list, at least one compression method, optional extensions that
    /// exactly fill the rest, each extension framed, no extension type twice.
    /// The buffer must hold exactly the message body, so a short one is `Malformed`.
    pub fn check_len(&self) -> Result<(), WireError> {
        let l = layout(self.buffer.as_ref()).ok_or(WireError::Malformed)?;
        if l.session_id.len() > 32
            || l.cipher_suites.len() < 2
            || l.cipher_suites.len() % 2 != 0
            || l.compression_methods.is_empty()
        {
            return Err(WireError::Malformed);
        }
        if let Some(block) = l.extensions {
            check_extensions(block)?;
        }
        Ok(())
    }

    fn layout(&self) -> Layout<'_> {
        // check_len succeeded, so the walk cannot fail; an empty layout keeps the
        // accessors total even if the view was built unchecked.
        layout(self.buffer.as_ref()).unwrap_or(Layout {
            version: 0,
            session_id: &[],
            cipher_suites: &[],
            compression_methods: &[],
            extensions: None,
        })
    }

    /// `legacy_version`.
    pub fn legacy_version(&self) -> u16 {
        self.layout().version
    }

    pub fn session_id(&self) -> &[u8] {
        self.layout().session_id
    }

    /// Cipher suites, two bytes each.
    pub fn cipher_suites(&self) -> impl Iterator<Item = u16> + '_ {
        self.layout().cipher_suites.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]]))
    }

    pub fn compression_methods(&self) -> &[u8] {
        self.layout().compression_methods
    }

    /// The extensions in wire order.
    pub fn extensions(&self) -> Extensions<'_> {
        Extensions(Cursor(self.layout().extensions.unwrap_or(&[])))
    }

    /// The body of one extension, if present.
    pub fn extension(&self, ty: u16) -> Option<&[u8]> {
        self.extensions().find(|(t, _)| *t == ty).map(|(_, body)| body)
    }
}

/// BoringSSL `tls1_check_duplicate_extensions`: framed, and no type twice.
fn check_extensions(block: &[u8]) -> Result<(), WireError> {
    // Typical hellos carry 10 to 20 extensions: compare them pairwise on the stack.
    let mut few = [0u16; 32];
    let mut count = 0usize;
    let mut c = Cursor(block);
    while !c.is_empty() {
        let ty = c.u16().ok_or(WireError::Malformed)?;
        c.prefixed16().ok_or(WireError::Malformed)?;
        if count < few.len() {
            if few[..count].contains(&ty) {
                return Err(WireError::Malformed);
            }
            few[count] = ty;
        }
        count += 1;
    }
    if count > few.len() {
        // Up to ~4000 extensions fit in 16 KiB: a bitmap keeps this linear.
        let mut seen = [0u64; 1024];
        for (ty, _) in Extensions(Cursor(block)) {
            let (word, bit) = (usize::from(ty >> 6), 1u64 << (ty & 63));
            if seen[word] & bit != 0 {
                return Err(WireError::Malformed);
            }
            seen[word] |= bit;
        }
    }
    Ok(())
}

/// Iterator over `(type, body)` of a validated extension block.
#[derive(Clone)]
pub struct Extensions<'a>(Cursor<'a>);

impl<'a> Iterator for Extensions<'a> {
    type Item = (u16, &'a [u8]);
    fn next(&mut self) -> Option<Self::Item> {
        let ty = self.0.u16()?;
        let body = self.0.prefixed16()?;
        Some((ty, body))
    }
}

/// A validated ALPN `ProtocolNameList` (RFC 7301): non-empty names, in client order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlpnList<'a>(&'a [u8]);

impl<'a> AlpnList<'a> {
    /// Envoy's `onALPN` rules: a u16-prefixed list filling the extension, at least two
    /// bytes long, of u8-prefixed non-empty names. Anything else: no ALPN at all.
    pub fn parse(body: &'a [u8]) -> Option<AlpnList<'a>> {
        let mut c = Cursor(body);
        let list = c.prefixed16()?;
        if !c.is_empty() || list.len() < 2 {
            return None;
        }
        let mut names = Cursor(list);
        while !names.is_empty() {
            if names.prefixed8()?.is_empty() {
                return None;
            }
        }
        Some(AlpnList(list))
    }

    /// Protocol names as bytes, in the client's order of preference.
    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let mut c = Cursor(self.0);
        core::iter::from_fn(move || c.prefixed8())
    }

    /// Protocol names that are UTF-8 (the only ones a configured protocol can equal).
    pub fn names(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.iter().filter_map(|p| core::str::from_utf8(p).ok())
    }

    /// Fill `out` with [`AlpnList::names`] (as filter-chain selection takes them,
    /// without allocating); returns the filled prefix. Names past `out.len()` are left
    /// out.
    pub fn fill<'o>(&self, out: &'o mut [&'a str]) -> &'o [&'a str] {
        let mut n = 0;
        for (slot, name) in out.iter_mut().zip(self.names()) {
            *slot = name;
            n += 1;
        }
        &out[..n]
    }

    pub fn len(&self) -> usize {
        self.iter().count()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What a ClientHello tells the listener, once BoringSSL would have accepted it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientHelloRepr<'a> {
    /// SNI `host_name`, as sent.
    pub server_name: Option<&'a str>,
    /// ALPN offer; `None` when absent or malformed.
    pub alpn: Option<AlpnList<'a>>,
    /// The version BoringSSL would negotiate (`0x0301` to `0x0304`).
    pub version: u16,
}

impl<'a> ClientHelloRepr<'a> {
    /// Apply BoringSSL's server-side checks up to its servername callback.
    pub fn parse(hello: &ClientHello<&'a [u8]>) -> Result<ClientHelloRepr<'a>, WireError> {
        let l = layout(hello.buffer).ok_or(WireError::Malformed)?;
        let (mut sni, mut alpn, mut versions) = (None, None, None);
        for (ty, body) in Extensions(Cursor(l.extensions.unwrap_or(&[]))) {
            match ty {
                ext::SERVER_NAME => sni = Some(body),
                ext::ALPN => alpn = Some(body),
                ext::SUPPORTED_VERSIONS => versions = Some(body),
                _ => {}
            }
        }
        let alpn = alpn.and_then(AlpnList::parse);
        let server_name = match sni {
            Some(body) => Some(parse_server_name(body)?),
            None => None,
        };
        let version = negotiate_version(versions, l.version)?;
        let suites = l.cipher_suites.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]]));
        check_fallback_and_compression(suites, l.compression_methods, version)?;
        Ok(ClientHelloRepr { server_name, alpn, version })
    }
}

/// `TLS_FALLBACK_SCSV` below our best version, and the compression rule: the null
/// method must be offered, and it must be the only one under TLS 1.3.
pub fn check_fallback_and_compression(
    mut suites: impl Iterator<Item = u16>,
    compression: &[u8],
    version: u16,
) -> Result<(), WireError> {
    if version < TLS1_3 && suites.any(|s| s == FALLBACK_SCSV) {
        return Err(WireError::Malformed);
    }
    if !compression.contains(&0) || (version >= TLS1_3 && compression.len() != 1) {
        return Err(WireError::Malformed);
    }
    Ok(())
}

/// BoringSSL `extract_sni`: exactly one `host_name` entry, 1..=255 bytes, no NUL.
/// (Non-UTF-8 names are refused too: no configured server name could equal them.)
fn parse_server_name(body: &[u8]) -> Result<&str, WireError> {
    let mut c = Cursor(body);
    let mut list = Cursor(c.prefixed16().ok_or(WireError::Malformed)?);
    let name_type = list.u8().ok_or(WireError::Malformed)?;
    let host = list.prefixed16().ok_or(WireError::Malformed)?;
    if !list.is_empty() || !c.is_empty() {
        return Err(WireError::Malformed);
    }
    if name_type != 0 || host.is_empty() || host.len() > MAX_HOST_NAME_LEN || host.contains(&0) {
        return Err(WireError::Malformed);
    }
    core::str::from_utf8(host).map_err(|_| WireError::Malformed)
}

/// BoringSSL `negotiate_version` for a server allowing TLS 1.0 to 1.3.
pub fn negotiate_version(supported_versions: Option<&[u8]>, legacy_version: u16) -> Result<u16, WireError> {
    let offered: &[u8] = match supported_versions {
        Some(body) => {
            let mut c = Cursor(body);
            let list = c.prefixed8().ok_or(WireError::Malformed)?;
            if !c.is_empty() || list.is_empty() {
                return Err(WireError::Malformed);
            }
            list
        }
        // Without the extension the legacy version stands for itself and every lower one.
        None => match legacy_version {
            v if v >= 0x0303 => &[3, 3, 3, 2, 3, 1],
            0x0302 => &[3, 2, 3, 1],
            0x0301 => &[3, 1],
            _ => &[],
        },
    };
    for want in VERSIONS {
        let mut c = Cursor(offered);
        while !c.is_empty() {
            // An odd trailing byte is a decode error once the scan reaches it.
            if c.u16().ok_or(WireError::Malformed)? == want {
                return Ok(want);
            }
        }
    }
    Err(WireError::Malformed)
}
