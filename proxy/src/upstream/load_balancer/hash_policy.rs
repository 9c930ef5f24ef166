//! Request hashes for RING_HASH and MAGLEV, computed as Envoy's `HashPolicyImpl` does,
//! so that a request lands on the same host as it would behind Envoy.
//!
//! - header: the header's values sorted, then xxHash64 (seed 0) over their
//!   concatenation (one value: xxHash64 of the value);
//! - cookie: xxHash64 of the cookie's value; a cookie Envoy generates is the 16-digit
//!   lower-case hex of xxHash64(`remote address` + `local address`, `ip:port` each);
//! - connection_properties.source_ip: xxHash64 of the downstream IP as text, no port;
//! - several policies: `hash = rotl(hash, 1) ^ next` in order, stopping after a
//!   `terminal` policy that produced a hash ([`HashAccumulator`]).
//!
//! Nothing here allocates: header values are sorted in the caller's slice and
//! addresses are formatted on the stack.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};

use xxhash_rust::xxh64::{xxh64, Xxh64};

/// Hash of a header's values (`None` when the header is absent).
pub fn header_hash(values: &mut [&[u8]]) -> Option<u64> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    let mut h = Xxh64::new(0);
    for v in values.iter() {
        h.update(v);
    }
    Some(h.digest())
}

/// Hash of a cookie's value (`None` when it is absent or empty).
pub fn cookie_hash(value: &[u8]) -> Option<u64> {
    (!value.is_empty()).then(|| xxh64(value, 0))
}

/// Hash of the downstream IP (`connection_properties.source_ip`).
pub fn source_ip_hash(ip: IpAddr) -> u64 {
    let mut buf = [0u8; 64];
    let n = format_into(&mut buf, format_args!("{ip}"));
    xxh64(&buf[..n], 0)
}

/// The value of a cookie Envoy generates for a request from `remote` to `local` (a
/// cookie hash policy with a `ttl` and no cookie in the request).
pub fn generated_cookie_value(remote: SocketAddr, local: SocketAddr) -> [u8; 16] {
    let mut buf = [0u8; 128];
    let n = format_into(&mut buf, format_args!("{remote}{local}"));
    let h = xxh64(&buf[..n], 0);
    let mut out = [0u8; 16];
    for (i, b) in h.to_be_bytes().iter().enumerate() {
        out[2 * i] = HEX[(b >> 4) as usize];
        out[2 * i + 1] = HEX[(b & 0xf) as usize];
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn format_into(buf: &mut [u8], args: std::fmt::Arguments<'_>) -> usize {
    let mut cursor = std::io::Cursor::new(buf);
    // Addresses always fit: an IPv6 socket address is at most 55 bytes.
    let _ = cursor.write_fmt(args);
    cursor.position() as usize
}

/// Combines the hashes of several hash policies in order (Envoy's `generateHash`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HashAccumulator {
    hash: Option<u64>,
    done: bool,
}

impl HashAccumulator {
    /// Add one policy's result; `terminal` stops further policies once a hash exists.
    pub fn add(&mut self, hash: Option<u64>, terminal: bool) {
        if self.done {
            return;
        }
        if let Some(h) = hash {
            self.hash = Some(self.hash.map_or(0, |old| old.rotate_left(1)) ^ h);
        }
        self.done = terminal && self.hash.is_some();
    }

    /// Whether later policies are skipped (a terminal policy produced a hash).
    pub fn done(&self) -> bool {
        self.done
    }

    /// The request hash for [`super::LbContext::hash`].
    pub fn finish(self) -> Option<u64> {
        self.hash
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_hash_like_one_concatenated_value_in_sorted_order() {
        assert_eq!(header_hash(&mut []), None);
        assert_eq!(header_hash(&mut [b"abc"]), Some(xxh64(b"abc", 0)));
        let a = header_hash(&mut [b"foo", b"bar"]);
        let b = header_hash(&mut [b"bar", b"foo"]);
        assert_eq!(a, b, "order of values does not matter");
        assert_eq!(a, Some(xxh64(b"barfoo", 0)));
    }

    #[test]
    fn xxhash64_is_the_reference_algorithm() {
        // Reference vectors of XXH64 with seed 0.
        assert_eq!(xxh64(b"", 0), 0xEF46_DB37_51D8_E999);
        assert_eq!(xxh64(b"a", 0), 0xD24E_C4F1_A98C_6E5B);
    }

    #[test]
    fn source_ip_and_cookies() {
        let v4: IpAddr = "10.99.1.2".parse().unwrap();
        assert_eq!(source_ip_hash(v4), xxh64(b"10.99.1.2", 0));
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(source_ip_hash(v6), xxh64(b"2001:db8::1", 0));
        assert_eq!(cookie_hash(b""), None);
        assert_eq!(cookie_hash(b"session"), Some(xxh64(b"session", 0)));
        let remote: SocketAddr = "10.99.1.2:5555".parse().unwrap();
        let local: SocketAddr = "10.99.0.1:80".parse().unwrap();
        let v = generated_cookie_value(remote, local);
        let expect = format!("{:016x}", xxh64(b"10.99.1.2:555510.99.0.1:80", 0));
        assert_eq!(std::str::from_utf8(&v).unwrap(), expect);
    }

    #[test]
    fn policies_combine_by_rotation_and_terminal_stops() {
        let mut acc = HashAccumulator::default();
        acc.add(None, true);
        assert!(!acc.done(), "a terminal policy without a hash does not stop");
        acc.add(Some(5), false);
        acc.add(Some(5), false);
        // Equal hashes do not cancel out: rotl(5, 1) ^ 5 = 10 ^ 5 = 15.
        assert_eq!(acc.finish(), Some(15));
        let mut acc = HashAccumulator::default();
        acc.add(Some(1), true);
        acc.add(Some(2), false);
        assert!(acc.done());
        assert_eq!(acc.finish(), Some(1));
    }
}
