//! `RouteAction.upgrade_configs`: per-route overrides of the connection manager's
//! upgrades, and CONNECT termination (`connect_config`).
//!
//! As Envoy (config_impl.cc): `enabled` (default true) enables or disables the upgrade
//! type on this route whatever the connection manager says; types are compared
//! case-insensitively and may appear once ("Duplicate upgrade X"); `connect_config` is
//! allowed only on the type `CONNECT` ("Non-CONNECT upgrade type X has ConnectConfig")
//! and makes the route terminate CONNECT (200 to the client, then raw bytes to the
//! upstream host over TCP); without it a CONNECT is forwarded upstream as a CONNECT.
//! `proxy_protocol_config` and `allow_post` (HTTP/2 POST tunnels) are not supported.

use crate::decode::{Decode, Decoder, Fields};
use crate::error::ErrorKind;
use crate::node::Node;

/// `RouteAction.UpgradeConfig.ConnectConfig` (no supported options: its presence is
/// what matters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConnectConfig {}

impl Decode for ConnectConfig {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let line = f.line();
        f.unsupported(d, &["proxy_protocol_config"]);
        let allow_post = f.or(d, "allow_post", false);
        f.finish(d);
        if allow_post {
            d.error(
                ErrorKind::Unsupported,
                &format!("{path}.allow_post"),
                line,
                "allow_post (CONNECT over HTTP/2 POST) is not supported",
            );
        }
        Some(ConnectConfig {})
    }
}

/// `RouteAction.UpgradeConfig`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteUpgradeConfig {
    /// As configured (compared case-insensitively).
    pub upgrade_type: String,
    /// `enabled`: true unless set to false.
    pub enabled: bool,
    /// Terminate CONNECT on this route (only for `upgrade_type: CONNECT`).
    pub connect_config: Option<ConnectConfig>,
}

impl Decode for RouteUpgradeConfig {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let line = f.line();
        let upgrade_type: Option<String> = f.req(d, "upgrade_type");
        let enabled = f.or(d, "enabled", true);
        let connect_config: Option<ConnectConfig> = f.opt(d, "connect_config");
        f.finish(d);
        let upgrade_type = upgrade_type?;
        if !check_upgrade_type(d, &upgrade_type, path, line) {
            return None;
        }
        if connect_config.is_some() && upgrade_type != "CONNECT" {
            d.error(
                ErrorKind::Invalid,
                &format!("{path}.connect_config"),
                line,
                format!("Non-CONNECT upgrade type {upgrade_type} has ConnectConfig"),
            );
            return None;
        }
        Some(RouteUpgradeConfig { upgrade_type, enabled, connect_config })
    }
}

/// One entry per type: Envoy's "Duplicate upgrade X".
pub(crate) fn check_route_upgrades(d: &mut Decoder, configs: &[RouteUpgradeConfig], path: &str, line: u32) {
    for (i, c) in configs.iter().enumerate() {
        if configs[..i].iter().any(|o| o.upgrade_type.eq_ignore_ascii_case(&c.upgrade_type)) {
            d.error(
                ErrorKind::Invalid,
                &format!("{path}[{i}].upgrade_type"),
                line,
                format!("Duplicate upgrade {}", c.upgrade_type),
            );
        }
    }
}

/// An `upgrade_type` (HCM or route) must be a header token: an `Upgrade:` value or
/// `CONNECT`. False (and an error at `path.upgrade_type`) otherwise.
pub(crate) fn check_upgrade_type(d: &mut Decoder, upgrade_type: &str, path: &str, line: u32) -> bool {
    if !upgrade_type.is_empty() && upgrade_type.bytes().all(|b| (0x21..0x7f).contains(&b)) {
        return true;
    }
    d.error(
        ErrorKind::Invalid,
        &format!("{path}.upgrade_type"),
        line,
        format!("`{upgrade_type}` is not an `Upgrade:` value (such as `websocket`, `spdy/3.1`) or `CONNECT`"),
    );
    false
}
