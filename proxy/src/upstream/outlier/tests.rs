//! Outlier-detection tests: worker-side counting, the authority's ejection rules,
//! ejection time and backoff, success rate and failure percentage, stats.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_config::cluster::OutlierDetection;

use super::*;
use crate::stats::UpstreamStats;
use crate::upstream::host::{health_flag, Host, HostSet};

fn hosts(n: u16) -> HostSet {
    HostSet::new(
        (0..n)
            .map(|i| Arc::new(Host::new(SocketAddr::from(([10, 99, 0, 1], 8000 + i)), String::new(), 1, 0, None)))
            .collect(),
    )
}

fn config() -> OutlierDetection {
    OutlierDetection {
        max_ejection_percent: 100,
        interval: Duration::from_secs(1),
        base_ejection_time: Duration::from_secs(10),
        max_ejection_time: Duration::from_secs(300),
        ..OutlierDetection::default()
    }
}

struct Fixture {
    hosts: HostSet,
    reporter: Reporter,
    detector: Detector,
    stats: UpstreamStats,
    t0: Instant,
}

impl Fixture {
    fn new(n: u16, cfg: OutlierDetection) -> Fixture {
        let hosts = hosts(n);
        let t0 = Instant::now();
        Fixture {
            reporter: Reporter::new(cfg.clone()),
            detector: Detector::new(cfg, &hosts, t0, 7),
            hosts,
            stats: UpstreamStats::default(),
            t0,
        }
    }

    fn host(&self, i: usize) -> &Host {
        &self.hosts.hosts[i]
    }

    fn codes(&self, i: usize, code: u64, n: usize) -> bool {
        let mut woke = false;
        for _ in 0..n {
            woke |= self.reporter.put_http_response_code(self.host(i), code);
        }
        woke
    }

    fn outcomes(&self, i: usize, o: Outcome, n: usize) -> bool {
        let mut woke = false;
        for _ in 0..n {
            woke |= self.reporter.put_result(self.host(i), o, None);
        }
        woke
    }

    fn process(&mut self, at: Duration) -> bool {
        self.reporter.take_pending();
        self.detector.process_pending(self.t0 + at, &self.stats)
    }

    fn tick(&mut self, at: Duration) -> bool {
        self.detector.on_interval(self.t0 + at, &self.stats)
    }

    fn ejected(&self, i: usize) -> bool {
        self.host(i).has_flag(health_flag::FAILED_OUTLIER_CHECK)
    }
}

const S: fn(u64) -> Duration = Duration::from_secs;

#[test]
fn five_consecutive_5xx_eject_once_detected() {
    let mut f = Fixture::new(3, config());
    assert!(!f.codes(0, 500, 4), "four errors detect nothing");
    assert!(!f.process(S(0)));
    assert!(!f.ejected(0));
    assert!(f.codes(0, 500, 1), "the fifth wakes the authority");
    assert!(f.process(S(0)));
    assert!(f.ejected(0));
    assert_eq!(f.stats.od_ejections_enforced_total.get(), 1);
    assert_eq!(f.stats.od_ejections_enforced_consecutive_5xx.get(), 1);
    assert_eq!(f.stats.od_ejections_detected_consecutive_5xx.get(), 1);
    assert_eq!(f.stats.od_ejections_active.get(), 1);
    assert_eq!(f.detector.num_ejections(f.host(0)), 1);
    // A success in between resets the count.
    f.codes(1, 503, 4);
    f.codes(1, 200, 1);
    assert!(!f.codes(1, 503, 4));
}

#[test]
fn max_ejection_percent_caps_ejections_unless_always_eject_one_host() {
    let cfg = OutlierDetection { max_ejection_percent: 10, ..config() };
    let mut f = Fixture::new(2, cfg.clone());
    f.codes(0, 500, 5);
    assert!(!f.process(S(0)), "50 % > 10 %: not ejected");
    assert!(!f.ejected(0));
    assert_eq!(f.stats.od_ejections_overflow.get(), 1);
    let mut f = Fixture::new(2, OutlierDetection { always_eject_one_host: true, ..cfg });
    f.codes(0, 500, 5);
    f.codes(1, 500, 5);
    f.process(S(0));
    assert!(f.ejected(0), "always_eject_one_host ejects the first");
    assert!(!f.ejected(1), "but only one");
    assert_eq!(f.stats.od_ejections_overflow.get(), 1);
}

