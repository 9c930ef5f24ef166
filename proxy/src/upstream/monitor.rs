//! The upstream monitor: the one thread that owns host health (Envoy does this on its
//! main thread).
//!
//! It drives every cluster's active health checks (one session per host, once per
//! cluster, never per worker) and every cluster's outlier-detection authority, on a
//! single event loop over its own `Stack` (kernel sockets and epoll) with its own
//! timers: no blocking socket, no sleep. Workers reach it only lock-free: they write
//! per-host atomics and wake its poll (outlier detections, passive health-check
//! failures, the cluster's first traffic); the DNS refresher wakes it on membership
//! changes. Whenever a host's health flags change it rebuilds and publishes the
//! cluster's priority set, once per loop turn. It also signals when every host has its
//! first check result, so the server can wait for it before serving.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sluice_stack::kernel::KernelStack;
use sluice_stack::{Events, Stack, Token, Wake};

use crate::rng::Rng;
use crate::timer::{TimerKey, Timers};
use crate::upstream::cluster_manager::ClusterInfo;
use crate::upstream::health::session::{Session, Verdict};
use crate::upstream::health::{Checker, FailureType, Transition};
use crate::upstream::host::{health_flag, Host};
use crate::upstream::outlier::Detector;

const WAKER: Token = Token(usize::MAX);
/// Longest poll sleep, so a lost wake costs at most this much.
const MAX_SLEEP: Duration = Duration::from_millis(500);

/// "Every host has its first health-check result."
#[derive(Debug, Default)]
struct Initialized {
    done: Mutex<bool>,
    cv: Condvar,
}

impl Initialized {
    fn set(&self) {
        *self.done.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.cv.notify_all();
    }

    fn wait(&self, timeout: Duration) -> bool {
        let guard = self.done.lock().unwrap_or_else(|e| e.into_inner());
        let (guard, _) = self.cv.wait_timeout_while(guard, timeout, |done| !*done).unwrap_or_else(|e| e.into_inner());
        *guard
    }
}

/// A running monitor thread; stopped (and joined) by [`MonitorHandle::stop`] or drop.
pub struct MonitorHandle {
    stop: Arc<AtomicBool>,
    waker: Arc<dyn Wake>,
    initialized: Arc<Initialized>,
    thread: Option<JoinHandle<()>>,
}

