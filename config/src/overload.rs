//! `envoy.config.overload.v3.OverloadManager`: resource monitors and the overload
//! actions their pressure triggers.
//!
//! Supported monitors: `envoy.resource_monitors.global_downstream_max_connections`
//! (`DownstreamConnectionsConfig`) and `envoy.resource_monitors.fixed_heap`
//! (`FixedHeapConfig`). Supported actions: `stop_accepting_connections`,
//! `reject_incoming_connections`, `disable_http_keepalive`, `stop_accepting_requests`
//! and `reduce_timeouts` (`ScaleTimersOverloadActionConfig` for
//! `HTTP_DOWNSTREAM_CONNECTION_IDLE` and `HTTP_DOWNSTREAM_STREAM_IDLE`). Anything else
//! (another monitor, action or timer type, load shed points, buffer factory) is
//! rejected with its path. Checks as Envoy's `OverloadManagerImpl`: no duplicate
//! monitor, action or trigger, every trigger names a configured monitor.

use std::time::Duration;

use crate::decode::{typed_config, Decode, Decoder, Fields};
use crate::error::ErrorKind;
use crate::node::Node;
use crate::proto_enum;

/// Envoy's default `refresh_interval` (1 s).
pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, PartialEq)]
pub struct OverloadManager {
    pub refresh_interval: Duration,
    pub resource_monitors: Vec<ResourceMonitor>,
    pub actions: Vec<OverloadAction>,
}

impl OverloadManager {
    /// `max_active_downstream_connections` of the global connections monitor, if any.
    pub fn max_active_downstream_connections(&self) -> Option<u64> {
        self.resource_monitors.iter().find_map(|m| match m.kind {
            MonitorKind::GlobalDownstreamMaxConnections { max_active_downstream_connections } => {
                Some(max_active_downstream_connections)
            }
            _ => None,
        })
    }
}

/// A resource monitor (its name is the extension name, as in Envoy).
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceMonitor {
    pub name: String,
    pub kind: MonitorKind,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MonitorKind {
    /// Pressure = open downstream connections / the maximum; also enforced at accept.
    GlobalDownstreamMaxConnections { max_active_downstream_connections: u64 },
    /// Pressure = the process's memory / `max_heap_size_bytes`.
    FixedHeap { max_heap_size_bytes: u64 },
}

pub const GLOBAL_DOWNSTREAM_MAX_CONNECTIONS: &str = "envoy.resource_monitors.global_downstream_max_connections";
pub const FIXED_HEAP: &str = "envoy.resource_monitors.fixed_heap";

/// The overload actions sluice implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActionKind {
    StopAcceptingConnections,
    RejectIncomingConnections,
    DisableHttpKeepalive,
    StopAcceptingRequests,
    ReduceTimeouts,
}

impl ActionKind {
    pub const ALL: [ActionKind; 5] = [
        ActionKind::StopAcceptingConnections,
        ActionKind::RejectIncomingConnections,
        ActionKind::DisableHttpKeepalive,
        ActionKind::StopAcceptingRequests,
        ActionKind::ReduceTimeouts,
    ];

    /// Envoy's name of the action (also its stats scope, `overload.<name>.*`).
    pub fn name(self) -> &'static str {
        match self {
            ActionKind::StopAcceptingConnections => "envoy.overload_actions.stop_accepting_connections",
            ActionKind::RejectIncomingConnections => "envoy.overload_actions.reject_incoming_connections",
            ActionKind::DisableHttpKeepalive => "envoy.overload_actions.disable_http_keepalive",
            ActionKind::StopAcceptingRequests => "envoy.overload_actions.stop_accepting_requests",
            ActionKind::ReduceTimeouts => "envoy.overload_actions.reduce_timeouts",
        }
    }

    pub fn from_name(name: &str) -> Option<ActionKind> {
        ActionKind::ALL.into_iter().find(|a| a.name() == name)
    }

    /// Index in [`ActionKind::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Envoy's well-known actions that sluice does not implement (rejected as unsupported,
