//! A header map that allocates nothing in steady state.
//!
//! Names are stored lower-cased (HTTP/1 names are case-insensitive; Envoy lower-cases
//! them too) and values as raw bytes, all in one arena that a connection reuses from
//! request to request. Order is kept; repeated names are separate entries, as on the
//! wire.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    name_start: u32,
    name_len: u32,
    value_start: u32,
    value_len: u32,
}

/// An ordered multimap of lower-cased header names to byte values.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct HeaderMap {
    arena: Vec<u8>,
    entries: Vec<Entry>,
    /// Bytes of the arena no longer referenced (removed or replaced entries).
    garbage: usize,
}

impl HeaderMap {
    pub fn new() -> Self {
        Self::default()
    }

    /// Forget every header, keeping the allocations.
    pub fn clear(&mut self) {
        self.arena.clear();
        self.entries.clear();
        self.garbage = 0;
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Append a header; `name` is lower-cased on the way in.
    pub fn append(&mut self, name: &[u8], value: &[u8]) {
        self.maybe_compact();
        let name_start = self.arena.len() as u32;
        self.arena.extend_from_slice(name);
        self.arena[name_start as usize..].make_ascii_lowercase();
        let value_start = self.arena.len() as u32;
        self.arena.extend_from_slice(value);
        self.entries.push(Entry {
            name_start,
            name_len: name.len() as u32,
            value_start,
            value_len: value.len() as u32,
        });
    }

    fn name_of(&self, e: &Entry) -> &[u8] {
        &self.arena[e.name_start as usize..(e.name_start + e.name_len) as usize]
    }

    fn value_of(&self, e: &Entry) -> &[u8] {
        &self.arena[e.value_start as usize..(e.value_start + e.value_len) as usize]
    }

    /// The first value of `name` (which must be lower-case).
    pub fn get(&self, name: &[u8]) -> Option<&[u8]> {
        debug_assert!(!name.iter().any(u8::is_ascii_uppercase), "look up lower-case names");
        self.entries.iter().find(|e| self.name_of(e) == name).map(|e| self.value_of(e))
    }

    /// The first value of `name` as UTF-8 text, if it is.
    pub fn get_str(&self, name: &[u8]) -> Option<&str> {
        self.get(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    pub fn contains(&self, name: &[u8]) -> bool {
        self.get(name).is_some()
    }

    /// Every value of `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.entries.iter().filter(move |e| self.name_of(e) == name).map(|e| self.value_of(e))
    }

    /// How many entries carry `name`.
    pub fn count(&self, name: &[u8]) -> usize {
        self.entries.iter().filter(|e| self.name_of(e) == name).count()
    }

    /// Remove every entry of `name`; returns how many were removed.
    pub fn remove(&mut self, name: &[u8]) -> usize {
        let before = self.entries.len();
        let arena = &self.arena;
        let mut freed = 0;
        self.entries.retain(|e| {
            let keep = &arena[e.name_start as usize..(e.name_start + e.name_len) as usize] != name;
            if !keep {
                freed += (e.name_len + e.value_len) as usize;
            }
            keep
        });
        self.garbage += freed;
        before - self.entries.len()
    }

    /// Remove entries for which `f(name, value)` is false.
    pub fn retain(&mut self, mut f: impl FnMut(&[u8], &[u8]) -> bool) {
        let arena = &self.arena;
        let mut freed = 0;
        self.entries.retain(|e| {
            let name = &arena[e.name_start as usize..(e.name_start + e.name_len) as usize];
            let value = &arena[e.value_start as usize..(e.value_start + e.value_len) as usize];
            let keep = f(name, value);
            if !keep {
                freed += (e.name_len + e.value_len) as usize;
            }
            keep
        });
        self.garbage += freed;
    }

    /// Replace every `name` entry by one with `value` (added at the end if absent).
    pub fn set(&mut self, name: &[u8], value: &[u8]) {
        self.remove(name);
        self.append(name, value);
    }

    /// Iterate `(name, value)` pairs in order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.entries.iter().map(|e| (self.name_of(e), self.value_of(e)))
    }

    /// Total bytes of names and values (for size limits).
    pub fn byte_len(&self) -> usize {
        self.entries.iter().map(|e| (e.name_len + e.value_len) as usize).sum()
    }

    fn maybe_compact(&mut self) {
        if self.garbage < 4096 || self.garbage * 2 < self.arena.len() {
            return;
        }
        let mut arena = Vec::with_capacity(self.arena.len() - self.garbage);
        for e in &mut self.entries {
            let name = &self.arena[e.name_start as usize..(e.name_start + e.name_len) as usize];
            e.name_start = arena.len() as u32;
            arena.extend_from_slice(name);
            let value = &self.arena[e.value_start as usize..(e.value_start + e.value_len) as usize];
            e.value_start = arena.len() as u32;
            arena.extend_from_slice(value);
        }
        self.arena = arena;
        self.garbage = 0;
    }
}

impl fmt::Debug for HeaderMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|(n, v)| (String::from_utf8_lossy(n), String::from_utf8_lossy(v))))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_get_remove_set() {
        let mut h = HeaderMap::new();
        h.append(b"Host", b"example.com");
        h.append(b"X-A", b"1");
        h.append(b"x-a", b"2");
        assert_eq!(h.get(b"host"), Some(&b"example.com"[..]));
        assert_eq!(h.get_all(b"x-a").collect::<Vec<_>>(), vec![&b"1"[..], &b"2"[..]]);
        assert_eq!(h.count(b"x-a"), 2);
        assert_eq!(h.remove(b"x-a"), 2);
        assert!(!h.contains(b"x-a"));
        h.set(b"host", b"other");
        assert_eq!(h.get_str(b"host"), Some("other"));
        assert_eq!(h.len(), 1);
        h.clear();
        assert!(h.is_empty());
    }

    #[test]
    fn compaction_keeps_values() {
        let mut h = HeaderMap::new();
        for i in 0..2000 {
            h.set(b"x-counter", format!("{i:08}").as_bytes());
            h.append(b"x-keep", b"k");
            h.remove(b"x-keep");
        }
        assert_eq!(h.get_str(b"x-counter"), Some("00001999"));
        assert!(h.arena.len() < 8192, "arena compacted: {}", h.arena.len());
    }
}
