//! The worker side of outlier detection: per-host counters (Envoy's
//! `DetectorHostMonitorImpl`).
//!
//! Every worker reports outcomes for a host into that host's [`HostMonitor`] with
//! relaxed atomics only: consecutive-error counters, and success-rate buckets that the
//! authority thread swaps once per `interval`. When a counter reaches its threshold
//! exactly (`++n == threshold`, so one bout is reported once) the monitor returns the
//! detected ejection type; the caller records it in the host's pending bits and wakes
//! the authority, which decides the ejection. Nothing here locks, allocates or blocks.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

use sluice_config::cluster::OutlierDetection;

use super::{EjectionType, Outcome};

/// A success-rate window: workers count into the current bucket, the authority reads
/// the previous one (Envoy's `SuccessRateAccumulator`).
#[derive(Debug, Default)]
pub struct SuccessRateAccumulator {
    buckets: [Bucket; 2],
    current: AtomicUsize,
}

#[derive(Debug, Default)]
struct Bucket {
    success: AtomicU64,
    total: AtomicU64,
}

impl SuccessRateAccumulator {
    fn writer(&self) -> &Bucket {
        &self.buckets[self.current.load(Ordering::Acquire) & 1]
    }

    pub fn inc_total(&self) {
        self.writer().total.fetch_add(1, Ordering::Relaxed);
    }

    pub fn inc_success(&self) {
        self.writer().success.fetch_add(1, Ordering::Relaxed);
    }

    /// Authority: start a new window (the previous one becomes readable).
    pub fn update_current_writer(&self) {
        let current = self.current.load(Ordering::Acquire) & 1;
        let backup = &self.buckets[current ^ 1];
        backup.success.store(0, Ordering::Relaxed);
        backup.total.store(0, Ordering::Relaxed);
        self.current.store(current ^ 1, Ordering::Release);
    }

    /// The last complete window: (success rate in percent, request volume).
    pub fn success_rate_and_volume(&self) -> Option<(f64, u64)> {
        let backup = &self.buckets[(self.current.load(Ordering::Acquire) & 1) ^ 1];
        let total = backup.total.load(Ordering::Relaxed);
        if total == 0 {
            return None;
        }
        let success = backup.success.load(Ordering::Relaxed).min(total);
        Some((success as f64 * 100.0 / total as f64, total))
    }
}

/// Per-host outlier counters, written lock-free by workers.
#[derive(Debug)]
pub struct HostMonitor {
    consecutive_5xx: AtomicU32,
    consecutive_gateway_failure: AtomicU32,
    consecutive_local_origin_failure: AtomicU32,
    /// Ejection types detected by workers and not yet handled (bits of [`EjectionType`]).
    pending: AtomicU32,
    pub external_origin: SuccessRateAccumulator,
    pub local_origin: SuccessRateAccumulator,
    /// The success rates the authority computed in its last pass (f64 bits; negative:
    /// none, the host lacked `success_rate_request_volume`), external then local
    /// origin, for `/clusters`.
    success_rates: [AtomicU64; 2],
}

impl Default for HostMonitor {
    fn default() -> HostMonitor {
        HostMonitor {
            consecutive_5xx: AtomicU32::new(0),
            consecutive_gateway_failure: AtomicU32::new(0),
            consecutive_local_origin_failure: AtomicU32::new(0),
            pending: AtomicU32::new(0),
            external_origin: SuccessRateAccumulator::default(),
            local_origin: SuccessRateAccumulator::default(),
            success_rates: [AtomicU64::new((-1f64).to_bits()), AtomicU64::new((-1f64).to_bits())],
        }
    }
}

fn is_5xx(code: u64) -> bool {
    (500..600).contains(&code)
}

/// 502, 503 and 504 (Envoy's `CodeUtility::isGatewayError`).
fn is_gateway_error(code: u64) -> bool {
    (502..=504).contains(&code)
}

/// `++counter == threshold`: true exactly once per bout (threshold 0 never fires).
fn bump(counter: &AtomicU32, threshold: u32) -> bool {
    counter.fetch_add(1, Ordering::Relaxed).wrapping_add(1) == threshold
}

