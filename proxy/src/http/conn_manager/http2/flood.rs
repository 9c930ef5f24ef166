//! Counting the HTTP/2 abuse defences that end a downstream connection, with Envoy's
//! counter names. Which layer defends which attack:
//!
//! | attack | defended by | on the wire | counter |
//! |---|---|---|---|
//! | rapid reset (CVE-2023-44487): HEADERS then RST_STREAM, repeated | `h2`'s `max_pending_accept_reset_streams` (20 streams reset before they were accepted) | GOAWAY ENHANCE_YOUR_CALM `too_many_resets` | `http.<prefix>.downstream_rq_too_many_premature_resets` |
//! | CONTINUATION flood (CVE-2024-27316): a header block that never ends | `h2`'s CONTINUATION-frame cap (derived from SETTINGS_MAX_HEADER_LIST_SIZE = `max_request_headers_kb`) | GOAWAY ENHANCE_YOUR_CALM `too_many_continuations` | `http.<prefix>.http2.header_overflow` |
//! | HPACK bomb / header list far over the limit | `h2`'s decoded-size abuse limit | GOAWAY ENHANCE_YOUR_CALM `header_list_way_too_large` | `http.<prefix>.http2.header_overflow` |
//! | empty-payload frame flood (HEADERS, CONTINUATION, DATA without END_STREAM) | sluice ([`InboundWatch`]): Envoy's `max_consecutive_inbound_frames_with_empty_payload` (1) | GOAWAY ENHANCE_YOUR_CALM | `http.<prefix>.http2.inbound_empty_frames_flood` |
//! | tiny DATA frame flood | `h2`'s DATA-frame overhead budget | GOAWAY ENHANCE_YOUR_CALM `too_many_data_frames` | `http.<prefix>.http2.inbound_empty_frames_flood` |
//! | PRIORITY flood | sluice ([`InboundWatch`]): Envoy's `max_inbound_priority_frames_per_stream` (100) × (1 + streams opened) | GOAWAY ENHANCE_YOUR_CALM | `http.<prefix>.http2.inbound_priority_frames_flood` |
//! | WINDOW_UPDATE flood | sluice ([`InboundWatch`]): Envoy's `max_inbound_window_update_frames_per_data_frame_sent` (10) check | GOAWAY ENHANCE_YOUR_CALM | `http.<prefix>.http2.inbound_window_update_frames_flood` |
//! | a client that does not read (PING / SETTINGS / RST_STREAM answers pile up) | sluice ([`GoawayWatch`] counts the frames written and not yet sent to the socket): Envoy's `max_outbound_frames` (10000) and `max_outbound_control_frames` (1000; PING and SETTINGS ACKs, RST_STREAM) | the connection is closed | `http.<prefix>.http2.outbound_flood`, `http.<prefix>.http2.outbound_control_flood` |
//! | streams the codec must reset over and over | `h2`'s `max_local_error_reset_streams` | GOAWAY ENHANCE_YOUR_CALM `too_many_internal_resets` | `http.<prefix>.http2.outbound_control_flood` |
//!
//! Envoy's `ProtocolConstraints` are applied in full by sluice, with the configured
//! values; `h2`'s own limits stay as a second line (`h2` also holds one unsent PING
//! ACK and reads no further until it is written, and the connection manager stops
//! taking its output at the buffer limit, so the queue a non-reading client builds is
//! bounded even before the outbound limits close the connection).
//!
//! `h2` reports none of these as a typed event, and the error its connection ends
//! with carries the reason but not the GOAWAY's debug data. The debug data (the
//! strings above) is read off the GOAWAY frame `h2` writes: [`GoawayWatch`] follows
//! the frame boundaries of the connection's output. Any other connection error the
//! codec detected itself (a frame-level PROTOCOL_ERROR, a stream ID that went
//! backwards, and the like) is counted as Envoy counts a codec protocol error:
//! `downstream_cx_protocol_error` (Envoy's `onInvalidFrame` counts
//! `http2.rx_messaging_error` only for header and messaging errors, which end one
//! stream, not the connection).

use std::collections::VecDeque;

pub use super::inbound::{InboundFlood, InboundLimits, InboundWatch};
use crate::stats::HttpStats;

/// Longest GOAWAY debug data kept.
const DEBUG_MAX: usize = 64;

/// Follows the frames of the connection's output and keeps the last GOAWAY's
/// debug data (up to [`DEBUG_MAX`] bytes).
#[derive(Debug, Default)]
pub struct GoawayWatch {
    head: [u8; 9],
    /// Bytes of the current frame header seen.
    have: usize,
    /// Payload bytes of the current frame still to come.
    left: usize,
    /// Offset in the current GOAWAY payload (`None` in other frames).
    goaway_at: Option<usize>,
    debug: Vec<u8>,
    /// DATA frames written.
    pub data_frames: u64,
    /// Bytes `h2` wrote in all.
    written: u64,
    /// Frames written and not yet sent whole to the socket: where each ends (in
    /// `written` bytes) and whether Envoy counts it as a control frame.
    queued: VecDeque<(u64, bool)>,
    queued_control: usize,
}

