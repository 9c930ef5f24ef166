//! Envoy's per-method gRPC stats (`Grpc::ContextImpl::chargeStat`), as the gRPC-Web
//! filter charges them: `cluster.<cluster>.<protocol>.<service>.<method>.<status>`,
//! then `.success` (status `0`) or `.failure`, then `.total`.
//!
//! The names come from requests (service and method from the `:path`), so the
//! counters are made on first use, as Envoy's dynamic stat names are: one map for the
//! process, behind a lock taken once per charged response, and read by the admin's
//! `/stats` through [`counters`]. Nothing here panics on odd paths or statuses.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::stats::SharedCounter;

static COUNTERS: Mutex<BTreeMap<String, Arc<SharedCounter>>> = Mutex::new(BTreeMap::new());

/// Envoy's `Grpc::Common::resolveServiceAndMethod`: `/service/method` (query ignored,
/// empty segments skipped); anything else has no names.
pub fn service_and_method(path: &str) -> Option<(String, String)> {
    let path = path.split('?').next().unwrap_or("");
    let mut parts = path.split('/').filter(|p| !p.is_empty());
    let (service, method) = (parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    Some((service.to_string(), method.to_string()))
}

/// The names of one request's counters: `cluster.<cluster>.<protocol>.<service>.<method>.`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestStatNames(String);

impl RequestStatNames {
    /// `None` when the path names no service and method (Envoy then charges nothing).
    pub fn new(cluster: &str, protocol: &str, path: &str) -> Option<RequestStatNames> {
        if cluster.is_empty() {
            return None;
        }
        let (service, method) = service_and_method(path)?;
        Some(RequestStatNames(format!("cluster.{cluster}.{protocol}.{service}.{method}.")))
    }

    /// `chargeStat` for a `grpc-status` value (absent: nothing).
    pub fn charge(&self, grpc_status: Option<&[u8]>) {
        let Some(status) = grpc_status else { return };
        let status = String::from_utf8_lossy(status);
        let success = status == "0";
        let mut map = COUNTERS.lock().unwrap_or_else(|e| e.into_inner());
        for suffix in [&*status, if success { "success" } else { "failure" }, "total"] {
            let name = format!("{}{suffix}", self.0);
            map.entry(name).or_default().inc();
        }
    }
}

/// Every counter charged so far, by full name.
pub fn counters() -> Vec<(String, u64)> {
    let map = COUNTERS.lock().unwrap_or_else(|e| e.into_inner());
    map.iter().map(|(n, c)| (n.clone(), c.get())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(name: &str) -> u64 {
        counters().into_iter().find(|(n, _)| n == name).map_or(0, |(_, v)| v)
    }

    #[test]
    fn service_and_method_from_the_path() {
        assert_eq!(service_and_method("/pkg.Svc/Call"), Some(("pkg.Svc".into(), "Call".into())));
        assert_eq!(service_and_method("/pkg.Svc/Call?x=1"), Some(("pkg.Svc".into(), "Call".into())));
        assert_eq!(service_and_method("/pkg.Svc"), None);
        assert_eq!(service_and_method("/a/b/c"), None);
        assert_eq!(RequestStatNames::new("", "grpc-web", "/a/b"), None, "no cluster, no stats");
    }

    #[test]
    fn status_success_or_failure_and_total() {
        let n = RequestStatNames::new("gs_unit", "grpc-web", "/pkg.Svc/Call").expect("names");
        n.charge(Some(b"0"));
        n.charge(Some(b"5"));
        n.charge(None);
        let p = "cluster.gs_unit.grpc-web.pkg.Svc.Call.";
        assert_eq!(get(&format!("{p}0")), 1);
        assert_eq!(get(&format!("{p}5")), 1);
        assert_eq!(get(&format!("{p}success")), 1);
        assert_eq!(get(&format!("{p}failure")), 1);
        assert_eq!(get(&format!("{p}total")), 2);
    }
}
