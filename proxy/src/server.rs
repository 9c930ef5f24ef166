//! The main thread: load and check the config, open every listener (failing fast, as
//! Envoy binds in its main thread), start the pinned workers, then wait for signals.
//!
//! SIGTERM or SIGINT starts a drain: workers close their listeners, finish open
//! connections within `--drain-time-s`, and exit; the process exits 0. A second signal
//! stops at once.

use std::io::{self, IsTerminal, Read};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use sluice_stack::kernel::KernelStack;
use sluice_stack::{SocketId, Stack, Wake};

use crate::admin::{AdminServer, AdminState};
use crate::cli::{self, Command, DatapathKind, Mode, Options};
use crate::listener::manager::{Dns, Snapshot};
use crate::overload::OverloadManager;
use crate::reload::{self, UpstreamThreads};
use crate::stats::Store;
use crate::worker::{Control, Worker, WorkerSetup};
use crate::xds::FileXds;

/// Run the command line; returns the process exit code.
pub fn main_with_args(args: &[String]) -> i32 {
    match cli::parse(args) {
        Ok(Command::Help) => {
            print!("{}", cli::USAGE);
            0
        }
        Ok(Command::Version) => {
            println!("{}", version_line());
            0
        }
        Ok(Command::RouteCheck(args)) => route_check(&args),
        Ok(Command::Run(opts)) => {
            init_logging(&opts.log_level);
            run(&opts)
        }
        Err(e) => {
            eprintln!("sluice: {e}\n\n{}", cli::USAGE);
            1
        }
    }
}

/// `sluice --version`: version, git commit ("unknown" when built outside a git
/// checkout) and the cargo profile it was built with.
pub fn version_line() -> String {
    format!(
        "sluice {} (commit {}, {} profile)",
        env!("CARGO_PKG_VERSION"),
        env!("SLUICE_GIT_COMMIT"),
        env!("SLUICE_BUILD_PROFILE")
    )
}

fn route_check(args: &[String]) -> i32 {
    crate::route_check::main(args)
}

