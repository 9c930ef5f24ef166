//! Who the client is: Envoy's original IP detection extensions (`xff`,
//! `custom_header`), its XFF helpers (`Utility::getLastAddressFromXFF`,
//! `getLastNonTrustedAddressFromXFF`, `appendXff`) and `internal_address_config`.
//!
//! A detection returns the trusted client address it found (if any), whether that
//! address may be used to decide that a request is internal, and whether the
//! downstream peer is to be appended to `x-forwarded-for`; or a status to reject the
//! request with. Addresses in XFF are parsed exactly (no ports, no brackets), as
//! Envoy's `parseInternetAddressNoThrow`; anything else is "no address". Nothing here
//! allocates unless it appends to a header.

use std::net::IpAddr;

use sluice_config::address::CidrRange;
use sluice_config::hcm::{InternalAddressConfig, OriginalIpDetection, XffConfig};

use crate::http::HeaderMap;

pub const XFF: &[u8] = b"x-forwarded-for";

/// A compiled original IP detection extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpDetection {
    Xff { num_trusted_hops: u32, trusted_cidrs: Vec<CidrRange>, skip_xff_append: bool },
    CustomHeader { name: Vec<u8>, allow_trusted: bool, reject_status: Option<u16> },
}

/// What one extension found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Detection {
    pub address: Option<IpAddr>,
    pub allow_trusted_address_checks: bool,
    pub skip_xff_append: bool,
}

impl Detection {
    const NONE: Detection = Detection { address: None, allow_trusted_address_checks: false, skip_xff_append: true };
}

impl IpDetection {
    /// Envoy's fallback when no extension is configured: XFF with the HCM's
    /// `xff_num_trusted_hops`, never appending.
    pub fn default_xff(num_trusted_hops: u32) -> IpDetection {
        IpDetection::Xff { num_trusted_hops, trusted_cidrs: Vec::new(), skip_xff_append: true }
    }

    pub fn from_config(c: &OriginalIpDetection) -> IpDetection {
        match c {
            OriginalIpDetection::Xff(XffConfig { xff_num_trusted_hops, xff_trusted_cidrs, skip_xff_append }) => {
                IpDetection::Xff {
                    num_trusted_hops: *xff_num_trusted_hops,
                    trusted_cidrs: xff_trusted_cidrs.clone().unwrap_or_default(),
                    skip_xff_append: *skip_xff_append,
                }
            }
            OriginalIpDetection::CustomHeader(h) => IpDetection::CustomHeader {
                name: h.header_name.as_bytes().to_vec(),
                allow_trusted: h.allow_extension_to_set_address_as_trusted,
                // CustomHeaderIPDetection: outside 400..=511, 403.
                reject_status: h.reject_with_status.map(|s| if (400..=511).contains(&s) { s } else { 403 }),
            },
        }
    }

    /// Run the extension on a request from `peer`; `Err(status)` rejects it.
    pub fn detect(&self, headers: &HeaderMap, peer: IpAddr) -> Result<Detection, u16> {
        match self {
            IpDetection::Xff { num_trusted_hops, trusted_cidrs, skip_xff_append } => {
                let xff = headers.get(XFF);
                if !trusted_cidrs.is_empty() {
                    if !trusted_cidrs.iter().any(|c| c.contains(peer)) {
                        // An untrusted peer: its XFF means nothing, and it is appended.
                        return Ok(Detection { skip_xff_append: false, ..Detection::NONE });
                    }
                    let (address, allow) = last_non_trusted_address_from_xff(xff, trusted_cidrs);
                    return Ok(Detection {
                        address,
                        allow_trusted_address_checks: allow,
                        skip_xff_append: *skip_xff_append,
                    });
                }
                let (address, allow) = last_address_from_xff(xff, *num_trusted_hops);
                Ok(Detection { address, allow_trusted_address_checks: allow, skip_xff_append: *skip_xff_append })
            }
            IpDetection::CustomHeader { name, allow_trusted, reject_status } => {
                let parsed = headers.get(name).and_then(|v| std::str::from_utf8(v).ok()?.parse::<IpAddr>().ok());
                match (parsed, reject_status) {
                    (Some(ip), _) => Ok(Detection {
                        address: Some(ip),
                        allow_trusted_address_checks: *allow_trusted,
                        skip_xff_append: true,
                    }),
                    (None, Some(status)) => Err(*status),
                    (None, None) => Ok(Detection::NONE),
                }
            }
        }
    }
}

