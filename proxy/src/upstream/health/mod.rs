//! Active health checking (Envoy's `HealthCheckerImplBase` with its HTTP and TCP
//! checkers), run once per cluster on the upstream monitor thread.
//!
//! This module holds the protocol-independent part: the compiled checker
//! ([`Checker`]), and each host's [`HostState`] with Envoy's transitions — the first
//! result decides at once; a success needs `healthy_threshold` in a row to bring an
//! unhealthy host back; a network failure (connect error, reset, timeout) needs
//! `unhealthy_threshold` in a row, while a definite failure (an unexpected HTTP
//! status) marks the host unhealthy at once — and the next interval (`interval`,
//! `unhealthy_interval`, the `*_edge_interval`s while a change is pending,
//! `no_traffic_interval` until the cluster has seen traffic, plus jitter). Results are
//! published to workers through the host's FAILED_ACTIVE_HC / DEGRADED_ACTIVE_HC flags.
//! [`session`] drives the sockets; [`tcp`] and [`http`] speak the protocols.
//!
//! Hosts of a health-checked cluster start FAILED_ACTIVE_HC, as Envoy starts them, and
//! the server waits (bounded by the check timeout) for every host's first result
//! before serving, as Envoy's cluster warming does.

pub mod http;
pub mod session;
pub mod tcp;

#[cfg(test)]
mod tests;

use std::time::Duration;

use sluice_config::cluster::{HealthCheck, HealthCheckKind};

use crate::rng::Rng;
use crate::stats::UpstreamStats;
use crate::upstream::host::{health_flag, Host};

/// How a failed check failed (`envoy.data.core.v3.HealthCheckFailureType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureType {
    /// The host answered, wrongly (an unexpected HTTP status).
    Active,
    /// A worker saw `x-envoy-immediate-health-check-fail`.
    Passive,
    /// Connecting or talking to the host failed.
    Network,
    /// The check timed out.
    NetworkTimeout,
}

impl FailureType {
    fn is_network(self) -> bool {
        matches!(self, FailureType::Network | FailureType::NetworkTimeout)
    }
}

/// What a check result did to the host (Envoy's `HealthTransition`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Unchanged,
    Changed,
    /// The result differs from the host's state but a threshold delays the change.
    ChangePending,
}

/// The protocol of a checker, compiled at load.
#[derive(Debug, Clone)]
pub enum Protocol {
    Tcp(tcp::TcpCheck),
    Http(http::HttpCheck),
}

/// One cluster's health-check settings, compiled at load.
#[derive(Debug, Clone)]
pub struct Checker {
    pub timeout: Duration,
    pub interval: Duration,
    pub unhealthy_interval: Duration,
    pub unhealthy_edge_interval: Duration,
    pub healthy_edge_interval: Duration,
    pub no_traffic_interval: Duration,
    pub no_traffic_healthy_interval: Duration,
    pub initial_jitter: Duration,
    pub interval_jitter: Duration,
    pub interval_jitter_percent: u32,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
    pub reuse_connection: bool,
    pub protocol: Protocol,
}

impl Checker {
    /// Compile `hc` for cluster `cluster_name` (the default HTTP Host).
    pub fn new(hc: &HealthCheck, cluster_name: &str) -> Checker {
        Checker {
            timeout: hc.timeout,
            interval: hc.interval,
            unhealthy_interval: hc.unhealthy_interval,
            unhealthy_edge_interval: hc.unhealthy_edge_interval,
            healthy_edge_interval: hc.healthy_edge_interval,
            no_traffic_interval: hc.no_traffic_interval,
            no_traffic_healthy_interval: hc.no_traffic_healthy_interval.unwrap_or(hc.no_traffic_interval),
            initial_jitter: hc.initial_jitter,
            interval_jitter: hc.interval_jitter,
            interval_jitter_percent: hc.interval_jitter_percent,
            healthy_threshold: hc.healthy_threshold.max(1),
            unhealthy_threshold: hc.unhealthy_threshold.max(1),
            reuse_connection: hc.reuse_connection,
            protocol: match &hc.kind {
                HealthCheckKind::Tcp(t) => Protocol::Tcp(tcp::TcpCheck::new(t)),
                HealthCheckKind::Http(h) => Protocol::Http(http::HttpCheck::new(h, cluster_name)),
            },
        }
    }

    /// Envoy's `interval(state, changed_state)`: when the next check runs after a
    /// result.
    pub fn next_interval(&self, healthy: bool, transition: Transition, seen_traffic: bool, rng: &mut Rng) -> Duration {
        let pending = transition == Transition::ChangePending;
        let base = if seen_traffic {
            match (healthy, pending) {
                (false, true) => self.unhealthy_edge_interval,
                (false, false) => self.unhealthy_interval,
                (true, true) => self.healthy_edge_interval,
                (true, false) => self.interval,
            }
        } else if healthy && !pending {
            self.no_traffic_healthy_interval
        } else {
            self.no_traffic_interval
        };
        self.with_jitter(base, self.interval_jitter, rng)
    }

