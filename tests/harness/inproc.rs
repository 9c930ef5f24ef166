//! sluice's proxy core run inside the test process, on any stack.
//!
//! [`InProcessProxy::start`] does what the binary's main thread does for its workers,
//! with the stacks it is given: decode the bootstrap, compile the [`Snapshot`], open the
//! listeners on each stack, and run one [`Worker`] per stack on its own thread. The
//! same code serves the kernel backend (a `KernelStack` per worker) and the userspace one
//! (a `SmolStack` per worker over an in-memory port).
//!
//! The workers run with the config's cluster threads (`UpstreamThreads`: DNS refresh
//! and the upstream monitor, so outlier detection and cluster stats work as in the
//! binary; the monitor's active health checks use kernel sockets, as in xdp mode, so
//! they reach only kernel-backend origins). There is no admin server and no signal
//! handling: configs that need those belong in the binary's tests. The runtime
//! (`layered_runtime`) is loaded as in the binary; [`InProcessProxy::runtime_modify`]
//! and [`InProcessProxy::poll_runtime_disk`] do what the binary's `/runtime_modify` and
//! main loop do with it. The
//! workers' logs go to stderr when `SLUICE_TEST_LOG` holds a level or filter (e.g.
//! `debug`, or `sluice=debug,sluice_stack=trace`).
//!
//! Dropping the proxy stops it (`Control::stop`, workers woken) and joins its threads,
//! also when a test panics; a worker that failed or panicked then fails the test, unless
//! it is already failing.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use sluice::listener::manager::Snapshot;
use sluice::reload::UpstreamThreads;
use sluice::server::open_listeners;
use sluice::stats::Store;
use sluice::worker::{Control, Worker, WorkerSetup};
use sluice_stack::{Stack, Wake};

/// A running proxy: its workers' threads and the means to stop them.
pub struct InProcessProxy {
    control: Arc<Control>,
    wakers: Vec<Arc<dyn Wake>>,
    threads: Vec<JoinHandle<io::Result<()>>>,
    stats: Arc<Store>,
    /// The compiled config the workers run (its clusters for [`InProcessProxy::clusters`]).
    snapshot: Arc<Snapshot>,
    /// The clusters' threads; stopped after the workers.
    upstream: Option<UpstreamThreads>,
    /// Where clients reach each worker, for listeners on an unspecified address.
    worker_ips: Vec<IpAddr>,
    next_worker: AtomicUsize,
    runtime: Mutex<sluice::runtime::Loader>,
}

