//! Connection limits set in the runtime: per listener
//! (`envoy.resource_limits.listener.<name>.connection_limit`) and global
//! (`overload.global_downstream_max_connections`).
//!
//! As Envoy's `ActiveTcpListener::onAccept`: a connection accepted while its listener
//! already has `connection_limit` open connections is closed at once and counted in
//! `listener.<stat_prefix>.downstream_cx_overflow`. The count covers every worker (a
//! shared counter on the listener's config), from accept to close (Envoy counts from
//! the connection's creation after the listener filters; the check is at accept in
//! both). Without the key the listener is unlimited. The counter belongs to one config
//! generation: after a SIGHUP the new listener config counts its own connections while
//! the old one's finish, so during that overlap a listener may hold up to twice its
//! limit. The global key applies, as in Envoy's `TcpListenerImpl`, only
//! when the overload manager has no `global_downstream_max_connections` monitor (which
//! then wins): a connection accepted while the process already holds that many is
//! closed and counted in `downstream_global_cx_overflow`; listeners with
//! `ignore_global_conn_limit` are exempt.

use std::sync::atomic::{AtomicU64, Ordering};

use super::Snapshot;
use crate::overload::OverloadState;

/// Envoy's `Runtime::Keys::GlobalMaxCxRuntimeKey`.
pub const GLOBAL_MAX_CX: &str = "overload.global_downstream_max_connections";

/// One listener's open connections and its runtime limit key.
#[derive(Debug)]
pub struct ListenerLimit {
    key: String,
    open: AtomicU64,
}

impl ListenerLimit {
    pub fn new(listener_name: &str) -> ListenerLimit {
        ListenerLimit {
            key: format!("envoy.resource_limits.listener.{listener_name}.connection_limit"),
            open: AtomicU64::new(0),
        }
    }

    /// Count a new connection, unless the listener is at its limit (false).
    pub fn try_open(&self, runtime: &Snapshot) -> bool {
        let max = runtime.get_integer(&self.key, u64::MAX);
        self.open.fetch_update(Ordering::AcqRel, Ordering::Relaxed, |v| (v < max).then_some(v + 1)).is_ok()
    }

    /// A counted connection closed.
    pub fn close(&self) {
        let _ = self.open.fetch_update(Ordering::AcqRel, Ordering::Relaxed, |v| Some(v.saturating_sub(1)));
    }

    /// Connections open now.
    pub fn open(&self) -> u64 {
        self.open.load(Ordering::Relaxed)
    }
}

/// Whether a new connection passes the runtime's global limit (`enforce` false:
/// `ignore_global_conn_limit`). True means reject.
pub fn over_global_limit(overload: &OverloadState, runtime: &Snapshot, enforce: bool) -> bool {
    enforce
        && overload.max_connections().is_none()
        && overload.connections() >= runtime.get_integer(GLOBAL_MAX_CX, u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::Layer;
    use sluice_config::runtime::Entry;
    use std::sync::Arc;

    fn runtime(kv: &[(&str, &str)]) -> Snapshot {
        Snapshot::new(vec![Arc::new(Layer {
            name: "l".into(),
            values: kv.iter().map(|(k, v)| (k.to_string(), Entry::parse(v))).collect(),
        })])
    }

    #[test]
    fn the_listener_limit_holds_and_frees() {
        let l = ListenerLimit::new("front");
        let rt = runtime(&[("envoy.resource_limits.listener.front.connection_limit", "2")]);
        assert!(l.try_open(&rt));
        assert!(l.try_open(&rt));
        assert!(!l.try_open(&rt), "the third is over the limit");
        assert_eq!(l.open(), 2);
        l.close();
        assert!(l.try_open(&rt));
        let unlimited = runtime(&[]);
        for _ in 0..100 {
            assert!(l.try_open(&unlimited));
        }
    }

    #[test]
    fn the_global_runtime_limit_yields_to_the_overload_manager() {
        let o = OverloadState::default();
        let rt = runtime(&[(GLOBAL_MAX_CX, "1")]);
        assert!(!over_global_limit(&o, &rt, true));
        assert!(o.try_allocate_connection(true));
        assert!(over_global_limit(&o, &rt, true));
        assert!(!over_global_limit(&o, &rt, false), "ignore_global_conn_limit");
        assert!(!over_global_limit(&o, &runtime(&[]), true));
    }
}
