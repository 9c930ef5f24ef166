//! Warming under ADS, as Envoy's: a new CDS cluster whose endpoints come over ADS is
//! left out of the effective config until its `ClusterLoadAssignment` arrived (a route
//! to it meanwhile answers as for an unknown cluster); a listener whose HCM takes its
//! routes over ADS is left out until its `RouteConfiguration` arrived (it does not
//! accept; see [`sluice_config::xds::rds_ready`]).
//!
//! Each awaited name has a deadline: its source's `initial_fetch_timeout` (Envoy's 15 s
//! when absent, none when `0s`) counted from when sluice first asked for it. Past it the
//! resource is considered absent and warming ends, as Envoy's init target gives up: the
//! cluster serves with no hosts (503 "no healthy upstream"), the listener with an empty
//! route configuration (404 for every request). A resource that arrives later is
//! applied as any update. This module keeps the deadlines; it never reads the clock.
//!
//! Initialization ([`InitFetch`]): while LDS or CDS over ADS waits for its first
//! response, no listener accepts (the static ones neither), as Envoy starts its workers
//! only once its init manager is done; each source's `initial_fetch_timeout` bounds that
//! wait, counting `init_fetch_timeout` under its stats when it passes.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// Envoy's default `initial_fetch_timeout`.
pub const DEFAULT_INITIAL_FETCH_TIMEOUT: Duration = Duration::from_secs(15);

/// The initial fetches of one resource type, by resource name.
#[derive(Debug, Default)]
pub struct Fetches {
    /// Names asked for that have not arrived, with their deadline (None: no limit).
    waiting: BTreeMap<String, Option<Instant>>,
    /// Names whose initial fetch timed out (considered absent until they arrive).
    timed_out: BTreeSet<String>,
}

impl Fetches {
    /// Follow `wanted` (each name with its `initial_fetch_timeout` as written): names new
    /// here and not `arrived` start waiting at `now`; names no longer wanted are
    /// forgotten.
    pub fn track(&mut self, wanted: &[(String, Option<Duration>)], arrived: impl Fn(&str) -> bool, now: Instant) {
        self.waiting.retain(|n, _| wanted.iter().any(|(w, _)| w == n) && !arrived(n));
        self.timed_out.retain(|n| wanted.iter().any(|(w, _)| w == n));
        for (name, timeout) in wanted {
            if self.waiting.contains_key(name) || self.timed_out.contains(name) || arrived(name) {
                continue;
            }
            let timeout = timeout.unwrap_or(DEFAULT_INITIAL_FETCH_TIMEOUT);
            self.waiting.insert(name.clone(), (!timeout.is_zero()).then(|| now + timeout));
        }
    }

    /// The names whose deadline passed at `now` without them having `arrived`: their
    /// warming ends now.
    pub fn expire(&mut self, now: Instant, arrived: impl Fn(&str) -> bool) -> Vec<String> {
        self.waiting.retain(|n, _| !arrived(n));
        let expired: Vec<String> =
            self.waiting.iter().filter(|(_, d)| d.is_some_and(|d| now >= d)).map(|(n, _)| n.clone()).collect();
        for n in &expired {
            self.waiting.remove(n);
            self.timed_out.insert(n.clone());
        }
        expired
    }

    /// Whether `name`'s initial fetch timed out (it is served as absent).
    pub fn timed_out(&self, name: &str) -> bool {
        self.timed_out.contains(name)
    }
}

/// One wildcard subscription's part in the server's initialization (Envoy's init
/// manager under ADS, for `lds_config` and `cds_config`): pending until the type's first
/// response, accepted or not, or until its `initial_fetch_timeout` (counted from the
/// start; Envoy's 15 s when absent, none when `0s`), after which initialization goes on
/// without it.
#[derive(Debug)]
pub struct InitFetch {
    deadline: Option<Instant>,
    pending: bool,
}

impl InitFetch {
    /// Started at `now` with the source's `initial_fetch_timeout` as written.
    pub fn start(timeout: Option<Duration>, now: Instant) -> InitFetch {
        let timeout = timeout.unwrap_or(DEFAULT_INITIAL_FETCH_TIMEOUT);
        InitFetch { deadline: (!timeout.is_zero()).then(|| now + timeout), pending: true }
    }

    /// The first response arrived.
    pub fn arrived(&mut self) {
        self.pending = false;
    }

    /// Whether the wait ends at `now` by timing out (true once).
    pub fn expire(&mut self, now: Instant) -> bool {
        let expired = self.pending && self.deadline.is_some_and(|d| now >= d);
        if expired {
            self.pending = false;
        }
        expired
    }

    pub fn pending(&self) -> bool {
        self.pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted(names: &[(&str, Option<u64>)]) -> Vec<(String, Option<Duration>)> {
        names.iter().map(|(n, t)| (n.to_string(), t.map(Duration::from_secs))).collect()
    }

    #[test]
    fn a_name_times_out_at_its_deadline_unless_it_arrived() {
        let t0 = Instant::now();
        let mut f = Fetches::default();
        f.track(&wanted(&[("a", Some(1)), ("b", None), ("c", Some(0)), ("d", Some(1))]), |n| n == "d", t0);
        assert!(f.expire(t0 + Duration::from_millis(999), |_| false).is_empty());
        assert_eq!(f.expire(t0 + Duration::from_secs(1), |_| false), vec!["a".to_string()]);
        assert!(f.timed_out("a") && !f.timed_out("d"));
        // b: Envoy's 15 s; c: `0s`, no limit.
        assert_eq!(f.expire(t0 + Duration::from_secs(15), |_| false), vec!["b".to_string()]);
        assert!(f.expire(t0 + Duration::from_secs(3600), |_| false).is_empty());
    }

    #[test]
    fn an_arrival_ends_the_wait_and_a_dropped_name_is_forgotten() {
        let t0 = Instant::now();
        let mut f = Fetches::default();
        f.track(&wanted(&[("a", Some(1)), ("b", Some(1))]), |_| false, t0);
        assert!(f.expire(t0 + Duration::from_secs(2), |n| n == "a").contains(&"b".to_string()));
        assert!(!f.timed_out("a") && f.timed_out("b"));
        f.track(&wanted(&[("a", Some(1))]), |n| n == "a", t0 + Duration::from_secs(2));
        assert!(!f.timed_out("b"), "b is no longer wanted");
        // Wanted again later: a new wait from then.
        f.track(&wanted(&[("b", Some(1))]), |_| false, t0 + Duration::from_secs(5));
        assert!(f.expire(t0 + Duration::from_millis(5500), |_| false).is_empty());
        assert_eq!(f.expire(t0 + Duration::from_secs(6), |_| false), vec!["b".to_string()]);
    }

    #[test]
    fn an_init_fetch_ends_on_its_first_response_or_once_at_its_deadline() {
        let t0 = Instant::now();
        let mut f = InitFetch::start(Some(Duration::from_secs(1)), t0);
        assert!(f.pending() && !f.expire(t0 + Duration::from_millis(999)));
        assert!(f.expire(t0 + Duration::from_secs(1)) && !f.pending());
        assert!(!f.expire(t0 + Duration::from_secs(2)), "counted once");
        let mut f = InitFetch::start(None, t0);
        f.arrived();
        assert!(!f.pending() && !f.expire(t0 + Duration::from_secs(60)));
        let mut f = InitFetch::start(Some(Duration::ZERO), t0);
        assert!(!f.expire(t0 + Duration::from_secs(3600)) && f.pending(), "`0s`: no limit");
        assert!(!InitFetch::start(None, t0).expire(t0 + Duration::from_millis(14_999)));
    }
}
