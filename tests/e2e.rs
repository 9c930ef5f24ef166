//! The end-to-end suite, one test binary: each module is one area's tests against the
//! sluice binary ($SLUICE_BIN) with real clients and origins.
//!
//! One binary instead of one per file: every test binary links the whole proxy and its
//! dependencies (the harness drives in-process pieces too), so 43 binaries cost 43 links
//! of ~25 MB, and `cargo test` runs test binaries one after another, so a file's slowest
//! test held up the rest of the suite. As modules they link once and share one pool of
//! test threads. Run one area with `cargo test -p sluice-e2e --test e2e http2::`.

mod access_log;
mod admin;
mod cli;
mod config_dump;
mod drain;
mod ext_authz;
mod grpc;
mod grpc_web;
mod http2;
mod http2_attacks;
mod http2_stream_ids;
mod http2_tls;
mod http2_upstream;
mod http2_upstream_auto;
mod http2_upstream_tls;
mod http_compression;
mod http_edge_path;
mod http_edge_xff;
mod http_filters_cors;
mod http_filters_csrf;
mod http_filters_header_to_metadata;
mod http_filters_health_check;
mod http_filters_local_ratelimit;
mod http_filters_lua;
mod http_filters_lua_calls;
mod http_filters_ratelimit;
mod http_filters_rbac;
mod http_flow_control;
mod http_internal_redirect;
mod http_protocol;
mod http_resilience;
mod http_retry_host_predicate;
mod http_router_details;
mod http_routing;
mod http_timeouts;
mod http_upgrade;
mod jwt_authn;
mod jwt_authn_remote;
mod listener_http_inspector;
mod original_dst;
mod overload;
mod real_configs;
mod reload;
mod route_check_cli;
mod run_script;
mod runtime;
mod tcp_proxy;
mod tls_inspector;
mod tls_transport;
mod tracing;
mod upstream_health;
mod upstream_lb;
mod upstream_outlier;
mod upstream_outlier_http;
mod upstream_outlier_runtime;
mod xdp_busy_poll;
mod xdp_errors;
mod xdp_http;
mod xdp_memory;
mod xdp_original_dst;
mod xdp_passthrough;
mod xdp_queues;
mod xdp_support;
mod xdp_tcp;
mod xds_ads;
mod xds_ads_init;
mod xds_ads_sds;
mod xds_ads_xdp;
mod xds_files;
mod xds_rds_sds;
mod xds_unknown_fields;
