//! Balancer tests: distributions within tolerance, Envoy's golden ring and Maglev
//! tables, consistent-hash stability and disruption, priorities, panic and degraded
//! hosts, exclusions.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use sluice_config::cluster::LbPolicy;

use super::*;
use crate::rng::Rng;
use crate::upstream::host::{health_flag, Host, HostSet};
use crate::upstream::priority::{PrioritySet, Source};

/// Hosts `127.0.0.1:<port>` with (port, weight, priority).
fn hosts(spec: &[(u16, u32, u32)]) -> Arc<HostSet> {
    Arc::new(HostSet::new(
        spec.iter()
            .map(|&(port, w, p)| {
                Arc::new(Host::new(SocketAddr::from(([127, 0, 0, 1], port)), String::new(), w, p, None))
            })
            .collect(),
    ))
}

fn equal(n: u16) -> Arc<HostSet> {
    hosts(&(0..n).map(|i| (90 + i, 1, 0)).collect::<Vec<_>>())
}

fn config(policy: LbPolicy) -> LbConfig {
    LbConfig { policy, ..LbConfig::default() }
}

fn ps(h: &Arc<HostSet>, lb: &LbConfig) -> PrioritySet {
    PrioritySet::build(Arc::clone(h), lb)
}

/// Pick `n` times with fresh random numbers; counts per host index.
fn counts(lb: &mut LoadBalancer, p: &PrioritySet, n: usize, seed: u64) -> Vec<usize> {
    let mut rng = Rng::new(seed);
    let mut c = vec![0; p.hosts.len()];
    for _ in 0..n {
        let ctx = LbContext { random: rng.next_u64(), ..Default::default() };
        c[lb.choose(p, &ctx).unwrap().index] += 1;
    }
    c
}

fn within(count: usize, expected: f64, tolerance: f64) -> bool {
    (count as f64 - expected).abs() <= expected * tolerance
}

#[test]
fn round_robin_rotates_from_its_seed() {
    let h = equal(3);
    let lb_cfg = config(LbPolicy::RoundRobin);
    let p = ps(&h, &lb_cfg);
    let mut lb = LoadBalancer::new(&lb_cfg, 0);
    lb.refresh(&p);
    let picks: Vec<usize> = (0..6).map(|_| lb.choose(&p, &LbContext::default()).unwrap().index).collect();
    assert_eq!(picks, vec![0, 1, 2, 0, 1, 2]);
    // Another seed starts elsewhere in the same rotation.
    let mut lb = LoadBalancer::new(&lb_cfg, 4);
    lb.refresh(&p);
    let picks: Vec<usize> = (0..3).map(|_| lb.choose(&p, &LbContext::default()).unwrap().index).collect();
    assert_eq!(picks, vec![1, 2, 0]);
}

#[test]
fn round_robin_weights_follow_edf_exactly() {
    let h = hosts(&[(90, 1, 0), (91, 3, 0), (92, 6, 0)]);
    let lb_cfg = config(LbPolicy::RoundRobin);
    let p = ps(&h, &lb_cfg);
    for seed in [0, 7, 12345] {
        let mut lb = LoadBalancer::new(&lb_cfg, seed);
        lb.refresh(&p);
        // Over any window of 10 consecutive picks the counts are exactly 1:3:6.
        let c = counts(&mut lb, &p, 1000, seed);
        assert_eq!(c, vec![100, 300, 600], "seed {seed}");
    }
}

#[test]
fn round_robin_keeps_its_rotation_across_refreshes() {
    let h = equal(4);
    let lb_cfg = config(LbPolicy::RoundRobin);
    let p = ps(&h, &lb_cfg);
    let mut lb = LoadBalancer::new(&lb_cfg, 0);
    lb.refresh(&p);
    assert_eq!(lb.choose(&p, &LbContext::default()).unwrap().index, 0);
    lb.refresh(&p);
    assert_eq!(lb.choose(&p, &LbContext::default()).unwrap().index, 1);
}

#[test]
fn exclusions_move_every_policy_to_another_host() {
    let h = equal(3);
    for policy in [LbPolicy::RoundRobin, LbPolicy::LeastRequest, LbPolicy::Random, LbPolicy::RingHash, LbPolicy::Maglev]
    {
        let mut lb_cfg = config(policy);
        lb_cfg.ring_hash.minimum_ring_size = 64;
        lb_cfg.maglev_table_size = 251;
        let p = ps(&h, &lb_cfg);
        let mut lb = LoadBalancer::new(&lb_cfg, 1);
        lb.refresh(&p);
        let mut rng = Rng::new(3);
        for _ in 0..200 {
            let r = rng.next_u64();
            let first = lb.choose(&p, &LbContext { random: r, hash: Some(r), ..Default::default() }).unwrap().index;
            let excluded = [first];
            let ctx = LbContext { random: rng.next_u64(), hash: Some(r), exclude: &excluded };
            let again = lb.choose(&p, &ctx).unwrap().index;
            assert_ne!(again, first, "{policy:?} chose the excluded host again");
        }
    }
}