#[test]
fn ejection_time_grows_with_ejections_and_is_capped() {
    let cfg = OutlierDetection { base_ejection_time: S(10), max_ejection_time: S(25), interval: S(1), ..config() };
    let mut f = Fixture::new(3, cfg);
    f.codes(0, 500, 5);
    f.process(S(0));
    assert!(!f.tick(S(9)) && f.ejected(0), "still ejected before base");
    assert!(f.tick(S(10)) && !f.ejected(0), "back after base × 1");
    assert_eq!(f.stats.od_ejections_active.get(), 0);
    // Ejected again at once: twice the base.
    f.codes(0, 500, 5);
    f.process(S(10));
    assert!(!f.tick(S(29)));
    assert!(f.tick(S(30)) && !f.ejected(0), "back after base × 2");
    // Third time: 3 × 10 s is capped at max_ejection_time.
    f.codes(0, 500, 5);
    f.process(S(30));
    assert!(!f.tick(S(54)));
    assert!(f.tick(S(55)) && !f.ejected(0), "capped at 25 s");
    assert_eq!(f.detector.num_ejections(f.host(0)), 3);
}

#[test]
fn backoff_shrinks_after_healthy_intervals() {
    let mut f = Fixture::new(3, config());
    f.codes(0, 500, 5);
    f.process(S(0));
    assert!(f.tick(S(10)));
    f.codes(0, 500, 5);
    f.process(S(10));
    assert!(f.tick(S(30)), "second ejection lasted 20 s");
    // Two healthy intervals after the unejection bring the backoff from 2 to 0, so the
    // next ejection lasts base × 1 again.
    f.tick(S(31));
    f.tick(S(32));
    f.codes(0, 500, 5);
    f.process(S(40));
    assert!(f.tick(S(50)) && !f.ejected(0), "base × 1 again");
}

#[test]
fn jitter_delays_unejection_within_its_bound() {
    let cfg = OutlierDetection { max_ejection_time_jitter: S(5), ..config() };
    let mut f = Fixture::new(3, cfg);
    f.codes(0, 500, 5);
    f.process(S(0));
    assert!(!f.tick(S(9)));
    let mut back = None;
    for s in 10..=15 {
        if f.tick(S(s)) {
            back = Some(s);
            break;
        }
    }
    assert!(matches!(back, Some(10..=15)), "{back:?}");
}

#[test]
fn gateway_failures_are_detected_but_not_enforced_by_default() {
    let cfg = OutlierDetection { consecutive_5xx: 10, ..config() };
    let mut f = Fixture::new(3, cfg.clone());
    f.codes(0, 502, 5);
    assert!(!f.process(S(0)));
    assert!(!f.ejected(0));
    assert_eq!(f.stats.od_ejections_detected_consecutive_gateway_failure.get(), 1);
    assert_eq!(f.stats.od_ejections_enforced_consecutive_gateway_failure.get(), 0);
    // A 500 is a 5xx but not a gateway error: it breaks the gateway streak.
    let mut f = Fixture::new(3, OutlierDetection { enforcing_consecutive_gateway_failure: 100, ..cfg });
    f.codes(1, 504, 4);
    f.codes(1, 500, 1);
    f.codes(1, 504, 4);
    assert!(!f.process(S(0)));
    f.codes(1, 503, 1);
    assert!(f.process(S(0)) && f.ejected(1));
    assert_eq!(f.stats.od_ejections_enforced_consecutive_gateway_failure.get(), 1);
}

#[test]
fn without_split_connect_failures_count_as_5xx() {
    let mut f = Fixture::new(3, config());
    // LocalOriginConnectFailed maps to 503: a 5xx and a gateway error.
    assert!(f.outcomes(0, Outcome::LocalOriginConnectFailed, 5));
    assert!(f.process(S(0)) && f.ejected(0));
    assert_eq!(f.stats.od_ejections_enforced_consecutive_5xx.get(), 1);
    assert_eq!(f.stats.od_ejections_detected_consecutive_gateway_failure.get(), 1);
    // A plain connect success says nothing; the final one (tcp_proxy) is a 200.
    f.outcomes(1, Outcome::LocalOriginTimeout, 4);
    f.outcomes(1, Outcome::LocalOriginConnectSuccess, 1);
    assert!(f.outcomes(1, Outcome::LocalOriginTimeout, 1));
    f.outcomes(2, Outcome::LocalOriginTimeout, 4);
    f.outcomes(2, Outcome::LocalOriginConnectSuccessFinal, 1);
    assert!(!f.outcomes(2, Outcome::LocalOriginTimeout, 1));
}

#[test]
fn with_split_local_origin_failures_count_apart() {
    let cfg =
        OutlierDetection { split_external_local_origin_errors: true, consecutive_local_origin_failure: 3, ..config() };
    let mut f = Fixture::new(3, cfg);
    assert!(!f.outcomes(0, Outcome::LocalOriginConnectFailed, 2));
    f.outcomes(0, Outcome::LocalOriginConnectSuccess, 1);
    assert!(!f.outcomes(0, Outcome::LocalOriginConnectFailed, 2), "reset by success");
    assert!(f.outcomes(0, Outcome::LocalOriginTimeout, 1));
    assert!(f.process(S(0)) && f.ejected(0));
    assert_eq!(f.stats.od_ejections_enforced_consecutive_local_origin_failure.get(), 1);
    assert_eq!(f.stats.od_ejections_detected_consecutive_5xx.get(), 0);
    // External failures are still 5xx (ExtOriginRequestFailed maps to 503).
    assert!(f.outcomes(1, Outcome::ExtOriginRequestFailed, 5));
    f.process(S(0));
    assert!(f.ejected(1));
}

