//! Upgrades and CONNECT in the connection manager (Envoy's `createUpgradeFilterChain`
//! and the upgrade handling of conn_manager_impl.cc).
//!
//! A request is an upgrade when it carries `Upgrade` with `Connection: upgrade`
//! (`Http::Utility::isUpgrade`; its type is the `Upgrade` value) or is a CONNECT
//! (`HeaderUtility::isConnect`; its type is `CONNECT`). Once a route matched, the type
//! must be allowed: the route's `upgrade_configs` entry for it decides when there is one
//! (`enabled`), else the HCM's (`enabled`); types compare case-insensitively. A request
//! whose upgrade is not allowed gets Envoy's 403 with an empty body, counts
//! `downstream_rq_ws_on_non_ws_route`, and the connection closes after it (upgrade
//! payload is never parsed as a request). An allowed one counts
//! `downstream_cx_upgrades_total` and `downstream_cx_upgrades_active` (until the stream
//! ends); the router forwards it with its `Upgrade`/`Connection` headers, a CONNECT as a
//! CONNECT, or, on a route whose CONNECT entry has `connect_config`, terminates it (a
//! TCP connection to the host, then a 200 to the client). A `101` (a `2xx` to CONNECT)
//! turns the stream into a [`Tunnel`]; any other answer is forwarded as a normal
//! response and the connection closes after it. A tunnel lives until both directions
//! finished, a side resets, or the stream idle timeout / `max_stream_duration` ends it
//! (the connection manager's timers; relayed bytes count as activity).

use sluice_config::hcm::UpgradeConfig;
use sluice_config::route::RouteAction;
use sluice_stack::Stack;

use crate::http::codec::RequestMeta;
use crate::http::conn_manager::HttpConnection;
use crate::http::stream_encoder::ServerStream;
use crate::http::tunnel::Tunnel;
use crate::http::RequestHead;
use crate::router::Matched;
use crate::tcp_proxy::Status;
use crate::worker_ctx::Ctx;

use super::active_stream::StreamCx;

/// The HCM's `upgrade_configs`, compiled: (type, enabled).
#[derive(Debug, Default)]
pub struct UpgradePolicy {
    types: Vec<(String, bool)>,
}

impl UpgradePolicy {
    pub fn new(configs: &[UpgradeConfig]) -> UpgradePolicy {
        UpgradePolicy { types: configs.iter().map(|c| (c.upgrade_type.clone(), c.enabled)).collect() }
    }

    fn enabled(&self, upgrade_type: &str) -> Option<bool> {
        self.types.iter().find(|(t, _)| t.eq_ignore_ascii_case(upgrade_type)).map(|(_, e)| *e)
    }
}

/// How an allowed upgrade goes upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UpgradeKind {
    /// Not an upgrade.
    #[default]
    None,
    /// `Upgrade:` (websocket, ...): forwarded with its headers; a 101 switches.
    Upgrade,
    /// CONNECT forwarded upstream as CONNECT; a 2xx switches.
    ConnectProxy,
    /// CONNECT terminated here: TCP to the host, a 200 to the client.
    ConnectTerminate,
}

/// Envoy's decision for a request on a matched route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    NotUpgrade,
    Allowed(UpgradeKind),
    Rejected,
}

/// Decide as `createUpgradeFilterChain` does; `action` is the matched route's forwarding
/// action (`None` for a redirect or direct response: only the HCM's list counts).
pub fn decide(
    policy: &UpgradePolicy,
    head: &RequestHead,
    meta: &RequestMeta,
    action: Option<&RouteAction>,
) -> Decision {
    let upgrade_type = if meta.upgrade {
        head.headers.get_str(b"upgrade").unwrap_or("")
    } else if meta.is_connect {
        "CONNECT"
    } else {
        return Decision::NotUpgrade;
    };
    let route_entry =
        action.and_then(|a| a.upgrade_configs.iter().find(|c| c.upgrade_type.eq_ignore_ascii_case(upgrade_type)));
    let allowed = match route_entry {
        Some(c) => c.enabled,
        None => policy.enabled(upgrade_type) == Some(true),
    };
    if !allowed {
        return Decision::Rejected;
    }
    if !meta.upgrade {
        let terminate = action.is_some_and(|a| a.upgrade_configs.iter().any(|c| c.connect_config.is_some()));
        return Decision::Allowed(if terminate { UpgradeKind::ConnectTerminate } else { UpgradeKind::ConnectProxy });
    }
    Decision::Allowed(UpgradeKind::Upgrade)
}