#[test]
fn least_request_prefers_idle_hosts() {
    let h = equal(3);
    let lb_cfg = config(LbPolicy::LeastRequest);
    let p = ps(&h, &lb_cfg);
    let mut lb = LoadBalancer::new(&lb_cfg, 9);
    lb.refresh(&p);
    // All idle: two uniform samples, first wins ties: uniform.
    let c = counts(&mut lb, &p, 30_000, 1);
    for (i, n) in c.iter().enumerate() {
        assert!(within(*n, 10_000.0, 0.05), "host {i}: {c:?}");
    }
    // Host 0 busy: it is chosen only when both samples hit it (1/9 of picks).
    h.hosts[0].rq_active.store(5, Ordering::Relaxed);
    let c = counts(&mut lb, &p, 36_000, 2);
    assert!(within(c[0], 4_000.0, 0.1), "{c:?}");
    assert!(within(c[1], 16_000.0, 0.05) && within(c[2], 16_000.0, 0.05), "{c:?}");
    // With choice_count 5 it is chosen only when all five samples hit it (1/243).
    let mut five = lb_cfg.clone();
    five.choice_count = 5;
    let mut lb5 = LoadBalancer::new(&five, 9);
    lb5.refresh(&p);
    let c = counts(&mut lb5, &p, 24_300, 3);
    assert!(c[0] < 250, "{c:?}");
}

#[test]
fn least_request_weighted_uses_weight_over_active_requests() {
    let h = hosts(&[(90, 1, 0), (91, 2, 0)]);
    let lb_cfg = config(LbPolicy::LeastRequest);
    let p = ps(&h, &lb_cfg);
    let mut lb = LoadBalancer::new(&lb_cfg, 0);
    lb.refresh(&p);
    let c = counts(&mut lb, &p, 3000, 1);
    assert_eq!(c, vec![1000, 2000], "idle: plain weights");
    // Host 1 has 3 requests in flight: weight 2/4 against host 0's 1/1 → 2:1 for host 0.
    h.hosts[1].rq_active.store(3, Ordering::Relaxed);
    lb.refresh(&p);
    let c = counts(&mut lb, &p, 3000, 2);
    assert!(within(c[0], 2000.0, 0.02), "{c:?}");
}

#[test]
fn random_is_uniform_and_ignores_weights() {
    let h = hosts(&[(90, 1, 0), (91, 5, 0), (92, 1, 0), (93, 1, 0)]);
    let lb_cfg = config(LbPolicy::Random);
    let p = ps(&h, &lb_cfg);
    let mut lb = LoadBalancer::new(&lb_cfg, 0);
    let c = counts(&mut lb, &p, 40_000, 5);
    for n in &c {
        assert!(within(*n, 10_000.0, 0.05), "{c:?}");
    }
}

/// Envoy's `RingHashLoadBalancerTest.Basic`: the same ring positions and picks.
#[test]
fn ring_hash_matches_envoys_ring() {
    let h = hosts(&(90..96).map(|p| (p, 1, 0)).collect::<Vec<_>>());
    let mut lb_cfg = config(LbPolicy::RingHash);
    lb_cfg.ring_hash.minimum_ring_size = 12;
    let p = ps(&h, &lb_cfg);
    let HashTable::Ring(ring) = &p.hash_tables[0] else { panic!("no ring") };
    let ring: Vec<(u64, u16)> = ring.hashes().map(|(hash, i)| (hash, h.hosts[i as usize].address.port())).collect();
    assert_eq!(
        ring,
        vec![
            (833437586790550860, 94),
            (928266305478181108, 92),
            (1033482794131418490, 90),
            (3551244743356806947, 95),
            (3851675632748031481, 93),
            (5583722120771150861, 91),
            (6311230543546372928, 91),
            (7700377290971790572, 93),
            (13144177310400110813, 95),
            (13444792449719432967, 92),
            (15516499411664133160, 94),
            (16117243373044804889, 90),
        ]
    );
    let mut lb = LoadBalancer::new(&lb_cfg, 0);
    let pick = |lb: &mut LoadBalancer, hash: u64| {
        lb.choose(&p, &LbContext { hash: Some(hash), ..Default::default() }).unwrap().index
    };
    assert_eq!(pick(&mut lb, 0), 4);
    assert_eq!(pick(&mut lb, u64::MAX), 4);
    assert_eq!(pick(&mut lb, 3551244743356806947), 5);
    assert_eq!(pick(&mut lb, 3551244743356806948), 3);
    assert_eq!(pick(&mut lb, 16117243373044804880), 0);
}

