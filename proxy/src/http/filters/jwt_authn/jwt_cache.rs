//! A provider's cache of verified tokens (Envoy's jwt_authn `JwtCache`, configured by
//! `jwt_cache_config`): a bounded LRU keyed by the token string, one per provider per
//! worker. A hit skips the parse and the signature check, not the claim checks: the
//! caller still judges the cached token's issuer, times and audiences on every request,
//! as Envoy's authenticator does. A lookup drops an entry whose `exp` has passed (with
//! jwt_verify_lib's default 60 s of skew, as Envoy's cache); a token longer than
//! `jwt_max_token_size` is never inserted.
//!
//! Lookups and inserts are O(1) (a hash map into a slab of entries linked in use order);
//! the cache never grows past its size, and nothing here reads the clock. A token is
//! hashed by its length and its last [`HASHED_TAIL`] bytes (its signature's, which
//! differ between any two tokens a key signed) rather than all of its few hundred bytes;
//! keys are still compared whole, and only verified tokens are ever inserted, so a
//! client cannot fill a bucket with tokens it made up.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::rc::Rc;

use sluice_config::filters::jwt_authn::JwtCacheConfig;

use super::jwt::Jwt;
use super::status::Status;

/// jwt_verify_lib's `kClockSkewInSecond`, which Envoy's cache lookup uses.
const CACHE_SKEW: u64 = 60;
const NIL: usize = usize::MAX;

/// How many of a token's last bytes its hash reads.
pub const HASHED_TAIL: usize = 32;

/// Hashes a token (`str`'s `Hash`: its bytes, then a `0xff` terminator) by its length
/// and its last [`HASHED_TAIL`] bytes, with FxHash's mixing.
#[derive(Default, Clone)]
pub struct TokenHasher(rustc_hash::FxHasher);

impl Hasher for TokenHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.write_usize(bytes.len());
        self.0.write(&bytes[bytes.len().saturating_sub(HASHED_TAIL)..]);
    }

    fn write_u8(&mut self, i: u8) {
        self.0.write_u8(i);
    }

    fn finish(&self) -> u64 {
        self.0.finish()
    }
}

type TokenMap = HashMap<Box<str>, usize, BuildHasherDefault<TokenHasher>>;

#[derive(Debug)]
struct Entry {
    jwt: Rc<Jwt>,
    /// Toward the most recently used.
    prev: usize,
    /// Toward the least recently used.
    next: usize,
}

/// One provider's verified tokens on one worker.
#[derive(Debug)]
pub struct JwtCache {
    map: TokenMap,
    slots: Vec<Entry>,
    free: Vec<usize>,
    /// Most and least recently used.
    head: usize,
    tail: usize,
    capacity: usize,
    max_token_size: usize,
}

