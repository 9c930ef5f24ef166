//! The weighted-cluster pick: ONE function, used by the proxy (fed by the worker's
//! random number generator) and by `route-check` (fed by the test's `random_value`),
//! so the two cannot drift.
//!
//! Envoy (weighted_cluster_specifier.cc `pickWeightedCluster`): `selected =
//! random_value % total_weight`; the clusters, in config order, own the consecutive
//! intervals `[0, w0)`, `[w0, w0+w1)`, ...; the first whose interval holds `selected`
//! wins. A zero-weight cluster owns an empty interval and is never picked. When
//! `header_name` is set and the request carries that header exactly once with an
//! unsigned integer value, that value replaces the random value.

use sluice_config::route::{ClusterWeight, WeightedClusters};

use crate::http::RequestHead;
use crate::runtime::Snapshot;

/// Index of the cluster that owns `random_value % total_weight`.
///
/// `total_weight` must be the sum of the weights and greater than zero (the config
/// guarantees both); the last cluster with a non-zero weight is the fallback should a
/// caller pass inconsistent values.
pub fn pick(weights: impl IntoIterator<Item = u32>, total_weight: u64, random_value: u64) -> usize {
    let selected = random_value % total_weight.max(1);
    let mut end = 0u64;
    let mut last_nonzero = 0;
    for (i, w) in weights.into_iter().enumerate() {
        if w == 0 {
            continue;
        }
        last_nonzero = i;
        end += u64::from(w);
        if selected < end {
            return i;
        }
    }
    last_nonzero
}

/// The random value Envoy uses for a request: from `header_name` when configured and
/// usable, else `random_value`.
pub fn effective_random(w: &WeightedClusters, req: &RequestHead, random_value: u64) -> u64 {
    let Some(name) = &w.header_name else {
        return random_value;
    };
    let mut values = req.headers.get_all(name.as_bytes());
    match (values.next(), values.next()) {
        (Some(v), None) => std::str::from_utf8(v).ok().and_then(|s| s.parse::<u64>().ok()).unwrap_or(random_value),
        _ => random_value,
    }
}

/// Pick the entry of a weighted-cluster route for this request.
pub fn pick_cluster<'w>(w: &'w WeightedClusters, req: &RequestHead, random_value: u64) -> &'w ClusterWeight {
    let r = effective_random(w, req, random_value);
    &w.clusters[pick(w.clusters.iter().map(|c| c.weight), w.total_weight, r)]
}

/// [`pick_cluster`] under a runtime: with `runtime_key_prefix`, each weight is
/// `getInteger(<prefix>.<name>, weight)` and the total their sum (Envoy's
/// `WeightedClusterEntry::clusterWeight`); `None` when that sum is 0 (Envoy: no route).
pub fn pick_cluster_in<'w>(
    w: &'w WeightedClusters,
    req: &RequestHead,
    random_value: u64,
    runtime: &Snapshot,
) -> Option<&'w ClusterWeight> {
    if w.runtime_key_prefix.is_none() {
        return Some(pick_cluster(w, req, random_value));
    }
    let weight = |c: &ClusterWeight| match &c.runtime_key {
        Some(k) => runtime.get_integer(k, u64::from(c.weight)),
        None => u64::from(c.weight),
    };
    let total = w.clusters.iter().map(weight).fold(0u64, u64::saturating_add);
    if total == 0 {
        return None;
    }
    let selected = effective_random(w, req, random_value) % total;
    let mut end = 0u64;
    for c in &w.clusters {
        end = end.saturating_add(weight(c));
        if selected < end {
            return Some(c);
        }
    }
    w.clusters.last()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_in_order() {
        let w = [30u32, 0, 70];
        assert_eq!(pick(w, 100, 0), 0);
        assert_eq!(pick(w, 100, 29), 0);
        assert_eq!(pick(w, 100, 30), 2);
        assert_eq!(pick(w, 100, 99), 2);
        // Modulo the total weight.
        assert_eq!(pick(w, 100, 129), 0);
        // u64::MAX % 100 == 15.
        assert_eq!(pick(w, 100, u64::MAX), 0);
    }

    #[test]
    fn distribution_is_exact_over_a_full_cycle() {
        let w = [1u32, 2, 3];
        let mut counts = [0; 3];
        for r in 0..6000u64 {
            counts[pick(w, 6, r)] += 1;
        }
        assert_eq!(counts, [1000, 2000, 3000]);
    }
}