/// `Utility::getLastAddressFromXFF`: skip `num_to_skip` entries from the right, parse
/// the next one. The flag is true when XFF held exactly that one address and nothing
/// was skipped (the "single address" rule of internal requests).
pub fn last_address_from_xff(xff: Option<&[u8]>, num_to_skip: u32) -> (Option<IpAddr>, bool) {
    let Some(mut xff) = xff else { return (None, false) };
    for _ in 0..num_to_skip {
        match xff.iter().rposition(|&b| b == b',') {
            Some(comma) => xff = &xff[..comma],
            None => return (None, false),
        }
    }
    let last_comma = xff.iter().rposition(|&b| b == b',');
    let entry = match last_comma {
        Some(c) if c + 1 < xff.len() => &xff[c + 1..],
        _ => xff,
    };
    match parse_ip(entry) {
        Some(ip) => (Some(ip), last_comma.is_none() && num_to_skip == 0),
        None => (None, false),
    }
}

/// `Utility::getLastNonTrustedAddressFromXFF`: the rightmost entry outside
/// `trusted`, or the leftmost when all are inside; any unparsable entry on the way
/// means no address.
pub fn last_non_trusted_address_from_xff(xff: Option<&[u8]>, trusted: &[CidrRange]) -> (Option<IpAddr>, bool) {
    let Some(xff) = xff else { return (None, false) };
    let mut last = None;
    for entry in xff.rsplit(|&b| b == b',') {
        let Some(ip) = parse_ip(entry) else { return (None, false) };
        last = Some(ip);
        if !trusted.iter().any(|c| c.contains(ip)) {
            return (Some(ip), true);
        }
    }
    (last, true)
}

fn parse_ip(entry: &[u8]) -> Option<IpAddr> {
    std::str::from_utf8(entry).ok()?.trim_matches([' ', '\t']).parse().ok()
}

/// `Utility::appendXff`: `, ip` after a present value, else `ip`.
pub fn append_xff(headers: &mut HeaderMap, ip: IpAddr) {
    let ip = ip.to_string();
    match headers.get(XFF) {
        Some(v) if !v.is_empty() => {
            let mut joined = Vec::with_capacity(v.len() + 1 + ip.len());
            joined.extend_from_slice(v);
            joined.push(b',');
            joined.extend_from_slice(ip.as_bytes());
            headers.set(XFF, &joined);
        }
        _ => headers.set(XFF, ip.as_bytes()),
    }
}