fn init_logging(level: &str) {
    let level = match level {
        "warning" => "warn",
        "critical" => "error",
        other => other,
    };
    let filter =
        tracing_subscriber::EnvFilter::try_new(format!("sluice={level},sluice_stack={level},sluice_datapath={level}"))
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal: a file, a pipe or a journal gets plain text.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_ansi(io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}

/// Load, check and serve (or only check, in validate mode).
pub fn run(opts: &Options) -> i32 {
    crate::xds::set_reject_unknown_dynamic_fields(opts.reject_unknown_dynamic_fields);
    let decoded = sluice_config::decode_file(&opts.config_path);
    for w in &decoded.warnings {
        tracing::warn!("{w}");
    }
    let failed = |errors: &mut dyn Iterator<Item = String>| {
        eprintln!("error initializing configuration '{}':", opts.config_path.display());
        for e in errors {
            eprintln!("  {e}");
        }
        1
    };
    let bootstrap = match decoded.bootstrap {
        Some(b) if decoded.errors.is_empty() => b,
        partial => {
            // Files and certificates are checked in the same pass as the schema.
            let files = partial.as_ref().map(crate::tls::context_errors).unwrap_or_default();
            return failed(&mut decoded.errors.iter().map(ToString::to_string).chain(files));
        }
    };
    // File-based xDS: the files are read now and their resources join the static ones;
    // the whole is checked as one config (`xds::compose`).
    let subscriptions = crate::stats::Subscriptions::default();
    let xds = FileXds::start(&bootstrap, &subscriptions, SystemTime::now(), Instant::now());
    let bootstrap = match xds.as_ref().map(FileXds::effective) {
        // ADS: the static resources checked as a whole (`ads_config`'s cluster among
        // them); the dynamic ones come once the stream is open.
        None if bootstrap.dynamic_resources.is_some() => {
            match sluice_config::xds::compose(&bootstrap, &sluice_config::xds::Dynamic::default()) {
                Ok(b) => b,
                Err(errors) => return failed(&mut errors.iter().map(ToString::to_string)),
            }
        }
        None => bootstrap,
        Some(Ok(effective)) => effective,
        Some(Err(errors)) => return failed(&mut errors.into_iter()),
    };
    crate::trace::set_local_info(crate::trace::LocalInfo {
        node_id: bootstrap.node.id.clone(),
        cluster: bootstrap.node.cluster.clone(),
        zone: bootstrap.node.zone.clone(),
    });
    let loaded = sluice_config::Loaded { bootstrap, warnings: decoded.warnings };
    let dns = if opts.mode == Mode::Validate { Dns::Skip } else { Dns::Resolve };
    // ADS: the listeners wait for the initialization (LDS's and CDS's first responses).
    let held;
    let initial =
        if opts.mode != Mode::Validate && crate::xds::grpc::AdsXds::holds_listeners_at_start(&loaded.bootstrap) {
            held = sluice_config::Bootstrap { listeners: Vec::new(), ..loaded.bootstrap.clone() };
            &held
        } else {
            &loaded.bootstrap
        };
    let snapshot = match Snapshot::build_with(initial, dns) {
        Ok(s) => Arc::new(s),
        Err(errors) => return failed(&mut errors.into_iter()),
    };
    if opts.mode == Mode::Validate {
        println!("configuration '{}' OK", opts.config_path.display());
        return 0;
    }
    match opts.datapath {
        DatapathKind::Kernel => serve(opts, &loaded, snapshot, xds),
        DatapathKind::Xdp => crate::xdp::serve(opts, &loaded, snapshot, xds),
    }
}

/// Open `snapshot`'s listeners on a stack: one socket per listener that binds a port.
pub fn open_listeners<S: Stack>(stack: &mut S, snapshot: &Snapshot) -> Result<Vec<Option<SocketId>>, String> {
    let mut sockets = Vec::with_capacity(snapshot.listeners.len());
    for l in &snapshot.listeners {
        if !l.bind_to_port {
            sockets.push(None);
            continue;
        }
        match stack.listen(l.address, &l.listen_options()) {
            Ok(s) => sockets.push(Some(s)),
            Err(e) => return Err(format!("cannot bind listener '{}' to {}: {e}", l.name, l.address)),
        }
    }
    Ok(sockets)
}

/// What every datapath's serve path shares: the stats store, the workers' control flags
/// and the main loop (signals and the admin server, on kernel sockets).
pub(crate) struct Serving {
    pub stats: Arc<Store>,
    pub control: Arc<Control>,
    pub main: MainLoop,
    /// The bootstrap's `overload_manager` (its thread starts with the workers).
    pub overload: Option<sluice_config::overload::OverloadManager>,
}

/// Create the stats, control flags and main loop for `workers` workers.
pub(crate) fn prepare(
    opts: &Options,
    loaded: &sluice_config::Loaded,
    snapshot: &Arc<Snapshot>,
    workers: usize,
    xds: Option<FileXds>,
) -> Result<Serving, String> {
    let stats = Arc::new(Store::new(workers));
    if let Some(x) = &xds {
        x.register(&stats);
    }
    let overload = loaded.bootstrap.overload_manager.as_ref();
    let control = Arc::new(Control::with_overload(Arc::new(crate::overload::OverloadState::new(overload))));
    let runtime = crate::runtime::Loader::new(
        loaded.bootstrap.layered_runtime.as_ref(),
        Arc::clone(&control.runtime),
        Arc::clone(&stats.runtime),
    );
    crate::runtime::apply_to_clusters(&runtime.snapshot(), &snapshot.cluster_manager);
    if overload.and_then(|o| o.max_active_downstream_connections()).is_none()
        && runtime.snapshot().get(crate::runtime::listener_limit::GLOBAL_MAX_CX).is_none()
    {
        // As Envoy: a proxy without a global connection limit says so at startup.
        tracing::warn!(
            "there is no configured limit to the number of allowed active downstream connections; configure a limit in `envoy.resource_monitors.global_downstream_max_connections` resource monitor"
        );
    }
    control.set_drain_strategy(opts.drain_strategy);
    let admin_state = Arc::new(AdminState {
        stats: Arc::clone(&stats),
        snapshot: Mutex::new(Arc::clone(snapshot)),
        config_dump: Mutex::new(match &xds {
            Some(x) => x.config_dump(),
            None => sluice_config::dump::config_dump(&loaded.bootstrap),
        }),
        config_dump_eds: Mutex::new(String::new()),
        control: Arc::clone(&control),
        started: Instant::now(),
        started_wall: std::time::SystemTime::now(),
        live: AtomicBool::new(false),
        initializing: AtomicBool::new(false),
        health_check_failed: AtomicBool::new(false),
        concurrency: workers,
        config_path: opts.config_path.display().to_string(),
        quit: AtomicBool::new(false),
        runtime: Mutex::new(runtime),
        ignore_global_conn_limit: loaded.bootstrap.admin.as_ref().is_some_and(|a| a.ignore_global_conn_limit),
    });
    let mut main = MainLoop::new(loaded, admin_state, opts, Arc::clone(&stats))?;
    main.xds = xds;
    main.ads = crate::xds::grpc::AdsXds::start(&loaded.bootstrap, &stats, Instant::now())?;
    if let Some(a) = &main.ads {
        a.register(&stats);
        let (dump, eds) = a.config_dump(SystemTime::now());
        *main.admin_state.config_dump.lock().unwrap_or_else(|e| e.into_inner()) = dump;
        *main.admin_state.config_dump_eds.lock().unwrap_or_else(|e| e.into_inner()) = eds;
    }
    Ok(Serving { stats, control, main, overload: loaded.bootstrap.overload_manager.clone() })
}

fn serve(opts: &Options, loaded: &sluice_config::Loaded, snapshot: Arc<Snapshot>, xds: Option<FileXds>) -> i32 {
    let serving = match prepare(opts, loaded, &snapshot, opts.concurrency, xds) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("sluice: {e}");
            return 1;
        }
    };
    let mut workers = Vec::new();
    for id in 0..opts.concurrency {
        let mut stack = match KernelStack::new() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("sluice: cannot create an epoll instance: {e}");
                return 1;
            }
        };
        let listen_sockets = match open_listeners(&mut stack, &snapshot) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("sluice: {e}");
                return 1;
            }
        };
        let setup = WorkerSetup {
            id,
            stack,
            snapshot: Arc::clone(&snapshot),
            listen_sockets,
            stats: Arc::clone(&serving.stats),
            control: Arc::clone(&serving.control),
            drain_time: opts.drain_time,
        };
        match Worker::new(setup) {
            Ok(w) => workers.push(w),
            Err(e) => {
                eprintln!("sluice: cannot start worker {id}: {e}");
                return 1;
            }
        }
    }
    run_serving(workers, serving, &snapshot, opts)
}

