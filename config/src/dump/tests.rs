//! Round trips: a dump decodes back (with `load_str`) to a config that dumps the same,
//! and the values that matter survive the trip. Shared helpers here; the rich HTTP and
//! TLS bootstraps in `tests/`.

use super::{base64, Json};
use crate::bootstrap::Bootstrap;
use crate::listener::NetworkFilterKind;
use crate::{load_str, Loaded};

mod http;
mod tls;

/// The `bootstrap` of a rendered `/config_dump` body, rendered again on its own (what an
/// operator would save to a file to start another sluice with).
fn bootstrap_of(dump: &str) -> String {
    let node = crate::node::parse(dump).unwrap();
    let crate::node::Value::Map(top) = &node.value else { panic!("not an object:\n{dump}") };
    assert_eq!(top[0].0.name, "configs");
    let crate::node::Value::Seq(configs) = &top[0].1.value else { panic!("configs is not a list") };
    let crate::node::Value::Map(first) = &configs[0].value else { panic!("configs[0] is not an object") };
    let ty = first.iter().find(|(k, _)| k.name == "@type").expect("configs[0] has an @type");
    assert_eq!(
        ty.1.value,
        crate::node::Value::Scalar {
            text: "type.googleapis.com/envoy.admin.v3.BootstrapConfigDump".into(),
            quoted: true
        }
    );
    let bootstrap = first.iter().find(|(k, _)| k.name == "bootstrap").expect("configs[0] has a bootstrap");
    Json::from_node(&bootstrap.1).render()
}

/// Load `yaml`, dump it, load the dump and check that it dumps the same. Returns the
/// first load, the reload and the rendered `/config_dump` body.
fn round_trip(yaml: &str) -> (Bootstrap, Loaded, String) {
    let first = load_str(yaml).unwrap_or_else(|e| panic!("{e}")).bootstrap;
    let dump = super::config_dump(&first);
    let again = load_str(&bootstrap_of(&dump)).unwrap_or_else(|e| panic!("the dump does not load: {e}\n{dump}"));
    assert_eq!(super::config_dump(&again.bootstrap), dump, "the dump is stable through a reload");
    (first, again, dump)
}

/// The value at `path` (`a.b[2].c`) of a dumped message.
fn at<'a>(j: &'a Json, path: &str) -> &'a Json {
    let mut cur = j;
    for part in path.split('.') {
        let (key, index) = match part.split_once('[') {
            Some((k, i)) => (k, Some(i.trim_end_matches(']').parse::<usize>().unwrap())),
            None => (part, None),
        };
        if !key.is_empty() {
            let Json::Obj(fields) = cur else { panic!("`{key}` of a non-object in {path}") };
            cur = &fields.iter().find(|(k, _)| k == key).unwrap_or_else(|| panic!("no `{key}` in {path}")).1;
        }
        if let Some(i) = index {
            let Json::Arr(items) = cur else { panic!("index of a non-list in {path}") };
            cur = &items[i];
        }
    }
    cur
}

/// Whether message `j` has field `key`.
fn has(j: &Json, key: &str) -> bool {
    matches!(j, Json::Obj(fields) if fields.iter().any(|(k, _)| k == key))
}

fn s(v: &str) -> Json {
    Json::Str(v.to_string())
}

fn n(v: &str) -> Json {
    Json::Num(v.to_string())
}

/// The HCM of the first filter of the first chain of listener `l`.
fn hcm(b: &Bootstrap, l: usize) -> &crate::hcm::HttpConnectionManager {
    match &b.listeners[l].filter_chains[0].filters[0].kind {
        NetworkFilterKind::HttpConnectionManager(h) => h,
        other => panic!("not an HCM: {other:?}"),
    }
}

#[test]
fn tcp_proxy_config_round_trips() {
    let yaml = r#"
admin: { address: { socket_address: { address: 127.0.0.1, port_value: 9901 } } }
static_resources:
  listeners:
  - name: l
    address: { socket_address: { address: 0.0.0.0, port_value: 10000 } }
    filter_chains:
    - filter_chain_match: { destination_port: 10000, prefix_ranges: [{ address_prefix: 10.0.0.0, prefix_len: 8 }] }
      filters:
      - name: tcp
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: t
          weighted_clusters: { clusters: [{ name: c, weight: 2 }] }
  clusters:
  - name: c
    connect_timeout: 0.25s
    outlier_detection: {}
    health_checks:
    - { timeout: 1s, interval: 2s, unhealthy_threshold: 2, healthy_threshold: 1, tcp_health_check: { send: { text: "0102" } } }
    load_assignment:
      cluster_name: c
      endpoints: [{ priority: 1, lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 8080 } } }, load_balancing_weight: 3 }] }]
"#;
    let (first, again, _) = round_trip(yaml);
    let again = again.bootstrap;
    assert_eq!(again.clusters[0].connect_timeout, first.clusters[0].connect_timeout);
    assert_eq!(again.clusters[0].outlier_detection, first.clusters[0].outlier_detection);
    assert_eq!(again.listeners[0].filter_chains.len(), 1);
    assert_eq!(
        again.listeners[0].filter_chains[0].filter_chain_match,
        first.listeners[0].filter_chains[0].filter_chain_match
    );
}

