//! The authority half of a cluster's outlier detector (Envoy's `DetectorImpl`).
//!
//! Runs on the upstream monitor thread only, so its bookkeeping needs no
//! synchronisation; it reads the per-host atomics workers write and publishes its
//! decisions through the host's FAILED_OUTLIER_CHECK flag (the caller then rebuilds the
//! cluster's priority set). Time is a parameter everywhere; randomness (enforcing
//! percentages, ejection jitter) comes from its own seeded generator.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_config::cluster::OutlierDetection;

use super::{EjectionType, SuccessRateAccumulator};
use crate::rng::Rng;
use crate::stats::UpstreamStats;
use crate::upstream::host::{health_flag, Host, HostSet};

/// The authority's record of one host.
#[derive(Debug)]
struct HostState {
    host: Arc<Host>,
    num_ejections: u32,
    /// Multiplier of `base_ejection_time` for the next ejection (Envoy's
    /// `ejectTimeBackoff`): +1 per ejection, −1 per healthy interval.
    backoff: u32,
    last_ejection: Option<Instant>,
    last_unejection: Option<Instant>,
    jitter: Duration,
}

impl HostState {
    fn new(host: Arc<Host>) -> HostState {
        HostState {
            host,
            num_ejections: 0,
            backoff: 0,
            last_ejection: None,
            last_unejection: None,
            jitter: Duration::ZERO,
        }
    }

    fn ejected(&self) -> bool {
        self.host.has_flag(health_flag::FAILED_OUTLIER_CHECK)
    }
}

/// Which success-rate window a detection pass reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    External,
    Local,
}

/// One cluster's outlier-detection authority.
#[derive(Debug)]
pub struct Detector {
    config: OutlierDetection,
    hosts: Vec<HostState>,
    ejections_active: u32,
    next_interval: Instant,
    rng: Rng,
    /// The last success-rate pass: (mean, ejection threshold), external then local.
    pub success_rate_thresholds: [Option<(f64, f64)>; 2],
}

impl Detector {
    pub fn new(config: OutlierDetection, hosts: &HostSet, now: Instant, seed: u64) -> Detector {
        Detector {
            next_interval: now + config.interval,
            config,
            hosts: hosts.hosts.iter().map(|h| HostState::new(Arc::clone(h))).collect(),
            ejections_active: 0,
            rng: Rng::new(seed),
            success_rate_thresholds: [None, None],
        }
    }

    pub fn config(&self) -> &OutlierDetection {
        &self.config
    }

    /// The configuration in force changed (runtime keys): later decisions use it, the
    /// next interval included.
    pub fn set_config(&mut self, config: OutlierDetection) {
        self.config = config;
    }

    /// When [`Detector::on_interval`] is due next.
    pub fn next_deadline(&self) -> Instant {
        self.next_interval
    }

    pub fn ejections_active(&self) -> u32 {
        self.ejections_active
    }

    /// How many times `host` was ejected (0 for unknown hosts).
    pub fn num_ejections(&self, host: &Host) -> u32 {
        self.state(host).map_or(0, |s| s.num_ejections)
    }

    fn state(&self, host: &Host) -> Option<&HostState> {
        self.hosts.iter().find(|s| std::ptr::eq(&*s.host, host))
    }

    fn position(&self, host: &Host) -> Option<usize> {
        self.hosts.iter().position(|s| std::ptr::eq(&*s.host, host))
    }

    /// The cluster's membership changed: follow it. An ejected host that left no longer
    /// counts as an active ejection.
    pub fn sync_hosts(&mut self, hosts: &HostSet, stats: &UpstreamStats) {
        let mut kept = Vec::with_capacity(hosts.len());
        for h in &hosts.hosts {
            match self.hosts.iter().position(|s| Arc::ptr_eq(&s.host, h)) {
                Some(i) => kept.push(self.hosts.swap_remove(i)),
                None => kept.push(HostState::new(Arc::clone(h))),
            }
        }
        for gone in self.hosts.drain(..) {
            if gone.ejected() {
                self.ejections_active = self.ejections_active.saturating_sub(1);
            }
        }
        self.hosts = kept;
        stats.od_ejections_active.set(i64::from(self.ejections_active));
    }