impl HostMonitor {
    /// Record an outcome; returns the ejection types it detected (a bit set).
    pub fn put_result(&self, outcome: Outcome, code: Option<u64>, cfg: &OutlierDetection) -> u32 {
        if cfg.split_external_local_origin_errors {
            return self.put_result_split(outcome, cfg);
        }
        if let Some(code) = code {
            return self.put_http_response_code(code, cfg);
        }
        // Without the split every outcome is mapped onto an HTTP status.
        let code = match outcome {
            Outcome::ExtOriginRequestSuccess | Outcome::LocalOriginConnectSuccessFinal => 200,
            Outcome::LocalOriginTimeout => 504,
            Outcome::LocalOriginConnectFailed => 503,
            Outcome::ExtOriginRequestFailed => 500,
            // Only the higher-layer result counts for two-layer protocols (HTTP).
            Outcome::LocalOriginConnectSuccess => return 0,
        };
        self.put_http_response_code(code, cfg)
    }

    fn put_result_split(&self, outcome: Outcome, cfg: &OutlierDetection) -> u32 {
        match outcome {
            Outcome::LocalOriginConnectSuccess | Outcome::LocalOriginConnectSuccessFinal => {
                self.local_origin_no_failure();
                0
            }
            Outcome::LocalOriginTimeout | Outcome::LocalOriginConnectFailed => self.local_origin_failure(cfg),
            Outcome::ExtOriginRequestFailed => self.put_http_response_code(503, cfg),
            Outcome::ExtOriginRequestSuccess => {
                let bits = self.put_http_response_code(200, cfg);
                self.local_origin_no_failure();
                bits
            }
        }
    }

    /// An HTTP status from the host (Envoy's `putHttpResponseCode`).
    pub fn put_http_response_code(&self, code: u64, cfg: &OutlierDetection) -> u32 {
        self.external_origin.inc_total();
        let mut bits = 0;
        if is_5xx(code) {
            if is_gateway_error(code) {
                if bump(&self.consecutive_gateway_failure, cfg.consecutive_gateway_failure) {
                    bits |= EjectionType::ConsecutiveGatewayFailure.bit();
                }
            } else {
                self.consecutive_gateway_failure.store(0, Ordering::Relaxed);
            }
            if bump(&self.consecutive_5xx, cfg.consecutive_5xx) {
                bits |= EjectionType::Consecutive5xx.bit();
            }
        } else {
            self.external_origin.inc_success();
            self.consecutive_5xx.store(0, Ordering::Relaxed);
            self.consecutive_gateway_failure.store(0, Ordering::Relaxed);
        }
        bits
    }

    fn local_origin_failure(&self, cfg: &OutlierDetection) -> u32 {
        self.local_origin.inc_total();
        if bump(&self.consecutive_local_origin_failure, cfg.consecutive_local_origin_failure) {
            EjectionType::ConsecutiveLocalOriginFailure.bit()
        } else {
            0
        }
    }

    fn local_origin_no_failure(&self) {
        self.local_origin.inc_total();
        self.local_origin.inc_success();
        self.consecutive_local_origin_failure.store(0, Ordering::Relaxed);
    }

    /// The last computed success rate in percent (`local`: the local-origin one), or -1.
    pub fn success_rate(&self, local: bool) -> f64 {
        f64::from_bits(self.success_rates[usize::from(local)].load(Ordering::Relaxed))
    }

    /// Authority: publish a computed success rate (-1: none this interval).
    pub fn set_success_rate(&self, local: bool, rate: f64) {
        self.success_rates[usize::from(local)].store(rate.to_bits(), Ordering::Relaxed);
    }

    /// Record detected ejection types for the authority.
    pub fn post(&self, bits: u32) {
        self.pending.fetch_or(bits, Ordering::AcqRel);
    }

    /// Authority: take the detected ejection types.
    pub fn take_pending(&self) -> u32 {
        self.pending.swap(0, Ordering::AcqRel)
    }

    pub fn reset_consecutive_5xx(&self) {
        self.consecutive_5xx.store(0, Ordering::Relaxed);
    }

    pub fn reset_consecutive_gateway_failure(&self) {
        self.consecutive_gateway_failure.store(0, Ordering::Relaxed);
    }

    pub fn reset_consecutive_local_origin_failure(&self) {
        self.consecutive_local_origin_failure.store(0, Ordering::Relaxed);
    }
}