#[test]
fn success_rate_ejects_statistical_outliers() {
    let cfg = OutlierDetection { success_rate_request_volume: 100, ..config() };
    let mut f = Fixture::new(5, cfg);
    // One interval of traffic: hosts 0..3 all succeed, host 4 half fails.
    for i in 0..4 {
        f.codes(i, 200, 100);
    }
    for _ in 0..50 {
        f.codes(4, 200, 1);
        f.codes(4, 500, 1);
    }
    f.tick(S(1));
    // The window just closed: mean 90, stdev 20, threshold 90 − 1.9 × 20 = 52.
    let (mean, threshold) = f.detector.success_rate_thresholds[0].unwrap();
    assert!((mean - 90.0).abs() < 1e-9 && (threshold - 52.0).abs() < 1e-9);
    assert!(f.ejected(4));
    assert_eq!(f.stats.od_ejections_enforced_success_rate.get(), 1);
    assert_eq!(f.stats.od_ejections_detected_success_rate.get(), 1);
    for i in 0..4 {
        assert!(!f.ejected(i));
    }
}

#[test]
fn too_little_volume_or_too_few_hosts_skip_success_rate() {
    let mut f = Fixture::new(5, config());
    for i in 0..5 {
        f.codes(i, if i == 4 { 500 } else { 200 }, 99);
    }
    f.tick(S(1));
    assert!(f.detector.success_rate_thresholds[0].is_none(), "99 < request volume 100");
    let mut f = Fixture::new(4, config());
    for i in 0..4 {
        f.codes(i, 200, 100);
    }
    f.tick(S(1));
    assert!(f.detector.success_rate_thresholds[0].is_none(), "4 < minimum hosts 5");
}

#[test]
fn failure_percentage_ejects_when_enforced() {
    let cfg = OutlierDetection {
        enforcing_failure_percentage: 100,
        failure_percentage_request_volume: 20,
        consecutive_5xx: 1000,
        consecutive_gateway_failure: 1000,
        ..config()
    };
    let mut f = Fixture::new(5, cfg);
    for i in 0..4 {
        f.codes(i, 200, 20);
    }
    // 90 % failures (consecutive-5xx detection is out of the way: threshold 1000).
    f.codes(4, 200, 2);
    f.codes(4, 500, 18);
    f.process(S(0));
    assert!(!f.ejected(4), "no consecutive-5xx ejection");
    f.tick(S(1));
    assert!(f.ejected(4));
    assert_eq!(f.stats.od_ejections_enforced_failure_percentage.get(), 1);
}

#[test]
fn a_passing_health_check_unejects() {
    let mut f = Fixture::new(3, config());
    f.codes(0, 500, 5);
    f.process(S(0));
    assert!(f.ejected(0));
    assert!(f.detector.on_health_check_healthy(&f.hosts.hosts[0], f.t0, &f.stats));
    assert!(!f.ejected(0));
    assert_eq!(f.stats.od_ejections_active.get(), 0);
    // Not while the active check itself fails the host.
    f.codes(0, 500, 5);
    f.process(S(1));
    f.host(0).set_flag(health_flag::FAILED_ACTIVE_HC);
    assert!(!f.detector.on_health_check_healthy(&f.hosts.hosts[0], f.t0, &f.stats));
    assert!(f.ejected(0));
}

#[test]
fn removed_ejected_hosts_stop_counting() {
    let mut f = Fixture::new(3, config());
    f.codes(2, 500, 5);
    f.process(S(0));
    assert_eq!(f.detector.ejections_active(), 1);
    let fewer = HostSet::new(f.hosts.hosts[..2].to_vec());
    f.detector.sync_hosts(&fewer, &f.stats);
    assert_eq!(f.detector.ejections_active(), 0);
    assert_eq!(f.stats.od_ejections_active.get(), 0);
}

#[test]
fn success_rate_windows_swap_on_interval() {
    let acc = SuccessRateAccumulator::default();
    acc.inc_total();
    acc.inc_success();
    assert_eq!(acc.success_rate_and_volume(), None, "nothing complete yet");
    acc.update_current_writer();
    assert_eq!(acc.success_rate_and_volume(), Some((100.0, 1)));
    acc.inc_total();
    acc.update_current_writer();
    assert_eq!(acc.success_rate_and_volume(), Some((0.0, 1)));
    acc.update_current_writer();
    assert_eq!(acc.success_rate_and_volume(), None);
}
