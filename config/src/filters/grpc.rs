//! The gRPC bridging filters' configs: `extensions.filters.http.grpc_web.v3.GrpcWeb`
//! (no fields) and `extensions.filters.http.grpc_http1_bridge.v3.Config`.

use crate::decode::{Decoder, Fields};

pub const GRPC_WEB_TYPE: &str = "envoy.extensions.filters.http.grpc_web.v3.GrpcWeb";
pub const GRPC_HTTP1_BRIDGE_TYPE: &str = "envoy.extensions.filters.http.grpc_http1_bridge.v3.Config";

/// `grpc_http1_bridge.v3.Config`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GrpcHttp1Bridge {
    /// Frame `application/x-protobuf` requests as gRPC (`application/grpc`, one
    /// length-prefixed message) and strip the frame off the response.
    pub upgrade_protobuf_to_grpc: bool,
    /// Drop the query string of bridged requests (gRPC servers do not route on it).
    pub ignore_query_parameters: bool,
}

impl GrpcHttp1Bridge {
    pub(crate) fn decode_fields(d: &mut Decoder, mut f: Fields<'_>) -> Option<GrpcHttp1Bridge> {
        let upgrade_protobuf_to_grpc = f.or(d, "upgrade_protobuf_to_grpc", false);
        let ignore_query_parameters = f.or(d, "ignore_query_parameters", false);
        f.finish(d);
        Some(GrpcHttp1Bridge { upgrade_protobuf_to_grpc, ignore_query_parameters })
    }
}

#[cfg(test)]
mod tests {
    use crate::decode::Decoder;
    use crate::hcm::{HttpFilter, HttpFilterKind};
    use crate::node::parse;

    fn decode(yaml: &str) -> (Option<HttpFilter>, Decoder) {
        let n = parse(yaml).unwrap();
        let mut d = Decoder::new();
        let f = d.decode::<HttpFilter>(&n, "f");
        (f, d)
    }

    #[test]
    fn grpc_web_and_bridge_configs() {
        let (f, d) = decode("name: gw\ntyped_config: {'@type': type.googleapis.com/envoy.extensions.filters.http.grpc_web.v3.GrpcWeb}\n");
        assert!(d.errors.is_empty(), "{:?}", d.errors);
        assert_eq!(f.unwrap().kind, HttpFilterKind::GrpcWeb);
        let (f, d) = decode("name: b\ntyped_config: {'@type': type.googleapis.com/envoy.extensions.filters.http.grpc_http1_bridge.v3.Config, upgrade_protobuf_to_grpc: true, ignore_query_parameters: true}\n");
        assert!(d.errors.is_empty(), "{:?}", d.errors);
        let HttpFilterKind::GrpcHttp1Bridge(b) = f.unwrap().kind else { panic!() };
        assert!(b.upgrade_protobuf_to_grpc && b.ignore_query_parameters);
        // Fields the filters do not have are refused with their path.
        let (_, d) = decode("name: gw\ntyped_config: {'@type': type.googleapis.com/envoy.extensions.filters.http.grpc_web.v3.GrpcWeb, text: true}\n");
        let e = d.errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n");
        assert!(e.contains("f.typed_config.text") && e.contains("unknown field"), "{e}");
    }
}