    /// Handle the consecutive-error detections workers posted. True when a host's
    /// health changed.
    pub fn process_pending(&mut self, now: Instant, stats: &UpstreamStats) -> bool {
        let mut changed = false;
        for i in 0..self.hosts.len() {
            let bits = self.hosts[i].host.outlier.take_pending();
            if bits == 0 {
                continue;
            }
            for ty in EjectionType::CONSECUTIVE {
                if bits & ty.bit() != 0 {
                    changed |= self.on_consecutive_error(i, ty, now, stats);
                }
            }
        }
        changed
    }

    /// Envoy's `onConsecutiveErrorWorker`.
    fn on_consecutive_error(&mut self, i: usize, ty: EjectionType, now: Instant, stats: &UpstreamStats) -> bool {
        if self.hosts[i].ejected() {
            return false;
        }
        detected_stat(stats, ty).inc();
        let ejected = self.eject(i, ty, now, stats);
        let monitor = &self.hosts[i].host.outlier;
        match ty {
            EjectionType::Consecutive5xx => {
                stats.od_ejections_consecutive_5xx.inc();
                monitor.reset_consecutive_5xx();
            }
            EjectionType::ConsecutiveGatewayFailure => monitor.reset_consecutive_gateway_failure(),
            EjectionType::ConsecutiveLocalOriginFailure => monitor.reset_consecutive_local_origin_failure(),
            _ => {}
        }
        ejected
    }

    /// Envoy's `ejectHost`: respect max_ejection_percent (or always_eject_one_host) and
    /// the enforcing percentage, then eject with the next backoff and fresh jitter.
    fn eject(&mut self, i: usize, ty: EjectionType, now: Instant, stats: &UpstreamStats) -> bool {
        let max_percent = f64::from(self.config.max_ejection_percent.min(100));
        let ejected_percent = 100.0 * f64::from(self.ejections_active + 1) / self.hosts.len().max(1) as f64;
        let mut should_eject = ejected_percent <= max_percent;
        if self.config.always_eject_one_host {
            should_eject |= self.ejections_active == 0;
        }
        if !should_eject {
            stats.od_ejections_overflow.inc();
            return false;
        }
        if matches!(ty, EjectionType::Consecutive5xx | EjectionType::SuccessRate) {
            stats.od_ejections_total.inc();
        }
        if self.rng.below(100) >= u64::from(ty.enforcing(&self.config)) {
            return false;
        }
        self.ejections_active += 1;
        stats.od_ejections_active.set(i64::from(self.ejections_active));
        stats.od_ejections_enforced_total.inc();
        enforced_stat(stats, ty).inc();
        let jitter_ms = self.config.max_ejection_time_jitter.as_millis() as u64;
        let jitter = Duration::from_millis(self.rng.below(jitter_ms + 1));
        let (base, max) = (self.config.base_ejection_time, self.config.max_ejection_time);
        let st = &mut self.hosts[i];
        st.host.set_flag(health_flag::FAILED_OUTLIER_CHECK);
        st.num_ejections += 1;
        st.last_ejection = Some(now);
        st.jitter = jitter;
        if base * st.backoff < max + base {
            st.backoff += 1;
        }
        tracing::info!(host = %st.host.address, ?ty, ejections = st.num_ejections, "outlier detection: host ejected");
        true
    }

    fn uneject(&mut self, i: usize, now: Instant, stats: &UpstreamStats) {
        self.ejections_active = self.ejections_active.saturating_sub(1);
        stats.od_ejections_active.set(i64::from(self.ejections_active));
        let st = &mut self.hosts[i];
        st.host.clear_flag(health_flag::FAILED_OUTLIER_CHECK);
        // Start counting afresh so a few new errors do not re-eject at once.
        st.host.outlier.reset_consecutive_5xx();
        st.host.outlier.reset_consecutive_gateway_failure();
        st.host.outlier.reset_consecutive_local_origin_failure();
        st.last_unejection = Some(now);
        tracing::info!(host = %st.host.address, "outlier detection: host unejected");
    }

