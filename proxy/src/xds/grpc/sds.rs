//! SDS over ADS: the `Secret`s named by TLS contexts whose `sds_config` is `ads: {}`
//! (filter chains of static and LDS listeners, static and CDS clusters) are asked for
//! by name, re-sent when LDS or CDS changes that set, as Envoy's `SdsApi` subscribes
//! over the ADS mux. A response updates the secrets it holds; each is resolved (the
//! files its data sources name read in, as Envoy's resolved secret) and applied like
//! any update, so a new version rotates the certificate for new handshakes while open
//! connections keep theirs (the listener's identity does not show its secrets). A
//! secret that does not resolve or does not build its TLS context is NACKed and the
//! one in force stays. Stats under `sds.<secret name>.` are the one SDS subscription's,
//! shared by the secrets it carries. A listener or cluster whose secret has not arrived
//! is warming (see [`sluice_config::xds::sds_ready`]); as for SDS files, without a
//! limit (`initial_fetch_timeout` is refused for SDS). The files a secret names are
//! read when it arrives, not watched afterwards (a file SDS source watches them).

use sluice_config::cluster::Cluster;
use sluice_config::listener::Listener;
use sluice_config::tls::{SdsSecret, Secret};
use sluice_config::xds;
use sluice_config::Bootstrap;

use super::{AdsXds, Candidate, Named, Slot, Sub};

impl Named for Secret {
    fn resource_name(&self) -> &str {
        &self.name
    }
}

impl Slot for Secret {
    fn slot(c: &mut Candidate) -> &mut Vec<Self> {
        &mut c.secrets
    }
    fn sub(x: &mut AdsXds) -> &mut Sub<Self> {
        &mut x.sds
    }
    fn resolved(self) -> Result<Self, String> {
        self.resolve()
    }
}

impl AdsXds {
    /// The secrets the static resources, `listeners` and `clusters` ask for over ADS,
    /// each with its version from `secrets` (None: warming).
    pub(super) fn sds_secrets(
        &self,
        listeners: &[Listener],
        clusters: &[Cluster],
        secrets: &[Secret],
    ) -> Vec<SdsSecret> {
        sds_wanted(&self.bootstrap, listeners, clusters)
            .into_iter()
            .map(|name| SdsSecret {
                path: String::new(),
                ads: true,
                secret: secrets.iter().find(|s| s.name == name).cloned(),
                name,
            })
            .collect()
    }

    /// The secret names the listeners and clusters in force ask for over ADS.
    pub(super) fn sds_names(&self) -> Vec<String> {
        let listeners = self.lds.as_ref().map(Sub::active).unwrap_or_default();
        let clusters = self.cds.as_ref().map(Sub::active).unwrap_or_default();
        sds_wanted(&self.bootstrap, &listeners, &clusters)
    }

    /// After LDS or CDS changed: ask for the secrets they need now.
    pub(super) fn resubscribe_sds(&mut self) {
        let names = self.sds_names();
        self.resubscribe::<Secret>(names);
    }
}

/// The secret names that `bootstrap`'s static resources, `listeners` and `clusters` ask
/// for over ADS, sorted, without duplicates.
pub(super) fn sds_wanted(bootstrap: &Bootstrap, listeners: &[Listener], clusters: &[Cluster]) -> Vec<String> {
    let mut names: Vec<String> = bootstrap
        .listeners
        .iter()
        .chain(listeners)
        .flat_map(xds::listener_sds)
        .chain(bootstrap.clusters.iter().chain(clusters).flat_map(xds::cluster_sds))
        .filter(|c| c.sds_config.ads)
        .map(|c| c.name)
        .collect();
    names.sort();
    names.dedup();
    names
}