    /// Delay of a host's first check (`initial_jitter`, none by default).
    pub fn initial_delay(&self, rng: &mut Rng) -> Duration {
        if self.initial_jitter.is_zero() {
            Duration::ZERO
        } else {
            self.with_jitter(Duration::ZERO, self.initial_jitter, rng)
        }
    }

    /// Envoy's `intervalWithJitter`: `base + rand % (percent × base) + rand % jitter`,
    /// at least 1 ms.
    fn with_jitter(&self, base: Duration, jitter: Duration, rng: &mut Rng) -> Duration {
        let mut ms = base.as_millis() as u64;
        let percent_mod = u64::from(self.interval_jitter_percent) * ms / 100;
        if percent_mod > 0 {
            ms += rng.next_u64() % percent_mod;
        }
        let jitter_ms = jitter.as_millis() as u64;
        if jitter_ms > 0 {
            ms += rng.next_u64() % jitter_ms;
        }
        Duration::from_millis(ms.max(1))
    }
}

/// One host's health-check counters (Envoy's `ActiveHealthCheckSession` state).
#[derive(Debug)]
pub struct HostState {
    num_healthy: u32,
    num_unhealthy: u32,
    first_check: bool,
}

impl Default for HostState {
    fn default() -> Self {
        HostState { num_healthy: 0, num_unhealthy: 0, first_check: true }
    }
}

impl HostState {
    /// Whether no result was recorded yet.
    pub fn first_check(&self) -> bool {
        self.first_check
    }

    /// A check passed (`degraded`: the answer carried `x-envoy-degraded`).
    pub fn handle_success(
        &mut self,
        host: &Host,
        degraded: bool,
        checker: &Checker,
        stats: &UpstreamStats,
    ) -> Transition {
        self.num_unhealthy = 0;
        let mut transition = Transition::Unchanged;
        if host.has_flag(health_flag::FAILED_ACTIVE_HC) {
            // The very first result moves a host to healthy at once (faster startup).
            self.num_healthy += 1;
            if self.first_check || self.num_healthy >= checker.healthy_threshold {
                host.clear_flag(health_flag::ACTIVE_HC_TIMEOUT);
                host.clear_flag(health_flag::EXCLUDED_VIA_IMMEDIATE_HC_FAIL);
                host.clear_flag(health_flag::FAILED_ACTIVE_HC);
                stats.hc_healthy.add(1);
                transition = Transition::Changed;
                tracing::info!(host = %host.address, first_check = self.first_check, "health check: host healthy");
            } else {
                transition = Transition::ChangePending;
            }
        }
        if degraded != host.has_flag(health_flag::DEGRADED_ACTIVE_HC) {
            if degraded {
                host.set_flag(health_flag::DEGRADED_ACTIVE_HC);
                stats.hc_degraded.add(1);
            } else {
                host.clear_flag(health_flag::DEGRADED_ACTIVE_HC);
                stats.hc_degraded.add(-1);
            }
            if transition == Transition::Unchanged {
                transition = Transition::Changed;
            }
        }
        stats.hc_success.inc();
        self.first_check = false;
        transition
    }

    /// A check failed (Envoy's `setUnhealthy`).
    pub fn handle_failure(
        &mut self,
        host: &Host,
        failure: FailureType,
        checker: &Checker,
        stats: &UpstreamStats,
    ) -> Transition {
        self.num_healthy = 0;
        let mut transition = Transition::Unchanged;
        if !host.has_flag(health_flag::FAILED_ACTIVE_HC) {
            self.num_unhealthy += 1;
            if !failure.is_network() || self.num_unhealthy >= checker.unhealthy_threshold {
                host.set_flag(health_flag::FAILED_ACTIVE_HC);
                stats.hc_healthy.add(-1);
                transition = Transition::Changed;
                tracing::info!(host = %host.address, ?failure, "health check: host unhealthy");
            } else {
                transition = Transition::ChangePending;
            }
        }
        // A timed-out failed host is marked so; any other result clears the mark.
        if failure == FailureType::NetworkTimeout && host.has_flag(health_flag::FAILED_ACTIVE_HC) {
            host.set_flag(health_flag::ACTIVE_HC_TIMEOUT);
        } else {
            host.clear_flag(health_flag::ACTIVE_HC_TIMEOUT);
        }
        stats.hc_failure.inc();
        match failure {
            FailureType::Network | FailureType::NetworkTimeout => stats.hc_network_failure.inc(),
            FailureType::Passive => stats.hc_passive_failure.inc(),
            FailureType::Active => {}
        }
        self.first_check = false;
        transition
    }
}
