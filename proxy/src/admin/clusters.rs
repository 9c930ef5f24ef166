//! `/clusters`: Envoy's text format, `cluster::field::value` for the cluster's circuit
//! breakers and `cluster::host:port::field::value` per host (counters, health flags,
//! weight, priority), or JSON with `?format=json`.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use crate::listener::manager::Snapshot;
use crate::upstream::host::{health_flag, Host};

use super::handlers::json_str;

/// Envoy's health flag text: `healthy`, or the failed checks joined by `/`.
pub fn health_flags(h: &Host) -> String {
    // Envoy's order and names (HostUtility::healthFlagsToString).
    const NAMES: [(u32, &str); 5] = [
        (health_flag::FAILED_ACTIVE_HC, "/failed_active_hc"),
        (health_flag::FAILED_OUTLIER_CHECK, "/failed_outlier_check"),
        (health_flag::DEGRADED_ACTIVE_HC, "/degraded_active_hc"),
        (health_flag::ACTIVE_HC_TIMEOUT, "/active_hc_timeout"),
        (health_flag::EXCLUDED_VIA_IMMEDIATE_HC_FAIL, "/excluded_via_immediate_hc_fail"),
    ];
    let parts: Vec<&str> = NAMES.iter().filter(|(f, _)| h.has_flag(*f)).map(|(_, n)| *n).collect();
    if parts.is_empty() {
        "healthy".into()
    } else {
        parts.concat()
    }
}

