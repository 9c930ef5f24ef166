//! Longest-prefix match over CIDR ranges, as Envoy's exclusive LC-trie answers it:
//! only the entry of the longest matching prefix is returned.
//!
//! Built once at load; a lookup masks the address once per distinct prefix length
//! (longest first) and binary-searches that length's sorted prefixes. No allocation,
//! no hashing. An IPv4-mapped IPv6 address is looked up as the IPv4 address, as Envoy
//! sees it on a dual-stack socket.

use std::net::IpAddr;

use sluice_config::address::CidrRange;

/// A prefix as a sortable key: address family, length and the masked address bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct PrefixKey {
    v6: bool,
    len: u8,
    bits: u128,
}

impl PrefixKey {
    pub(crate) fn of(range: &CidrRange) -> PrefixKey {
        let (v6, bits) = family_bits(range.address);
        PrefixKey { v6, len: range.prefix_len, bits: mask(bits, v6, range.prefix_len) }
    }

    /// `0.0.0.0/0` and `::/0`: what a criterion without ranges matches.
    pub(crate) const CATCH_ALL: [PrefixKey; 2] =
        [PrefixKey { v6: false, len: 0, bits: 0 }, PrefixKey { v6: true, len: 0, bits: 0 }];
}

/// The address as (is IPv6, bits left-aligned in the family's width).
fn family_bits(ip: IpAddr) -> (bool, u128) {
    match normalize(ip) {
        IpAddr::V4(a) => (false, u128::from(u32::from(a))),
        IpAddr::V6(a) => (true, u128::from(a)),
    }
}

/// IPv4-mapped IPv6 addresses become IPv4.
pub(crate) fn normalize(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

fn mask(bits: u128, v6: bool, len: u8) -> u128 {
    let width: u32 = if v6 { 128 } else { 32 };
    let len = u32::from(len).min(width);
    if len == 0 {
        return 0;
    }
    let ones = u128::MAX >> (128 - width);
    bits & ((ones << (width - len)) & ones)
}

/// Prefixes of one length, sorted by their bits.
#[derive(Debug, Clone)]
struct Level<T> {
    len: u8,
    entries: Vec<(u128, T)>,
}

/// The frozen table.
#[derive(Debug, Clone)]
pub(crate) struct PrefixTable<T> {
    v4: Vec<Level<T>>,
    v6: Vec<Level<T>>,
}

impl<T> PrefixTable<T> {
    /// Freeze entries given in key order (a `BTreeMap`'s iteration order).
    pub(crate) fn from_sorted(entries: impl IntoIterator<Item = (PrefixKey, T)>) -> PrefixTable<T> {
        let mut table = PrefixTable { v4: Vec::new(), v6: Vec::new() };
        for (key, value) in entries {
            let levels = if key.v6 { &mut table.v6 } else { &mut table.v4 };
            match levels.last_mut() {
                Some(level) if level.len == key.len => level.entries.push((key.bits, value)),
                _ => levels.push(Level { len: key.len, entries: vec![(key.bits, value)] }),
            }
        }
        // Longest prefixes first; within a level the bits are already ascending.
        table.v4.reverse();
        table.v6.reverse();
        table
    }

    /// The entry of the longest prefix holding `ip`.
    pub(crate) fn longest_match(&self, ip: IpAddr) -> Option<&T> {
        let (v6, bits) = family_bits(ip);
        let levels = if v6 { &self.v6 } else { &self.v4 };
        levels.iter().find_map(|level| {
            let key = mask(bits, v6, level.len);
            level.entries.binary_search_by_key(&key, |(b, _)| *b).ok().map(|i| &level.entries[i].1)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn table(ranges: &[(&str, u32)]) -> PrefixTable<u32> {
        let map: BTreeMap<PrefixKey, u32> = ranges
            .iter()
            .flat_map(|(r, v)| {
                if r.is_empty() {
                    PrefixKey::CATCH_ALL.iter().map(|k| (*k, *v)).collect::<Vec<_>>()
                } else {
                    vec![(PrefixKey::of(&r.parse().unwrap()), *v)]
                }
            })
            .collect();
        PrefixTable::from_sorted(map)
    }

    fn get(t: &PrefixTable<u32>, ip: &str) -> Option<u32> {
        t.longest_match(ip.parse().unwrap()).copied()
    }

    #[test]
    fn longest_prefix_wins() {
        let t = table(&[("10.0.0.0/8", 8), ("10.1.0.0/16", 16), ("10.1.2.3/32", 32), ("", 0)]);
        assert_eq!(get(&t, "10.1.2.3"), Some(32));
        assert_eq!(get(&t, "10.1.2.4"), Some(16));
        assert_eq!(get(&t, "10.2.0.1"), Some(8));
        assert_eq!(get(&t, "192.0.2.1"), Some(0));
        assert_eq!(get(&t, "2001:db8::1"), Some(0));
        assert_eq!(get(&t, "::ffff:10.1.2.3"), Some(32), "IPv4-mapped");
    }

    #[test]
    fn families_are_separate() {
        let t = table(&[("10.0.0.0/8", 4), ("2001:db8::/32", 6)]);
        assert_eq!(get(&t, "10.9.9.9"), Some(4));
        assert_eq!(get(&t, "2001:db8:1::1"), Some(6));
        assert_eq!(get(&t, "2001:db9::1"), None);
        assert_eq!(get(&t, "11.0.0.1"), None);
        let t = table(&[("::/0", 6)]);
        assert_eq!(get(&t, "10.0.0.1"), None, "::/0 holds no IPv4 address");
    }

    #[test]
    fn masks_at_the_edges() {
        assert_eq!(mask(u128::from(u32::MAX), false, 32), u128::from(u32::MAX));
        assert_eq!(mask(u128::from(u32::MAX), false, 1), 1 << 31);
        assert_eq!(mask(u128::MAX, true, 128), u128::MAX);
        assert_eq!(mask(u128::MAX, true, 1), 1 << 127);
        assert_eq!(mask(u128::MAX, true, 0), 0);
    }
}