impl JwtCache {
    pub fn new(c: &JwtCacheConfig) -> JwtCache {
        JwtCache {
            map: TokenMap::default(),
            slots: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
            capacity: c.jwt_cache_size.max(1) as usize,
            max_token_size: c.jwt_max_token_size as usize,
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The verified token `token`, unless absent or expired at `now` (Unix seconds);
    /// an expired one is dropped.
    pub fn lookup(&mut self, token: &str, now: u64) -> Option<Rc<Jwt>> {
        let i = *self.map.get(token)?;
        if self.slots[i].jwt.verify_time(now, CACHE_SKEW) == Status::JwtExpired {
            self.unlink(i);
            self.map.remove(token);
            self.free.push(i);
            return None;
        }
        self.unlink(i);
        self.push_front(i);
        Some(Rc::clone(&self.slots[i].jwt))
    }

    /// Keep `jwt` (verified), evicting the least recently used entry when full.
    pub fn insert(&mut self, jwt: Rc<Jwt>) {
        if jwt.token().len() > self.max_token_size {
            return;
        }
        if let Some(&i) = self.map.get(jwt.token()) {
            self.slots[i].jwt = jwt;
            self.unlink(i);
            self.push_front(i);
            return;
        }
        let i = if self.map.len() >= self.capacity && self.tail != NIL {
            let i = self.tail;
            self.unlink(i);
            self.map.remove(self.slots[i].jwt.token());
            self.slots[i].jwt = Rc::clone(&jwt);
            i
        } else if let Some(i) = self.free.pop() {
            self.slots[i].jwt = Rc::clone(&jwt);
            i
        } else {
            self.slots.push(Entry { jwt: Rc::clone(&jwt), prev: NIL, next: NIL });
            self.slots.len() - 1
        };
        self.map.insert(jwt.token().into(), i);
        self.push_front(i);
    }

    fn unlink(&mut self, i: usize) {
        let (prev, next) = (self.slots[i].prev, self.slots[i].next);
        match prev {
            NIL => self.head = next,
            p => self.slots[p].next = next,
        }
        match next {
            NIL => self.tail = prev,
            n => self.slots[n].prev = prev,
        }
        self.slots[i].prev = NIL;
        self.slots[i].next = NIL;
    }

    fn push_front(&mut self, i: usize) {
        self.slots[i].prev = NIL;
        self.slots[i].next = self.head;
        match self.head {
            NIL => self.tail = i,
            h => self.slots[h].prev = i,
        }
        self.head = i;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::http::filters::jwt_authn::jwt::tests::b64;

    /// A parsed token (the signature is not checked here) with `sub` and `exp`.
    fn jwt(sub: &str, exp: u64) -> Rc<Jwt> {
        let t = format!("{}.{}.c2ln", b64(r#"{"alg":"HS256"}"#), b64(&format!(r#"{{"sub":"{sub}","exp":{exp}}}"#)));
        Rc::new(Jwt::parse(&t).unwrap())
    }

    fn cache(size: u32, max: u32) -> JwtCache {
        JwtCache::new(&JwtCacheConfig { jwt_cache_size: size, jwt_max_token_size: max })
    }

    #[test]
    fn a_verified_token_is_found_by_its_string() {
        let mut c = cache(10, 4096);
        let a = jwt("a", 1000);
        assert!(c.lookup(a.token(), 500).is_none());
        c.insert(Rc::clone(&a));
        let hit = c.lookup(a.token(), 500).expect("hit");
        assert_eq!(hit.sub, "a");
        assert!(c.lookup(jwt("b", 1000).token(), 500).is_none());
        c.insert(Rc::clone(&a));
        assert_eq!(c.len(), 1, "a second insert of the same token replaces it");
    }

    #[test]
    fn the_least_recently_used_token_is_evicted() {
        let mut c = cache(2, 4096);
        let (a, b, d) = (jwt("a", 1000), jwt("b", 1000), jwt("d", 1000));
        c.insert(Rc::clone(&a));
        c.insert(Rc::clone(&b));
        assert!(c.lookup(a.token(), 0).is_some(), "a is now the most recent");
        c.insert(Rc::clone(&d));
        assert_eq!(c.len(), 2);
        assert!(c.lookup(b.token(), 0).is_none(), "b was the least recently used");
        assert!(c.lookup(a.token(), 0).is_some());
        assert!(c.lookup(d.token(), 0).is_some());
        for i in 0..50 {
            c.insert(jwt(&format!("n{i}"), 1000));
        }
        assert_eq!(c.len(), 2, "never grows past its size");
        assert!(c.lookup(jwt("n49", 1000).token(), 0).is_some());
        assert!(c.lookup(jwt("n48", 1000).token(), 0).is_some());
    }

    #[test]
    fn an_expired_token_is_dropped_on_lookup() {
        let mut c = cache(4, 4096);
        let a = jwt("a", 1000);
        c.insert(Rc::clone(&a));
        assert!(c.lookup(a.token(), 1060).is_some(), "60 s of skew");
        assert!(c.lookup(a.token(), 1061).is_none());
        assert!(c.is_empty());
        assert!(c.lookup(a.token(), 500).is_none(), "gone, not merely hidden");
        c.insert(Rc::clone(&a));
        assert!(c.lookup(a.token(), 500).is_some(), "its slot is reused");
        let forever = jwt("f", 0);
        c.insert(Rc::clone(&forever));
        assert!(c.lookup(forever.token(), u64::MAX / 2).is_some(), "no exp: never expires");
    }

    #[test]
    fn tokens_alike_in_their_hashed_tail_are_told_apart() {
        // Same signature text, different payloads: one hash, two entries.
        let mk = |sub: &str| {
            let t =
                format!("{}.{}.{}", b64(r#"{"alg":"HS256"}"#), b64(&format!(r#"{{"sub":"{sub}"}}"#)), "s".repeat(40));
            Rc::new(Jwt::parse(&t).unwrap())
        };
        let (a, b) = (mk("a"), mk("b"));
        assert_eq!(a.token()[a.token().len() - HASHED_TAIL..], b.token()[b.token().len() - HASHED_TAIL..]);
        let mut c = cache(4, 4096);
        c.insert(Rc::clone(&a));
        assert!(c.lookup(b.token(), 0).is_none(), "a tail match is not a hit");
        c.insert(Rc::clone(&b));
        assert_eq!(c.lookup(a.token(), 0).expect("a").sub, "a");
        assert_eq!(c.lookup(b.token(), 0).expect("b").sub, "b");
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn a_token_longer_than_jwt_max_token_size_is_not_cached() {
        let a = jwt("a", 1000);
        let mut c = cache(4, a.token().len() as u32 - 1);
        c.insert(Rc::clone(&a));
        assert!(c.lookup(a.token(), 0).is_none());
        let mut c = cache(4, a.token().len() as u32);
        c.insert(Rc::clone(&a));
        assert!(c.lookup(a.token(), 0).is_some(), "exactly the limit is cached");
    }
}