/// Start the cluster threads (DNS refresh, health checks, outlier detection), run the
/// workers and the main loop until they exit, then stop the threads. Returns the exit
/// code.
pub(crate) fn run_serving<S: Stack + Send + 'static>(
    workers: Vec<Worker<S>>,
    mut serving: Serving,
    snapshot: &Snapshot,
    opts: &Options,
) -> i32 {
    match UpstreamThreads::start(snapshot, &serving.stats, true) {
        Ok(t) => serving.main.threads = Some(t),
        Err(e) => {
            eprintln!("sluice: {e}");
            return 1;
        }
    }
    let code = run_workers(workers, &mut serving.main, serving.overload.as_ref(), opts);
    if let Some(t) = serving.main.threads.take() {
        t.stop();
    }
    code
}

/// Start the workers pinned to cores, then run the main loop until they exit.
fn run_workers<S: Stack + Send + 'static>(
    workers: Vec<Worker<S>>,
    main: &mut MainLoop,
    overload: Option<&sluice_config::overload::OverloadManager>,
    opts: &Options,
) -> i32 {
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let mut wakers: Vec<Arc<dyn Wake>> = Vec::new();
    let mut handles = Vec::new();
    for (id, mut w) in workers.into_iter().enumerate() {
        match w.waker() {
            Ok(wk) => wakers.push(wk),
            Err(e) => {
                eprintln!("sluice: cannot create a waker: {e}");
                return 1;
            }
        }
        let core = (!cores.is_empty()).then(|| cores[id % cores.len()]);
        let h = std::thread::Builder::new().name(format!("sluice-worker-{id}")).spawn(move || {
            if let Some(c) = core {
                core_affinity::set_for_current(c);
            }
            w.run()
        });
        match h {
            Ok(h) => handles.push(h),
            Err(e) => {
                eprintln!("sluice: cannot start worker thread {id}: {e}");
                return 1;
            }
        }
    }
    // The overload manager refreshes its monitors on its own thread and wakes the
    // workers when an action changes.
    let overload_manager = match overload {
        Some(config) => {
            let state = Arc::clone(&main.admin_state.control.overload);
            match OverloadManager::start(config, state, &main.stats, wakers.clone()) {
                Ok(m) => m,
                Err(e) => {
                    tracing::error!("cannot start the overload manager: {e}");
                    main.admin_state.control.stop.store(true, Ordering::Relaxed);
                    None
                }
            }
        }
        None => None,
    };
    // Under ADS, live once initialization is done (see `poll_ads`); until then the init
    // manager waits (INITIALIZING).
    main.admin_state.initializing.store(true, Ordering::Relaxed);
    main.admin_state.live.store(main.ads.as_ref().is_none_or(|a| a.initialized()), Ordering::Relaxed);
    let admin = main.admin.as_ref().map(|a| a.local_addr.to_string()).unwrap_or_else(|| "none".into());
    tracing::info!(workers = handles.len(), config = %opts.config_path.display(), admin = %admin, "sluice started");
    main.run(&wakers, || handles.iter().all(|h| h.is_finished()));
    if let Some(m) = overload_manager {
        m.stop();
    }
    let mut code = 0;
    for h in handles {
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!("worker failed: {e}");
                code = 1;
            }
            Err(_) => code = 1,
        }
    }
    tracing::info!("sluice exited");
    code
}