impl InProcessProxy {
    /// Run the bootstrap `yaml` with one worker per stack. `worker_ips[i]` is the address
    /// clients use to reach worker `i` when a listener binds `0.0.0.0` (see
    /// [`InProcessProxy::target`]). Config and bind errors come back as text.
    pub fn start<S: Stack + Send + 'static>(
        yaml: &str,
        stacks: Vec<S>,
        worker_ips: Vec<IpAddr>,
    ) -> Result<InProcessProxy, String> {
        init_logging();
        let loaded = sluice_config::load_str(yaml).map_err(|e| format!("config: {e}"))?;
        let snapshot = Arc::new(Snapshot::build(&loaded.bootstrap).map_err(|e| format!("config: {}", e.join("; ")))?);
        let stats = Arc::new(Store::new(stacks.len()));
        // As the binary: counters owned by the config (HTTP filters', tracers').
        stats.filters.replace(snapshot.filter_counters());
        let control = Arc::new(Control::default());
        let runtime = sluice::runtime::Loader::new(
            loaded.bootstrap.layered_runtime.as_ref(),
            Arc::clone(&control.runtime),
            Arc::clone(&stats.runtime),
        );
        sluice::runtime::apply_to_clusters(&runtime.snapshot(), &snapshot.cluster_manager);
        let mut workers = Vec::with_capacity(stacks.len());
        for (id, mut stack) in stacks.into_iter().enumerate() {
            let listen_sockets = open_listeners(&mut stack, &snapshot)?;
            let setup = WorkerSetup {
                id,
                stack,
                snapshot: Arc::clone(&snapshot),
                listen_sockets,
                stats: Arc::clone(&stats),
                control: Arc::clone(&control),
                drain_time: Duration::from_secs(5),
            };
            workers.push(Worker::new(setup).map_err(|e| format!("cannot start worker {id}: {e}"))?);
        }
        // As the binary: the cluster threads start once every worker is built.
        let upstream = UpstreamThreads::start(&snapshot, &stats, true)?;
        let mut proxy = InProcessProxy {
            control,
            wakers: Vec::new(),
            threads: Vec::new(),
            stats,
            snapshot,
            upstream: Some(upstream),
            worker_ips,
            next_worker: AtomicUsize::new(0),
            runtime: Mutex::new(runtime),
        };
        for (id, mut worker) in workers.into_iter().enumerate() {
            proxy.wakers.push(worker.waker().map_err(|e| format!("worker {id}: no waker: {e}"))?);
            let thread = std::thread::Builder::new().name(format!("sluice-worker-{id}")).spawn(move || worker.run());
            proxy.threads.push(thread.map_err(|e| format!("cannot start worker thread {id}: {e}"))?);
        }
        Ok(proxy)
    }

    /// The address a new client connection to `listener` should use. A listener on a
    /// concrete address is its own target; on an unspecified address (the smol backend,
    /// where each worker is a host of its own) successive calls spread connections over
    /// the workers round-robin, as a NIC's RSS would spread flows over queues.
    pub fn target(&self, listener: SocketAddr) -> SocketAddr {
        if !listener.ip().is_unspecified() || self.worker_ips.is_empty() {
            return listener;
        }
        let i = self.next_worker.fetch_add(1, Ordering::Relaxed) % self.worker_ips.len();
        SocketAddr::new(self.worker_ips[i], listener.port())
    }

    /// What the binary's `POST /runtime_modify?k=v&...` does: write the admin layer,
    /// publish the new snapshot to the workers (woken) and the clusters.
    pub fn runtime_modify(&self, values: &[(&str, &str)]) -> Result<(), &'static str> {
        let mut loader = self.runtime.lock().unwrap();
        let values: Vec<(String, String)> = values.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        loader.merge_admin(&values)?;
        sluice::runtime::apply_to_clusters(&loader.snapshot(), &self.snapshot.cluster_manager);
        self.wake_all();
        settle();
        Ok(())
    }

    /// What the binary's main loop does each round: re-read the disk layers when a
    /// `symlink_root` was swapped; true when a new snapshot was published.
    pub fn poll_runtime_disk(&self) -> bool {
        let mut loader = self.runtime.lock().unwrap();
        if !loader.poll_disk() {
            return false;
        }
        sluice::runtime::apply_to_clusters(&loader.snapshot(), &self.snapshot.cluster_manager);
        self.wake_all();
        settle();
        true
    }

    pub fn workers(&self) -> usize {
        self.wakers.len()
    }

    /// The workers' stats, merged on read.
    pub fn stats(&self) -> &Arc<Store> {
        &self.stats
    }

    /// What the admin endpoint `/clusters` would answer (Envoy's text format: per-host
    /// counters, health flags).
    pub fn clusters(&self) -> String {
        sluice::admin::clusters::render(&self.snapshot)
    }

    /// Stop accepting and let open connections finish (what SIGTERM does to the binary);
    /// [`InProcessProxy::join`] waits for the workers to exit.
    pub fn drain(&self) {
        self.control.draining.store(true, Ordering::Relaxed);
        self.wake_all();
    }

    /// Stop now (what a second SIGTERM/SIGINT or admin `/quitquitquit` does to the
    /// binary); [`InProcessProxy::join`] waits for the workers to exit.
    pub fn stop(&self) {
        self.control.stop.store(true, Ordering::Relaxed);
        self.wake_all();
    }

    /// Wait for the workers to exit (after [`InProcessProxy::drain`] or [`InProcessProxy::stop`]), at most `timeout`;
    /// a worker's error or panic comes back as an error.
    pub fn join(mut self, timeout: Duration) -> Result<(), String> {
        let deadline = std::time::Instant::now() + timeout;
        while !self.threads.iter().all(JoinHandle::is_finished) {
            if std::time::Instant::now() >= deadline {
                return Err(format!("workers still running after {timeout:?}"));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        self.reap()
    }

    fn wake_all(&self) {
        for w in &self.wakers {
            let _ = w.wake();
        }
    }

    /// Join every worker thread; the first failure comes back.
    fn reap(&mut self) -> Result<(), String> {
        let mut result = Ok(());
        for (id, t) in self.threads.drain(..).enumerate() {
            let outcome = match t.join() {
                Ok(Ok(())) => continue,
                Ok(Err(e)) => format!("worker {id} failed: {e}"),
                Err(_) => format!("worker {id} panicked"),
            };
            if result.is_ok() {
                result = Err(outcome);
            }
        }
        result
    }
}

/// Send the workers' `tracing` output to the test's stderr if `SLUICE_TEST_LOG` asks.
fn init_logging() {
    let Ok(filter) = std::env::var("SLUICE_TEST_LOG") else {
        return;
    };
    let filter = if filter.contains('=') { filter } else { format!("sluice={filter},sluice_stack={filter}") };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_test_writer()
        .with_thread_names(true)
        .try_init();
}

impl Drop for InProcessProxy {
    fn drop(&mut self) {
        self.control.stop.store(true, Ordering::Relaxed);
        self.wake_all();
        let reaped = self.reap();
        if let Some(t) = self.upstream.take() {
            t.stop();
        }
        if let Err(e) = reaped {
            if !std::thread::panicking() {
                panic!("in-process proxy: {e}");
            }
        }
    }
}

/// Workers adopt a new runtime snapshot when their poll returns: a request a worker is
/// already reading in its current round (a keep-alive client that sent right after its
/// last response) still sees the old values, as in Envoy, where the snapshot reaches
/// each worker by a posted callback. Give the woken workers that round.
fn settle() {
    std::thread::sleep(Duration::from_millis(50));
}
