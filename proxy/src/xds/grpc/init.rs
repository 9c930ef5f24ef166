//! The server's initialization under ADS, as Envoy's init manager: while LDS or CDS
//! over ADS waits for its first response (accepted or not), no listener is in the
//! effective config (the static ones neither) and the server is not live (`/ready`
//! 503); each source's `initial_fetch_timeout` (Envoy's 15 s when absent, none when
//! `0s`) bounds the wait, after which initialization goes on without it and
//! `init_fetch_timeout` counts it under the type's stats. The deadlines are
//! [`super::warming::InitFetch`]es; this module never reads the clock.

use std::time::Instant;

use sluice_config::xds;
use sluice_config::Bootstrap;

use super::warming::InitFetch;
use super::{refused, AdsXds, Apply};

impl AdsXds {
    /// Whether `bootstrap` starts with its listeners held back: it takes LDS or CDS over
    /// ADS, whose first responses the server's initialization waits for.
    pub fn holds_listeners_at_start(bootstrap: &Bootstrap) -> bool {
        bootstrap
            .dynamic_resources
            .as_ref()
            .is_some_and(|d| d.ads_config.is_some() && d.lds_config.iter().chain(&d.cds_config).any(|s| s.ads))
    }

    /// Whether the server's initialization is done: LDS and CDS (those over ADS) each
    /// had their first response or their initial fetch timed out. Until then no
    /// listener is in the effective config.
    pub fn initialized(&self) -> bool {
        !self.lds_init.iter().chain(&self.cds_init).any(InitFetch::pending)
    }

    /// Time out the initial fetches of LDS and CDS at `now` (counting
    /// `init_fetch_timeout`); when initialization just ended, apply the config with its
    /// listeners. Returns whether a new config was applied.
    pub(super) fn end_init(&mut self, was_initialized: bool, now: Instant, apply: &mut Apply) -> bool {
        let subs = [
            (self.lds_init.as_mut(), self.lds.as_ref().map(|s| &s.stats), "LDS"),
            (self.cds_init.as_mut(), self.cds.as_ref().map(|s| &s.stats), "CDS"),
        ];
        for (init, stats, what) in subs {
            if init.is_some_and(|i| i.expire(now)) {
                tracing::warn!("xds: {what} initial fetch timed out; initialization goes on without it");
                if let Some(s) = stats {
                    s.init_fetch_timeout.inc();
                }
            }
        }
        if was_initialized || !self.initialized() {
            return false;
        }
        tracing::info!("xds: initialization done; listeners start");
        match self.effective().and_then(|b| apply(&b, String::new())) {
            Ok(()) => true,
            Err(errors) => refused("the config at the end of initialization", &errors),
        }
    }

    /// A response of `type_url` arrived: LDS's or CDS's ends its part of initialization
    /// (whether it is accepted or not, as Envoy's init target).
    pub(super) fn first_response(&mut self, type_url: &str) {
        let init = match type_url {
            xds::LISTENER_TYPE => self.lds_init.as_mut(),
            xds::CLUSTER_TYPE => self.cds_init.as_mut(),
            _ => None,
        };
        if let Some(i) = init {
            i.arrived();
        }
    }
}
