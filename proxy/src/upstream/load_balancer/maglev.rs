//! MAGLEV: Envoy's Maglev table (`OriginalMaglevTable`, paper section 3.4, listing 1).
//!
//! Built once per host-set change (off the workers) and shared. Hosts are sorted by
//! their hash key (`ip:port`) so the fill order is stable; each host's permutation
//! starts at `xxHash64(key, seed 0) % size` and steps by
//! `xxHash64(key, seed 1) % (size − 1) + 1`. Hosts take turns claiming their next free
//! slot, a host of normalized weight `w` taking a turn every `max_weight / w`
//! iterations, until the table (a prime `table_size`) is full. A lookup is
//! `table[hash % size]`; attempt `n` flips the hash with `2^64 − n` as Envoy does.

use xxhash_rust::xxh64::xxh64;

use super::WeightedHost;

const EMPTY: u32 = u32::MAX;

/// A filled Maglev lookup table of host indices.
#[derive(Debug, Default)]
pub struct Maglev {
    table: Vec<u32>,
    /// Fewest and most slots of one host (Envoy's `min/max_entries_per_host` gauges).
    pub min_entries_per_host: u64,
    pub max_entries_per_host: u64,
}

struct BuildEntry {
    host: u32,
    offset: u64,
    skip: u64,
    weight: f64,
    target_weight: f64,
    next: u64,
    count: u64,
}

impl Maglev {
    /// Fill a table of `table_size` (a prime) over `hosts` (normalized weights).
    pub fn build(hosts: &[WeightedHost], table_size: u64) -> Maglev {
        let mut m = Maglev::default();
        if hosts.is_empty() || table_size < 2 {
            return m;
        }
        let max_weight = hosts.iter().map(|h| h.weight).fold(0.0, f64::max);
        let mut sorted: Vec<&WeightedHost> = hosts.iter().collect();
        sorted.sort_by(|a, b| a.key.cmp(&b.key).then(a.index.cmp(&b.index)));
        let mut entries: Vec<BuildEntry> = sorted
            .iter()
            .map(|h| BuildEntry {
                host: h.index,
                offset: xxh64(h.key.as_bytes(), 0) % table_size,
                skip: xxh64(h.key.as_bytes(), 1) % (table_size - 1) + 1,
                weight: h.weight,
                target_weight: 0.0,
                next: 0,
                count: 0,
            })
            .collect();
        let size = table_size as usize;
        m.table = vec![EMPTY; size];
        let permutation = |e: &BuildEntry| (e.offset.wrapping_add(e.skip.wrapping_mul(e.next)) % table_size) as usize;
        let mut filled = 0usize;
        let mut iteration: u32 = 1;
        while filled < size {
            for e in entries.iter_mut() {
                if filled >= size {
                    break;
                }
                if f64::from(iteration) * e.weight < e.target_weight {
                    continue;
                }
                e.target_weight += max_weight;
                let mut c = permutation(e);
                while m.table[c] != EMPTY {
                    e.next += 1;
                    c = permutation(e);
                }
                m.table[c] = e.host;
                e.next += 1;
                e.count += 1;
                filled += 1;
            }
            iteration += 1;
        }
        m.min_entries_per_host = entries.iter().map(|e| e.count).min().unwrap_or(0);
        m.max_entries_per_host = entries.iter().map(|e| e.count).max().unwrap_or(0);
        m
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// The table's slots (tests and diagnostics).
    pub fn slots(&self) -> &[u32] {
        &self.table
    }

    pub fn choose(&self, mut hash: u64, attempt: u32) -> Option<u32> {
        if self.table.is_empty() {
            return None;
        }
        if attempt > 0 {
            hash ^= u64::MAX.wrapping_sub(u64::from(attempt)).wrapping_add(1);
        }
        Some(self.table[(hash % self.table.len() as u64) as usize])
    }
}