/// not as unknown).
const UNSUPPORTED_ACTIONS: &[&str] = &[
    "envoy.overload_actions.shrink_heap",
    "envoy.overload_actions.reset_high_memory_stream",
    "envoy.overload_actions.close_idle_http_connections",
];

#[derive(Debug, Clone, PartialEq)]
pub struct OverloadAction {
    pub kind: ActionKind,
    pub triggers: Vec<Trigger>,
    /// `reduce_timeouts` only: the minimum of each scaled timer.
    pub timer_scale_factors: Vec<ScaleTimer>,
}

/// Connects a monitor's pressure to an action's state.
#[derive(Debug, Clone, PartialEq)]
pub struct Trigger {
    /// The resource monitor's name.
    pub name: String,
    pub kind: TriggerKind,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TriggerKind {
    /// Saturated (1) at or above `value`, else inactive (0).
    Threshold { value: f64 },
    /// 0 below `scaling_threshold`, linear up to 1 at `saturation_threshold`.
    Scaled { scaling_threshold: f64, saturation_threshold: f64 },
}

impl TriggerKind {
    /// The action state (0..=1) this trigger gives for `pressure`, as Envoy's
    /// `ThresholdTriggerImpl` / `ScaledTriggerImpl`.
    pub fn state(self, pressure: f64) -> f64 {
        match self {
            TriggerKind::Threshold { value } => {
                if pressure >= value {
                    1.0
                } else {
                    0.0
                }
            }
            TriggerKind::Scaled { scaling_threshold, saturation_threshold } => {
                if pressure <= scaling_threshold {
                    0.0
                } else if pressure >= saturation_threshold {
                    1.0
                } else {
                    (pressure - scaling_threshold) / (saturation_threshold - scaling_threshold)
                }
            }
        }
    }
}

proto_enum! {
    /// `config.overload.v3.ScaleTimersOverloadActionConfig.TimerType` (the ones sluice
    /// scales).
    pub enum TimerType {
        HttpDownstreamConnectionIdle = ("HTTP_DOWNSTREAM_CONNECTION_IDLE", 1),
        HttpDownstreamStreamIdle = ("HTTP_DOWNSTREAM_STREAM_IDLE", 2),
        TransportSocketConnect = ("TRANSPORT_SOCKET_CONNECT", 3),
        HttpDownstreamConnectionMax = ("HTTP_DOWNSTREAM_CONNECTION_MAX", 4),
    }
}

/// The floor a scaled timer reaches when the action saturates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MinTimeout {
    Timeout(Duration),
    /// Percent of the configured timeout.
    Scale(f64),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScaleTimer {
    pub timer: TimerType,
    pub min: MinTimeout,
}

impl MinTimeout {
    /// The timeout at action state `scale` (0..=1) for a configured `max`:
    /// `min + (max - min) * (1 - scale)`, as Envoy's scaled range timers.
    pub fn scaled(self, max: Duration, scale: f64) -> Duration {
        let min = match self {
            MinTimeout::Timeout(t) => t.min(max),
            MinTimeout::Scale(p) => max.mul_f64(p / 100.0),
        };
        let scale = scale.clamp(0.0, 1.0);
        min + (max - min).mul_f64(1.0 - scale)
    }
}

impl Decode for OverloadManager {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let refresh_interval = f.or(d, "refresh_interval", DEFAULT_REFRESH_INTERVAL);
        let resource_monitors: Vec<ResourceMonitor> = f.list(d, "resource_monitors");
        let actions_path = f.field_path("actions");
        let actions_node = f.take("actions");
        f.unsupported(d, &["loadshed_points", "buffer_factory_config"]);
        let line = f.line();
        f.finish(d);
        if refresh_interval.is_zero() {
            d.error(ErrorKind::Invalid, &format!("{path}.refresh_interval"), line, "refresh_interval must be positive");
        }
        for (i, m) in resource_monitors.iter().enumerate() {
            if resource_monitors[..i].iter().any(|o| o.name == m.name) {
                d.error(
                    ErrorKind::Invalid,
                    &format!("{path}.resource_monitors[{i}]"),
                    line,
                    format!("Duplicate resource monitor {}", m.name),
                );
            }
        }
        let mut actions: Vec<OverloadAction> = Vec::new();
        if let Some(n) = actions_node {
            let decoded: Vec<Option<OverloadAction>> = match &n.value {
                crate::node::Value::Seq(items) => items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| decode_action(d, item, &format!("{actions_path}[{i}]"), &resource_monitors))
                    .collect(),
                _ => {
                    d.invalid(n, &actions_path, "expected a list");
                    Vec::new()
                }
            };
            for (i, a) in decoded.into_iter().enumerate() {
                let Some(a) = a else { continue };
                if actions.iter().any(|o| o.kind == a.kind) {
                    d.error(
                        ErrorKind::Invalid,
                        &format!("{actions_path}[{i}]"),
                        line,
                        format!("Duplicate overload action {}", a.kind.name()),
                    );
                    continue;
                }
                actions.push(a);
            }
        }
        Some(OverloadManager { refresh_interval, resource_monitors, actions })
    }
}