const SIGNAL_TOKEN: mio::Token = mio::Token(0);
const ADMIN_TOKEN: mio::Token = mio::Token(1);

/// The main thread's event loop: signals (SIGTERM/SIGINT drain, SIGHUP reload,
/// SIGUSR1 reopen access logs) and the admin server.
pub(crate) struct MainLoop {
    poll: mio::Poll,
    signal_pipe: mio::net::UnixStream,
    term: Arc<AtomicBool>,
    hup: Arc<AtomicBool>,
    usr1: Arc<AtomicBool>,
    admin: Option<AdminServer>,
    admin_state: Arc<AdminState>,
    config_path: std::path::PathBuf,
    stats: Arc<Store>,
    /// The current config's cluster threads (DNS, health checks, outlier detection).
    threads: Option<UpstreamThreads>,
    /// The datapath's part in a reload (xdp mode: steer new listeners' ports).
    pub(crate) datapath_reload: Option<reload::DatapathReload>,
    /// What a reload keeps from the first config (admin, overload manager).
    bootstrap_only: reload::BootstrapOnly,
    /// The file subscriptions of `dynamic_resources` (none without them).
    pub(crate) xds: Option<FileXds>,
    /// The ADS client of `dynamic_resources.ads_config` (none without it).
    pub(crate) ads: Option<crate::xds::grpc::AdsXds>,
}

