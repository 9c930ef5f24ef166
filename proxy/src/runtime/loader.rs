//! The runtime loader: owns the layers, builds a new [`Snapshot`] whenever one changes
//! and publishes it.
//!
//! Lives on the main thread (Envoy's `LoaderImpl`). A snapshot is built at start, on
//! `/runtime_modify` (the admin layer) and when a disk layer's `symlink_root` was
//! swapped ([`Loader::poll_disk`], called once per main-loop round). Every rebuild
//! re-reads every disk layer, as Envoy's `loadNewSnapshot` does. The new snapshot goes
//! to [`Published`], where workers pick it up at their next loop boundary; a worker
//! never waits for the loader.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use sluice_config::runtime::{Entry, LayerKind, LayeredRuntime};

use super::disk::{self, RootIdentity};
use super::snapshot::{Layer, Snapshot};
use crate::stats::RuntimeStats;

/// The latest snapshot and its version: written by the loader, read by workers (a
/// lock only when the version moved) and by other threads.
#[derive(Debug)]
pub struct Published {
    snapshot: Mutex<Arc<Snapshot>>,
    version: AtomicU64,
}

impl Default for Published {
    fn default() -> Self {
        Published { snapshot: Mutex::new(Snapshot::empty()), version: AtomicU64::new(0) }
    }
}

impl Published {
    /// The current version (moves on every publish).
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// The current snapshot and its version.
    pub fn current(&self) -> (u64, Arc<Snapshot>) {
        let version = self.version();
        (version, Arc::clone(&self.snapshot.lock().unwrap_or_else(|e| e.into_inner())))
    }

    fn publish(&self, snapshot: Arc<Snapshot>) {
        *self.snapshot.lock().unwrap_or_else(|e| e.into_inner()) = snapshot;
        self.version.fetch_add(1, Ordering::AcqRel);
    }
}

/// Why `/runtime_modify` could not write.
pub const NO_ADMIN_LAYER: &str = "No admin layer specified";

/// The runtime's layers and its published snapshot.
#[derive(Debug)]
pub struct Loader {
    config: LayeredRuntime,
    /// The admin layer's values (`/runtime_modify`).
    admin: BTreeMap<String, Entry>,
    /// Per layer: the identity of a disk layer's root when last read.
    roots: Vec<Option<Option<RootIdentity>>>,
    current: Arc<Snapshot>,
    published: Arc<Published>,
    stats: Arc<RuntimeStats>,
}

impl Loader {
    /// Load every layer and publish the first snapshot to `published`; `runtime.*`
    /// stats go to `stats`.
    pub fn new(config: Option<&LayeredRuntime>, published: Arc<Published>, stats: Arc<RuntimeStats>) -> Loader {
        let config = config.cloned().unwrap_or_default();
        let roots = config.layers.iter().map(|_| None).collect();
        let mut l = Loader { config, admin: BTreeMap::new(), roots, current: Snapshot::empty(), published, stats };
        l.reload();
        l
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(&self.current)
    }

    pub fn published(&self) -> &Arc<Published> {
        &self.published
    }

    pub fn config(&self) -> &LayeredRuntime {
        &self.config
    }