/// Envoy's `MaglevLoadBalancerTest.Basic`: the same table of size 7.
#[test]
fn maglev_matches_envoys_table() {
    let h = hosts(&(90..96).map(|p| (p, 1, 0)).collect::<Vec<_>>());
    let mut lb_cfg = config(LbPolicy::Maglev);
    lb_cfg.maglev_table_size = 7;
    let p = ps(&h, &lb_cfg);
    let HashTable::Maglev(m) = &p.hash_tables[0] else { panic!("no table") };
    assert_eq!(m.slots(), &[2, 4, 0, 1, 5, 0, 3]);
    assert_eq!((m.min_entries_per_host, m.max_entries_per_host), (1, 2));
    let mut lb = LoadBalancer::new(&lb_cfg, 0);
    for i in 0..21u64 {
        let got = lb.choose(&p, &LbContext { hash: Some(i), ..Default::default() }).unwrap().index;
        assert_eq!(got, [2, 4, 0, 1, 5, 0, 3][(i % 7) as usize]);
    }
}

fn hash_picks(policy: LbPolicy, h: &Arc<HostSet>, keys: &[u64]) -> Vec<SocketAddr> {
    let lb_cfg = config(policy);
    let p = ps(h, &lb_cfg);
    let mut lb = LoadBalancer::new(&lb_cfg, 0);
    keys.iter()
        .map(|&k| {
            let i = lb.choose(&p, &LbContext { hash: Some(k), ..Default::default() }).unwrap().index;
            h.hosts[i].address
        })
        .collect()
}

fn keys(n: usize) -> Vec<u64> {
    let mut rng = Rng::new(42);
    (0..n).map(|_| rng.next_u64()).collect()
}

#[test]
fn consistent_hashing_is_stable_and_moves_only_the_removed_hosts_keys() {
    let all = equal(10);
    let keys = keys(20_000);
    for policy in [LbPolicy::RingHash, LbPolicy::Maglev] {
        let before = hash_picks(policy, &all, &keys);
        // Same key, same host: a rebuilt table (another worker, a refresh) agrees.
        assert_eq!(before, hash_picks(policy, &all, &keys), "{policy:?} unstable");
        // Distribution within tolerance.
        let mut per_host: HashMap<SocketAddr, usize> = HashMap::new();
        for a in &before {
            *per_host.entry(*a).or_default() += 1;
        }
        assert_eq!(per_host.len(), 10);
        for (a, n) in &per_host {
            assert!(within(*n, 2_000.0, 0.25), "{policy:?} {a}: {n}");
        }
        // Remove host :93 (keeping the others' identities).
        let removed = SocketAddr::from(([127, 0, 0, 1], 93));
        let fewer = Arc::new(HostSet::new(all.hosts.iter().filter(|h| h.address != removed).cloned().collect()));
        let after = hash_picks(policy, &fewer, &keys);
        let mut moved_other = 0;
        for (b, a) in before.iter().zip(&after) {
            if *b == removed {
                assert_ne!(*a, removed);
            } else if a != b {
                moved_other += 1;
            }
        }
        let others = before.iter().filter(|a| **a != removed).count();
        let bound = match policy {
            // Envoy sizes the ring by the lightest host's normalized weight, so each
            // survivor gains entries (103 → 114 at the default minimum of 1024): a
            // survivor's key moves only when one of those new entries captures it.
            LbPolicy::RingHash => (114.0 - 103.0) / 114.0,
            // Maglev trades a little disruption for balance (paper section 5.3).
            _ => 0.03,
        };
        assert!((moved_other as f64) < others as f64 * bound, "{policy:?} moved {moved_other} of {others} other keys");
    }
}