impl Decode for ResourceMonitor {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let name: Option<String> = f.req(d, "name");
        let tc_path = f.field_path("typed_config");
        let tc = f.take("typed_config");
        let line = f.line();
        f.finish(d);
        let name = name?;
        let Some(tc) = tc else {
            d.error(ErrorKind::Missing, &tc_path, line, format!("resource monitor {name} needs a typed_config"));
            return None;
        };
        let mut t = typed_config(d, tc, &tc_path)?;
        let kind = match (name.as_str(), t.type_name.as_str()) {
            (
                GLOBAL_DOWNSTREAM_MAX_CONNECTIONS,
                "envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig",
            ) => {
                let max: Option<u64> = t.fields.req(d, "max_active_downstream_connections");
                t.fields.finish(d);
                let max = max?;
                if max == 0 {
                    d.error(
                        ErrorKind::Invalid,
                        &format!("{tc_path}.max_active_downstream_connections"),
                        line,
                        "max_active_downstream_connections must be greater than 0",
                    );
                    return None;
                }
                MonitorKind::GlobalDownstreamMaxConnections { max_active_downstream_connections: max }
            }
            (FIXED_HEAP, "envoy.extensions.resource_monitors.fixed_heap.v3.FixedHeapConfig") => {
                let max: Option<u64> = t.fields.req(d, "max_heap_size_bytes");
                t.fields.finish(d);
                let max = max?;
                if max == 0 {
                    d.error(
                        ErrorKind::Invalid,
                        &format!("{tc_path}.max_heap_size_bytes"),
                        line,
                        "max_heap_size_bytes must be greater than 0",
                    );
                    return None;
                }
                MonitorKind::FixedHeap { max_heap_size_bytes: max }
            }
            (GLOBAL_DOWNSTREAM_MAX_CONNECTIONS | FIXED_HEAP, other) => {
                d.error(
                    ErrorKind::Invalid,
                    &format!("{tc_path}.@type"),
                    tc.line,
                    format!("resource monitor {name} does not take a `{other}`"),
                );
                return None;
            }
            _ => {
                d.error(
                    ErrorKind::Unsupported,
                    &format!("{path}.name"),
                    line,
                    format!(
                        "unsupported resource monitor `{name}`: sluice implements {GLOBAL_DOWNSTREAM_MAX_CONNECTIONS} and {FIXED_HEAP}"
                    ),
                );
                return None;
            }
        };
        Some(ResourceMonitor { name, kind })
    }
}

