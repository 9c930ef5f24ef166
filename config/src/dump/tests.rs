//! Round trips: the dump decodes back to the same config.

use crate::load_str;

fn bootstrap_of(dump: &str) -> String {
    // The dump wraps the bootstrap in Envoy's ConfigDump; take it back out.
    let node = crate::node::parse(dump).unwrap();
    let crate::node::Value::Map(top) = &node.value else { panic!() };
    let crate::node::Value::Seq(configs) = &top[0].1.value else { panic!() };
    let crate::node::Value::Map(first) = &configs[0].value else { panic!() };
    let bootstrap = first.iter().find(|(k, _)| k.name == "bootstrap").unwrap();
    super::Json::from_node(&bootstrap.1).render()
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
    let first = load_str(yaml).unwrap().bootstrap;
    let dump = super::config_dump(&first);
    let again = load_str(&bootstrap_of(&dump)).unwrap_or_else(|e| panic!("dump does not load: {e}\n{dump}")).bootstrap;
    assert_eq!(super::config_dump(&again), dump, "dump is stable through a reload");
    assert_eq!(again.clusters[0].connect_timeout, first.clusters[0].connect_timeout);
    assert_eq!(again.listeners[0].filter_chains.len(), 1);
}
