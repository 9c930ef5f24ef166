//! Virtual host selection by `:authority`, in Envoy's order (config_impl.cc
//! `RouteMatcher::findVirtualHost`): exact domain, then suffix wildcards (`*.foo.com`,
//! `*-bar.foo.com`) longest first, then prefix wildcards (`foo.*`, `foo-*`) longest
//! first, then `*`. A wildcard never matches an empty remainder (`*.foo.com` does not
//! match `.foo.com`). With `ignore_port_in_host_matching` the port is stripped from the
//! host first (IPv6 literals keep their brackets).
//!
//! The tables are built at load: domains lower-cased and sorted, wildcards grouped by
//! length. A lookup lower-cases nothing and allocates nothing: it binary-searches with
//! an ASCII-case-folding comparison.

use std::cmp::Ordering;

/// Index of a virtual host in its route table.
pub type VhostIndex = usize;

#[derive(Debug, Clone, Default)]
struct Group {
    /// Length of the wildcard without its `*`.
    len: usize,
    /// Sorted by lower-cased key.
    entries: Vec<(Box<[u8]>, VhostIndex)>,
}

/// The compiled domain tables of one route configuration.
#[derive(Debug, Clone, Default)]
pub struct DomainTable {
    exact: Vec<(Box<[u8]>, VhostIndex)>,
    /// Longest first.
    suffixes: Vec<Group>,
    /// Longest first.
    prefixes: Vec<Group>,
    default: Option<VhostIndex>,
    ignore_port: bool,
}

/// Compare a request host (any case) with a lower-case key.
fn cmp_folded(host: &[u8], key: &[u8]) -> Ordering {
    for (a, b) in host.iter().zip(key) {
        match a.to_ascii_lowercase().cmp(b) {
            Ordering::Equal => continue,
            other => return other,
        }
    }
    host.len().cmp(&key.len())
}

fn find(entries: &[(Box<[u8]>, VhostIndex)], host: &[u8]) -> Option<VhostIndex> {
    entries.binary_search_by(|(k, _)| cmp_folded(host, k).reverse()).ok().map(|i| entries[i].1)
}

fn insert_group(groups: &mut Vec<Group>, key: &[u8], vh: VhostIndex) {
    match groups.iter_mut().find(|g| g.len == key.len()) {
        Some(g) => g.entries.push((key.into(), vh)),
        None => groups.push(Group { len: key.len(), entries: vec![(key.into(), vh)] }),
    }
}

fn finish_groups(groups: &mut [Group]) {
    groups.sort_by_key(|g| std::cmp::Reverse(g.len));
    for g in groups {
        g.entries.sort_by(|a, b| a.0.cmp(&b.0));
    }
}

/// `HeaderUtility::getPortStart`: the index of the `:` before a port, if any.
pub fn port_start(host: &str) -> Option<usize> {
    let colon = host.rfind(':')?;
    match host.rfind(']') {
        Some(v6_end) if v6_end > colon => None,
        _ => Some(colon),
    }
}

