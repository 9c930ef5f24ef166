//! The TLS record layer as a server sees it before the first ClientHello: checked
//! zero-copy views of a TLS record header and of an SSLv2-compatible ClientHello.
//!
//! The views follow smoltcp's `wire` shape: [`Record::new_checked`] and
//! [`V2ClientHello::new_checked`] validate the buffer once, after which no accessor can
//! panic. Nothing here allocates. The limits are BoringSSL's, because Envoy's
//! tls_inspector is BoringSSL reading a peeked buffer (`ssl/tls_record.cc`,
//! `ssl/s3_both.cc` `read_v2_client_hello`).

use super::WireError;

/// `ContentType.handshake`.
pub const CONTENT_TYPE_HANDSHAKE: u8 = 22;
/// A record's plaintext may not exceed 2^14 bytes (`SSL3_RT_MAX_PLAIN_LENGTH`).
pub const MAX_PLAINTEXT_LEN: usize = 16384;
/// The record header: type (1), legacy version (2), length (2).
pub const HEADER_LEN: usize = 5;
/// A V2ClientHello may be at most 4 KiB long (BoringSSL).
pub const MAX_V2_CLIENT_HELLO_LEN: usize = 4096;

mod field {
    use core::ops::{Range, RangeFrom};
    pub const CONTENT_TYPE: usize = 0;
    pub const VERSION: Range<usize> = 1..3;
    pub const LENGTH: Range<usize> = 3..5;
    pub const FRAGMENT: RangeFrom<usize> = 5..;
}

/// A read/write wrapper around a TLS record (header and fragment).
#[derive(Debug, Clone, Copy)]
pub struct Record<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Record<T> {
    /// Imbue a raw octet buffer with TLS record structure, without checks.
    pub const fn new_unchecked(buffer: T) -> Record<T> {
        Record { buffer }
    }

    /// Shorthand for [`Record::new_unchecked`] followed by [`Record::check_len`].
    pub fn new_checked(buffer: T) -> Result<Record<T>, WireError> {
        let record = Self::new_unchecked(buffer);
        record.check_len()?;
        Ok(record)
    }

    /// Whether the header and the whole fragment it announces are present.
    ///
    /// `Truncated` means more bytes may complete it; a buffer longer than the record is
    /// fine (the next record follows).
    pub fn check_len(&self) -> Result<(), WireError> {
        let data = self.buffer.as_ref();
        if data.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if data.len() < HEADER_LEN + usize::from(self.length()) {
            return Err(WireError::Truncated);
        }
        Ok(())
    }

    /// Whether the five header bytes are present (the fragment may not be).
    pub fn has_header(&self) -> bool {
        self.buffer.as_ref().len() >= HEADER_LEN
    }

    /// The content type (`22` for handshake). Needs [`Record::has_header`].
    pub fn content_type(&self) -> u8 {
        self.buffer.as_ref()[field::CONTENT_TYPE]
    }

    /// The legacy record version. Needs [`Record::has_header`].
    pub fn version(&self) -> u16 {
        let d = &self.buffer.as_ref()[field::VERSION];
        u16::from_be_bytes([d[0], d[1]])
    }

    /// The fragment length. Needs [`Record::has_header`].
    pub fn length(&self) -> u16 {
        let d = &self.buffer.as_ref()[field::LENGTH];
        u16::from_be_bytes([d[0], d[1]])
    }

    /// Total length of the record on the wire.
    pub fn total_len(&self) -> usize {
        HEADER_LEN + usize::from(self.length())
    }

    /// The fragment. Needs a successful [`Record::check_len`].
    pub fn fragment(&self) -> &[u8] {
        let end = self.total_len();
        &self.buffer.as_ref()[field::FRAGMENT][..end - HEADER_LEN]
    }

    /// BoringSSL's header checks for a plaintext record before the first ClientHello:
    /// the major version must be 3, the length at most 2^14, the type handshake.
    pub fn check_header(&self) -> Result<(), WireError> {
        if self.version() >> 8 != 3
            || usize::from(self.length()) > MAX_PLAINTEXT_LEN
            || self.content_type() != CONTENT_TYPE_HANDSHAKE
        {
            return Err(WireError::Malformed);
        }
        Ok(())
    }
}

/// Whether the first bytes look like an SSLv2-compatible ClientHello: the high bit of
/// the two-byte length set, message type 1 (`SSL2_MT_CLIENT_HELLO`), major version 3.
pub fn is_v2_client_hello(data: &[u8]) -> bool {
    data.len() >= 4 && data[0] & 0x80 != 0 && data[2] == 1 && data[3] == 3
}

/// An SSLv2-compatible ClientHello (RFC 5246 appendix E.2): what BoringSSL still
/// accepts from very old clients and converts into a ClientHello without extensions.
#[derive(Debug, Clone, Copy)]
pub struct V2ClientHello<T: AsRef<[u8]>> {
    buffer: T,
}

mod v2 {
    use core::ops::Range;
    pub const MSG_TYPE: usize = 2;
    pub const VERSION: Range<usize> = 3..5;
    pub const CIPHER_SPEC_LEN: Range<usize> = 5..7;
    pub const SESSION_ID_LEN: Range<usize> = 7..9;
    pub const CHALLENGE_LEN: Range<usize> = 9..11;
    pub const CIPHER_SPECS: usize = 11;
}