/// Whether an upstream answer with `status` switches a stream of `kind` to a tunnel.
pub fn switches(kind: UpgradeKind, status: u16) -> bool {
    match kind {
        UpgradeKind::None => false,
        UpgradeKind::Upgrade => status == 101,
        UpgradeKind::ConnectProxy | UpgradeKind::ConnectTerminate => (200..300).contains(&status),
    }
}

impl<D: ServerStream> StreamCx<'_, D> {
    /// The upgrade check once `matched` was found; false when the request was answered
    /// (403) and must go no further.
    pub(super) fn check_upgrade<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>, matched: &Matched<'_>) -> bool {
        match decide(&self.cfg.upgrades, &self.stream.head, &self.stream.meta, matched.route_action()) {
            Decision::NotUpgrade => true,
            Decision::Allowed(kind) => {
                self.stream.upgrade = kind;
                self.stats.downstream_cx_upgrades_total.inc();
                self.stats.downstream_cx_upgrades_active.inc();
                true
            }
            Decision::Rejected => {
                self.stats.downstream_rq_ws_on_non_ws_route.inc();
                // Envoy's `upgrade_failed`: 403, no body, no response flag; the
                // connection closes after it.
                self.stream.close_after = true;
                self.send_local_reply(ctx, 403, b"", &[]);
                false
            }
        }
    }
}

impl HttpConnection {
    /// The router's upstream switched protocols: the stream becomes a tunnel over the
    /// router's connection.
    pub(super) fn start_tunnel(&mut self) {
        let Some((slot, client)) = self.stream.router.as_mut().and_then(|r| r.take_tunnel()) else {
            return;
        };
        let tunnel = Tunnel::new(&mut self.down, slot, client, self.cfg.buffer_limit);
        // Payload that came with the heads is the stream's body for the access log.
        let (rq, resp) = tunnel.carried();
        self.stream.rq_body_bytes += rq as u64;
        self.stream.resp_body_bytes += resp as u64;
        self.stream.tunnel = Some(Box::new(tunnel));
    }