impl MainLoop {
    pub(crate) fn new(
        loaded: &sluice_config::Loaded,
        admin_state: Arc<AdminState>,
        opts: &Options,
        stats: Arc<Store>,
    ) -> Result<MainLoop, String> {
        let poll = mio::Poll::new().map_err(|e| format!("cannot create the main poll: {e}"))?;
        let term = Arc::new(AtomicBool::new(false));
        let hup = Arc::new(AtomicBool::new(false));
        let usr1 = Arc::new(AtomicBool::new(false));
        let (read, write) = UnixStream::pair().map_err(|e| format!("cannot create the signal pipe: {e}"))?;
        read.set_nonblocking(true).map_err(|e| e.to_string())?;
        for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
            signal_hook::flag::register(sig, Arc::clone(&term))
                .map_err(|e| format!("cannot install signal handlers: {e}"))?;
            let w = write.try_clone().map_err(|e| e.to_string())?;
            signal_hook::low_level::pipe::register(sig, w)
                .map_err(|e| format!("cannot install signal handlers: {e}"))?;
        }
        for (sig, flag) in [(signal_hook::consts::SIGHUP, &hup), (signal_hook::consts::SIGUSR1, &usr1)] {
            signal_hook::flag::register(sig, Arc::clone(flag))
                .map_err(|e| format!("cannot install signal handlers: {e}"))?;
            let w = write.try_clone().map_err(|e| e.to_string())?;
            signal_hook::low_level::pipe::register(sig, w)
                .map_err(|e| format!("cannot install signal handlers: {e}"))?;
        }
        let mut signal_pipe = mio::net::UnixStream::from_std(read);
        poll.registry().register(&mut signal_pipe, SIGNAL_TOKEN, mio::Interest::READABLE).map_err(|e| e.to_string())?;
        let admin = match &loaded.bootstrap.admin {
            Some(a) => {
                let addr = a
                    .address
                    .socket_addr()
                    .ok_or_else(|| format!("admin address `{}` is not an IP", a.address.address))?;
                Some(
                    AdminServer::bind(addr, Arc::clone(&admin_state), poll.registry(), ADMIN_TOKEN)
                        .map_err(|e| format!("cannot bind the admin listener to {addr}: {e}"))?,
                )
            }
            None => None,
        };
        Ok(MainLoop {
            poll,
            signal_pipe,
            term,
            hup,
            usr1,
            admin,
            admin_state,
            config_path: opts.config_path.clone(),
            stats,
            threads: None,
            datapath_reload: None,
            bootstrap_only: reload::BootstrapOnly::of(&loaded.bootstrap),
            xds: None,
            ads: None,
        })
    }

    /// SIGHUP: swap in the config file's current content, or keep the old one.
    fn reload(&mut self) {
        if self.ads.is_some() {
            tracing::error!(config = %self.config_path.display(), "configuration reload refused: with `ads_config` the control plane updates the config; restart to change the bootstrap");
            return;
        }
        let control = Arc::clone(&self.admin_state.control);
        let datapath = self.datapath_reload.as_mut();
        match reload::reload(
            &self.config_path,
            &control,
            &self.admin_state,
            &self.stats,
            &self.bootstrap_only,
            datapath,
        ) {
            Ok((threads, xds)) => {
                if let Some(old) = self.threads.replace(threads) {
                    old.stop();
                }
                if let Some(x) = &xds {
                    x.register(&self.stats);
                }
                self.xds = xds;
                tracing::info!(config = %self.config_path.display(), "configuration reloaded");
            }
            Err(errors) => {
                tracing::error!(config = %self.config_path.display(), "configuration reload rejected; the old configuration keeps serving");
                for e in errors {
                    tracing::error!("  {e}");
                }
            }
        }
    }

    /// Read the xDS files that were moved into place and apply a good update the way a
    /// reload is applied. Returns whether a new config was published.
    fn poll_xds(&mut self) -> bool {
        let MainLoop { xds, admin_state, stats, datapath_reload, threads, .. } = self;
        let Some(x) = xds.as_mut() else { return false };
        let mut apply = |b: &sluice_config::Bootstrap, dump: String| -> Result<(), Vec<String>> {
            let t = reload::apply(b, dump, &admin_state.control, admin_state, stats, datapath_reload.as_mut())?;
            if let Some(old) = threads.replace(t) {
                old.stop();
            }
            Ok(())
        };
        let applied = x.poll(Instant::now(), SystemTime::now(), &mut apply);
        if applied {
            x.register(stats);
        }
        applied
    }

    /// Apply what the ADS stream brought. Returns whether a new config was published.
    fn poll_ads(&mut self) -> bool {
        let MainLoop { ads, admin_state, stats, datapath_reload, threads, .. } = self;
        let Some(x) = ads.as_mut() else { return false };
        let mut apply = |b: &sluice_config::Bootstrap, dump: String| -> Result<(), Vec<String>> {
            let t = reload::apply(b, dump, &admin_state.control, admin_state, stats, datapath_reload.as_mut())?;
            if let Some(old) = threads.replace(t) {
                old.stop();
            }
            Ok(())
        };
        let applied = x.poll(Instant::now(), SystemTime::now(), &mut apply);
        if x.initialized() {
            admin_state.live.store(true, Ordering::Relaxed);
        }
        if applied {
            x.register(stats);
            let (dump, eds) = x.config_dump(SystemTime::now());
            *admin_state.config_dump.lock().unwrap_or_else(|e| e.into_inner()) = dump;
            *admin_state.config_dump_eds.lock().unwrap_or_else(|e| e.into_inner()) = eds;
        }
        applied
    }

    /// Re-read swapped disk layers; when the runtime snapshot or the config changed
    /// since `applied` (runtime version, config pointer), push the runtime's cluster
    /// values into the config's clusters, and wake the workers for a new snapshot.
    fn refresh_runtime(&self, applied: &mut (u64, *const Snapshot), wake_all: &impl Fn()) {
        let (version, runtime) = {
            let mut loader = self.admin_state.runtime.lock().unwrap_or_else(|e| e.into_inner());
            loader.poll_disk();
            (loader.published().version(), loader.snapshot())
        };
        let config = Arc::clone(&self.admin_state.snapshot.lock().unwrap_or_else(|e| e.into_inner()));
        if applied.0 == version && std::ptr::eq(applied.1, Arc::as_ptr(&config)) {
            return;
        }
        crate::runtime::apply_to_clusters(&runtime, &config.cluster_manager);
        if applied.0 != version {
            wake_all();
        }
        *applied = (version, Arc::as_ptr(&config));
    }

    /// Serve signals and admin requests until `finished()` (all workers exited).
    fn run(&mut self, wakers: &[Arc<dyn Wake>], finished: impl Fn() -> bool) {
        let mut events = mio::Events::with_capacity(64);
        let control = Arc::clone(&self.admin_state.control);
        let wake_all = || wakers.iter().for_each(|w| drop(w.wake()));
        let mut listeners_drained = false;
        let mut runtime_applied = (u64::MAX, std::ptr::null());
        loop {
            if finished() {
                return;
            }
            self.refresh_runtime(&mut runtime_applied, &wake_all);
            if let Err(e) = self.poll.poll(&mut events, Some(Duration::from_millis(100))) {
                if e.kind() != io::ErrorKind::Interrupted {
                    tracing::error!("main loop poll failed: {e}");
                }
            }
            if let Some(admin) = self.admin.as_mut() {
                admin.on_tick(self.poll.registry(), Instant::now());
            }
            for ev in events.iter() {
                match ev.token() {
                    SIGNAL_TOKEN => {
                        let mut buf = [0u8; 64];
                        while matches!((&self.signal_pipe).read(&mut buf), Ok(n) if n > 0) {}
                    }
                    t => {
                        if let Some(admin) = self.admin.as_mut() {
                            if admin.owns(t) {
                                admin.on_event(self.poll.registry(), t);
                            }
                        }
                    }
                }
            }
            // Every round (at most 100 ms apart), accept again on the admin listener:
            // an accept that failed for want of descriptors leaves its backlog pending,
            // and the edge-triggered listener would not report it again, so the admin
            // server stopped answering for good (issue 22). With nothing pending this
            // is one EAGAIN.
            if let Some(admin) = self.admin.as_mut() {
                admin.on_event(self.poll.registry(), ADMIN_TOKEN);
            }
            if self.term.swap(false, Ordering::Relaxed) {
                if control.draining.load(Ordering::Relaxed) {
                    tracing::info!("second signal: stopping now");
                    control.stop.store(true, Ordering::Relaxed);
                } else {
                    tracing::info!("shutting down: draining listeners and connections");
                    control.draining.store(true, Ordering::Relaxed);
                }
                wake_all();
            }
            if !control.draining.load(Ordering::Relaxed) && self.poll_xds() {
                wake_all();
            }
            if !control.draining.load(Ordering::Relaxed) && self.poll_ads() {
                wake_all();
            }
            if self.hup.swap(false, Ordering::Relaxed) && !control.draining.load(Ordering::Relaxed) {
                self.reload();
                wake_all();
            }
            if self.usr1.swap(false, Ordering::Relaxed) {
                let failed = crate::access_log::sink::reopen_all();
                if failed.is_empty() {
                    tracing::info!("access logs reopened");
                }
                for e in failed {
                    tracing::error!("{e}");
                }
            }
            if self.admin_state.quit.swap(false, Ordering::Relaxed) {
                tracing::info!("/quitquitquit: stopping");
                control.stop.store(true, Ordering::Relaxed);
                wake_all();
            }
            if !listeners_drained && control.listeners_drained.load(Ordering::Relaxed) {
                // Workers check the flag on their next round: wake them once.
                listeners_drained = true;
                wake_all();
            }
        }
    }
}