fn decode_action(d: &mut Decoder, node: &Node, path: &str, monitors: &[ResourceMonitor]) -> Option<OverloadAction> {
    let mut f = Fields::of(d, node, path)?;
    let name: Option<String> = f.req(d, "name");
    let triggers_path = f.field_path("triggers");
    let triggers: Vec<Trigger> = f.list(d, "triggers");
    let tc_path = f.field_path("typed_config");
    let tc = f.take("typed_config");
    let line = f.line();
    f.finish(d);
    let name = name?;
    let Some(kind) = ActionKind::from_name(&name) else {
        let (kind, message) = if UNSUPPORTED_ACTIONS.contains(&name.as_str()) {
            (ErrorKind::Unsupported, format!("unsupported overload action `{name}`: sluice does not implement it"))
        } else {
            (ErrorKind::Invalid, format!("Unknown Overload Manager Action {name}"))
        };
        d.error(kind, &format!("{path}.name"), line, message);
        return None;
    };
    if triggers.is_empty() {
        d.error(ErrorKind::Missing, &triggers_path, line, "an overload action needs at least one trigger");
    }
    for (i, t) in triggers.iter().enumerate() {
        if triggers[..i].iter().any(|o| o.name == t.name) {
            d.error(
                ErrorKind::Invalid,
                &format!("{triggers_path}[{i}]"),
                line,
                format!("Duplicate trigger resource for overload action {name}"),
            );
        }
        if !monitors.iter().any(|m| m.name == t.name) {
            d.error(
                ErrorKind::Invalid,
                &format!("{triggers_path}[{i}].name"),
                line,
                format!("Unknown trigger resource {} for overload action {name}", t.name),
            );
        }
    }
    let mut timer_scale_factors = Vec::new();
    match (kind, tc) {
        (ActionKind::ReduceTimeouts, Some(tc)) => {
            let mut t = typed_config(d, tc, &tc_path)?;
            if t.type_name != "envoy.config.overload.v3.ScaleTimersOverloadActionConfig" {
                d.error(
                    ErrorKind::Invalid,
                    &format!("{tc_path}.@type"),
                    tc.line,
                    format!("{name} takes a ScaleTimersOverloadActionConfig, not `{}`", t.type_name),
                );
                return None;
            }
            let sf_path = t.fields.field_path("timer_scale_factors");
            timer_scale_factors = t.fields.list::<ScaleTimer>(d, "timer_scale_factors");
            t.fields.finish(d);
            if timer_scale_factors.is_empty() {
                d.error(ErrorKind::Missing, &sf_path, line, "timer_scale_factors needs at least one entry");
            }
            for (i, s) in timer_scale_factors.iter().enumerate() {
                if timer_scale_factors[..i].iter().any(|o| o.timer == s.timer) {
                    d.error(
                        ErrorKind::Invalid,
                        &format!("{sf_path}[{i}]"),
                        line,
                        format!("Found duplicate entry for timer type {}", crate::decode::ProtoEnum::name(s.timer)),
                    );
                }
            }
        }
        (ActionKind::ReduceTimeouts, None) => {
            d.error(ErrorKind::Missing, &tc_path, line, format!("{name} needs a ScaleTimersOverloadActionConfig"));
        }
        (_, Some(tc)) => {
            d.error(
                ErrorKind::Invalid,
                &tc_path,
                tc.line,
                format!("Overload action \"{name}\" has an unexpected value for the typed_config field"),
            );
        }
        (_, None) => {}
    }
    Some(OverloadAction { kind, triggers, timer_scale_factors })
}

