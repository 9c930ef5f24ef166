//! Envoy's overload manager: resource monitors, the actions their pressure triggers,
//! and the global downstream connection limit.
//!
//! [`OverloadState`] is what the workers read: one atomic per action holding its state
//! (0 = inactive, 1 = saturated, between = scaling), and the global connection count
//! that `envoy.resource_monitors.global_downstream_max_connections` bounds. Workers
//! only load the action states (read-mostly, no lock); the connection count is one
//! shared atomic updated at accept and close, as Envoy's proactive resource is.
//!
//! [`OverloadManager`] is the thread that refreshes the monitors every
//! `refresh_interval`, computes each action's state (the maximum over its triggers, as
//! Envoy's `OverloadAction`), publishes it, sets the `overload.*` stats and wakes the
//! workers when an action changes (so that a listener paused by
//! `stop_accepting_connections` resumes at once). The fixed-heap monitor measures the
//! process's resident set (`VmRSS`), not allocator statistics: sluice runs on the
//! system allocator, which has no heap-size query.

pub mod monitor;

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use sluice_config::overload::{ActionKind, MinTimeout, MonitorKind, OverloadManager as Config, TimerType};
use sluice_stack::Wake;

use crate::stats::{OverloadActionStats, OverloadMonitorStats, Store};

/// What the workers read: action states and the global connection count.
#[derive(Debug)]
pub struct OverloadState {
    /// Each action's state as `f32` bits (0.0 = inactive), indexed by
    /// [`ActionKind::index`].
    actions: [AtomicU32; ActionKind::ALL.len()],
    /// Downstream connections open now, every worker and listener.
    global_cx: AtomicU64,
    /// `max_active_downstream_connections` (`u64::MAX`: no limit).
    max_cx: u64,
    /// `reduce_timeouts` floors, by timer.
    idle_min: Option<MinTimeout>,
    stream_idle_min: Option<MinTimeout>,
}

impl Default for OverloadState {
    fn default() -> Self {
        OverloadState::new(None)
    }
}

impl OverloadState {
    pub fn new(config: Option<&Config>) -> OverloadState {
        let timer_min = |t: TimerType| {
            config?
                .actions
                .iter()
                .filter(|a| a.kind == ActionKind::ReduceTimeouts)
                .flat_map(|a| &a.timer_scale_factors)
                .find(|s| s.timer == t)
                .map(|s| s.min)
        };
        OverloadState {
            actions: Default::default(),
            global_cx: AtomicU64::new(0),
            max_cx: config.and_then(Config::max_active_downstream_connections).unwrap_or(u64::MAX),
            idle_min: timer_min(TimerType::HttpDownstreamConnectionIdle),
            stream_idle_min: timer_min(TimerType::HttpDownstreamStreamIdle),
        }
    }

    /// An action's state: 0 inactive, 1 saturated.
    #[inline]
    pub fn scale(&self, action: ActionKind) -> f32 {
        f32::from_bits(self.actions[action.index()].load(Ordering::Relaxed))
    }

    /// Whether the action is saturated.
    #[inline]
    pub fn saturated(&self, action: ActionKind) -> bool {
        self.scale(action) >= 1.0
    }

    /// Whether the action fires for one event: always when saturated, with probability
    /// `scale` when scaling (Envoy's `bernoulli(state)`), given a uniform `random`.
    #[inline]
    pub fn fires(&self, action: ActionKind, random: u64) -> bool {
        let s = self.scale(action);
        s >= 1.0 || (s > 0.0 && ((random >> 11) as f64 / (1u64 << 53) as f64) < s as f64)
    }

    /// Publish an action's state (the manager thread; tests).
    pub fn set(&self, action: ActionKind, scale: f32) {
        self.actions[action.index()].store(scale.clamp(0.0, 1.0).to_bits(), Ordering::Relaxed);
    }