/// `internal_address_config` as Envoy 1.36+ reads it: unset, nothing is internal.
pub fn is_internal_address(config: Option<&InternalAddressConfig>, ip: IpAddr) -> bool {
    config.is_some_and(|c| c.cidr_ranges.iter().any(|r| r.contains(ip)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn cidr(s: &str) -> CidrRange {
        s.parse().unwrap()
    }

    #[test]
    fn last_address_skips_trusted_hops() {
        let xff = Some(&b"1.1.1.1, 2.2.2.2,3.3.3.3"[..]);
        assert_eq!(last_address_from_xff(xff, 0), (Some(ip("3.3.3.3")), false));
        assert_eq!(last_address_from_xff(xff, 1), (Some(ip("2.2.2.2")), false));
        assert_eq!(last_address_from_xff(xff, 2), (Some(ip("1.1.1.1")), false));
        assert_eq!(last_address_from_xff(xff, 3), (None, false));
        assert_eq!(last_address_from_xff(Some(b"10.0.0.1"), 0), (Some(ip("10.0.0.1")), true));
        assert_eq!(last_address_from_xff(Some(b" fd00::1 "), 0), (Some(ip("fd00::1")), true));
        assert_eq!(last_address_from_xff(Some(b"10.0.0.1"), 1), (None, false));
        assert_eq!(last_address_from_xff(Some(b"garbage"), 0), (None, false));
        assert_eq!(last_address_from_xff(Some(b"1.2.3.4:80"), 0), (None, false));
        assert_eq!(last_address_from_xff(None, 0), (None, false));
    }

    #[test]
    fn last_non_trusted_walks_from_the_right() {
        let trusted = [cidr("192.0.2.0/24"), cidr("198.51.100.0/24")];
        let xff = Some(&b"203.0.113.128, 203.0.113.10, 198.51.100.1"[..]);
        assert_eq!(last_non_trusted_address_from_xff(xff, &trusted), (Some(ip("203.0.113.10")), true));
        let all = Some(&b"192.0.2.9, 198.51.100.1"[..]);
        assert_eq!(last_non_trusted_address_from_xff(all, &trusted), (Some(ip("192.0.2.9")), true));
        assert_eq!(last_non_trusted_address_from_xff(Some(b"x, 198.51.100.1"), &trusted), (None, false));
    }

    #[test]
    fn xff_extension_with_trusted_cidrs_and_hops() {
        let mut h = HeaderMap::new();
        h.append(XFF, b"203.0.113.128, 203.0.113.10, 192.0.2.1");
        let x =
            IpDetection::Xff { num_trusted_hops: 0, trusted_cidrs: vec![cidr("192.0.2.0/24")], skip_xff_append: false };
        let d = x.detect(&h, ip("192.0.2.5")).unwrap();
        assert_eq!(d.address, Some(ip("203.0.113.10")));
        assert!(!d.skip_xff_append);
        // A peer outside the trusted CIDRs: no address, and its XFF is not believed.
        let d = x.detect(&h, ip("203.0.113.7")).unwrap();
        assert_eq!(d.address, None);
        let hops = IpDetection::default_xff(1);
        assert_eq!(hops.detect(&h, ip("192.0.2.5")).unwrap().address, Some(ip("203.0.113.10")));
        assert!(hops.detect(&h, ip("192.0.2.5")).unwrap().skip_xff_append);
    }

    #[test]
    fn custom_header_detects_or_rejects() {
        let mut h = HeaderMap::new();
        h.append(b"x-real-ip", b"203.0.113.9");
        let c =
            IpDetection::CustomHeader { name: b"x-real-ip".to_vec(), allow_trusted: true, reject_status: Some(403) };
        assert_eq!(
            c.detect(&h, ip("10.0.0.1")),
            Ok(Detection {
                address: Some(ip("203.0.113.9")),
                allow_trusted_address_checks: true,
                skip_xff_append: true
            })
        );
        assert_eq!(c.detect(&HeaderMap::new(), ip("10.0.0.1")), Err(403));
        let mut bad = HeaderMap::new();
        bad.append(b"x-real-ip", b"not-an-ip");
        assert_eq!(c.detect(&bad, ip("10.0.0.1")), Err(403));
        let lax = IpDetection::CustomHeader { name: b"x-real-ip".to_vec(), allow_trusted: false, reject_status: None };
        assert_eq!(lax.detect(&bad, ip("10.0.0.1")), Ok(Detection::NONE));
    }

    #[test]
    fn reject_status_outside_range_is_403() {
        let cfg = OriginalIpDetection::CustomHeader(sluice_config::hcm::CustomHeaderConfig {
            header_name: "x-ip".into(),
            allow_extension_to_set_address_as_trusted: false,
            reject_with_status: Some(302),
        });
        assert!(matches!(IpDetection::from_config(&cfg), IpDetection::CustomHeader { reject_status: Some(403), .. }));
    }

    #[test]
    fn internal_addresses_need_a_config() {
        assert!(!is_internal_address(None, ip("10.0.0.1")), "no address is internal by default");
        let c = InternalAddressConfig { unix_sockets: false, cidr_ranges: vec![cidr("10.0.0.0/8")] };
        assert!(is_internal_address(Some(&c), ip("10.1.2.3")));
        assert!(!is_internal_address(Some(&c), ip("192.168.0.1")));
        assert!(!is_internal_address(Some(&InternalAddressConfig::default()), ip("10.1.2.3")));
    }

    #[test]
    fn append_uses_a_comma() {
        let mut h = HeaderMap::new();
        append_xff(&mut h, ip("1.2.3.4"));
        assert_eq!(h.get(XFF), Some(&b"1.2.3.4"[..]));
        append_xff(&mut h, ip("::1"));
        assert_eq!(h.get(XFF), Some(&b"1.2.3.4,::1"[..]));
    }
}
