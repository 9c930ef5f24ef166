//! The router_check_tool's runtime: not the proxy's layered runtime but a mock
//! (router.cc `runtimeMock` and `assignRuntimeFraction`).
//!
//! In the tool, a route's `runtime_fraction` matches only when the test's
//! `input.runtime` names the route's `runtime_key` and `random_value` falls within the
//! route's `default_value`; a `default_value` of 0 counts as 1 (so a test with
//! `random_value: 0` can turn such a route on). Without `input.runtime`, no
//! `runtime_fraction` route matches. Every other runtime read keeps its default.
//!
//! The proxy's route table evaluates `runtime_fraction` against a runtime
//! [`Snapshot`], so the mock is expressed as one: the route configuration is adjusted
//! once at load ([`tool_route_config`]) and each test gets a snapshot in which every
//! route's runtime key except the active one reads 0 % ([`RuntimeMock::snapshot`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use sluice_config::core::FractionalPercent;
use sluice_config::route::RouteConfiguration;
use sluice_config::runtime::Entry;

use crate::runtime::{Layer, Snapshot};

/// `assignRuntimeFraction`: a `runtime_fraction` whose `default_value` numerator is 0
/// gets 1. A fraction without a runtime key can never be the active one: it is set to
/// never match.
pub fn tool_route_config(mut rc: RouteConfiguration) -> RouteConfiguration {
    for vh in &mut rc.virtual_hosts {
        for route in &mut vh.routes {
            if let Some(f) = &mut route.r#match.runtime_fraction {
                if f.runtime_key.is_empty() {
                    f.default_value = FractionalPercent::NEVER;
                } else if f.default_value.numerator == 0 {
                    f.default_value.numerator = 1;
                }
            }
        }
    }
    rc
}

/// The runtime keys the route table's `runtime_fraction`s read.
#[derive(Debug, Clone, Default)]
pub struct RuntimeMock {
    keys: Vec<String>,
}

impl RuntimeMock {
    pub fn new(rc: &RouteConfiguration) -> RuntimeMock {
        let mut keys: Vec<String> = rc
            .virtual_hosts
            .iter()
            .flat_map(|vh| vh.routes.iter())
            .filter_map(|r| r.r#match.runtime_fraction.as_ref())
            .map(|f| f.runtime_key.clone())
            .filter(|k| !k.is_empty())
            .collect();
        keys.sort();
        keys.dedup();
        RuntimeMock { keys }
    }

    /// The snapshot for a test whose `input.runtime` is `active` (`""`: none): every
    /// other key reads 0 %, the active key is absent so its default applies.
    pub fn snapshot(&self, active: &str) -> Snapshot {
        let values: BTreeMap<String, Entry> =
            self.keys.iter().filter(|k| k.as_str() != active).map(|k| (k.clone(), Entry::parse("0"))).collect();
        Snapshot::new(vec![Arc::new(Layer { name: "router_check_tool".into(), values })])
    }
}