    /// One round of the tunnel (in place of the HTTP state machine); closes the
    /// connection when the tunnel is over.
    pub(super) fn run_tunnel<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>) -> Status {
        let Some(t) = self.stream.tunnel.as_mut() else {
            return Status::Open;
        };
        let r = t.relay(ctx);
        let cluster = t.cluster();
        let reset = t.reset_seen();
        self.stats.downstream_cx_rx_bytes_total.add(r.down_read as u64);
        self.stats.downstream_cx_tx_bytes_total.add(r.down_written as u64);
        if let Some(cs) = ctx.cluster_stats.get(cluster) {
            cs.upstream_cx_tx_bytes_total.add(r.up_written as u64);
            cs.upstream_cx_rx_bytes_total.add(r.up_read as u64);
        }
        let s = &mut self.stream;
        s.bytes_received += r.down_read as u64;
        s.rq_body_bytes += r.down_read as u64;
        s.bytes_sent += r.down_written as u64;
        s.resp_body_bytes += r.up_read as u64;
        if r.down_read + r.down_written + r.up_read + r.up_written > 0 {
            s.last_activity = ctx.now;
        }
        if r.done {
            s.response_done = true;
            s.request_done = true;
            return self.close(ctx, reset);
        }
        self.schedule(ctx);
        Status::Open
    }

    /// The connection closes: close the tunnel's sockets (reset when `reset`).
    pub(super) fn end_tunnel<S: Stack>(&mut self, ctx: &mut Ctx<'_, S>, reset: bool) {
        if let Some(t) = self.stream.tunnel.take() {
            t.close(ctx, reset);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_config::route::{ConnectConfig, RouteUpgradeConfig};

    fn meta(upgrade: bool, is_connect: bool) -> RequestMeta {
        RequestMeta {
            head_len: 0,
            framing: crate::http::codec::BodyFraming::None,
            keep_alive: true,
            expect_continue: false,
            is_head: false,
            is_connect,
            upgrade,
        }
    }

    fn ws_head(value: &str) -> RequestHead {
        let mut h = RequestHead { method: "GET".into(), path: "/".into(), ..Default::default() };
        h.headers.append(b"upgrade", value.as_bytes());
        h
    }

    fn hcm(types: &[(&str, bool)]) -> UpgradePolicy {
        UpgradePolicy { types: types.iter().map(|(t, e)| (t.to_string(), *e)).collect() }
    }

    fn route(entries: &[(&str, bool, bool)]) -> RouteAction {
        let n = sluice_config::node::parse("{cluster: c}").unwrap();
        let mut d = sluice_config::decode::Decoder::new();
        let mut a: RouteAction = d.decode(&n, "").unwrap();
        a.upgrade_configs = entries
            .iter()
            .map(|(t, e, c)| RouteUpgradeConfig {
                upgrade_type: t.to_string(),
                enabled: *e,
                connect_config: c.then_some(ConnectConfig {}),
            })
            .collect();
        a
    }

    #[test]
    fn plain_request_is_not_an_upgrade() {
        let h = RequestHead { method: "GET".into(), ..Default::default() };
        assert_eq!(decide(&hcm(&[("websocket", true)]), &h, &meta(false, false), None), Decision::NotUpgrade);
    }

    #[test]
    fn hcm_list_allows_case_insensitively() {
        let p = hcm(&[("WebSocket", true)]);
        assert_eq!(
            decide(&p, &ws_head("websocket"), &meta(true, false), None),
            Decision::Allowed(UpgradeKind::Upgrade)
        );
        assert_eq!(decide(&p, &ws_head("h2c-other"), &meta(true, false), None), Decision::Rejected);
        assert_eq!(decide(&hcm(&[]), &ws_head("websocket"), &meta(true, false), None), Decision::Rejected);
        let off = hcm(&[("websocket", false)]);
        assert_eq!(decide(&off, &ws_head("websocket"), &meta(true, false), None), Decision::Rejected);
    }

    #[test]
    fn route_entry_overrides_the_hcm() {
        let on = hcm(&[("websocket", true)]);
        let disabled = route(&[("websocket", false, false)]);
        assert_eq!(decide(&on, &ws_head("websocket"), &meta(true, false), Some(&disabled)), Decision::Rejected);
        let enabled = route(&[("WEBSOCKET", true, false)]);
        assert_eq!(
            decide(&hcm(&[("websocket", false)]), &ws_head("websocket"), &meta(true, false), Some(&enabled)),
            Decision::Allowed(UpgradeKind::Upgrade)
        );
        assert_eq!(
            decide(&hcm(&[]), &ws_head("websocket"), &meta(true, false), Some(&enabled)),
            Decision::Allowed(UpgradeKind::Upgrade)
        );
    }

    #[test]
    fn connect_is_proxied_or_terminated() {
        let h = RequestHead { method: "CONNECT".into(), authority: "h:1".into(), ..Default::default() };
        let m = meta(false, true);
        assert_eq!(decide(&hcm(&[]), &h, &m, None), Decision::Rejected);
        assert_eq!(decide(&hcm(&[("CONNECT", true)]), &h, &m, None), Decision::Allowed(UpgradeKind::ConnectProxy));
        let term = route(&[("CONNECT", true, true)]);
        assert_eq!(decide(&hcm(&[]), &h, &m, Some(&term)), Decision::Allowed(UpgradeKind::ConnectTerminate));
        let proxy = route(&[("CONNECT", true, false)]);
        assert_eq!(decide(&hcm(&[]), &h, &m, Some(&proxy)), Decision::Allowed(UpgradeKind::ConnectProxy));
    }

    #[test]
    fn switching_statuses() {
        assert!(switches(UpgradeKind::Upgrade, 101));
        assert!(!switches(UpgradeKind::Upgrade, 200));
        assert!(switches(UpgradeKind::ConnectProxy, 200));
        assert!(!switches(UpgradeKind::ConnectProxy, 101));
        assert!(!switches(UpgradeKind::None, 101));
    }
}