#[test]
fn ring_lookup_is_envoys_ketama_search() {
    let h = equal(7);
    let p = ps(&h, &config(LbPolicy::RingHash));
    let HashTable::Ring(r) = &p.hash_tables[0] else { panic!() };
    let mut probes: Vec<u64> = keys(50_000);
    // Ring positions themselves, their neighbours and the extremes.
    for (hash, _) in r.hashes() {
        probes.extend([hash, hash.wrapping_sub(1), hash.wrapping_add(1)]);
    }
    probes.extend([0, 1, u64::MAX]);
    for k in probes {
        assert_eq!(r.choose(k, 0), ring_hash::ketama_reference(r, k), "key {k}");
    }
}

#[test]
fn ring_and_maglev_honour_weights() {
    let h = hosts(&[(90, 1, 0), (91, 3, 0)]);
    let keys = keys(40_000);
    for policy in [LbPolicy::RingHash, LbPolicy::Maglev] {
        let picks = hash_picks(policy, &h, &keys);
        let heavy = picks.iter().filter(|a| a.port() == 91).count();
        assert!(within(heavy, 30_000.0, 0.05), "{policy:?}: {heavy}");
    }
}

#[test]
fn ring_size_respects_minimum_and_maximum() {
    let h = equal(3);
    let mut lb_cfg = config(LbPolicy::RingHash);
    lb_cfg.ring_hash.minimum_ring_size = 1000;
    let p = ps(&h, &lb_cfg);
    let HashTable::Ring(r) = &p.hash_tables[0] else { panic!() };
    assert_eq!(r.len(), 1002, "ceil(1/3 × 1000) = 334 per host");
    lb_cfg.ring_hash.maximum_ring_size = 30;
    let p = ps(&h, &lb_cfg);
    let HashTable::Ring(r) = &p.hash_tables[0] else { panic!() };
    assert_eq!(r.len(), 30);
    assert_eq!((r.min_hashes_per_host, r.max_hashes_per_host), (10, 10));
}

fn unhealthy(h: &Host) {
    h.set_flag(health_flag::FAILED_ACTIVE_HC);
}

/// Envoy's ring-hash failover test: P0 with one of two hosts healthy takes 70 %, P1
/// the rest; a pick with hash 69 lands on P0 and 71 on P1.
#[test]
fn priority_load_uses_the_overprovisioning_factor() {
    let h = hosts(&[(80, 1, 0), (81, 1, 0), (82, 1, 1)]);
    unhealthy(&h.hosts[1]);
    let lb_cfg = config(LbPolicy::RingHash);
    let p = ps(&h, &lb_cfg);
    assert_eq!(p.health, vec![70, 100]);
    assert_eq!(p.healthy_load, vec![70, 30]);
    assert_eq!(p.panic, vec![false, false]);
    let mut lb = LoadBalancer::new(&lb_cfg, 0);
    assert_eq!(p.choose(69).unwrap().priority, 0);
    assert_eq!(p.choose(71).unwrap().priority, 1);
    let picked = lb.choose(&p, &LbContext { hash: Some(69), ..Default::default() }).unwrap().index;
    assert_eq!(picked, 0);
    let picked = lb.choose(&p, &LbContext { hash: Some(71), ..Default::default() }).unwrap().index;
    assert_eq!(picked, 2);
}

#[test]
fn lower_priorities_serve_only_what_the_first_cannot() {
    let h = hosts(&[(80, 1, 0), (81, 1, 0), (82, 1, 0), (83, 1, 0), (90, 1, 1), (91, 1, 1)]);
    let lb_cfg = config(LbPolicy::RoundRobin);
    // 3 of 4 healthy: 140 × 3 / 4 = 105, capped at 100: P1 gets nothing.
    unhealthy(&h.hosts[0]);
    let p = ps(&h, &lb_cfg);
    assert_eq!(p.healthy_load, vec![100, 0]);
    let mut lb = LoadBalancer::new(&lb_cfg, 0);
    lb.refresh(&p);
    let c = counts(&mut lb, &p, 300, 1);
    assert_eq!(c, vec![0, 100, 100, 100, 0, 0]);
    // 1 of 4 healthy: P0 35 %, P1 65 %.
    unhealthy(&h.hosts[1]);
    unhealthy(&h.hosts[2]);
    let p = ps(&h, &lb_cfg);
    assert_eq!(p.healthy_load, vec![35, 65]);
    let mut lb = LoadBalancer::new(&lb_cfg, 0);
    lb.refresh(&p);
    let c = counts(&mut lb, &p, 20_000, 2);
    assert!(within(c[3], 7_000.0, 0.05), "{c:?}");
    assert!(within(c[4] + c[5], 13_000.0, 0.05), "{c:?}");
}

