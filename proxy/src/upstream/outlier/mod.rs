//! Outlier detection (passive health checking), split as Envoy splits it.
//!
//! - Workers report each outcome for a host through the cluster's [`Reporter`] into
//!   the host's [`HostMonitor`]: relaxed atomics, no lock, no allocation. A counter
//!   reaching its threshold posts the detected [`EjectionType`] in the host's pending
//!   bits and asks for the authority to be woken (Envoy posts to its main thread).
//! - One authority per cluster, the [`Detector`] on the upstream monitor thread, decides
//!   ejections (max_ejection_percent, always_eject_one_host, enforcing_* percentages),
//!   un-ejects on `interval` ticks after `base_ejection_time × backoff` (capped by
//!   `max_ejection_time`, plus jitter), runs success-rate and failure-percentage
//!   detection over the previous interval's window, and publishes ejections through the
//!   host's FAILED_OUTLIER_CHECK flag and a rebuilt priority set that workers read
//!   without locks.
//! - Both read the configuration in force: the cluster's values with Envoy's
//!   `outlier_detection.*` runtime keys over them ([`runtime`]).

pub mod detector;
pub mod http;
pub mod monitor;
pub mod runtime;

#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use sluice_config::cluster::OutlierDetection;

use crate::upstream::host::Host;

pub use detector::Detector;
pub use monitor::{HostMonitor, SuccessRateAccumulator};
pub use runtime::RuntimeOverrides;

/// What happened on a request or connection to a host (Envoy's `Outlier::Result`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The connection was established; the higher layer (HTTP) reports the rest.
    LocalOriginConnectSuccess,
    /// The connection was established and that is all there is to it (tcp_proxy).
    LocalOriginConnectSuccessFinal,
    /// Connecting, or waiting for the host, timed out.
    LocalOriginTimeout,
    /// The connection failed (refused, reset, unreachable).
    LocalOriginConnectFailed,
    /// The host failed the transaction (a non-HTTP protocol error, a reset mid-request).
    ExtOriginRequestFailed,
    /// The host completed the transaction (non-HTTP protocols).
    ExtOriginRequestSuccess,
}

/// Why a host may be ejected (`envoy.data.cluster.v3.OutlierEjectionType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EjectionType {
    Consecutive5xx,
    SuccessRate,
    ConsecutiveGatewayFailure,
    ConsecutiveLocalOriginFailure,
    SuccessRateLocalOrigin,
    FailurePercentage,
    FailurePercentageLocalOrigin,
}

impl EjectionType {
    /// Consecutive-error types in the order Envoy's workers post them.
    pub const CONSECUTIVE: [EjectionType; 3] = [
        EjectionType::ConsecutiveGatewayFailure,
        EjectionType::Consecutive5xx,
        EjectionType::ConsecutiveLocalOriginFailure,
    ];

    pub fn bit(self) -> u32 {
        1 << self as u32
    }

    /// The `enforcing_*` percentage that applies.
    pub fn enforcing(self, cfg: &OutlierDetection) -> u32 {
        match self {
            EjectionType::Consecutive5xx => cfg.enforcing_consecutive_5xx,
            EjectionType::SuccessRate => cfg.enforcing_success_rate,
            EjectionType::ConsecutiveGatewayFailure => cfg.enforcing_consecutive_gateway_failure,
            EjectionType::ConsecutiveLocalOriginFailure => cfg.enforcing_consecutive_local_origin_failure,
            EjectionType::SuccessRateLocalOrigin => cfg.enforcing_local_origin_success_rate,
            EjectionType::FailurePercentage => cfg.enforcing_failure_percentage,
            EjectionType::FailurePercentageLocalOrigin => cfg.enforcing_failure_percentage_local_origin,
        }
    }
}

/// The worker-facing half of a cluster's outlier detector.
#[derive(Debug)]
pub struct Reporter {
    /// As configured; [`Reporter::effective`] has the runtime's values.
    pub config: OutlierDetection,
    /// The `outlier_detection.*` runtime keys in force.
    pub runtime: RuntimeOverrides,
    /// Some host of the cluster has pending ejection types.
    pending: AtomicBool,
    /// The authority's last success-rate pass, for `/clusters` (f64 bits, -1: none):
    /// mean and ejection threshold, external origin then local origin.
    success_rates: [AtomicU64; 4],
}

impl Reporter {
    pub fn new(config: OutlierDetection) -> Reporter {
        let none = || AtomicU64::new((-1f64).to_bits());
        Reporter {
            config,
            runtime: RuntimeOverrides::default(),
            pending: AtomicBool::new(false),
            success_rates: [none(), none(), none(), none()],
        }
    }

    /// The configuration in force (the runtime's `outlier_detection.*` values over
    /// the configured ones).
    pub fn effective(&self) -> OutlierDetection {
        self.runtime.effective(&self.config)
    }

    /// Authority: publish the last pass's (mean, threshold), external then local origin.
    pub fn publish_success_rates(&self, passes: [Option<(f64, f64)>; 2]) {
        for (i, pass) in passes.into_iter().enumerate() {
            let (mean, threshold) = pass.unwrap_or((-1.0, -1.0));
            self.success_rates[2 * i].store(mean.to_bits(), Ordering::Relaxed);
            self.success_rates[2 * i + 1].store(threshold.to_bits(), Ordering::Relaxed);
        }
    }

    /// `[mean, threshold, local-origin mean, local-origin threshold]` (-1: none).
    pub fn success_rates(&self) -> [f64; 4] {
        self.success_rates.each_ref().map(|v| f64::from_bits(v.load(Ordering::Relaxed)))
    }

    /// Record `outcome` (or an HTTP status `code`) for `host`. True when an ejection
    /// type was detected and the authority must be woken.
    pub fn put_result(&self, host: &Host, outcome: Outcome, code: Option<u64>) -> bool {
        let bits = self.runtime.with(&self.config, |cfg| host.outlier.put_result(outcome, code, cfg));
        self.post(host, bits)
    }

    /// Record an HTTP response status from `host` (true: wake the authority).
    pub fn put_http_response_code(&self, host: &Host, code: u64) -> bool {
        let bits = self.runtime.with(&self.config, |cfg| host.outlier.put_http_response_code(code, cfg));
        self.post(host, bits)
    }

    fn post(&self, host: &Host, bits: u32) -> bool {
        if bits == 0 {
            return false;
        }
        host.outlier.post(bits);
        self.pending.store(true, Ordering::Release);
        true
    }

    /// Authority: whether any host posted since the last call.
    pub fn take_pending(&self) -> bool {
        self.pending.swap(false, Ordering::AcqRel)
    }
}