impl Decode for Trigger {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let name: Option<String> = f.req(d, "name");
        let threshold = f.take("threshold");
        let scaled = f.take("scaled");
        let line = f.line();
        let (tpath, spath) = (f.field_path("threshold"), f.field_path("scaled"));
        f.finish(d);
        let kind = match (threshold, scaled) {
            (Some(n), None) => {
                let mut t = Fields::of(d, n, &tpath)?;
                let value: f64 = t.or(d, "value", 0.0);
                t.finish(d);
                unit(d, value, &format!("{tpath}.value"), n.line)?;
                TriggerKind::Threshold { value }
            }
            (None, Some(n)) => {
                let mut t = Fields::of(d, n, &spath)?;
                let scaling_threshold: f64 = t.or(d, "scaling_threshold", 0.0);
                let saturation_threshold: f64 = t.or(d, "saturation_threshold", 0.0);
                t.finish(d);
                unit(d, scaling_threshold, &format!("{spath}.scaling_threshold"), n.line)?;
                unit(d, saturation_threshold, &format!("{spath}.saturation_threshold"), n.line)?;
                if scaling_threshold >= saturation_threshold {
                    d.error(
                        ErrorKind::Invalid,
                        &spath,
                        n.line,
                        "scaling_threshold must be less than saturation_threshold",
                    );
                    return None;
                }
                TriggerKind::Scaled { scaling_threshold, saturation_threshold }
            }
            _ => {
                d.error(ErrorKind::Invalid, path, line, "a trigger needs exactly one of `threshold` or `scaled`");
                return None;
            }
        };
        Some(Trigger { name: name?, kind })
    }
}

/// A trigger value must lie in 0..=1.
fn unit(d: &mut Decoder, v: f64, path: &str, line: u32) -> Option<()> {
    if (0.0..=1.0).contains(&v) {
        Some(())
    } else {
        d.error(ErrorKind::Invalid, path, line, format!("{v} is not in 0..=1"));
        None
    }
}

impl Decode for ScaleTimer {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let timer_path = f.field_path("timer");
        let timer: Option<TimerType> = f.req(d, "timer");
        let min_timeout: Option<Duration> = f.opt(d, "min_timeout");
        let min_scale: Option<crate::core::Percent> = f.opt(d, "min_scale");
        let line = f.line();
        f.finish(d);
        let timer = timer?;
        if !matches!(timer, TimerType::HttpDownstreamConnectionIdle | TimerType::HttpDownstreamStreamIdle) {
            d.error(
                ErrorKind::Unsupported,
                &timer_path,
                line,
                format!(
                    "unsupported timer type {}: sluice scales HTTP_DOWNSTREAM_CONNECTION_IDLE and HTTP_DOWNSTREAM_STREAM_IDLE",
                    crate::decode::ProtoEnum::name(timer)
                ),
            );
            return None;
        }
        let min = match (min_timeout, min_scale) {
            (Some(t), None) => MinTimeout::Timeout(t),
            (None, Some(p)) => MinTimeout::Scale(p.0),
            _ => {
                d.error(
                    ErrorKind::Invalid,
                    path,
                    line,
                    "a scale timer needs exactly one of `min_timeout` or `min_scale`",
                );
                return None;
            }
        };
        Some(ScaleTimer { timer, min })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(om: &str) -> Result<Option<OverloadManager>, String> {
        let yaml = format!("overload_manager:\n{om}\nstatic_resources: {{}}\n");
        crate::load_str(&yaml).map(|l| l.bootstrap.overload_manager).map_err(|e| e.to_string())
    }