    /// Envoy's `mergeValues`: set each key in the admin layer; an empty value removes
    /// the key's override. Publishes a new snapshot.
    pub fn merge_admin(&mut self, values: &[(String, String)]) -> Result<(), &'static str> {
        if !self.config.has_admin_layer() {
            return Err(NO_ADMIN_LAYER);
        }
        for (k, v) in values {
            self.admin.remove(k);
            if !v.is_empty() {
                self.admin.insert(k.clone(), Entry::parse(v));
            }
        }
        self.reload();
        Ok(())
    }

    /// Re-read the layers when a disk layer's root was replaced since it was last
    /// read; true when a new snapshot was published.
    pub fn poll_disk(&mut self) -> bool {
        let mut changed = false;
        for (i, layer) in self.config.layers.iter().enumerate() {
            if let LayerKind::Disk(d) = &layer.kind {
                let now = disk::identity(&PathBuf::from(&d.symlink_root)).ok().flatten();
                if self.roots[i].as_ref() != Some(&now) {
                    changed = true;
                }
            }
        }
        if changed {
            self.reload();
        }
        changed
    }

    /// Build and publish a snapshot from the layers as they are now.
    fn reload(&mut self) {
        let mut layers = Vec::with_capacity(self.config.layers.len());
        let (mut errors, mut disk_layers) = (0, 0);
        for (i, layer) in self.config.layers.iter().enumerate() {
            let values = match &layer.kind {
                LayerKind::Static { values, .. } => values.iter().cloned().collect(),
                LayerKind::Admin => self.admin.clone(),
                LayerKind::Disk(d) => {
                    self.roots[i] = Some(disk::identity(&PathBuf::from(&d.symlink_root)).ok().flatten());
                    match disk::read_layer(&PathBuf::from(d.path())) {
                        Ok(v) => {
                            disk_layers += 1;
                            v
                        }
                        Err(e) => {
                            // Envoy leaves a layer that fails to load out of the snapshot.
                            tracing::warn!(layer = %layer.name, "runtime disk layer not loaded: {e}");
                            errors += 1;
                            continue;
                        }
                    }
                }
            };
            layers.push(Arc::new(Layer { name: layer.name.clone(), values }));
        }
        // Envoy's `createNewSnapshot` stats, `override_dir_exists` quirk included
        // (counted only with more than one disk layer loaded).
        let s = &self.stats;
        if errors == 0 {
            s.load_success.inc()
        } else {
            s.load_error.inc()
        }
        if disk_layers > 1 {
            s.override_dir_exists.inc()
        } else {
            s.override_dir_not_exists.inc()
        }
        s.num_layers.set(layers.len() as i64);
        s.admin_overrides_active.set(i64::from(!self.admin.is_empty()));
        self.current = Arc::new(Snapshot::new(layers));
        s.num_keys.set(self.current.len() as i64);
        self.published.publish(Arc::clone(&self.current));
        tracing::debug!(keys = self.current.len(), "runtime snapshot published");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn config(yaml: &str) -> LayeredRuntime {
        sluice_config::load_str(&format!("layered_runtime:\n{yaml}")).unwrap().bootstrap.layered_runtime.unwrap()
    }

    #[test]
    fn admin_layer_overrides_and_removes() {
        let c =
            config("  layers:\n  - name: base\n    static_layer: {a: 1, b: 2}\n  - name: admin\n    admin_layer: {}\n");
        let p = Arc::new(Published::default());
        let stats = Arc::new(RuntimeStats::default());
        let mut l = Loader::new(Some(&c), Arc::clone(&p), Arc::clone(&stats));
        assert_eq!(p.current().1.get_integer("a", 0), 1);
        assert_eq!((stats.num_keys.get(), stats.num_layers.get(), stats.admin_overrides_active.get()), (2, 2, 0));
        let v0 = p.version();
        l.merge_admin(&[("a".into(), "10".into()), ("c".into(), "x".into())]).unwrap();
        assert!(p.version() > v0);
        let s = p.current().1;
        assert_eq!((s.get_integer("a", 0), s.get("c")), (10, Some("x")));
        assert_eq!((stats.num_keys.get(), stats.admin_overrides_active.get(), stats.load_success.get()), (3, 1, 2));
        l.merge_admin(&[("a".into(), String::new())]).unwrap();
        assert_eq!(p.current().1.get_integer("a", 0), 1, "an empty value removes the override");
        assert_eq!(l.snapshot().layers().iter().map(|l| l.name.as_str()).collect::<Vec<_>>(), ["base", "admin"]);
    }

    #[test]
    fn without_an_admin_layer_modify_fails() {
        let c = config("  layers:\n  - name: base\n    static_layer: {a: 1}\n");
        let mut l = Loader::new(Some(&c), Arc::new(Published::default()), Arc::default());
        assert_eq!(l.merge_admin(&[("a".into(), "2".into())]), Err(NO_ADMIN_LAYER));
        let mut none = Loader::new(None, Arc::new(Published::default()), Arc::default());
        assert_eq!(none.merge_admin(&[("a".into(), "2".into())]), Err(NO_ADMIN_LAYER));
    }

    #[test]
    fn a_disk_layer_is_reread_when_its_root_is_swapped() {
        let dir = std::env::temp_dir().join(format!("sluice-rt-loader-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        for (v, value) in [("v1", "1"), ("v2", "2")] {
            fs::create_dir_all(dir.join(v).join("envoy")).unwrap();
            fs::write(dir.join(v).join("envoy").join("k"), value).unwrap();
        }
        let root = dir.join("current");
        std::os::unix::fs::symlink(dir.join("v1"), &root).unwrap();
        let c = config(&format!(
            "  layers:\n  - name: disk\n    disk_layer: {{symlink_root: {}, subdirectory: envoy}}\n",
            root.display()
        ));
        let p = Arc::new(Published::default());
        let mut l = Loader::new(Some(&c), Arc::clone(&p), Arc::default());
        assert_eq!(p.current().1.get_integer("k", 0), 1);
        assert!(!l.poll_disk(), "nothing changed");
        // An in-place edit is not a swap (as Envoy): not seen.
        fs::write(dir.join("v1/envoy/k"), "5").unwrap();
        assert!(!l.poll_disk());
        let tmp = dir.join("next");
        std::os::unix::fs::symlink(dir.join("v2"), &tmp).unwrap();
        fs::rename(&tmp, &root).unwrap();
        assert!(l.poll_disk());
        assert_eq!(p.current().1.get_integer("k", 0), 2);
        fs::remove_dir_all(&dir).unwrap();
    }
}
