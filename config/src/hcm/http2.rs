//! `HttpConnectionManager.http2_protocol_options` (`core.v3.Http2ProtocolOptions`) for
//! downstream HTTP/2, with Envoy's defaults and ranges.
//!
//! Implemented: the SETTINGS sluice advertises (`hpack_table_size`,
//! `max_concurrent_streams`, `initial_stream_window_size`,
//! `initial_connection_window_size`). Accepted only at the value sluice's HTTP/2 codec
//! (the `h2` crate) behaves as: `allow_connect: false` (CONNECT streams are reset),
//! `override_stream_error_on_invalid_http_message: true` (a malformed request resets
//! its stream, never the connection). The flood limits (`max_outbound_frames`,
//! `max_outbound_control_frames`, `max_consecutive_inbound_frames_with_empty_payload`,
//! `max_inbound_priority_frames_per_stream`,
//! `max_inbound_window_update_frames_per_data_frame_sent`) are enforced downstream as
//! Envoy's `ProtocolConstraints` checks them (the proxy's `conn_manager/http2/flood.rs`);
//! upstream (a cluster's options) only their defaults are accepted. Everything else is
//! rejected with its path.

use crate::decode::{Decode, Decoder, Fields};
use crate::error::ErrorKind;
use crate::node::Node;

/// Envoy's range for both window sizes.
const WINDOW_RANGE: std::ops::RangeInclusive<u32> = 65_535..=2_147_483_647;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Http2ProtocolOptions {
    /// SETTINGS_HEADER_TABLE_SIZE (default 4096).
    pub hpack_table_size: u32,
    /// SETTINGS_MAX_CONCURRENT_STREAMS, 1..=2147483647 (default 2147483647).
    pub max_concurrent_streams: u32,
    /// SETTINGS_INITIAL_WINDOW_SIZE, 65535..=2147483647 (default 268435456).
    pub initial_stream_window_size: u32,
    /// The connection-level window, 65535..=2147483647 (default 268435456).
    pub initial_connection_window_size: u32,
    /// `max_outbound_frames`, at least 1 (default 10000).
    pub max_outbound_frames: u32,
    /// `max_outbound_control_frames`, at least 1 (default 1000).
    pub max_outbound_control_frames: u32,
    /// `max_consecutive_inbound_frames_with_empty_payload` (default 1).
    pub max_consecutive_inbound_frames_with_empty_payload: u32,
    /// `max_inbound_priority_frames_per_stream` (default 100).
    pub max_inbound_priority_frames_per_stream: u32,
    /// `max_inbound_window_update_frames_per_data_frame_sent`, at least 1 (default 10).
    pub max_inbound_window_update_frames_per_data_frame_sent: u32,
}

impl Default for Http2ProtocolOptions {
    fn default() -> Self {
        Http2ProtocolOptions {
            hpack_table_size: 4096,
            max_concurrent_streams: 2_147_483_647,
            initial_stream_window_size: 268_435_456,
            initial_connection_window_size: 268_435_456,
            max_outbound_frames: 10_000,
            max_outbound_control_frames: 1_000,
            max_consecutive_inbound_frames_with_empty_payload: 1,
            max_inbound_priority_frames_per_stream: 100,
            max_inbound_window_update_frames_per_data_frame_sent: 10,
        }
    }
}

impl Http2ProtocolOptions {
    /// The flood limits set to other than Envoy's defaults (the upstream codec
    /// applies only the defaults' behaviour, so a cluster refuses these).
    pub fn non_default_inbound_limits(&self) -> Vec<&'static str> {
        let d = Http2ProtocolOptions::default();
        let mut out = Vec::new();
        if self.max_outbound_frames != d.max_outbound_frames {
            out.push("max_outbound_frames");
        }
        if self.max_outbound_control_frames != d.max_outbound_control_frames {
            out.push("max_outbound_control_frames");
        }
        if self.max_consecutive_inbound_frames_with_empty_payload != d.max_consecutive_inbound_frames_with_empty_payload
        {
            out.push("max_consecutive_inbound_frames_with_empty_payload");
        }
        if self.max_inbound_priority_frames_per_stream != d.max_inbound_priority_frames_per_stream {
            out.push("max_inbound_priority_frames_per_stream");
        }
        if self.max_inbound_window_update_frames_per_data_frame_sent
            != d.max_inbound_window_update_frames_per_data_frame_sent
        {
            out.push("max_inbound_window_update_frames_per_data_frame_sent");
        }
        out
    }
}