    /// An active health check passed for `host` (successful_active_health_check_uneject_host).
    pub fn on_health_check_healthy(&mut self, host: &Host, now: Instant, stats: &UpstreamStats) -> bool {
        if !self.config.successful_active_health_check_uneject_host
            || host.has_flag(health_flag::FAILED_ACTIVE_HC)
            || !host.has_flag(health_flag::FAILED_OUTLIER_CHECK)
        {
            return false;
        }
        match self.position(host) {
            Some(i) => {
                self.uneject(i, now, stats);
                true
            }
            None => false,
        }
    }

    /// The `interval` tick (Envoy's `onIntervalTimer`); does nothing before it is due.
    /// True when a host's health changed.
    pub fn on_interval(&mut self, now: Instant, stats: &UpstreamStats) -> bool {
        if now < self.next_interval {
            return false;
        }
        let mut changed = false;
        for i in 0..self.hosts.len() {
            if self.uneject_due(i, now) {
                self.uneject(i, now, stats);
                changed = true;
            }
            let m = &self.hosts[i].host.outlier;
            m.external_origin.update_current_writer();
            m.local_origin.update_current_writer();
            // Refreshed by this interval's pass when the host has the volume.
            m.set_success_rate(false, -1.0);
            m.set_success_rate(true, -1.0);
        }
        changed |= self.success_rate_ejections(Origin::External, now, stats);
        changed |= self.success_rate_ejections(Origin::Local, now, stats);
        let interval = self.config.interval;
        for st in &mut self.hosts {
            let healthy_for_interval = st.last_unejection.is_some_and(|t| now.saturating_duration_since(t) >= interval);
            if !st.ejected() && healthy_for_interval && st.backoff > 0 {
                st.backoff -= 1;
            }
        }
        self.next_interval = now + interval;
        changed
    }

    /// `min(base × backoff, max) + jitter` has passed since the ejection.
    fn uneject_due(&self, i: usize, now: Instant) -> bool {
        let st = &self.hosts[i];
        let Some(at) = st.last_ejection.filter(|_| st.ejected()) else {
            return false;
        };
        let eject_for = (self.config.base_ejection_time * st.backoff).min(self.config.max_ejection_time) + st.jitter;
        now.saturating_duration_since(at) >= eject_for
    }