    #[test]
    fn monitors_actions_and_triggers() {
        let om = load(
            r#"  refresh_interval: 0.25s
  resource_monitors:
  - name: envoy.resource_monitors.global_downstream_max_connections
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig
      max_active_downstream_connections: 1000
  - name: envoy.resource_monitors.fixed_heap
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.resource_monitors.fixed_heap.v3.FixedHeapConfig
      max_heap_size_bytes: 2147483648
  actions:
  - name: envoy.overload_actions.stop_accepting_requests
    triggers:
    - name: envoy.resource_monitors.fixed_heap
      threshold: { value: 0.95 }
  - name: envoy.overload_actions.reduce_timeouts
    triggers:
    - name: envoy.resource_monitors.fixed_heap
      scaled: { scaling_threshold: 0.85, saturation_threshold: 0.95 }
    typed_config:
      "@type": type.googleapis.com/envoy.config.overload.v3.ScaleTimersOverloadActionConfig
      timer_scale_factors:
      - timer: HTTP_DOWNSTREAM_CONNECTION_IDLE
        min_timeout: 2s
      - timer: HTTP_DOWNSTREAM_STREAM_IDLE
        min_scale: { value: 10 }"#,
        )
        .unwrap()
        .unwrap();
        assert_eq!(om.refresh_interval, Duration::from_millis(250));
        assert_eq!(om.max_active_downstream_connections(), Some(1000));
        assert_eq!(om.actions.len(), 2);
        assert_eq!(om.actions[0].kind, ActionKind::StopAcceptingRequests);
        assert_eq!(om.actions[1].timer_scale_factors.len(), 2);
        // Envoy's documented example: 600 s idle, 2 s floor, heap at 92 % of 85..95 %.
        let scale = om.actions[1].triggers[0].kind.state(0.92);
        let t = om.actions[1].timer_scale_factors[0].min.scaled(Duration::from_secs(600), scale);
        assert!((t.as_secs_f64() - 181.4).abs() < 0.01, "{t:?}");
        assert_eq!(
            om.actions[1].timer_scale_factors[1].min.scaled(Duration::from_secs(600), 1.0),
            Duration::from_secs(60)
        );
    }

    #[test]
    fn unknown_monitors_actions_and_triggers_are_rejected_with_their_path() {
        let heap = r#"  resource_monitors:
  - name: envoy.resource_monitors.fixed_heap
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.resource_monitors.fixed_heap.v3.FixedHeapConfig
      max_heap_size_bytes: 100"#;
        let e = load(
            r#"  resource_monitors:
  - name: envoy.resource_monitors.cpu_utilization
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.resource_monitors.cpu_utilization.v3.CpuUtilizationConfig"#,
        )
        .unwrap_err();
        assert!(e.contains("overload_manager.resource_monitors[0].name") && e.contains("cpu_utilization"), "{e}");
        let e = load(&format!(
            "{heap}\n  actions:\n  - name: envoy.overload_actions.make_coffee\n    triggers:\n    - name: envoy.resource_monitors.fixed_heap\n      threshold: {{ value: 0.9 }}"
        ))
        .unwrap_err();
        assert!(e.contains("overload_manager.actions[0].name") && e.contains("Unknown Overload Manager Action"), "{e}");
        let e = load(&format!(
            "{heap}\n  actions:\n  - name: envoy.overload_actions.stop_accepting_requests\n    triggers:\n    - name: envoy.resource_monitors.injected_resource\n      threshold: {{ value: 0.9 }}"
        ))
        .unwrap_err();
        assert!(e.contains("overload_manager.actions[0].triggers[0].name") && e.contains("Unknown trigger"), "{e}");
        let e = load(&format!(
            "{heap}\n  actions:\n  - name: envoy.overload_actions.reduce_timeouts\n    triggers:\n    - name: envoy.resource_monitors.fixed_heap\n      threshold: {{ value: 0.9 }}\n    typed_config:\n      \"@type\": type.googleapis.com/envoy.config.overload.v3.ScaleTimersOverloadActionConfig\n      timer_scale_factors:\n      - timer: TRANSPORT_SOCKET_CONNECT\n        min_timeout: 1s"
        ))
        .unwrap_err();
        assert!(e.contains("timer_scale_factors[0].timer") && e.contains("TRANSPORT_SOCKET_CONNECT"), "{e}");
        let e = load(&format!(
            "{heap}\n  actions:\n  - name: envoy.overload_actions.shrink_heap\n    triggers:\n    - name: envoy.resource_monitors.fixed_heap\n      threshold: {{ value: 0.9 }}"
        ))
        .unwrap_err();
        assert!(e.contains("overload_manager.actions[0].name") && e.contains("unsupported"), "{e}");
        let e = load(&format!("{heap}\n  loadshed_points: []")).unwrap_err();
        assert!(e.contains("overload_manager.loadshed_points"), "{e}");
    }
}