impl Decode for Http2ProtocolOptions {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let line = f.line();
        let dflt = Http2ProtocolOptions::default();
        let hpack_table_size = f.or(d, "hpack_table_size", dflt.hpack_table_size);
        let max_concurrent_streams = f.or(d, "max_concurrent_streams", dflt.max_concurrent_streams);
        let initial_stream_window_size = f.or(d, "initial_stream_window_size", dflt.initial_stream_window_size);
        let initial_connection_window_size =
            f.or(d, "initial_connection_window_size", dflt.initial_connection_window_size);
        f.default_only(d, "allow_connect", false, "CONNECT over HTTP/2 is not supported yet; remove it");
        f.default_only(
            d,
            "override_stream_error_on_invalid_http_message",
            true,
            "sluice's HTTP/2 codec always resets only the offending stream (the `true` behaviour)",
        );
        let max_outbound_frames = f.or(d, "max_outbound_frames", dflt.max_outbound_frames);
        let max_outbound_control_frames = f.or(d, "max_outbound_control_frames", dflt.max_outbound_control_frames);
        let max_consecutive_inbound_frames_with_empty_payload = f.or(
            d,
            "max_consecutive_inbound_frames_with_empty_payload",
            dflt.max_consecutive_inbound_frames_with_empty_payload,
        );
        let max_inbound_priority_frames_per_stream =
            f.or(d, "max_inbound_priority_frames_per_stream", dflt.max_inbound_priority_frames_per_stream);
        let max_inbound_window_update_frames_per_data_frame_sent = f.or(
            d,
            "max_inbound_window_update_frames_per_data_frame_sent",
            dflt.max_inbound_window_update_frames_per_data_frame_sent,
        );
        f.default_only(d, "allow_metadata", false, "METADATA frames are not supported; remove it");
        f.unsupported(
            d,
            &[
                "stream_error_on_invalid_http_messaging",
                "custom_settings_parameters",
                "connection_keepalive",
                "use_oghttp2_codec",
                "max_metadata_size",
                "enable_huffman_encoding",
            ],
        );
        f.finish(d);
        for (field, value) in [
            ("max_outbound_frames", max_outbound_frames),
            ("max_outbound_control_frames", max_outbound_control_frames),
            (
                "max_inbound_window_update_frames_per_data_frame_sent",
                max_inbound_window_update_frames_per_data_frame_sent,
            ),
        ] {
            if value == 0 {
                d.error(ErrorKind::Invalid, &format!("{path}.{field}"), line, "must be at least 1");
            }
        }
        if !(1..=2_147_483_647).contains(&max_concurrent_streams) {
            d.error(ErrorKind::Invalid, &format!("{path}.max_concurrent_streams"), line, "must be in 1..=2147483647");
        }
        if !WINDOW_RANGE.contains(&initial_stream_window_size) {
            d.error(
                ErrorKind::Invalid,
                &format!("{path}.initial_stream_window_size"),
                line,
                "must be in 65535..=2147483647",
            );
        }
        if !WINDOW_RANGE.contains(&initial_connection_window_size) {
            d.error(
                ErrorKind::Invalid,
                &format!("{path}.initial_connection_window_size"),
                line,
                "must be in 65535..=2147483647",
            );
        }
        Some(Http2ProtocolOptions {
            hpack_table_size,
            max_concurrent_streams,
            initial_stream_window_size,
            initial_connection_window_size,
            max_outbound_frames,
            max_outbound_control_frames,
            max_consecutive_inbound_frames_with_empty_payload,
            max_inbound_priority_frames_per_stream,
            max_inbound_window_update_frames_per_data_frame_sent,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::parse;

    fn decode(yaml: &str) -> (Option<Http2ProtocolOptions>, String) {
        let node = parse(yaml).expect("yaml");
        let mut d = Decoder::default();
        let o = Http2ProtocolOptions::decode(&mut d, &node, "h2");
        (o, format!("{:?}", d.errors))
    }

    #[test]
    fn inbound_flood_limits_are_configurable_with_envoys_defaults() {
        let (o, e) = decode("{}");
        assert_eq!(e, "[]");
        let o = o.expect("decoded");
        assert_eq!(o.max_consecutive_inbound_frames_with_empty_payload, 1);
        assert_eq!(o.max_inbound_priority_frames_per_stream, 100);
        assert_eq!(o.max_inbound_window_update_frames_per_data_frame_sent, 10);
        assert!(o.non_default_inbound_limits().is_empty());
        let (o, e) = decode(
            "{ max_consecutive_inbound_frames_with_empty_payload: 3, max_inbound_priority_frames_per_stream: 0, max_inbound_window_update_frames_per_data_frame_sent: 2 }",
        );
        assert_eq!(e, "[]");
        let o = o.expect("decoded");
        assert_eq!(o.max_consecutive_inbound_frames_with_empty_payload, 3);
        assert_eq!(o.max_inbound_priority_frames_per_stream, 0);
        assert_eq!(o.max_inbound_window_update_frames_per_data_frame_sent, 2);
        assert_eq!(o.non_default_inbound_limits().len(), 3);
        let (_, e) = decode("{ max_inbound_window_update_frames_per_data_frame_sent: 0 }");
        assert!(e.contains("h2.max_inbound_window_update_frames_per_data_frame_sent"), "{e}");
        let (o, e) = decode("{ max_outbound_frames: 7, max_outbound_control_frames: 5 }");
        assert_eq!(e, "[]");
        let o = o.expect("decoded");
        assert_eq!((o.max_outbound_frames, o.max_outbound_control_frames), (7, 5));
        let (_, e) = decode("{ max_outbound_control_frames: 0 }");
        assert!(e.contains("h2.max_outbound_control_frames"), "{e}");
    }
}
