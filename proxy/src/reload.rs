//! Configuration reload (SIGHUP) and the per-config background threads.
//!
//! A reload re-reads the config file, validates and compiles it completely, and only
//! then swaps it in: the workers adopt it as a new generation (unchanged listeners keep
//! their sockets and connections; see `worker::generation`), the admin server shows
//! it, and the threads that serve clusters — the DNS refresher and the upstream
//! monitor (health checks, outlier detection) — are restarted for the new clusters. A
//! config with errors is refused with every error logged, and the old one keeps
//! serving. Certificates are re-read, because TLS contexts are built anew.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::admin::AdminState;
use crate::listener::manager::Snapshot;
use crate::stats::Store;
use crate::upstream::{dns, monitor};
use crate::worker::Control;
use crate::xds::FileXds;

/// The threads that serve one config's clusters.
pub struct UpstreamThreads {
    stop_dns: Arc<AtomicBool>,
    dns: Option<JoinHandle<()>>,
    monitor: Option<monitor::MonitorHandle>,
}

impl UpstreamThreads {
    /// Start the DNS refresher and the upstream monitor for `snapshot`'s clusters and
    /// register the clusters' own stats. With `warm`, wait (bounded) for every
    /// health-checked host's first result, like Envoy's cluster warming.
    pub fn start(snapshot: &Snapshot, stats: &Store, warm: bool) -> Result<UpstreamThreads, String> {
        let clusters = &snapshot.cluster_manager.clusters;
        for c in clusters {
            stats.upstream.insert(c.config.stat_name(), vec![Arc::clone(&c.stats)]);
        }
        stats.filters.replace(snapshot.filter_counters());
        let stop_dns = Arc::new(AtomicBool::new(false));
        let dns = dns::spawn_refresher(clusters.clone(), Arc::clone(&stop_dns));
        let monitor = monitor::spawn(clusters).map_err(|e| format!("cannot start the upstream monitor: {e}"))?;
        if let (Some(m), true) = (&monitor, warm) {
            let bound = monitor::first_round_bound(clusters);
            if !m.wait_initialized(bound) {
                tracing::warn!("first health checks still running after {bound:?}; serving anyway");
            }
        }
        Ok(UpstreamThreads { stop_dns, dns, monitor })
    }

    /// Stop and join them.
    pub fn stop(self) {
        if let Some(m) = self.monitor {
            m.stop();
        }
        self.stop_dns.store(true, Ordering::Relaxed);
        if let Some(h) = self.dns {
            let _ = h.join();
        }
    }
}

/// The bootstrap fields a reload does not change: the admin server keeps its socket,
/// the overload manager its monitors and actions and the runtime its layers (in Envoy
/// all are bootstrap-only, set at start; runtime values change through the runtime's
/// own layers, without a reload). A file that changes them is still reloaded for
/// everything else; the running values stay in force and in `/config_dump`.
#[derive(Debug, Clone)]
pub struct BootstrapOnly {
    pub admin: Option<sluice_config::bootstrap::Admin>,
    pub overload_manager: Option<sluice_config::overload::OverloadManager>,
    pub layered_runtime: Option<sluice_config::runtime::LayeredRuntime>,
}

impl BootstrapOnly {
    pub fn of(b: &sluice_config::Bootstrap) -> BootstrapOnly {
        BootstrapOnly {
            admin: b.admin.clone(),
            overload_manager: b.overload_manager.clone(),
            layered_runtime: b.layered_runtime.clone(),
        }
    }
}

/// Put the running bootstrap-only fields back into `new`; returns the names of those
/// the file changed.
fn keep_bootstrap_only(new: &mut sluice_config::Bootstrap, running: &BootstrapOnly) -> Vec<&'static str> {
    let mut changed = Vec::new();
    if new.admin != running.admin {
        changed.push("admin");
        new.admin = running.admin.clone();
    }
    if new.overload_manager != running.overload_manager {
        changed.push("overload_manager");
        new.overload_manager = running.overload_manager.clone();
    }
    if new.layered_runtime != running.layered_runtime {
        changed.push("layered_runtime");
        new.layered_runtime = running.layered_runtime.clone();
    }
    changed
}

/// A datapath's part in a reload, run once the new config is compiled and before
/// anything else changes: check that the datapath can serve it and prepare for it (xdp
/// mode: steer its listeners' ports to sluice). An error refuses the reload.
pub type DatapathReload = Box<dyn FnMut(&Snapshot) -> Result<(), String> + Send>;

/// Load and compile the config at `path` (with its dynamic resources' files, read
/// anew); on success let the datapath prepare for it (`datapath`), publish it to the
/// workers and the admin server, and return the new cluster threads (the caller stops
/// the old ones) and the new file subscriptions. On failure nothing changes and the
/// errors are returned.
pub fn reload(
    path: &Path,
    control: &Control,
    admin: &AdminState,
    stats: &Store,
    running: &BootstrapOnly,
    datapath: Option<&mut DatapathReload>,
) -> Result<(UpstreamThreads, Option<FileXds>), Vec<String>> {
    let mut loaded =
        sluice_config::load_file(path).map_err(|e| e.0.iter().map(ToString::to_string).collect::<Vec<_>>())?;
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    for changed in keep_bootstrap_only(&mut loaded.bootstrap, running) {
        tracing::warn!("`{changed}` changed in the file: it is set at start only and applies after a restart; the running one stays in force");
    }
    // With `dynamic_resources`, the files are read anew and join the static resources.
    let xds = FileXds::start(
        &loaded.bootstrap,
        &stats.subscriptions,
        std::time::SystemTime::now(),
        std::time::Instant::now(),
    );
    let (effective, dump) = match &xds {
        Some(x) => (x.effective()?, x.config_dump()),
        None => (loaded.bootstrap.clone(), sluice_config::dump::config_dump(&loaded.bootstrap)),
    };
    let threads = apply(&effective, dump, control, admin, stats, datapath)?;
    Ok((threads, xds))
}

/// Compile `bootstrap` (a complete, checked config); on success let the datapath
/// prepare for it, publish it to the workers and the admin server (with `dump` as its
/// `/config_dump`), and return its cluster threads (the caller stops the old ones). On
/// failure nothing changes. SIGHUP reloads and file-based xDS updates both end here.
pub fn apply(
    bootstrap: &sluice_config::Bootstrap,
    dump: String,
    control: &Control,
    admin: &AdminState,
    stats: &Store,
    datapath: Option<&mut DatapathReload>,
) -> Result<UpstreamThreads, Vec<String>> {
    let snapshot = Arc::new(Snapshot::build(bootstrap)?);
    if let Some(prepare) = datapath {
        prepare(&snapshot).map_err(|e| vec![e])?;
    }
    let threads = UpstreamThreads::start(&snapshot, stats, false).map_err(|e| vec![e])?;
    *admin.snapshot.lock().unwrap_or_else(|e| e.into_inner()) = Arc::clone(&snapshot);
    *admin.config_dump.lock().unwrap_or_else(|e| e.into_inner()) = dump;
    control.publish(snapshot);
    Ok(threads)
}