    /// Envoy's `processSuccessRateEjections` over the previous interval's window.
    fn success_rate_ejections(&mut self, origin: Origin, now: Instant, stats: &UpstreamStats) -> bool {
        let cfg = &self.config;
        let sr_min_hosts = cfg.success_rate_minimum_hosts as usize;
        let sr_volume = u64::from(cfg.success_rate_request_volume);
        let fp_min_hosts = cfg.failure_percentage_minimum_hosts as usize;
        let fp_volume = u64::from(cfg.failure_percentage_request_volume);
        let slot = origin as usize;
        self.success_rate_thresholds[slot] = None;
        if self.hosts.len() < sr_min_hosts && self.hosts.len() < fp_min_hosts {
            return false;
        }
        let mut sr_hosts: Vec<(usize, f64)> = Vec::new();
        let mut fp_hosts: Vec<(usize, f64)> = Vec::new();
        let mut sum = 0.0;
        for (i, st) in self.hosts.iter().enumerate() {
            if st.ejected() {
                continue;
            }
            let acc: &SuccessRateAccumulator = match origin {
                Origin::External => &st.host.outlier.external_origin,
                Origin::Local => &st.host.outlier.local_origin,
            };
            let Some((rate, volume)) = acc.success_rate_and_volume() else {
                continue;
            };
            if volume >= sr_volume {
                sr_hosts.push((i, rate));
                sum += rate;
                st.host.outlier.set_success_rate(origin == Origin::Local, rate);
            }
            if volume >= fp_volume {
                fp_hosts.push((i, rate));
            }
        }
        let mut changed = false;
        if !sr_hosts.is_empty() && sr_hosts.len() >= sr_min_hosts {
            let factor = f64::from(self.config.success_rate_stdev_factor) / 1000.0;
            let (mean, threshold) = success_rate_ejection_threshold(sum, &sr_hosts, factor);
            self.success_rate_thresholds[slot] = Some((mean, threshold));
            let ty = match origin {
                Origin::External => EjectionType::SuccessRate,
                Origin::Local => EjectionType::SuccessRateLocalOrigin,
            };
            for &(i, rate) in &sr_hosts {
                if rate < threshold && !self.hosts[i].ejected() {
                    stats.od_ejections_success_rate.inc();
                    detected_stat(stats, ty).inc();
                    changed |= self.eject(i, ty, now, stats);
                }
            }
        }
        if !fp_hosts.is_empty() && fp_hosts.len() >= fp_min_hosts {
            let threshold = f64::from(self.config.failure_percentage_threshold);
            let ty = match origin {
                Origin::External => EjectionType::FailurePercentage,
                Origin::Local => EjectionType::FailurePercentageLocalOrigin,
            };
            for &(i, rate) in &fp_hosts {
                if 100.0 - rate >= threshold && !self.hosts[i].ejected() {
                    detected_stat(stats, ty).inc();
                    changed |= self.eject(i, ty, now, stats);
                }
            }
        }
        changed
    }
}

/// Mean, and mean − factor × population standard deviation (Envoy's
/// `successRateEjectionThreshold`).
fn success_rate_ejection_threshold(sum: f64, hosts: &[(usize, f64)], factor: f64) -> (f64, f64) {
    let n = hosts.len() as f64;
    let mean = sum / n;
    let variance = hosts.iter().map(|(_, r)| (r - mean).powi(2)).sum::<f64>() / n;
    (mean, mean - factor * variance.sqrt())
}

fn detected_stat(stats: &UpstreamStats, ty: EjectionType) -> &crate::stats::Counter {
    match ty {
        EjectionType::Consecutive5xx => &stats.od_ejections_detected_consecutive_5xx,
        EjectionType::SuccessRate => &stats.od_ejections_detected_success_rate,
        EjectionType::ConsecutiveGatewayFailure => &stats.od_ejections_detected_consecutive_gateway_failure,
        EjectionType::ConsecutiveLocalOriginFailure => &stats.od_ejections_detected_consecutive_local_origin_failure,
        EjectionType::SuccessRateLocalOrigin => &stats.od_ejections_detected_local_origin_success_rate,
        EjectionType::FailurePercentage => &stats.od_ejections_detected_failure_percentage,
        EjectionType::FailurePercentageLocalOrigin => &stats.od_ejections_detected_local_origin_failure_percentage,
    }
}

fn enforced_stat(stats: &UpstreamStats, ty: EjectionType) -> &crate::stats::Counter {
    match ty {
        EjectionType::Consecutive5xx => &stats.od_ejections_enforced_consecutive_5xx,
        EjectionType::SuccessRate => &stats.od_ejections_enforced_success_rate,
        EjectionType::ConsecutiveGatewayFailure => &stats.od_ejections_enforced_consecutive_gateway_failure,
        EjectionType::ConsecutiveLocalOriginFailure => &stats.od_ejections_enforced_consecutive_local_origin_failure,
        EjectionType::SuccessRateLocalOrigin => &stats.od_ejections_enforced_local_origin_success_rate,
        EjectionType::FailurePercentage => &stats.od_ejections_enforced_failure_percentage,
        EjectionType::FailurePercentageLocalOrigin => &stats.od_ejections_enforced_local_origin_failure_percentage,
    }
}
