//! The outlier detector's runtime keys (Envoy's outlier_detection_impl.h
//! `*Runtime` names: `outlier_detection.consecutive_5xx`,
//! `outlier_detection.enforcing_consecutive_5xx`, `outlier_detection.interval_ms`, ...).
//!
//! Envoy reads each one from the runtime snapshot where it uses the value, with the
//! cluster's configured value as the default. Here the main thread pushes the values
//! of each new snapshot into every cluster's [`RuntimeOverrides`] (relaxed atomics,
//! `u64::MAX` for "not set"); workers and the upstream monitor thread then read the
//! effective configuration without a lock, and only build a copy of it while some key
//! is set. An interval change applies from the next interval, as Envoy re-arms its
//! timer with the runtime value.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use sluice_config::cluster::OutlierDetection;

use crate::runtime::Snapshot;

const NOT_SET: u64 = u64::MAX;

type Setter = fn(&mut OutlierDetection, u64);

fn to_u32(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// Every key Envoy's detector reads, and the field it overrides.
/// Envoy reads no key for `split_external_local_origin_errors`,
/// `successful_active_health_check_uneject_host` or `always_eject_one_host`.
const KEYS: [(&str, Setter); 21] = [
    ("outlier_detection.consecutive_5xx", |c, v| c.consecutive_5xx = to_u32(v)),
    ("outlier_detection.consecutive_gateway_failure", |c, v| c.consecutive_gateway_failure = to_u32(v)),
    ("outlier_detection.consecutive_local_origin_failure", |c, v| c.consecutive_local_origin_failure = to_u32(v)),
    ("outlier_detection.interval_ms", |c, v| c.interval = Duration::from_millis(v.max(1))),
    ("outlier_detection.base_ejection_time_ms", |c, v| c.base_ejection_time = Duration::from_millis(v)),
    ("outlier_detection.max_ejection_time_ms", |c, v| c.max_ejection_time = Duration::from_millis(v)),
    ("outlier_detection.max_ejection_time_jitter_ms", |c, v| c.max_ejection_time_jitter = Duration::from_millis(v)),
    ("outlier_detection.max_ejection_percent", |c, v| c.max_ejection_percent = to_u32(v)),
    ("outlier_detection.enforcing_consecutive_5xx", |c, v| c.enforcing_consecutive_5xx = to_u32(v)),
    ("outlier_detection.enforcing_consecutive_gateway_failure", |c, v| {
        c.enforcing_consecutive_gateway_failure = to_u32(v)
    }),
    ("outlier_detection.enforcing_consecutive_local_origin_failure", |c, v| {
        c.enforcing_consecutive_local_origin_failure = to_u32(v)
    }),
    ("outlier_detection.enforcing_success_rate", |c, v| c.enforcing_success_rate = to_u32(v)),
    ("outlier_detection.enforcing_local_origin_success_rate", |c, v| c.enforcing_local_origin_success_rate = to_u32(v)),
    ("outlier_detection.enforcing_failure_percentage", |c, v| c.enforcing_failure_percentage = to_u32(v)),
    ("outlier_detection.enforcing_failure_percentage_local_origin", |c, v| {
        c.enforcing_failure_percentage_local_origin = to_u32(v)
    }),
    ("outlier_detection.success_rate_minimum_hosts", |c, v| c.success_rate_minimum_hosts = to_u32(v)),
    ("outlier_detection.success_rate_request_volume", |c, v| c.success_rate_request_volume = to_u32(v)),
    ("outlier_detection.success_rate_stdev_factor", |c, v| c.success_rate_stdev_factor = to_u32(v)),
    ("outlier_detection.failure_percentage_threshold", |c, v| c.failure_percentage_threshold = to_u32(v)),
    ("outlier_detection.failure_percentage_minimum_hosts", |c, v| c.failure_percentage_minimum_hosts = to_u32(v)),
    ("outlier_detection.failure_percentage_request_volume", |c, v| c.failure_percentage_request_volume = to_u32(v)),
];

/// The runtime values in force for one cluster's detector.
#[derive(Debug)]
pub struct RuntimeOverrides {
    values: [AtomicU64; KEYS.len()],
    /// Some key is set: the effective config differs from the configured one.
    any: AtomicBool,
}

impl Default for RuntimeOverrides {
    fn default() -> Self {
        RuntimeOverrides { values: std::array::from_fn(|_| AtomicU64::new(NOT_SET)), any: AtomicBool::new(false) }
    }
}

impl RuntimeOverrides {
    /// Main thread: take the values of a new snapshot (an unparsable value counts as
    /// unset, as Envoy's `getInteger` falls back to the default).
    pub fn apply(&self, snapshot: &Snapshot) {
        let mut any = false;
        for ((key, _), slot) in KEYS.iter().zip(&self.values) {
            let v = snapshot.get_integer(key, NOT_SET);
            any |= v != NOT_SET;
            slot.store(v, Ordering::Relaxed);
        }
        self.any.store(any, Ordering::Release);
    }

    /// Run `f` on the configuration in force: `base` with the runtime's values.
    pub fn with<R>(&self, base: &OutlierDetection, f: impl FnOnce(&OutlierDetection) -> R) -> R {
        if !self.any.load(Ordering::Acquire) {
            return f(base);
        }
        f(&self.effective(base))
    }

    /// `base` with the runtime's values.
    pub fn effective(&self, base: &OutlierDetection) -> OutlierDetection {
        let mut c = base.clone();
        if self.any.load(Ordering::Acquire) {
            for ((_, set), slot) in KEYS.iter().zip(&self.values) {
                let v = slot.load(Ordering::Relaxed);
                if v != NOT_SET {
                    set(&mut c, v);
                }
            }
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::Layer;
    use sluice_config::runtime::Entry;
    use std::sync::Arc;

    #[test]
    fn keys_override_the_configured_values() {
        let o = RuntimeOverrides::default();
        let base = OutlierDetection::default();
        assert_eq!(o.effective(&base), base);
        let pairs = [
            ("outlier_detection.enforcing_consecutive_5xx", "0"),
            ("outlier_detection.interval_ms", "250"),
            ("outlier_detection.consecutive_5xx", "not a number"),
        ];
        let layer = Layer {
            name: "admin".into(),
            values: pairs.iter().map(|(k, v)| (k.to_string(), Entry::parse(v))).collect(),
        };
        o.apply(&Snapshot::new(vec![Arc::new(layer)]));
        let c = o.effective(&base);
        assert_eq!(c.enforcing_consecutive_5xx, 0);
        assert_eq!(c.interval, Duration::from_millis(250));
        assert_eq!(c.consecutive_5xx, base.consecutive_5xx, "unparsable: the configured value");
        o.apply(&Snapshot::new(Vec::new()));
        assert_eq!(o.with(&base, |c| c.clone()), base);
    }
}