impl DomainTable {
    /// Build from `(lower-cased domains, virtual host)` pairs; the config has already
    /// rejected duplicates and a second `*`.
    pub fn new<'a>(vhosts: impl IntoIterator<Item = (&'a [String], VhostIndex)>, ignore_port: bool) -> DomainTable {
        let mut t = DomainTable { ignore_port, ..DomainTable::default() };
        for (domains, vh) in vhosts {
            for d in domains {
                let b = d.as_bytes();
                if d == "*" {
                    t.default.get_or_insert(vh);
                } else if let Some(rest) = b.strip_prefix(b"*") {
                    insert_group(&mut t.suffixes, rest, vh);
                } else if let Some(rest) = b.strip_suffix(b"*") {
                    insert_group(&mut t.prefixes, rest, vh);
                } else {
                    t.exact.push((b.into(), vh));
                }
            }
        }
        t.exact.sort_by(|a, b| a.0.cmp(&b.0));
        finish_groups(&mut t.suffixes);
        finish_groups(&mut t.prefixes);
        t
    }

    /// The virtual host for `authority` (the Host header); `None` when nothing matches
    /// (Envoy answers 404). An empty authority means "no Host header".
    pub fn find(&self, authority: &str) -> Option<VhostIndex> {
        // Fast path: only a default virtual host (Envoy does this before reading Host).
        if self.exact.is_empty() && self.suffixes.is_empty() && self.prefixes.is_empty() {
            return self.default;
        }
        if authority.is_empty() {
            return None;
        }
        let host = match (self.ignore_port, port_start(authority)) {
            (true, Some(i)) => &authority[..i],
            _ => authority,
        }
        .as_bytes();
        if let Some(vh) = find(&self.exact, host) {
            return Some(vh);
        }
        for g in &self.suffixes {
            if g.len >= host.len() {
                continue;
            }
            if let Some(vh) = find(&g.entries, &host[host.len() - g.len..]) {
                return Some(vh);
            }
        }
        for g in &self.prefixes {
            if g.len >= host.len() {
                continue;
            }
            if let Some(vh) = find(&g.entries, &host[..g.len]) {
                return Some(vh);
            }
        }
        self.default
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(vhosts: &[&[&str]], ignore_port: bool) -> DomainTable {
        let owned: Vec<Vec<String>> = vhosts.iter().map(|d| d.iter().map(|s| s.to_string()).collect()).collect();
        DomainTable::new(owned.iter().enumerate().map(|(i, d)| (d.as_slice(), i)), ignore_port)
    }

    #[test]
    fn envoy_order() {
        let t = table(
            &[
                &["www.lyft.com"],           // 0
                &["*.lyft.com"],             // 1
                &["*-bar.lyft.com"],         // 2
                &["www.*"],                  // 3
                &["www.lyft.*"],             // 4
                &["*"],                      // 5
                &["api-*", "exact.example"], // 6
            ],
            false,
        );
        assert_eq!(t.find("www.lyft.com"), Some(0));
        assert_eq!(t.find("WWW.LYFT.COM"), Some(0));
        assert_eq!(t.find("foo.lyft.com"), Some(1));
        // Longest suffix first: `*-bar.lyft.com` before `*.lyft.com`.
        assert_eq!(t.find("foo-bar.lyft.com"), Some(2));
        // Suffix wildcards beat prefix wildcards.
        assert_eq!(t.find("www.x.lyft.com"), Some(1));
        // Longest prefix first.
        assert_eq!(t.find("www.lyft.org"), Some(4));
        assert_eq!(t.find("www.example.org"), Some(3));
        assert_eq!(t.find("api-v2.example"), Some(6));
        assert_eq!(t.find("exact.example"), Some(6));
        assert_eq!(t.find("unknown.org"), Some(5));
        // A wildcard never matches the empty string.
        assert_eq!(t.find(".lyft.com"), Some(5));
        assert_eq!(t.find("-bar.lyft.com"), Some(1));
        assert_eq!(t.find("www."), Some(5));
        assert_eq!(t.find(""), None);
    }

    #[test]
    fn ports() {
        let t = table(&[&["example.com"], &["example.com:8080"], &["[::1]"]], false);
        assert_eq!(t.find("example.com:8080"), Some(1));
        assert_eq!(t.find("example.com:9090"), None);
        let t = table(&[&["example.com"], &["[::1]"]], true);
        assert_eq!(t.find("example.com:9090"), Some(0));
        assert_eq!(t.find("[::1]:80"), Some(1));
        assert_eq!(t.find("[::1]"), Some(1));
        assert_eq!(port_start("[::1]"), None);
        assert_eq!(port_start("[::1]:80"), Some(5));
        assert_eq!(port_start("h:"), Some(1));
    }

    #[test]
    fn default_only_fast_path() {
        let t = table(&[&["*"]], false);
        assert_eq!(t.find(""), Some(0));
        assert_eq!(t.find("anything"), Some(0));
        let t = table(&[&["a.com"]], false);
        assert_eq!(t.find("b.com"), None);
    }
}