    /// Count a new downstream connection. `false` (and nothing counted) when it would
    /// pass the global limit and `enforce` holds (listeners with
    /// `ignore_global_conn_limit` count without a check).
    pub fn try_allocate_connection(&self, enforce: bool) -> bool {
        let prev = self.global_cx.fetch_add(1, Ordering::AcqRel);
        if enforce && prev >= self.max_cx {
            self.global_cx.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        true
    }

    /// A counted downstream connection closed.
    pub fn release_connection(&self) {
        self.global_cx.fetch_sub(1, Ordering::AcqRel);
    }

    /// Downstream connections open now.
    pub fn connections(&self) -> u64 {
        self.global_cx.load(Ordering::Relaxed)
    }

    /// The global limit, if one is configured.
    pub fn max_connections(&self) -> Option<u64> {
        (self.max_cx != u64::MAX).then_some(self.max_cx)
    }

    /// `configured` reduced by `reduce_timeouts` for `timer`.
    pub fn scaled_timeout(&self, timer: TimerType, configured: Duration) -> Duration {
        let min = match timer {
            TimerType::HttpDownstreamConnectionIdle => self.idle_min,
            TimerType::HttpDownstreamStreamIdle => self.stream_idle_min,
            _ => None,
        };
        match min {
            Some(min) => {
                let scale = self.scale(ActionKind::ReduceTimeouts);
                if scale <= 0.0 {
                    configured
                } else {
                    min.scaled(configured, scale as f64)
                }
            }
            None => configured,
        }
    }
}

/// An action, its triggers (monitor index, trigger) and its stats.
type ActionTriggers = (ActionKind, Vec<(usize, sluice_config::overload::TriggerKind)>, Arc<OverloadActionStats>);

/// The overload manager's thread.
pub struct OverloadManager {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl OverloadManager {
    /// Start refreshing `config`'s monitors into `state`; `wakers` wake the workers
    /// when an action changes. `None` when nothing needs refreshing.
    pub fn start(
        config: &Config,
        state: Arc<OverloadState>,
        stats: &Store,
        wakers: Vec<Arc<dyn Wake>>,
    ) -> std::io::Result<Option<OverloadManager>> {
        if config.resource_monitors.is_empty() {
            return Ok(None);
        }
        let monitors: Vec<(MonitorKind, Arc<OverloadMonitorStats>)> = config
            .resource_monitors
            .iter()
            .map(|m| {
                let s = Arc::new(OverloadMonitorStats::default());
                stats.overload_monitors.insert(&m.name, vec![Arc::clone(&s)]);
                (m.kind, s)
            })
            .collect();
        let names: Vec<String> = config.resource_monitors.iter().map(|m| m.name.clone()).collect();
        let actions: Vec<ActionTriggers> = config
            .actions
            .iter()
            .map(|a| {
                let s = Arc::new(OverloadActionStats::default());
                stats.overload_actions.insert(a.kind.name(), vec![Arc::clone(&s)]);
                let triggers = a
                    .triggers
                    .iter()
                    .filter_map(|t| Some((names.iter().position(|n| *n == t.name)?, t.kind)))
                    .collect();
                (a.kind, triggers, s)
            })
            .collect();
        let interval = config.refresh_interval;
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let stop2 = Arc::clone(&stop);
        let thread = std::thread::Builder::new().name("sluice-overload".into()).spawn(move || {
            let mut pressures = vec![None; monitors.len()];
            loop {
                for (i, (kind, s)) in monitors.iter().enumerate() {
                    match monitor::pressure(*kind, &state) {
                        Ok(p) => {
                            s.pressure.set((p * 100.0) as i64);
                            pressures[i] = Some(p);
                        }
                        Err(e) => {
                            tracing::info!("Failed to update resource {}: {e}", names[i]);
                            s.failed_updates.inc();
                        }
                    }
                }
                let mut changed = false;
                for (kind, triggers, s) in &actions {
                    let scale =
                        triggers.iter().filter_map(|(m, t)| Some(t.state(pressures[*m]?))).fold(0.0f64, f64::max)
                            as f32;
                    let old = state.scale(*kind);
                    if old != scale {
                        changed = true;
                        if (old > 0.0) != (scale > 0.0) {
                            let now = if scale > 0.0 { "active" } else { "inactive" };
                            tracing::info!("Overload action {} became {now}", kind.name());
                        }
                        state.set(*kind, scale);
                    }
                    s.active.set(i64::from(scale >= 1.0));
                    s.scale_percent.set((scale * 100.0) as i64);
                }
                if changed {
                    for w in &wakers {
                        let _ = w.wake();
                    }
                }
                let (lock, cv) = &*stop2;
                let guard = lock.lock().unwrap_or_else(|e| e.into_inner());
                let (guard, _) = cv.wait_timeout_while(guard, interval, |s| !*s).unwrap_or_else(|e| e.into_inner());
                if *guard {
                    break;
                }
            }
        })?;
        Ok(Some(OverloadManager { stop, thread: Some(thread) }))
    }

    /// Stop and join the thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let (lock, cv) = &*self.stop;
        *lock.lock().unwrap_or_else(|e| e.into_inner()) = true;
        cv.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for OverloadManager {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_limit_counts_and_rejects() {
        let om = sluice_config::load_str(
            r#"overload_manager:
  resource_monitors:
  - name: envoy.resource_monitors.global_downstream_max_connections
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig
      max_active_downstream_connections: 2
static_resources: {}
"#,
        )
        .unwrap()
        .bootstrap
        .overload_manager
        .unwrap();
        let s = OverloadState::new(Some(&om));
        assert!(s.try_allocate_connection(true));
        assert!(s.try_allocate_connection(true));
        assert!(!s.try_allocate_connection(true), "the third is over the limit");
        assert_eq!(s.connections(), 2);
        assert!(s.try_allocate_connection(false), "ignore_global_conn_limit still counts");
        assert_eq!(s.connections(), 3);
        s.release_connection();
        s.release_connection();
        assert!(s.try_allocate_connection(true));
    }

    #[test]
    fn action_states_and_scaled_timers() {
        let s = OverloadState::default();
        assert!(!s.fires(ActionKind::StopAcceptingRequests, 0));
        s.set(ActionKind::StopAcceptingRequests, 1.0);
        assert!(s.fires(ActionKind::StopAcceptingRequests, u64::MAX));
        s.set(ActionKind::DisableHttpKeepalive, 0.5);
        assert!(s.fires(ActionKind::DisableHttpKeepalive, 0));
        assert!(!s.fires(ActionKind::DisableHttpKeepalive, u64::MAX));
        // No reduce_timeouts configured: timers are as configured.
        s.set(ActionKind::ReduceTimeouts, 1.0);
        let t = Duration::from_secs(300);
        assert_eq!(s.scaled_timeout(TimerType::HttpDownstreamStreamIdle, t), t);
    }
}
