//! Dump of the bootstrap's `overload_manager` (Envoy's `config.overload.v3`).

use super::{any, enum_name, list, Dump, Json};
use crate::overload::{
    MinTimeout, MonitorKind, OverloadAction, OverloadManager, ResourceMonitor, ScaleTimer, Trigger, TriggerKind,
};

impl Dump for OverloadManager {
    fn dump(&self) -> Json {
        Json::obj()
            .with("refresh_interval", self.refresh_interval)
            .with("resource_monitors", list(&self.resource_monitors))
            .with("actions", list(&self.actions))
    }
}

impl Dump for ResourceMonitor {
    fn dump(&self) -> Json {
        let typed_config = match self.kind {
            MonitorKind::GlobalDownstreamMaxConnections { max_active_downstream_connections } => any(
                "envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig",
                Json::obj().with("max_active_downstream_connections", max_active_downstream_connections),
            ),
            MonitorKind::FixedHeap { max_heap_size_bytes } => any(
                "envoy.extensions.resource_monitors.fixed_heap.v3.FixedHeapConfig",
                Json::obj().with("max_heap_size_bytes", max_heap_size_bytes),
            ),
        };
        Json::obj().with("name", &self.name).with("typed_config", typed_config)
    }
}

impl Dump for OverloadAction {
    fn dump(&self) -> Json {
        let action = Json::obj().with("name", self.kind.name()).with("triggers", list(&self.triggers));
        if self.timer_scale_factors.is_empty() {
            return action;
        }
        action.with(
            "typed_config",
            any(
                "envoy.config.overload.v3.ScaleTimersOverloadActionConfig",
                Json::obj().with("timer_scale_factors", list(&self.timer_scale_factors)),
            ),
        )
    }
}

impl Dump for Trigger {
    fn dump(&self) -> Json {
        let t = Json::obj().with("name", &self.name);
        match self.kind {
            TriggerKind::Threshold { value } => t.with("threshold", Json::obj().with("value", value)),
            TriggerKind::Scaled { scaling_threshold, saturation_threshold } => t.with(
                "scaled",
                Json::obj()
                    .with("scaling_threshold", scaling_threshold)
                    .with("saturation_threshold", saturation_threshold),
            ),
        }
    }
}

impl Dump for ScaleTimer {
    fn dump(&self) -> Json {
        let t = Json::obj().with("timer", enum_name(self.timer));
        match self.min {
            MinTimeout::Timeout(d) => t.with("min_timeout", d),
            MinTimeout::Scale(p) => t.with("min_scale", Json::obj().with("value", p)),
        }
    }
}