impl<T: AsRef<[u8]>> V2ClientHello<T> {
    pub const fn new_unchecked(buffer: T) -> V2ClientHello<T> {
        V2ClientHello { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<V2ClientHello<T>, WireError> {
        let hello = Self::new_unchecked(buffer);
        hello.check_len()?;
        Ok(hello)
    }

    /// The message length from the two-byte header (high bit masked off).
    fn msg_len(&self) -> usize {
        let d = self.buffer.as_ref();
        usize::from(d[0] & 0x7f) << 8 | usize::from(d[1])
    }

    fn u16_at(&self, r: core::ops::Range<usize>) -> u16 {
        let d = &self.buffer.as_ref()[r];
        u16::from_be_bytes([d[0], d[1]])
    }

    /// BoringSSL's checks: length in `3..=4096`, all of it present, and the three
    /// length-prefixed fields exactly filling it. Needs the first five bytes.
    pub fn check_len(&self) -> Result<(), WireError> {
        let data = self.buffer.as_ref();
        if data.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let msg_len = self.msg_len();
        if !(HEADER_LEN - 2..=MAX_V2_CLIENT_HELLO_LEN).contains(&msg_len) {
            return Err(WireError::Malformed);
        }
        if data.len() < 2 + msg_len {
            return Err(WireError::Truncated);
        }
        if msg_len < v2::CIPHER_SPECS - 2 || data[v2::MSG_TYPE] != 1 {
            return Err(WireError::Malformed);
        }
        let fields = usize::from(self.u16_at(v2::CIPHER_SPEC_LEN))
            + usize::from(self.u16_at(v2::SESSION_ID_LEN))
            + usize::from(self.u16_at(v2::CHALLENGE_LEN));
        if v2::CIPHER_SPECS - 2 + fields != msg_len || self.u16_at(v2::CIPHER_SPEC_LEN) % 3 != 0 {
            return Err(WireError::Malformed);
        }
        Ok(())
    }

    /// The client's highest version.
    pub fn version(&self) -> u16 {
        self.u16_at(v2::VERSION)
    }

    /// Length on the wire (header included).
    pub fn total_len(&self) -> usize {
        2 + self.msg_len()
    }

    /// The three-byte cipher specs.
    pub fn cipher_specs(&self) -> &[u8] {
        let len = usize::from(self.u16_at(v2::CIPHER_SPEC_LEN));
        &self.buffer.as_ref()[v2::CIPHER_SPECS..v2::CIPHER_SPECS + len]
    }

    /// The TLS cipher suites BoringSSL keeps: specs whose first byte is zero.
    pub fn tls_cipher_suites(&self) -> impl Iterator<Item = u16> + '_ {
        self.cipher_specs().chunks_exact(3).filter(|s| s[0] == 0).map(|s| u16::from_be_bytes([s[1], s[2]]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_header_and_fragment() {
        let bytes = [22, 3, 1, 0, 3, 0xaa, 0xbb, 0xcc, 0xff];
        let r = Record::new_checked(&bytes[..]).unwrap();
        assert_eq!(r.content_type(), 22);
        assert_eq!(r.version(), 0x0301);
        assert_eq!(r.fragment(), &[0xaa, 0xbb, 0xcc]);
        assert_eq!(r.total_len(), 8);
        assert!(r.check_header().is_ok());
        assert_eq!(Record::new_checked(&bytes[..7]).unwrap_err(), WireError::Truncated);
        assert_eq!(Record::new_checked(&bytes[..4]).unwrap_err(), WireError::Truncated);
    }

    #[test]
    fn record_header_rules() {
        let check = |b: [u8; 5]| Record::new_unchecked(&b[..]).check_header();
        assert!(check([22, 3, 3, 0x40, 0]).is_ok());
        assert_eq!(check([22, 3, 3, 0x40, 1]), Err(WireError::Malformed), "2^14 + 1");
        assert_eq!(check([23, 3, 3, 0, 1]), Err(WireError::Malformed), "application data");
        assert_eq!(check([22, 2, 0, 0, 1]), Err(WireError::Malformed), "major version 2");
        assert_eq!(check(*b"GET /"), Err(WireError::Malformed));
    }

    #[test]
    fn v2_client_hello() {
        // msg_len 0x1f: type 1, version 3.1, 6 bytes of specs, no session id, 16-byte challenge.
        let mut b = vec![0x80, 0x1f, 1, 3, 1, 0, 6, 0, 0, 0, 16];
        b.extend_from_slice(&[0x00, 0x00, 0x2f, 0x07, 0x00, 0xc0]);
        b.extend_from_slice(&[0x11; 16]);
        assert!(is_v2_client_hello(&b));
        let h = V2ClientHello::new_checked(&b[..]).unwrap();
        assert_eq!(h.version(), 0x0301);
        assert_eq!(h.tls_cipher_suites().collect::<Vec<_>>(), vec![0x002f]);
        assert_eq!(h.total_len(), b.len());
        assert_eq!(V2ClientHello::new_checked(&b[..20]).unwrap_err(), WireError::Truncated);
        b[6] = 5; // specs not a multiple of three, lengths no longer add up
        assert_eq!(V2ClientHello::new_checked(&b[..]).unwrap_err(), WireError::Malformed);
        let huge = [0x90, 0x01, 1, 3, 1];
        assert_eq!(V2ClientHello::new_checked(&huge[..]).unwrap_err(), WireError::Malformed);
    }
}