impl MonitorHandle {
    /// Wait up to `timeout` for every host's first health-check result.
    pub fn wait_initialized(&self, timeout: Duration) -> bool {
        self.initialized.wait(timeout)
    }

    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Release);
        let _ = self.waker.wake();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for MonitorHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Start the monitor for the clusters that need one (health checks or outlier
/// detection); `None` when no cluster does.
pub fn spawn(clusters: &[Arc<ClusterInfo>]) -> io::Result<Option<MonitorHandle>> {
    let watched: Vec<Arc<ClusterInfo>> =
        clusters.iter().filter(|c| c.health_checked() || c.outlier.is_some()).cloned().collect();
    if watched.is_empty() {
        return Ok(None);
    }
    let mut stack = KernelStack::new()?;
    let waker = stack.waker(WAKER)?;
    for c in &watched {
        c.set_monitor(Arc::clone(&waker));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let initialized = Arc::new(Initialized::default());
    let seed = Rng::from_entropy(0x6d6f_6e69).next_u64();
    let mut monitor = Monitor::new(stack, watched, seed, Instant::now());
    let (s, init) = (Arc::clone(&stop), Arc::clone(&initialized));
    let thread = std::thread::Builder::new().name("sluice-upstream".into()).spawn(move || {
        monitor.initialized = Some(init);
        monitor.check_initialized();
        while !s.load(Ordering::Acquire) {
            if let Err(e) = monitor.turn(MAX_SLEEP) {
                tracing::error!("upstream monitor: poll failed: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        monitor.shutdown();
    })?;
    Ok(Some(MonitorHandle { stop, waker, initialized, thread: Some(thread) }))
}

/// How long the first round of health checks can take: the longest initial jitter plus
/// check timeout among `clusters`, and a margin for the machine.
pub fn first_round_bound(clusters: &[Arc<ClusterInfo>]) -> Duration {
    clusters
        .iter()
        .flat_map(|c| c.config.health_checks.iter())
        .map(|hc| hc.initial_jitter + hc.timeout)
        .max()
        .unwrap_or(Duration::ZERO)
        + Duration::from_secs(1)
}

/// One watched cluster.
struct Watched {
    info: Arc<ClusterInfo>,
    checker: Option<Checker>,
    detector: Option<Detector>,
    membership: u64,
    traffic_seen: bool,
    /// Host flags changed this turn: republish the priority set.
    dirty: bool,
}

struct Slot {
    cluster: usize,
    session: Session,
    generation: u32,
    /// The instant the session's timer is armed for.
    armed: Option<Instant>,
}

/// The monitor's event loop state, generic over the stack (tests drive it directly).
pub struct Monitor<S: Stack> {
    stack: S,
    clusters: Vec<Watched>,
    slots: Vec<Option<Slot>>,
    generations: Vec<u32>,
    free: Vec<usize>,
    timers: Timers,
    events: Events,
    /// Slots with socket events this turn (kept to avoid allocating per turn).
    ready: Vec<usize>,
    scratch: Box<[u8]>,
    rng: Rng,
    /// Sessions still waiting for their first result.
    pending_first: usize,
    initialized: Option<Arc<Initialized>>,
}

impl<S: Stack> Monitor<S> {
    pub fn new(stack: S, clusters: Vec<Arc<ClusterInfo>>, seed: u64, now: Instant) -> Monitor<S> {
        let mut rng = Rng::new(seed);
        let mut m = Monitor {
            stack,
            clusters: Vec::with_capacity(clusters.len()),
            slots: Vec::new(),
            generations: Vec::new(),
            free: Vec::new(),
            timers: Timers::new(),
            events: Events::with_capacity(256),
            ready: Vec::new(),
            scratch: vec![0u8; 16 * 1024].into_boxed_slice(),
            rng: Rng::new(rng.next_u64()),
            pending_first: 0,
            initialized: None,
        };
        for info in clusters {
            let checker = info.config.health_checks.first().map(|hc| Checker::new(hc, info.name()));
            let hosts = info.hosts();
            let detector =
                info.config.outlier_detection.clone().map(|od| Detector::new(od, &hosts, now, rng.next_u64()));
            m.clusters.push(Watched {
                membership: info.membership_version(),
                traffic_seen: info.seen_traffic(),
                info,
                checker,
                detector,
                dirty: false,
            });
            let c = m.clusters.len() - 1;
            if m.clusters[c].checker.is_some() {
                for h in &hosts.hosts {
                    m.add_session(c, Arc::clone(h), now);
                }
            }
        }
        m
    }

    /// Whether every host has had its first health-check result.
    pub fn initialized(&self) -> bool {
        self.pending_first == 0
    }

    fn check_initialized(&self) {
        if self.pending_first == 0 {
            if let Some(i) = &self.initialized {
                i.set();
            }
        }
    }

    fn add_session(&mut self, cluster: usize, host: Arc<Host>, now: Instant) {
        let Some(checker) = &self.clusters[cluster].checker else {
            return;
        };
        if !host.has_flag(health_flag::FAILED_ACTIVE_HC) {
            self.clusters[cluster].info.stats.hc_healthy.add(1);
        }
        let first = now + self.clusters[cluster].info.bound_health_check_interval(checker.initial_delay(&mut self.rng));
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(None);
                self.generations.push(0);
                self.slots.len() - 1
            }
        };
        self.generations[index] = self.generations[index].wrapping_add(1);
        self.slots[index] = Some(Slot {
            cluster,
            session: Session::new(host, first),
            generation: self.generations[index],
            armed: None,
        });
        self.pending_first += 1;
        self.arm(index);
    }

    fn remove_session(&mut self, index: usize) {
        if let Some(mut slot) = self.slots[index].take() {
            slot.session.close(&mut self.stack);
            if slot.session.state.first_check() {
                self.pending_first -= 1;
            }
            let host = &slot.session.host;
            if !host.has_flag(health_flag::FAILED_ACTIVE_HC) {
                self.clusters[slot.cluster].info.stats.hc_healthy.add(-1);
            }
            self.free.push(index);
        }
    }

    /// Make sure the session's timer fires at its deadline.
    fn arm(&mut self, index: usize) {
        let Some(slot) = self.slots[index].as_mut() else {
            return;
        };
        let at = slot.session.deadline();
        if slot.armed != Some(at) {
            slot.armed = Some(at);
            self.timers.schedule(TimerKey { index: index as u32, generation: slot.generation }, at);
        }
    }

    /// One loop turn: handle what is due, sleep in poll (at most `max_sleep`), handle
    /// socket events, publish health changes.
    pub fn turn(&mut self, max_sleep: Duration) -> io::Result<()> {
        self.service(Instant::now());
        let now = Instant::now();
        let mut sleep = self.timers.timeout(now).unwrap_or(max_sleep).min(max_sleep);
        for w in &self.clusters {
            if let Some(d) = &w.detector {
                sleep = sleep.min(d.next_deadline().saturating_duration_since(now));
            }
        }
        self.stack.poll(&mut self.events, Some(sleep))?;
        let now = Instant::now();
        let mut ready = std::mem::take(&mut self.ready);
        ready.clear();
        ready.extend(self.events.iter().map(|e| e.token()).filter(|t| *t != WAKER).map(|t| t.0));
        for &index in &ready {
            self.on_socket(index, now);
        }
        self.ready = ready;
        self.service(Instant::now());
        Ok(())
    }

    fn on_socket(&mut self, index: usize, now: Instant) {
        let Some(Some(slot)) = self.slots.get_mut(index) else {
            return;
        };
        let Some(checker) = &self.clusters[slot.cluster].checker else {
            return;
        };
        if let Some(v) = slot.session.on_ready(&mut self.stack, checker, &mut self.scratch, now) {
            self.apply(index, v, now);
        }
        self.arm(index);
    }

    /// Everything not driven by socket events: membership, worker reports, timers,
    /// outlier intervals, then publishing.
    fn service(&mut self, now: Instant) {
        for c in 0..self.clusters.len() {
            self.sync_membership(c, now);
            self.worker_reports(c, now);
        }
        while let Some((at, key)) = self.timers.pop_due(now) {
            let index = key.index as usize;
            let Some(Some(slot)) = self.slots.get_mut(index) else {
                continue;
            };
            // Entries of a reused slot or of a deadline that moved are stale.
            if slot.generation != key.generation || slot.armed != Some(at) {
                continue;
            }
            slot.armed = None;
            let Some(checker) = &self.clusters[slot.cluster].checker else {
                continue;
            };
            let stats = Arc::clone(&self.clusters[slot.cluster].info.stats);
            let token = Token(index);
            if let Some(v) = slot.session.on_timer(&mut self.stack, checker, token, &stats, now) {
                self.apply(index, v, now);
            }
            self.arm(index);
        }
        for w in &mut self.clusters {
            if let Some(d) = &mut w.detector {
                if let Some(r) = &w.info.outlier {
                    d.set_config(r.effective());
                }
                w.dirty |= d.on_interval(now, &w.info.stats);
                if let Some(r) = &w.info.outlier {
                    r.publish_success_rates(d.success_rate_thresholds);
                }
            }
            if w.dirty {
                w.dirty = false;
                w.info.refresh_health();
            }
        }
        self.check_initialized();
    }

    /// Follow a membership change (DNS): sessions and outlier records come and go.
    fn sync_membership(&mut self, c: usize, now: Instant) {
        let version = self.clusters[c].info.membership_version();
        if version == self.clusters[c].membership {
            return;
        }
        self.clusters[c].membership = version;
        let hosts = self.clusters[c].info.hosts();
        if self.clusters[c].checker.is_some() {
            let gone: Vec<usize> = self
                .slots
                .iter()
                .enumerate()
                .filter_map(|(i, s)| {
                    let s = s.as_ref()?;
                    (s.cluster == c && !hosts.hosts.iter().any(|h| Arc::ptr_eq(h, &s.session.host))).then_some(i)
                })
                .collect();
            for i in gone {
                self.remove_session(i);
            }
            for h in &hosts.hosts {
                let known = self.slots.iter().flatten().any(|s| s.cluster == c && Arc::ptr_eq(&s.session.host, h));
                if !known {
                    self.add_session(c, Arc::clone(h), now);
                }
            }
        }
        let w = &mut self.clusters[c];
        if let Some(d) = &mut w.detector {
            d.sync_hosts(&hosts, &w.info.stats);
        }
        w.dirty = true;
    }

    /// Outlier detections, passive health-check failures, the first traffic.
    fn worker_reports(&mut self, c: usize, now: Instant) {
        let w = &mut self.clusters[c];
        if let (Some(r), Some(d)) = (&w.info.outlier, &mut w.detector) {
            if r.take_pending() {
                d.set_config(r.effective());
                w.dirty |= d.process_pending(now, &w.info.stats);
            }
        }
        if w.info.take_passive_hc_pending() {
            for i in 0..self.slots.len() {
                let Some(slot) = self.slots[i].as_mut() else {
                    continue;
                };
                if slot.cluster != c || !slot.session.host.passive_hc_failure.swap(false, Ordering::AcqRel) {
                    continue;
                }
                let w = &mut self.clusters[c];
                let Some(checker) = &w.checker else { continue };
                let t =
                    slot.session.state.handle_failure(&slot.session.host, FailureType::Passive, checker, &w.info.stats);
                w.dirty |= t == Transition::Changed;
            }
        }
        let w = &mut self.clusters[c];
        if !w.traffic_seen && w.info.seen_traffic() {
            w.traffic_seen = true;
            self.bring_checks_forward(c, now);
        }
    }

    /// The cluster just saw its first traffic: checks scheduled at the (long)
    /// `no_traffic_interval` move to the regular interval from now. (Envoy keeps the
    /// timer it armed; we do not make a cluster that starts serving wait up to a
    /// minute for its next check.)
    fn bring_checks_forward(&mut self, c: usize, now: Instant) {
        let Some(checker) = self.clusters[c].checker.clone() else {
            return;
        };
        for i in 0..self.slots.len() {
            let Some(slot) = self.slots[i].as_mut() else {
                continue;
            };
            if slot.cluster != c || slot.session.in_flight() {
                continue;
            }
            let healthy = !slot.session.host.has_flag(health_flag::FAILED_ACTIVE_HC);
            let next = checker.next_interval(healthy, Transition::Unchanged, true, &mut self.rng);
            let next = now + self.clusters[c].info.bound_health_check_interval(next);
            if slot.session.deadline() > next {
                slot.session.wait_until(next);
                self.arm(i);
            }
        }
    }

    /// Apply a check's verdict to its host and schedule the next check.
    fn apply(&mut self, index: usize, verdict: Verdict, now: Instant) {
        let Some(slot) = self.slots[index].as_mut() else {
            return;
        };
        let w = &mut self.clusters[slot.cluster];
        let Some(checker) = &w.checker else {
            return;
        };
        let host = Arc::clone(&slot.session.host);
        let first = slot.session.state.first_check();
        let (transition, passed) = match verdict {
            Verdict::Pass { degraded } => {
                (slot.session.state.handle_success(&host, degraded, checker, &w.info.stats), true)
            }
            Verdict::Fail { failure, immediate } => {
                if immediate {
                    host.set_flag(health_flag::EXCLUDED_VIA_IMMEDIATE_HC_FAIL);
                    w.dirty = true;
                }
                (slot.session.state.handle_failure(&host, failure, checker, &w.info.stats), false)
            }
        };
        if first {
            self.pending_first -= 1;
        }
        w.dirty |= transition == Transition::Changed;
        if passed {
            if let Some(d) = &mut w.detector {
                w.dirty |= d.on_health_check_healthy(&host, now, &w.info.stats);
            }
        }
        let next = checker.next_interval(passed, transition, w.info.seen_traffic(), &mut self.rng);
        slot.session.wait_until(now + w.info.bound_health_check_interval(next));
    }

    /// Close every session (the thread is stopping).
    pub fn shutdown(&mut self) {
        for i in 0..self.slots.len() {
            if let Some(slot) = self.slots[i].as_mut() {
                slot.session.close(&mut self.stack);
            }
        }
    }

    /// The outlier detector of watched cluster `c` (tests, diagnostics).
    pub fn detector(&self, c: usize) -> Option<&Detector> {
        self.clusters.get(c)?.detector.as_ref()
    }
}
