//! `envoy.config.core.v3.Address`, `SocketAddress` and `CidrRange`.

use std::net::{IpAddr, SocketAddr};

use crate::decode::{Decode, Decoder, Fields};
use crate::error::ErrorKind;
use crate::node::Node;
use crate::proto_enum;

proto_enum! {
    /// `SocketAddress.Protocol`. Only TCP is supported.
    pub enum Protocol { Tcp = ("TCP", 0), Udp = ("UDP", 1) }
}

/// `core.v3.SocketAddress`: an IP (or, for DNS clusters, a host name) and a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketAddress {
    /// As written: an IP literal, or a host name where DNS resolution applies.
    pub address: String,
    pub port_value: u16,
    pub ipv4_compat: bool,
    /// Line of the message, for errors found after decoding.
    pub line: u32,
}

impl SocketAddress {
    /// The address as an IP, if it is an IP literal.
    pub fn ip(&self) -> Option<IpAddr> {
        self.address.parse().ok()
    }

    /// The address as `ip:port`, if it is an IP literal.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        Some(SocketAddr::new(self.ip()?, self.port_value))
    }
}

impl std::fmt::Display for SocketAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.ip() {
            Some(IpAddr::V6(ip)) => write!(f, "[{ip}]:{}", self.port_value),
            _ => write!(f, "{}:{}", self.address, self.port_value),
        }
    }
}

/// Decode a `core.v3.Address` (which must hold a `socket_address`).
impl Decode for SocketAddress {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        f.unsupported(d, &["pipe", "envoy_internal_address"]);
        let sa = f.take("socket_address");
        let sa_path = f.field_path("socket_address");
        f.finish(d);
        let Some(sa) = sa else {
            d.error(ErrorKind::Missing, &sa_path, node.line, "an address needs a `socket_address`");
            return None;
        };
        let mut f = Fields::of(d, sa, &sa_path)?;
        let address: Option<String> = f.req(d, "address");
        let port: u32 = f.or(d, "port_value", 0);
        let protocol: Protocol = f.or(d, "protocol", Protocol::Tcp);
        let ipv4_compat = f.or(d, "ipv4_compat", false);
        f.unsupported(d, &["named_port", "resolver_name"]);
        f.empty_only(
            d,
            "network_namespace_filepath",
            "sluice binds and connects in its own network namespace only; remove it",
        );
        let line = f.line();
        f.finish(d);
        if protocol != Protocol::Tcp {
            d.error(ErrorKind::Unsupported, &format!("{sa_path}.protocol"), line, "only TCP is supported");
        }
        let address = address?;
        if address.is_empty() {
            d.error(ErrorKind::Invalid, &format!("{sa_path}.address"), line, "must not be empty");
            return None;
        }
        if port > 65535 {
            d.error(ErrorKind::Invalid, &format!("{sa_path}.port_value"), line, "must be at most 65535");
            return None;
        }
        Some(SocketAddress { address, port_value: port as u16, ipv4_compat, line })
    }
}

/// `core.v3.CidrRange`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CidrRange {
    /// The prefix with host bits cleared.
    pub address: IpAddr,
    pub prefix_len: u8,
}

impl CidrRange {
    pub fn new(address: IpAddr, prefix_len: u8) -> Self {
        let address = match address {
            IpAddr::V4(a) => {
                let bits = u32::from(a);
                let mask = if prefix_len == 0 { 0 } else { u32::MAX << (32 - prefix_len as u32) };
                IpAddr::V4((bits & mask).into())
            }
            IpAddr::V6(a) => {
                let bits = u128::from(a);
                let mask = if prefix_len == 0 { 0 } else { u128::MAX << (128 - prefix_len as u32) };
                IpAddr::V6((bits & mask).into())
            }
        };
        CidrRange { address, prefix_len }
    }

    /// Whether `ip` is inside the range (an IPv4 range never holds an IPv6 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.address, ip) {
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => {
                CidrRange::new(ip, self.prefix_len).address == self.address
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for CidrRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix_len)
    }
}

impl std::str::FromStr for CidrRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (ip, len) = s.split_once('/').ok_or_else(|| format!("`{s}` is not ADDRESS/LEN"))?;
        let ip: IpAddr = ip.parse().map_err(|_| format!("`{ip}` is not an IP address"))?;
        let len: u8 = len.parse().map_err(|_| format!("`{len}` is not a prefix length"))?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        if len > max {
            return Err(format!("prefix length {len} exceeds {max}"));
        }
        Ok(CidrRange::new(ip, len))
    }
}

impl Decode for CidrRange {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let prefix: Option<String> = f.req(d, "address_prefix");
        let len: u32 = f.or(d, "prefix_len", 0);
        f.finish(d);
        let prefix = prefix?;
        let Ok(ip) = prefix.parse::<IpAddr>() else {
            d.invalid(node, &format!("{path}.address_prefix"), format!("`{prefix}` is not an IP address"));
            return None;
        };
        let max = if ip.is_ipv4() { 32 } else { 128 };
        if len > max {
            d.invalid(node, &format!("{path}.prefix_len"), format!("{len} exceeds {max}"));
            return None;
        }
        Some(CidrRange::new(ip, len as u8))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_contains() {
        let r: CidrRange = "10.99.0.0/16".parse().unwrap();
        assert!(r.contains("10.99.3.4".parse().unwrap()));
        assert!(!r.contains("10.98.3.4".parse().unwrap()));
        assert!(!r.contains("::1".parse().unwrap()));
        let all: CidrRange = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("1.2.3.4".parse().unwrap()));
        let host: CidrRange = "10.0.0.1/32".parse().unwrap();
        assert!(host.contains("10.0.0.1".parse().unwrap()));
        assert!(!host.contains("10.0.0.2".parse().unwrap()));
        assert_eq!(CidrRange::new("10.1.2.3".parse().unwrap(), 8).to_string(), "10.0.0.0/8");
    }
}
