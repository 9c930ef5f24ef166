use super::*;
use crate::load_str;

fn runtime(yaml: &str) -> Result<LayeredRuntime, String> {
    load_str(&format!("layered_runtime:\n{yaml}"))
        .map(|l| l.bootstrap.layered_runtime.expect("layered_runtime"))
        .map_err(|e| e.to_string())
}

fn static_values(rt: &LayeredRuntime, i: usize) -> Vec<(String, String)> {
    match &rt.layers[i].kind {
        LayerKind::Static { values, .. } => values.iter().map(|(k, e)| (k.clone(), e.raw.clone())).collect(),
        k => panic!("not a static layer: {k:?}"),
    }
}

#[test]
fn static_layer_is_flattened_to_dotted_keys() {
    let rt = runtime(
        "  layers:\n  - name: base\n    static_layer:\n      health_check: {min_interval: 5}\n      upstream.maintenance_mode.c: 100\n      fault:\n        http:\n          abort: {abort_percent: {numerator: 5, denominator: TEN_THOUSAND}}\n      flag: true\n      s: 'text'\n",
    )
    .unwrap();
    let v = static_values(&rt, 0);
    let keys: Vec<&str> = v.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        ["health_check.min_interval", "upstream.maintenance_mode.c", "fault.http.abort.abort_percent", "flag", "s"]
    );
    let LayerKind::Static { values, .. } = &rt.layers[0].kind else { unreachable!() };
    assert_eq!(values[0].1.uint_value, Some(5));
    assert_eq!(
        values[2].1.fractional_percent,
        Some(FractionalPercent { numerator: 5, denominator: crate::core::Denominator::TenThousand })
    );
    assert_eq!(values[3].1.bool_value, Some(true));
    assert_eq!(values[4].1.raw, "text");
}

#[test]
fn lists_and_nulls_are_invalid_entries() {
    let e = runtime("  layers:\n  - name: s\n    static_layer:\n      a: {b: [1, 2]}\n      c: ~\n").unwrap_err();
    assert!(
        e.contains("layered_runtime.layers[0].static_layer.a.b (line 5): Invalid runtime entry value for a.b"),
        "{e}"
    );
    assert!(e.contains("Invalid runtime entry value for c"), "{e}");
}

#[test]
fn layer_kinds_names_and_admin_limit() {
    let rt = runtime(
        "  layers:\n  - name: s\n    static_layer: {}\n  - name: d\n    disk_layer: { symlink_root: /srv/runtime/current, subdirectory: envoy, append_service_cluster: true }\n  - name: a\n    admin_layer: {}\n",
    );
    let rt = rt.unwrap();
    assert!(rt.has_admin_layer());
    let LayerKind::Disk(disk) = &rt.layers[1].kind else { panic!("{:?}", rt.layers[1]) };
    assert_eq!(disk.path(), "/srv/runtime/current/envoy/");
    let e = runtime("  layers:\n  - name: a\n    admin_layer: {}\n  - name: b\n    admin_layer: {}\n  - name: a\n    static_layer: {}\n")
        .unwrap_err();
    assert!(e.contains("at most one may be specified"), "{e}");
    assert!(e.contains("layered_runtime.layers[2].name (line 7): Duplicate layer name: a"), "{e}");
    let e = runtime("  layers:\n  - name: r\n    rtds_layer: {name: x}\n").unwrap_err();
    assert!(e.contains("layered_runtime.layers[0].rtds_layer"), "{e}");
    let e = runtime("  layers:\n  - name: r\n").unwrap_err();
    assert!(e.contains("a layer needs one of"), "{e}");
}

#[test]
fn service_cluster_is_appended_and_empty_layers_get_an_admin_layer() {
    let l = load_str(
        "node: {id: n, cluster: front}\nlayered_runtime:\n  layers:\n  - name: d\n    disk_layer: { symlink_root: /r, append_service_cluster: true }\n",
    )
    .unwrap();
    let rt = l.bootstrap.layered_runtime.unwrap();
    let LayerKind::Disk(disk) = &rt.layers[0].kind else { unreachable!() };
    assert_eq!(disk.path(), "/r//front");
    let rt = runtime("  layers: []\n").unwrap();
    assert_eq!(rt.layers, vec![RuntimeLayer { name: String::new(), kind: LayerKind::Admin }]);
    assert!(load_str("{}").unwrap().bootstrap.layered_runtime.is_none());
}