/// Which of Envoy's outbound limits a client broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboundFlood {
    /// More than `max_outbound_frames` queued: `http2.outbound_flood`.
    Frames,
    /// More than `max_outbound_control_frames` queued: `http2.outbound_control_flood`.
    ControlFrames,
}

impl GoawayWatch {
    /// Bytes `h2` wrote, in order.
    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.left == 0 && self.have < 9 {
                let n = (9 - self.have).min(data.len());
                self.head[self.have..self.have + n].copy_from_slice(&data[..n]);
                self.have += n;
                self.written += n as u64;
                data = &data[n..];
                if self.have == 9 {
                    let h = self.head;
                    self.left = (usize::from(h[0]) << 16) | (usize::from(h[1]) << 8) | usize::from(h[2]);
                    self.have = 0;
                    self.goaway_at = (h[3] == 7).then_some(0);
                    self.data_frames += u64::from(h[3] == 0);
                    // PING and SETTINGS acknowledgements and RST_STREAM (Envoy's
                    // `is_outbound_flood_monitored_control_frame`).
                    let control = ((h[3] == 6 || h[3] == 4) && h[4] & 0x1 != 0) || h[3] == 3;
                    self.queued.push_back((self.written + self.left as u64, control));
                    self.queued_control += usize::from(control);
                    if self.goaway_at.is_some() {
                        self.debug.clear();
                    }
                }
                continue;
            }
            let n = self.left.min(data.len());
            if let Some(at) = self.goaway_at.as_mut() {
                // Payload: last stream ID (4), error code (4), debug data.
                for (i, &byte) in data[..n].iter().enumerate() {
                    if *at + i >= 8 && self.debug.len() < DEBUG_MAX {
                        self.debug.push(byte);
                    }
                }
                *at += n;
            }
            self.left -= n;
            self.written += n as u64;
            data = &data[n..];
        }
    }

    /// `queued` bytes of what `h2` wrote are still to go to the socket: the frames
    /// before them have left.
    pub fn still_queued(&mut self, queued: usize) {
        let sent = self.written.saturating_sub(queued as u64);
        while let Some(&(end, control)) = self.queued.front() {
            if end > sent {
                break;
            }
            self.queued.pop_front();
            self.queued_control -= usize::from(control);
        }
    }

    /// Envoy's outbound check: more frames (or control frames) queued than allowed.
    pub fn outbound_flood(&self, max_frames: u32, max_control: u32) -> Option<OutboundFlood> {
        if self.queued.len() > max_frames as usize {
            Some(OutboundFlood::Frames)
        } else if self.queued_control > max_control as usize {
            Some(OutboundFlood::ControlFrames)
        } else {
            None
        }
    }

    /// The debug data of the last GOAWAY written.
    pub fn debug(&self) -> &[u8] {
        &self.debug
    }
}

/// Count the reason `h2` ended the connection with `e`, when `h2` detected it
/// (`goaway`: what it wrote).
pub(super) fn count(stats: &HttpStats, e: &h2::Error, goaway: &GoawayWatch) {
    if !(e.is_go_away() && e.is_library()) {
        return;
    }
    match goaway.debug() {
        b"too_many_resets" => stats.downstream_rq_too_many_premature_resets.inc(),
        b"too_many_continuations" | b"header_list_way_too_large" => stats.http2_header_overflow.inc(),
        b"too_many_data_frames" => stats.http2_inbound_empty_frames_flood.inc(),
        b"too_many_internal_resets" => stats.http2_outbound_control_flood.inc(),
        _ => stats.downstream_cx_protocol_error.inc(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_goaway_debug_data_is_found_across_writes() {
        let mut w = GoawayWatch::default();
        // A SETTINGS frame, then a GOAWAY split at odd places.
        w.feed(&[0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 100]);
        let mut goaway = vec![0, 0, 8 + 15, 7, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 11];
        goaway.extend_from_slice(b"too_many_resets");
        for chunk in goaway.chunks(5) {
            w.feed(chunk);
        }
        assert_eq!(w.debug(), b"too_many_resets");
        // A PING after it leaves it alone.
        w.feed(&[0, 0, 8, 6, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(w.debug(), b"too_many_resets");
    }

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len();
        let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn frames_queued_for_the_socket_are_counted_until_sent() {
        let mut w = GoawayWatch::default();
        let ping_ack = frame(6, 1, 0, &[0; 8]);
        let data = frame(0, 0, 1, b"abc");
        for _ in 0..3 {
            w.feed(&ping_ack);
        }
        w.feed(&data);
        assert_eq!(w.outbound_flood(4, 2), Some(OutboundFlood::ControlFrames));
        assert_eq!(w.outbound_flood(3, 3), Some(OutboundFlood::Frames));
        assert_eq!(w.outbound_flood(4, 3), None);
        // The first ACK and part of the second went out.
        w.still_queued(ping_ack.len() * 2 - 1 + data.len());
        assert_eq!(w.outbound_flood(2, 1), Some(OutboundFlood::Frames));
        assert_eq!(w.outbound_flood(3, 1), Some(OutboundFlood::ControlFrames));
        assert_eq!(w.outbound_flood(3, 2), None);
        w.still_queued(0);
        assert_eq!(w.outbound_flood(0, 0), None);
    }
}
