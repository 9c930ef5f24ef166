//! `HttpConnectionManager.upgrade_configs`: which HTTP/1.1 upgrades (`Upgrade:` tokens
//! such as `websocket`, and the special type `CONNECT`) the connection manager allows.
//!
//! As Envoy (http_connection_manager config.cc): the `upgrade_type` is any `Upgrade:`
//! value (visible ASCII, no spaces), matched
//! case-insensitively; `enabled` defaults to true (a `false` entry lets a route's
//! `upgrade_configs` enable it); one entry per type ("multiple upgrade configs with the
//! same name"). Upgrade-specific filter chains (`filters`) are not supported: `filters`
//! must be empty or the same chain as `http_filters` (which is what an empty one means).

use crate::decode::{Decode, Decoder, Fields};
use crate::error::ErrorKind;
use crate::node::Node;

use super::HttpFilter;

/// `HttpConnectionManager.UpgradeConfig`.
#[derive(Debug, Clone, PartialEq)]
pub struct UpgradeConfig {
    /// As configured (compared case-insensitively).
    pub upgrade_type: String,
    /// `enabled`: true unless set to false.
    pub enabled: bool,
    /// `filters` as configured; checked against `http_filters` by [`check_upgrade_configs`].
    pub filters: Vec<HttpFilter>,
    pub line: u32,
}

impl Decode for UpgradeConfig {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let line = f.line();
        let upgrade_type: Option<String> = f.req(d, "upgrade_type");
        let enabled = f.or(d, "enabled", true);
        let filters: Vec<HttpFilter> = f.list(d, "filters");
        f.finish(d);
        let upgrade_type = upgrade_type?;
        if !crate::route::check_upgrade_type(d, &upgrade_type, path, line) {
            return None;
        }
        Some(UpgradeConfig { upgrade_type, enabled, filters, line })
    }
}

/// Envoy's load-time checks across the list: one entry per type; no upgrade-specific
/// filter chain.
pub(crate) fn check_upgrade_configs(
    d: &mut Decoder,
    configs: &[UpgradeConfig],
    http_filters: &[HttpFilter],
    path: &str,
) {
    for (i, c) in configs.iter().enumerate() {
        let at = format!("{path}[{i}]");
        if configs[..i].iter().any(|o| o.upgrade_type.eq_ignore_ascii_case(&c.upgrade_type)) {
            d.error(
                ErrorKind::Invalid,
                &format!("{at}.upgrade_type"),
                c.line,
                format!("multiple upgrade configs with the same name: '{}'", c.upgrade_type),
            );
        }
        if !c.filters.is_empty() && c.filters != http_filters {
            d.error(
                ErrorKind::Unsupported,
                &format!("{at}.filters"),
                c.line,
                "upgrade-specific HTTP filter chains are not supported: leave `filters` empty \
                 (the upgraded stream then runs `http_filters`)",
            );
        }
    }
}