#[test]
fn panic_mode_uses_all_hosts_of_the_level() {
    let h = equal(3);
    unhealthy(&h.hosts[0]);
    unhealthy(&h.hosts[1]);
    let lb_cfg = config(LbPolicy::RoundRobin);
    let p = ps(&h, &lb_cfg);
    // 1 of 3 healthy (33 %) is below the 50 % threshold.
    assert_eq!(p.panic, vec![true]);
    let c = p.choose(0).unwrap();
    assert_eq!((c.source, c.panic), (Source::All, true));
    let mut lb = LoadBalancer::new(&lb_cfg, 0);
    lb.refresh(&p);
    let picks: Vec<Pick> = (0..3).map(|_| lb.choose(&p, &LbContext::default()).unwrap()).collect();
    assert!(picks.iter().all(|p| p.panic));
    let mut idx: Vec<usize> = picks.iter().map(|p| p.index).collect();
    idx.sort();
    assert_eq!(idx, vec![0, 1, 2]);
    // Threshold 0 disables panic: only the healthy host serves.
    let mut no_panic = lb_cfg.clone();
    no_panic.healthy_panic_threshold = 0;
    let p = ps(&h, &no_panic);
    let mut lb = LoadBalancer::new(&no_panic, 0);
    lb.refresh(&p);
    assert_eq!(counts(&mut lb, &p, 9, 1), vec![0, 0, 9]);
    // ... and with no healthy host at all there is no host to pick.
    unhealthy(&h.hosts[2]);
    let p = ps(&h, &no_panic);
    assert_eq!(p.healthy_load, vec![100]);
    assert!(lb.choose(&p, &LbContext::default()).is_none());
}

#[test]
fn total_panic_spreads_load_by_host_count() {
    let h = hosts(&[(80, 1, 0), (81, 1, 1), (82, 1, 1), (83, 1, 1)]);
    for host in &h.hosts {
        unhealthy(host);
    }
    let p = ps(&h, &config(LbPolicy::Random));
    assert_eq!(p.panic, vec![true, true]);
    assert_eq!(p.healthy_load, vec![25, 75]);
    assert_eq!(p.degraded_load, vec![0, 0]);
}

#[test]
fn degraded_hosts_take_load_only_when_healthy_ones_fall_short() {
    let h = hosts(&[(80, 1, 0), (81, 1, 0), (82, 1, 0), (83, 1, 0)]);
    h.hosts[0].set_flag(health_flag::DEGRADED_ACTIVE_HC);
    h.hosts[1].set_flag(health_flag::DEGRADED_ACTIVE_HC);
    unhealthy(&h.hosts[2]);
    let lb_cfg = config(LbPolicy::RoundRobin);
    let p = ps(&h, &lb_cfg);
    // Healthy 1/4 × 1.4 = 35 %, degraded 2/4 × 1.4 = 70 %: 35 % healthy, 65 % degraded.
    assert_eq!((p.health.clone(), p.degraded.clone()), (vec![35], vec![70]));
    assert_eq!((p.healthy_load.clone(), p.degraded_load.clone()), (vec![35], vec![65]));
    assert_eq!(p.choose(34).unwrap().source, Source::Healthy);
    assert_eq!(p.choose(35).unwrap().source, Source::Degraded);
    let mut lb = LoadBalancer::new(&lb_cfg, 0);
    lb.refresh(&p);
    let c = counts(&mut lb, &p, 20_000, 4);
    assert_eq!(c[2], 0);
    assert!(within(c[3], 7_000.0, 0.05), "{c:?}");
    assert!(within(c[0] + c[1], 13_000.0, 0.05), "{c:?}");
}

#[test]
fn excluded_hosts_do_not_count_toward_availability() {
    let h = equal(4);
    unhealthy(&h.hosts[0]);
    h.hosts[0].set_flag(health_flag::EXCLUDED_VIA_IMMEDIATE_HC_FAIL);
    let p = ps(&h, &config(LbPolicy::RoundRobin));
    assert_eq!(p.excluded_count(), 1);
    assert_eq!(p.health, vec![100], "3 of 3 counted hosts healthy");
}

#[test]
fn an_empty_cluster_has_no_host() {
    let h = Arc::new(HostSet::default());
    for policy in [LbPolicy::RoundRobin, LbPolicy::Maglev] {
        let lb_cfg = config(policy);
        let p = ps(&h, &lb_cfg);
        let mut lb = LoadBalancer::new(&lb_cfg, 0);
        lb.refresh(&p);
        assert!(lb.choose(&p, &LbContext::default()).is_none());
    }
}