/// A number as C's `%g` prints it (fmt's `{:g}`, which Envoy uses here): six
/// significant digits, trailing zeros dropped.
fn fmt_g(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let exp = v.abs().log10().floor() as i32;
    if !(-5..6).contains(&exp) {
        let s = format!("{v:.5e}");
        let (mantissa, e) = s.split_once('e').unwrap_or((&s, "0"));
        let mantissa = mantissa.trim_end_matches('0').trim_end_matches('.');
        let e: i32 = e.parse().unwrap_or(0);
        return format!("{mantissa}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs());
    }
    let decimals = (5 - exp).max(0) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

pub fn render(snapshot: &Snapshot) -> String {
    let mut s = String::new();
    for c in &snapshot.cluster_manager.clusters {
        let name = c.name();
        let cb = &c.config.circuit_breakers;
        let _ = writeln!(s, "{name}::observability_name::{}", c.config.stat_name());
        if let Some(r) = &c.outlier {
            let [mean, threshold, local_mean, local_threshold] = r.success_rates();
            let _ = writeln!(s, "{name}::outlier::success_rate_average::{}", fmt_g(mean));
            let _ = writeln!(s, "{name}::outlier::success_rate_ejection_threshold::{}", fmt_g(threshold));
            let _ = writeln!(s, "{name}::outlier::local_origin_success_rate_average::{}", fmt_g(local_mean));
            let _ = writeln!(
                s,
                "{name}::outlier::local_origin_success_rate_ejection_threshold::{}",
                fmt_g(local_threshold)
            );
        }
        // DEFAULT priority: the limits in force (runtime overrides included).
        let default = c.circuit_breaker_limits();
        let high = [cb.max_connections, cb.max_pending_requests, cb.max_requests, cb.max_retries];
        for (prio, limits) in [("default_priority", default), ("high_priority", high)] {
            let _ = writeln!(s, "{name}::{prio}::max_connections::{}", limits[0]);
            let _ = writeln!(s, "{name}::{prio}::max_pending_requests::{}", limits[1]);
            let _ = writeln!(s, "{name}::{prio}::max_requests::{}", limits[2]);
            let _ = writeln!(s, "{name}::{prio}::max_retries::{}", limits[3]);
        }
        let _ = writeln!(s, "{name}::added_via_api::false");
        for h in c.hosts().hosts.iter() {
            let a = h.address;
            // Envoy's host stats, in its (alphabetical) order.
            let stats = [
                ("cx_active", u64::from(h.cx_active.load(Ordering::Relaxed))),
                ("cx_connect_fail", h.cx_connect_fail.load(Ordering::Relaxed)),
                ("cx_total", h.cx_total.load(Ordering::Relaxed)),
                ("rq_active", u64::from(h.rq_active.load(Ordering::Relaxed))),
                ("rq_error", h.rq_error.load(Ordering::Relaxed)),
                ("rq_success", h.rq_success.load(Ordering::Relaxed)),
                ("rq_timeout", h.rq_timeout.load(Ordering::Relaxed)),
                ("rq_total", h.rq_total.load(Ordering::Relaxed)),
            ];
            for (stat, value) in stats {
                let _ = writeln!(s, "{name}::{a}::{stat}::{value}");
            }
            let _ = writeln!(s, "{name}::{a}::hostname::{}", h.hostname);
            let _ = writeln!(s, "{name}::{a}::health_flags::{}", health_flags(h));
            let _ = writeln!(s, "{name}::{a}::weight::{}", h.weight);
            let _ = writeln!(s, "{name}::{a}::region::");
            let _ = writeln!(s, "{name}::{a}::zone::");
            let _ = writeln!(s, "{name}::{a}::sub_zone::");
            let _ = writeln!(s, "{name}::{a}::canary::false");
            let _ = writeln!(s, "{name}::{a}::priority::{}", h.priority);
            let _ = writeln!(s, "{name}::{a}::success_rate::{}", h.outlier.success_rate(false));
            let _ = writeln!(s, "{name}::{a}::local_origin_success_rate::{}", h.outlier.success_rate(true));
        }
    }
    s
}

pub fn render_json(snapshot: &Snapshot) -> String {
    let mut s = String::from("{\"cluster_statuses\":[");
    for (i, c) in snapshot.cluster_manager.clusters.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(s, "{{\"name\":{},\"added_via_api\":false,\"host_statuses\":[", json_str(c.name()));
        for (j, h) in c.hosts().hosts.iter().enumerate() {
            if j > 0 {
                s.push(',');
            }
            let status = if h.healthy() { "HEALTHY" } else { "UNHEALTHY" };
            // Counters first (their type, COUNTER, is the default and left out), then gauges.
            let mut counters = String::new();
            for (stat, value) in [
                ("cx_connect_fail", &h.cx_connect_fail),
                ("cx_total", &h.cx_total),
                ("rq_error", &h.rq_error),
                ("rq_success", &h.rq_success),
                ("rq_timeout", &h.rq_timeout),
                ("rq_total", &h.rq_total),
            ] {
                let _ = write!(counters, "{{\"name\":\"{stat}\",\"value\":\"{}\"}},", value.load(Ordering::Relaxed));
            }
            let _ = write!(
                s,
                "{{\"address\":{{\"socket_address\":{{\"address\":{},\"port_value\":{}}}}},\"stats\":[{counters}{{\"name\":\"cx_active\",\"value\":\"{}\",\"type\":\"GAUGE\"}},{{\"name\":\"rq_active\",\"value\":\"{}\",\"type\":\"GAUGE\"}}],\"health_status\":{{\"eds_health_status\":\"{status}\",\"failed_active_health_check\":{},\"failed_outlier_check\":{}}},\"weight\":{},\"priority\":{}}}",
                json_str(&h.address.ip().to_string()),
                h.address.port(),
                h.cx_active.load(Ordering::Relaxed),
                h.rq_active.load(Ordering::Relaxed),
                h.has_flag(health_flag::FAILED_ACTIVE_HC),
                h.has_flag(health_flag::FAILED_OUTLIER_CHECK),
                h.weight,
                h.priority,
            );
        }
        s.push_str("]}");
    }
    s.push_str("]}\n");
    s
}

#[cfg(test)]
mod tests {
    use super::fmt_g;

    #[test]
    fn percent_g_formatting() {
        assert_eq!(fmt_g(-1.0), "-1");
        assert_eq!(fmt_g(100.0), "100");
        assert_eq!(fmt_g(66.666666666), "66.6667");
        assert_eq!(fmt_g(19.526214), "19.5262");
        assert_eq!(fmt_g(0.0), "0");
        assert_eq!(fmt_g(1234567.0), "1.23457e+06");
    }
}
