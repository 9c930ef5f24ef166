use super::*;

const BOOT: &str = r#"
dynamic_resources:
  lds_config:
    path_config_source: { path: /tmp/lds.yaml, watched_directory: { path: /tmp } }
  cds_config:
    path: /tmp/cds.yaml
static_resources:
  clusters:
  - name: s
    load_assignment: { cluster_name: s }
"#;

const CDS: &str = r#"
version_info: "v1"
resources:
- "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
  name: d
  load_assignment: { cluster_name: d }
"#;

const LDS: &str = r#"
version_info: "7"
resources:
- "@type": type.googleapis.com/envoy.config.listener.v3.Listener
  name: l
  address: { socket_address: { address: 127.0.0.1, port_value: 10000 } }
  filter_chains:
  - filters:
    - name: envoy.filters.network.tcp_proxy
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
        stat_prefix: t
        cluster: d
"#;

#[test]
fn file_sources_decode_and_compose_with_static_resources() {
    let b = crate::load_str(BOOT).unwrap().bootstrap;
    let dr = b.dynamic_resources.clone().unwrap();
    assert_eq!(
        dr.lds_config,
        Some(ConfigSource {
            path: "/tmp/lds.yaml".into(),
            watched_directory: Some("/tmp".into()),
            ads: false,
            initial_fetch_timeout: None
        })
    );
    assert_eq!(
        dr.cds_config,
        Some(ConfigSource {
            path: "/tmp/cds.yaml".into(),
            watched_directory: None,
            ads: false,
            initial_fetch_timeout: None
        })
    );
    let (lds, _) = decode_resources::<Listener>(LDS, LISTENER_TYPE).unwrap();
    let (cds, _) = decode_resources::<Cluster>(CDS, CLUSTER_TYPE).unwrap();
    assert_eq!((lds.version_info.as_str(), cds.version_info.as_str()), ("7", "v1"));
    let dynamic = Dynamic {
        listeners: &lds.items,
        clusters: &cds.items,
        lds_path: "lds",
        cds_path: "cds",
        endpoints: &[],
        ads_endpoints: &[],
        routes: &[],
        secrets: &[],
    };
    let all = compose(&b, &dynamic).unwrap();
    assert_eq!(all.listeners.len(), 1);
    assert_eq!(all.clusters.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["s", "d"]);
    // The bootstrap dumps its sources and reads back the same.
    let dump: String = crate::dump::config_dump(&b).split_whitespace().collect();
    assert!(dump.contains(r#""watched_directory":{"path":"/tmp"}"#), "{dump}");
}

#[test]
fn a_listener_naming_an_unknown_cluster_is_refused_with_its_file_and_index() {
    let b = crate::load_str(BOOT).unwrap().bootstrap;
    let (lds, _) = decode_resources::<Listener>(LDS, LISTENER_TYPE).unwrap();
    let dynamic = Dynamic {
        listeners: &lds.items,
        clusters: &[],
        lds_path: "/x/lds.yaml",
        cds_path: "cds",
        endpoints: &[],
        ads_endpoints: &[],
        routes: &[],
        secrets: &[],
    };
    let e = compose(&b, &dynamic).unwrap_err();
    assert_eq!(e[0].path, "/x/lds.yaml: resources[0].filter_chains[0].filters[0].typed_config.cluster");
    assert!(e[0].message.contains("unknown cluster `d`"), "{}", e[0]);
}

#[test]
fn bad_resources_name_their_path_and_line() {
    let wrong_type = LDS.replace("listener.v3.Listener", "cluster.v3.Cluster");
    let e = decode_resources::<Listener>(&wrong_type, LISTENER_TYPE).unwrap_err();
    assert_eq!((e[0].path.as_str(), e[0].line), ("resources[0].@type", 4));
    let typo = LDS.replace("  name: l", "  nmae: l");
    let e = decode_resources::<Listener>(&typo, LISTENER_TYPE).unwrap_err();
    assert!(e.iter().any(|e| e.path == "resources[0].nmae" && e.line == 5), "{e:?}");
    let grpc =
        crate::load_str(&BOOT.replace("path: /tmp/cds.yaml", "api_config_source: { api_type: GRPC }")).unwrap_err();
    assert_eq!(grpc.0[0].path, "dynamic_resources.cds_config.api_config_source");
    assert_eq!(grpc.0[0].kind, ErrorKind::Unsupported);
}

#[test]
fn an_eds_cluster_gets_its_endpoints_from_its_file() {
    let eds_cluster = CDS.replace(
        "  load_assignment: { cluster_name: d }",
        "  type: EDS\n  eds_cluster_config: { eds_config: { path: /e.yaml }, service_name: svc }",
    );
    let b = crate::load_str(BOOT).unwrap().bootstrap;
    let (cds, _) = decode_resources::<Cluster>(&eds_cluster, CLUSTER_TYPE).unwrap();
    let eds = r#"
version_info: "e1"
resources:
- "@type": type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment
  cluster_name: svc
  endpoints:
  - lb_endpoints:
    - endpoint: { address: { socket_address: { address: 127.0.0.2, port_value: 80 } } }
"#;
    let (cla, _) = decode_resources::<ClusterLoadAssignment>(eds, ENDPOINTS_TYPE).unwrap();
    let files = vec![("/e.yaml".to_string(), cla.items)];
    let dynamic = Dynamic {
        listeners: &[],
        clusters: &cds.items,
        lds_path: "",
        cds_path: "",
        endpoints: &files,
        ads_endpoints: &[],
        routes: &[],
        secrets: &[],
    };
    let all = compose(&b, &dynamic).unwrap();
    assert_eq!(all.clusters[1].load_assignment.endpoint_count(), 1);
    // Without a file, no hosts (not an error).
    let none = Dynamic { endpoints: &[], ..dynamic };
    assert_eq!(compose(&b, &none).unwrap().clusters[1].load_assignment.endpoint_count(), 0);
    let with_la = eds_cluster.replace("  type: EDS", "  type: EDS\n  load_assignment: { cluster_name: d }");
    assert!(decode_resources::<Cluster>(&with_la, CLUSTER_TYPE).is_err());
}

const RDS_LDS: &str = r#"
version_info: "1"
resources:
- "@type": type.googleapis.com/envoy.config.listener.v3.Listener
  name: web
  address: { socket_address: { address: 127.0.0.1, port_value: 10001 } }
  filter_chains:
  - filters:
    - name: hcm
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
        stat_prefix: web
        rds:
          route_config_name: local
          config_source: { path_config_source: { path: /x/rds.yaml }, initial_fetch_timeout: 2s }
        http_filters:
        - name: envoy.filters.http.router
          typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
"#;

const RDS: &str = r#"
version_info: "r1"
resources:
- "@type": type.googleapis.com/envoy.config.route.v3.RouteConfiguration
  name: local
  virtual_hosts:
  - name: all
    domains: ["*"]
    routes:
    - match: { prefix: "/" }
      route: { cluster: not_yet_known }
"#;

#[test]
fn an_rds_listener_warms_until_its_routes_arrive_and_then_serves_them() {
    let b = crate::load_str(BOOT).unwrap().bootstrap;
    let (lds, _) = decode_resources::<Listener>(RDS_LDS, LISTENER_TYPE).unwrap();
    let hcm = hcms(&lds.items[0]).next().unwrap();
    let rds = hcm.rds.as_ref().unwrap();
    assert_eq!((rds.route_config_name.as_str(), rds.config_source.path.as_str()), ("local", "/x/rds.yaml"));
    assert_eq!(rds.config_source.initial_fetch_timeout, Some(std::time::Duration::from_secs(2)));
    let (rc, _) = decode_resources::<crate::route::RouteConfiguration>(RDS, ROUTE_TYPE).unwrap();
    let mut routes =
        vec![RdsRoute { path: "/x/rds.yaml".into(), route_config_name: "local".into(), route_config: None }];
    // Warming: checked, but left out of the effective config.
    assert!(compose(&b, &Dynamic { listeners: &lds.items, lds_path: "lds", routes: &routes, ..Dynamic::default() })
        .unwrap()
        .listeners
        .is_empty());
    routes[0].route_config = Some(rc.items[0].clone());
    let all = compose(&b, &Dynamic { listeners: &lds.items, lds_path: "lds", routes: &routes, ..Dynamic::default() })
        .unwrap();
    // Its clusters are not checked (RDS's validate_clusters defaults to false).
    let hcm = hcms(&all.listeners[0]).next().unwrap();
    assert_eq!(hcm.route_config.virtual_hosts[0].name, "all");
    // The listener dumps its `rds`, not the routes.
    let dump: String = crate::dump::Dump::dump(&all.listeners[0]).render().split_whitespace().collect();
    assert!(dump.contains(r#""rds":{"config_source":{"path_config_source":{"path":"/x/rds.yaml"}"#), "{dump}");
    assert!(dump.contains(r#""route_config_name":"local""#) && !dump.contains("not_yet_known"), "{dump}");
    // With validate_clusters: true, an unknown cluster is refused.
    let strict = RDS.replace("  name: local\n", "  name: local\n  validate_clusters: true\n");
    let (rc, _) = decode_resources::<crate::route::RouteConfiguration>(&strict, ROUTE_TYPE).unwrap();
    routes[0].route_config = Some(rc.items[0].clone());
    let e = compose(&b, &Dynamic { listeners: &lds.items, lds_path: "lds", routes: &routes, ..Dynamic::default() })
        .unwrap_err();
    assert!(e[0].message.contains("not_yet_known"), "{}", e[0]);
}

#[test]
fn rds_and_route_config_together_and_fetch_timeouts_elsewhere_are_refused() {
    let both = RDS_LDS.replace("        rds:\n", "        route_config: { name: x }\n        rds:\n");
    let e = decode_resources::<Listener>(&both, LISTENER_TYPE).unwrap_err();
    assert!(e.iter().any(|e| e.message.contains("only one of `rds` and `route_config`")), "{e:?}");
    let nameless = RDS_LDS.replace("route_config_name: local", "route_config_name: \"\"");
    let e = decode_resources::<Listener>(&nameless, LISTENER_TYPE).unwrap_err();
    assert!(e[0].path.ends_with("rds.route_config_name"), "{e:?}");
    let lds_timeout = BOOT.replace("    path: /tmp/cds.yaml", "    path: /tmp/cds.yaml\n    initial_fetch_timeout: 1s");
    let e = crate::load_str(&lds_timeout).unwrap_err();
    assert!(e.to_string().contains("cds_config.initial_fetch_timeout"), "{e}");
}
