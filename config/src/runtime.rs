//! `bootstrap.v3.LayeredRuntime`: accepted only when its layers hold no values.
//!
//! sluice has no runtime yet: every runtime key reads its default, which is what Envoy
//! does with a runtime whose layers are empty. So a `layered_runtime` whose static
//! layers are empty (and admin layers, which sluice's admin server cannot change) is
//! accepted as is; a layer with values, read from disk or from xDS would change
//! behaviour and is rejected with its path.

use crate::decode::{index, Decoder, Fields};
use crate::error::ErrorKind;
use crate::node::{Node, Value};

const WHY: &str =
    "runtime values are not supported yet (issue: runtime); remove them (a layer without values is accepted)";

/// Check a `layered_runtime`; errors go to `d`.
pub fn check_layered_runtime(d: &mut Decoder, node: &Node, path: &str) {
    let Some(mut f) = Fields::of(d, node, path) else { return };
    let layers_path = f.field_path("layers");
    let layers = f.take("layers");
    f.finish(d);
    let Some(layers) = layers else { return };
    let Value::Seq(items) = &layers.value else {
        d.invalid(layers, &layers_path, format!("expected a list, found a {}", layers.kind_name()));
        return;
    };
    for (i, layer) in items.iter().enumerate() {
        let lpath = index(&layers_path, i);
        let Some(mut l) = Fields::of(d, layer, &lpath) else { continue };
        let _: Option<String> = l.req(d, "name");
        if let Some(n) = l.take("static_layer") {
            let empty = match &n.value {
                Value::Null => true,
                Value::Map(m) => m.is_empty(),
                _ => false,
            };
            if !empty {
                d.error(ErrorKind::Unsupported, &l.field_path("static_layer"), n.line, WHY);
            }
        }
        if let Some(n) = l.take("admin_layer") {
            // `admin_layer: {}` only lets the admin server's /runtime_modify write values;
            // sluice's admin server has no such endpoint.
            let _ = Fields::of(d, n, &l.field_path("admin_layer")).map(|a| a.finish(d));
        }
        l.unsupported_because(
            d,
            "disk_layer",
            "a runtime read from disk is not supported yet (issue: runtime); remove it",
        );
        l.unsupported_because(d, "rtds_layer", "a runtime from xDS (RTDS) is not supported; remove it");
        l.finish(d);
    }
}

#[cfg(test)]
mod tests {
    use crate::load_str;

    fn with_runtime(runtime: &str) -> Result<crate::Loaded, crate::ConfigErrors> {
        load_str(&format!("layered_runtime:\n{runtime}"))
    }

    #[test]
    fn layers_without_values_are_accepted() {
        let l =
            with_runtime("  layers:\n  - name: static\n    static_layer: {}\n  - name: admin\n    admin_layer: {}\n")
                .unwrap();
        assert!(l.warnings.iter().all(|w| !w.path.contains("layered_runtime")), "{:?}", l.warnings);
    }

    #[test]
    fn values_disk_and_rtds_layers_are_refused() {
        let e = with_runtime(
            "  layers:\n  - name: s\n    static_layer:\n      overload.global_downstream_max_connections: 100\n  - name: d\n    disk_layer: { symlink_root: /srv/runtime }\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("layered_runtime.layers[0].static_layer (line 5): runtime values are not supported yet"),
            "{e}"
        );
        assert!(e.contains("layered_runtime.layers[1].disk_layer (line 7)"), "{e}");
    }
}