#[test]
fn base64_is_what_the_decoder_reads() {
    assert_eq!(base64(b""), "");
    assert_eq!(base64(b"f"), "Zg==");
    assert_eq!(base64(b"fo"), "Zm8=");
    assert_eq!(base64(b"foo"), "Zm9v");
    assert_eq!(base64(b"[redacted]"), "W3JlZGFjdGVkXQ==");
    assert_eq!(base64(&[0xff, 0x00, 0x80, b'a']), "/wCAYQ==");
    let bytes: Vec<u8> = (0..=255u8).rev().collect();
    for len in 0..bytes.len() {
        let encoded = base64(&bytes[..len]);
        assert_eq!(crate::route::decode_base64(&encoded).as_deref(), Some(&bytes[..len]), "{encoded}");
    }
}

#[test]
fn strings_survive_json_and_yaml_parsing() {
    // Every control character, DEL, the C1 controls, a BOM, quotes and backslashes: the
    // config parser (YAML, of which JSON is a subset) must read back the same text.
    let mut text: String = (0u32..0x20).chain(0x7f..0xa0).filter_map(char::from_u32).collect();
    text.push_str("\u{feff} \"quoted\" back\\slash ünïcode ✓ \u{10348}");
    let rendered = Json::obj().with("v", text.as_str()).render();
    let raw = |c: char| (c < ' ' && c != '\n') || ('\u{7f}'..='\u{9f}').contains(&c) || c == '\u{feff}';
    assert!(!rendered.chars().any(raw), "non-printable characters are escaped: {rendered:?}");
    let node = crate::node::parse(&rendered).unwrap_or_else(|e| panic!("{e}:\n{rendered}"));
    let crate::node::Value::Map(fields) = &node.value else { panic!() };
    assert_eq!(fields[0].1.value, crate::node::Value::Scalar { text, quoted: true });
}

#[test]
fn overload_manager_round_trips_with_its_defaults() {
    let yaml = r#"
static_resources: { listeners: [], clusters: [] }
overload_manager:
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
    triggers: [{ name: envoy.resource_monitors.fixed_heap, threshold: { value: 0.95 } }]
  - name: envoy.overload_actions.reduce_timeouts
    triggers: [{ name: envoy.resource_monitors.fixed_heap, scaled: { scaling_threshold: 0.8, saturation_threshold: 0.95 } }]
    typed_config:
      "@type": type.googleapis.com/envoy.config.overload.v3.ScaleTimersOverloadActionConfig
      timer_scale_factors:
      - { timer: HTTP_DOWNSTREAM_CONNECTION_IDLE, min_timeout: 2s }
      - { timer: HTTP_DOWNSTREAM_STREAM_IDLE, min_scale: { value: 10 } }
"#;
    let (first, again, dump) = round_trip(yaml);
    assert_eq!(again.bootstrap.overload_manager, first.overload_manager);
    let j = Json::from_node(&crate::node::parse(&bootstrap_of(&dump)).unwrap());
    // Envoy's default refresh interval is written out.
    assert_eq!(at(&j, "overload_manager.refresh_interval"), &s("1s"));
    assert_eq!(
        at(&j, "overload_manager.resource_monitors[0].typed_config.max_active_downstream_connections"),
        &s("1000")
    );
    assert_eq!(at(&j, "overload_manager.actions[0].triggers[0].threshold.value"), &n("0.95"));
    assert_eq!(
        at(&j, "overload_manager.actions[1].typed_config.timer_scale_factors[1].timer"),
        &s("HTTP_DOWNSTREAM_STREAM_IDLE")
    );
    assert!(!has(at(&j, "overload_manager.actions[0]"), "typed_config"));
    // No overload_manager configured: none dumped.
    let (_, _, plain) = round_trip("static_resources: { listeners: [], clusters: [] }\n");
    assert!(!plain.contains("overload_manager"), "{plain}");
}

/// Envoy's filter example configs (tests/envoy_examples) dump to configs that load
/// back the same: cors/csrf policies, per-filter configs, local rate limits, the RBAC
/// matcher.
#[test]
fn http_filter_configs_round_trip() {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/envoy_examples");
    let wanted = [
        ("cors-backend.yaml", "envoy.extensions.filters.http.cors.v3.CorsPolicy"),
        ("csrf-samesite.yaml", "additional_origins"),
        ("local_ratelimit.yaml", "http_local_rate_limiter"),
        ("rbac.yaml", "illegal-referer"),
    ];
    for (name, text) in wanted {
        let yaml = std::fs::read_to_string(dir.join(name)).unwrap();
        let (first, again, dump) = round_trip(&yaml);
        assert!(dump.contains(text), "{name}: {dump}");
        let filters = |b: &Bootstrap| hcm(b, 0).http_filters.clone();
        assert_eq!(filters(&first), filters(&again.bootstrap), "{name}");
        let vhosts = |b: &Bootstrap| {
            let rc = &hcm(b, 0).route_config;
            rc.virtual_hosts
                .iter()
                .map(|v| {
                    (
                        v.typed_per_filter_config.clone(),
                        v.routes.iter().map(|r| r.typed_per_filter_config.clone()).collect::<Vec<_>>(),
                    )
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(vhosts(&first), vhosts(&again.bootstrap), "{name}");
    }
}
