//! RING_HASH: Envoy's ketama-style consistent-hash ring (`RingHashLoadBalancer::Ring`).
//!
//! Built once per host-set change (off the workers) and shared. Each host contributes
//! `scale × normalized_weight` entries, where `scale` gives the lightest host a whole
//! number of entries at `minimum_ring_size` and is capped at `maximum_ring_size`;
//! running sums keep fractional shares stable. Entry `i` of a host hashes the bytes
//! `"<ip:port>_<i>"` with xxHash64 (seed 0), so that a key lands on the same host as it
//! would in Envoy. A lookup finds the first entry whose hash is >= the key (wrapping to
//! the first entry), the same entry Envoy's ketama search finds; attempt `n` moves `n`
//! entries on.

use xxhash_rust::xxh64::xxh64;

use super::WeightedHost;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    hash: u64,
    host: u32,
}

/// A sorted hash ring of host indices.
#[derive(Debug, Default)]
pub struct Ring {
    entries: Vec<Entry>,
    /// Fewest and most entries of one host (Envoy's `min/max_hashes_per_host` gauges).
    pub min_hashes_per_host: u64,
    pub max_hashes_per_host: u64,
}

impl Ring {
    /// Build the ring over `hosts` (normalized weights summing to 1).
    pub fn build(hosts: &[WeightedHost], min_ring_size: u64, max_ring_size: u64) -> Ring {
        let mut ring = Ring::default();
        if hosts.is_empty() {
            return ring;
        }
        let min_weight = hosts.iter().map(|h| h.weight).fold(f64::INFINITY, f64::min);
        let scale = ((min_weight * min_ring_size as f64).ceil() / min_weight).min(max_ring_size as f64);
        let ring_size = scale.ceil() as usize;
        ring.entries.reserve(ring_size);
        ring.min_hashes_per_host = ring_size as u64;
        let mut key = Vec::with_capacity(64);
        let mut current = 0.0f64;
        let mut target = 0.0f64;
        for h in hosts {
            key.clear();
            key.extend_from_slice(h.key.as_bytes());
            key.push(b'_');
            let prefix = key.len();
            target += scale * h.weight;
            let mut i: u64 = 0;
            while current < target {
                key.truncate(prefix);
                push_decimal(&mut key, i);
                ring.entries.push(Entry { hash: xxh64(&key, 0), host: h.index });
                i += 1;
                current += 1.0;
            }
            ring.min_hashes_per_host = ring.min_hashes_per_host.min(i);
            ring.max_hashes_per_host = ring.max_hashes_per_host.max(i);
        }
        ring.entries.sort_by_key(|e| e.hash);
        ring
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The hashes on the ring, in order (tests and diagnostics).
    pub fn hashes(&self) -> impl Iterator<Item = (u64, u32)> + '_ {
        self.entries.iter().map(|e| (e.hash, e.host))
    }

    /// The host owning `h`: the first entry whose hash is >= `h`, wrapping to the
    /// first entry (what Envoy's ketama search returns, duplicates included: the first
    /// of equal hashes), then `attempt` entries on.
    pub fn choose(&self, h: u64, attempt: u32) -> Option<u32> {
        if self.entries.is_empty() {
            return None;
        }
        let len = self.entries.len();
        let mut i = self.entries.partition_point(|e| e.hash < h);
        if i == len {
            i = 0;
        }
        if attempt > 0 {
            i = (i + attempt as usize) % len;
        }
        Some(self.entries[i].host)
    }
}

/// Envoy's ketama search (`RingHashLoadBalancer::Ring::chooseHost`), kept to prove
/// [`Ring::choose`] equivalent to it.
#[cfg(test)]
pub(crate) fn ketama_reference(ring: &Ring, h: u64) -> Option<u32> {
    let entries = &ring.entries;
    if entries.is_empty() {
        return None;
    }
    let len = entries.len() as i64;
    let (mut low, mut high): (i64, i64) = (0, len);
    let mut mid: i64;
    loop {
        mid = (low + high) / 2;
        if mid == len {
            mid = 0;
            break;
        }
        let midval = entries[mid as usize].hash;
        let midval1 = if mid == 0 { 0 } else { entries[mid as usize - 1].hash };
        if h <= midval && h > midval1 {
            break;
        }
        if midval < h {
            low = mid + 1;
        } else {
            high = mid - 1;
        }
        if low > high {
            mid = 0;
            break;
        }
    }
    Some(entries[mid as usize].host)
}

/// Append `n` in decimal without allocating.
fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut k = digits.len();
    loop {
        k -= 1;
        digits[k] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[k..]);
}
