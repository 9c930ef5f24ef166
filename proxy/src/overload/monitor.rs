//! Resource monitors: each turns a resource into a pressure (0 = idle, 1 = at its
//! configured maximum; it may exceed 1).

use sluice_config::overload::MonitorKind;

use super::OverloadState;

/// The current pressure of a monitor.
pub fn pressure(kind: MonitorKind, state: &OverloadState) -> Result<f64, String> {
    match kind {
        MonitorKind::GlobalDownstreamMaxConnections { max_active_downstream_connections } => {
            Ok(state.connections() as f64 / max_active_downstream_connections as f64)
        }
        MonitorKind::FixedHeap { max_heap_size_bytes } => Ok(resident_bytes()? as f64 / max_heap_size_bytes as f64),
    }
}

/// The process's resident set size (`VmRSS` of `/proc/self/status`).
pub fn resident_bytes() -> Result<u64, String> {
    let status = std::fs::read_to_string("/proc/self/status").map_err(|e| format!("/proc/self/status: {e}"))?;
    parse_vm_rss(&status).ok_or_else(|| "no VmRSS in /proc/self/status".to_string())
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.trim_start_matches("VmRSS:").trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_is_read() {
        assert_eq!(parse_vm_rss("Name:\tx\nVmRSS:\t    1234 kB\nVmData: 1 kB\n"), Some(1234 * 1024));
        assert!(resident_bytes().unwrap() > 0);
    }
}
