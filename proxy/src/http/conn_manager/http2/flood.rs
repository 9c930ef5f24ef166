//! Counting the HTTP/2 abuse defences that end a downstream connection, with Envoy's
//! counter names. Which layer defends which attack:
//!
//! | attack | defended by | on the wire | counter |
//! |---|---|---|---|
//! | rapid reset (CVE-2023-44487): HEADERS then RST_STREAM, repeated | `h2`'s `max_pending_accept_reset_streams` (20 streams reset before they were accepted) | GOAWAY ENHANCE_YOUR_CALM `too_many_resets` | `http.<prefix>.downstream_rq_too_many_premature_resets` |
//! | CONTINUATION flood (CVE-2024-27316): a header block that never ends | `h2`'s CONTINUATION-frame cap (derived from SETTINGS_MAX_HEADER_LIST_SIZE = `max_request_headers_kb`) | GOAWAY ENHANCE_YOUR_CALM `too_many_continuations` | `http.<prefix>.http2.header_overflow` |
//! | HPACK bomb / header list far over the limit | `h2`'s decoded-size abuse limit | GOAWAY ENHANCE_YOUR_CALM `header_list_way_too_large` | `http.<prefix>.http2.header_overflow` |
//! | empty / tiny DATA frame flood | `h2`'s DATA-frame overhead budget | GOAWAY ENHANCE_YOUR_CALM `too_many_data_frames` | `http.<prefix>.http2.inbound_empty_frames_flood` |
//! | PING / SETTINGS flood from a client that never reads | `h2` holds one unsent ACK and reads no further until it is written; the connection manager stops taking `h2`'s output at the buffer limit (`h2_flush`) | back-pressure: the attacker's writes block (Envoy closes at `max_outbound_control_frames` instead: not implemented) | none |
//! | WINDOW_UPDATE flood | sluice ([`InboundWatch`]): Envoy's `max_inbound_window_update_frames_per_data_frame_sent` (10) check | GOAWAY ENHANCE_YOUR_CALM | `http.<prefix>.http2.inbound_window_update_frames_flood` |
//! | streams the codec must reset over and over | `h2`'s `max_local_error_reset_streams` | GOAWAY ENHANCE_YOUR_CALM `too_many_internal_resets` | `http.<prefix>.http2.outbound_control_flood` |
//!
//! Where `h2`'s limit is not Envoy's: empty DATA frames end the connection after 100
//! on the connection (Envoy's `max_consecutive_inbound_frames_with_empty_payload`: 1
//! consecutive); a never-reading client is back-pressured rather than closed at
//! `max_outbound_frames` / `max_outbound_control_frames`; PRIORITY frames are not
//! limited (Envoy: `max_inbound_priority_frames_per_stream`).
//!
//! `h2` reports none of these as a typed event, and the error its connection ends
//! with carries the reason but not the GOAWAY's debug data. The debug data (the
//! strings above) is read off the GOAWAY frame `h2` writes: [`GoawayWatch`] follows
//! the frame boundaries of the connection's output. Any other connection error the
//! codec detected itself (a frame-level PROTOCOL_ERROR and the like) is counted as
//! `http2.rx_messaging_error`.

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
}

impl GoawayWatch {
    /// Bytes `h2` wrote, in order.
    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.left == 0 && self.have < 9 {
                let n = (9 - self.have).min(data.len());
                self.head[self.have..self.have + n].copy_from_slice(&data[..n]);
                self.have += n;
                data = &data[n..];
                if self.have == 9 {
                    let h = self.head;
                    self.left = (usize::from(h[0]) << 16) | (usize::from(h[1]) << 8) | usize::from(h[2]);
                    self.have = 0;
                    self.goaway_at = (h[3] == 7).then_some(0);
                    self.data_frames += u64::from(h[3] == 0);
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
            data = &data[n..];
        }
    }

    /// The debug data of the last GOAWAY written.
    pub fn debug(&self) -> &[u8] {
        &self.debug
    }
}

/// Envoy's `max_inbound_window_update_frames_per_data_frame_sent` (accepted only at
/// its default).
const WINDOW_UPDATES_PER_DATA_FRAME: u64 = 10;

/// Follows the frames the client sends (after its preface) and counts those Envoy
/// limits that `h2` does not: WINDOW_UPDATE, against the DATA frames sent.
#[derive(Debug)]
pub struct InboundWatch {
    /// Preface bytes still to skip.
    skip: usize,
    head: [u8; 9],
    have: usize,
    left: usize,
    /// HEADERS frames received (streams opened, trailers included).
    streams: u64,
    window_updates: u64,
}

impl Default for InboundWatch {
    fn default() -> Self {
        InboundWatch { skip: 24, head: [0; 9], have: 0, left: 0, streams: 0, window_updates: 0 }
    }
}

impl InboundWatch {
    /// Bytes the client sent, in order.
    pub fn feed(&mut self, mut data: &[u8]) {
        let n = self.skip.min(data.len());
        self.skip -= n;
        data = &data[n..];
        while !data.is_empty() {
            if self.left == 0 && self.have < 9 {
                let n = (9 - self.have).min(data.len());
                self.head[self.have..self.have + n].copy_from_slice(&data[..n]);
                self.have += n;
                data = &data[n..];
                if self.have == 9 {
                    let h = self.head;
                    self.left = (usize::from(h[0]) << 16) | (usize::from(h[1]) << 8) | usize::from(h[2]);
                    self.have = 0;
                    self.streams += u64::from(h[3] == 1);
                    self.window_updates += u64::from(h[3] == 8);
                }
                continue;
            }
            let n = self.left.min(data.len());
            self.left -= n;
            data = &data[n..];
        }
    }

    /// Envoy's WINDOW_UPDATE flood check: more than `5 + 2 * (streams + 10 * DATA
    /// frames sent)` WINDOW_UPDATE frames received.
    pub fn window_update_flood(&self, data_frames_sent: u64) -> bool {
        let allowed = 5 + 2 * (self.streams + WINDOW_UPDATES_PER_DATA_FRAME * data_frames_sent);
        self.window_updates > allowed
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
        _ => stats.http2_rx_messaging_error.inc(),
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

    #[test]
    fn window_updates_beyond_envoys_allowance_are_a_flood() {
        let mut w = InboundWatch::default();
        w.feed(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        let wu = [0, 0, 4, 8, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        for _ in 0..5 {
            w.feed(&wu);
        }
        assert!(!w.window_update_flood(0), "5 are allowed before anything was sent");
        w.feed(&wu[..7]);
        w.feed(&wu[7..]);
        assert!(w.window_update_flood(0));
        assert!(!w.window_update_flood(1), "20 more per DATA frame sent");
    }
}
