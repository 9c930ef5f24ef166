//! SDS from files: the secret named by an `SdsSecretConfig`, from the
//! `DiscoveryResponse` file of its `sds_config` (Envoy's `SdsApi` over a filesystem
//! subscription).
//!
//! One subscription per (file, secret name), shared by every TLS context that names
//! both; its stats are registered under `sds.<secret name>.` (Envoy's scope). As Envoy:
//! a file must hold exactly one `Secret`, named as asked (no resource, several, or
//! another name is `update_rejected`, and the secret in force stays). An accepted
//! secret has the files its data sources name read in at once (Envoy's resolved
//! secret), so what serves does not change behind sluice's back; those files are
//! watched too, and a change to one of them (a rotation of the certificate and key
//! files) reads them again and applies the result, or counts `key_rotation_failed`
//! and keeps the secret in force.
//!
//! Until its secret arrives, a listener whose TLS context names it is warming (not
//! opened), and so is a cluster (left out of the config); Envoy would give up after
//! `initial_fetch_timeout` and serve a listener whose handshakes fail, sluice keeps
//! waiting (and refuses that field for SDS). Secrets over ADS: [`super::grpc`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use sluice_config::tls::{SdsSecret, SdsSecretConfig, Secret, SECRET_TYPE};
use sluice_config::xds::Resources;

use super::watch::FileWatch;
use super::Subscription;
use crate::stats::SubscriptionStats;

/// One SDS file subscription.
#[derive(Clone)]
pub struct SdsSubscription {
    pub sub: Subscription<Secret>,
    pub name: String,
    /// The secret as the file wrote it (its data sources may name files).
    written: Option<Secret>,
    /// The secret in force, its files read in; None until it arrives.
    pub secret: Option<Secret>,
    /// The files `written` names.
    files: Vec<FileWatch>,
}

/// What a read of the file gave.
pub enum SdsRead {
    /// The secret as written and resolved, with the file's `version_info`.
    Secret(Secret, Resources<Secret>),
    /// No file yet.
    Missing,
    /// Unreadable or refused (counted; the errors were logged).
    Refused,
}

impl SdsSubscription {
    /// A subscription for `c`, its file read now.
    pub fn start(c: &SdsSecretConfig, wall: SystemTime) -> SdsSubscription {
        let mut s = SdsSubscription {
            sub: Subscription::new(&c.sds_config, SECRET_TYPE, Arc::new(SubscriptionStats::sds())),
            name: c.name.clone(),
            written: None,
            secret: None,
            files: Vec::new(),
        };
        match s.read() {
            SdsRead::Secret(written, resolved) => s.accept(written, resolved, wall),
            SdsRead::Missing => {
                tracing::info!(file = %s.sub.source.path, name = %s.name, "sds: no file yet; listeners using the secret are warming");
            }
            SdsRead::Refused => {}
        }
        s
    }

    /// Whether this subscription serves `c`.
    pub fn serves(&self, c: &SdsSecretConfig) -> bool {
        !c.sds_config.ads && self.sub.source.path == c.sds_config.path && self.name == c.name
    }

    /// Read the file and check it holds our secret, counting as Envoy.
    pub fn read(&self) -> SdsRead {
        let path = &self.sub.source.path;
        if !Path::new(path).exists() {
            self.sub.stats.update_attempt.inc();
            self.sub.stats.update_failure.inc();
            return SdsRead::Missing;
        }
        let mut r = match self.sub.read() {
            Ok(r) => r,
            Err(errors) => {
                super::log_refused("SDS", &errors);
                return SdsRead::Refused;
            }
        };
        let refuse = |message: String| {
            self.sub.stats.update_rejected.inc();
            super::log_refused("SDS", &[format!("{path}: {message}")]);
            SdsRead::Refused
        };
        let written = match r.items.as_slice() {
            [] => return refuse(format!("resources: Missing SDS resources for {} in onConfigUpdate()", self.name)),
            [s] if s.name == self.name => s.clone(),
            [s] => {
                return refuse(format!(
                    "resources[0].name: Unexpected SDS secret (expecting {}): {}",
                    self.name, s.name
                ))
            }
            many => return refuse(format!("resources: Unexpected SDS secrets length: {}", many.len())),
        };
        match written.resolve() {
            Ok(resolved) => {
                r.items = vec![resolved.clone()];
                SdsRead::Secret(written, r)
            }
            Err(e) => refuse(format!("secret `{}`: {e}", self.name)),
        }
    }

    /// Put a secret read from the file in force (`r`: its resolved form and version),
    /// counting the update.
    pub fn accept(&mut self, written: Secret, r: Resources<Secret>, wall: SystemTime) {
        self.stage(written, r.clone(), wall);
        self.sub.accept(r, wall);
    }

    /// Put a secret in force without counting it (the caller counts once applied).
    pub fn stage(&mut self, written: Secret, r: Resources<Secret>, wall: SystemTime) {
        self.files = written.files().into_iter().map(|f: PathBuf| FileWatch::new(f, None)).collect();
        self.secret = r.items.first().cloned();
        self.written = Some(written);
        self.sub.active = r;
        self.sub.last_updated = Some(wall);
    }

    /// Whether a file the secret names changed (checked at most every poll interval).
    pub fn files_changed(&mut self, now: Instant) -> bool {
        let mut changed = false;
        for w in &mut self.files {
            changed |= w.changed(now);
        }
        changed
    }

    /// The secret with its files read again (a rotation), or why not (counted as
    /// `key_rotation_failed`).
    pub fn rotated(&self) -> Result<Secret, String> {
        let Some(written) = &self.written else { return Err("no secret in force".into()) };
        written.resolve().inspect_err(|_| self.sub.stats.key_rotation_failed.inc())
    }

    /// Put a rotated secret in force.
    pub fn rotate(&mut self, resolved: Secret) {
        self.secret = Some(resolved.clone());
        self.sub.active.items = vec![resolved];
    }

    pub fn entry(&self) -> SdsSecret {
        SdsSecret {
            path: self.sub.source.path.clone(),
            ads: false,
            name: self.name.clone(),
            secret: self.secret.clone(),
        }
    }
}

/// The SDS references (from files) of `listeners` and `clusters`.
pub fn uses<'a>(
    listeners: impl IntoIterator<Item = &'a sluice_config::listener::Listener>,
    clusters: impl IntoIterator<Item = &'a sluice_config::cluster::Cluster>,
) -> Vec<SdsSecretConfig> {
    let mut out: Vec<SdsSecretConfig> = listeners.into_iter().flat_map(sluice_config::xds::listener_sds).collect();
    out.extend(clusters.into_iter().flat_map(sluice_config::xds::cluster_sds));
    out.retain(|c| !c.sds_config.ads);
    out
}
