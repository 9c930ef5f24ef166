//! `HttpConnectionManager.http2_protocol_options` (`core.v3.Http2ProtocolOptions`) for
//! downstream HTTP/2, with Envoy's defaults and ranges.
//!
//! Implemented: the SETTINGS sluice advertises (`hpack_table_size`,
//! `max_concurrent_streams`, `initial_stream_window_size`,
//! `initial_connection_window_size`). Accepted only at the value sluice's HTTP/2 codec
//! (the `h2` crate) behaves as: `allow_connect: false` (CONNECT streams are reset),
//! `override_stream_error_on_invalid_http_message: true` (a malformed request resets
//! its stream, never the connection). The flood limits (`max_outbound_frames`, ...)
//! are accepted only at Envoy's defaults: `max_inbound_window_update_frames_per_data_frame_sent`
//! is enforced by sluice as Envoy's check; the others are the codec's own limits, which
//! differ (see the proxy's `conn_manager/http2/flood.rs` for which layer defends what);
//! everything else is rejected with its path.

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
}

impl Default for Http2ProtocolOptions {
    fn default() -> Self {
        Http2ProtocolOptions {
            hpack_table_size: 4096,
            max_concurrent_streams: 2_147_483_647,
            initial_stream_window_size: 268_435_456,
            initial_connection_window_size: 268_435_456,
        }
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
        let limit = "the HTTP/2 codec (h2) applies its own flood limits; only Envoy's default is accepted";
        f.default_only(d, "max_outbound_frames", 10_000u32, limit);
        f.default_only(d, "max_outbound_control_frames", 1_000u32, limit);
        f.default_only(d, "max_consecutive_inbound_frames_with_empty_payload", 1u32, limit);
        f.default_only(d, "max_inbound_priority_frames_per_stream", 100u32, limit);
        f.default_only(d, "max_inbound_window_update_frames_per_data_frame_sent", 10u32, limit);
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
        })
    }
}
