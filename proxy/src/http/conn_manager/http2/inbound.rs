//! The client's frames as Envoy's `ProtocolConstraints::trackInboundFrame` sees them,
//! for the inbound flood limits of `http2_protocol_options` that `h2` does not apply as
//! Envoy does (`max_consecutive_inbound_frames_with_empty_payload`,
//! `max_inbound_priority_frames_per_stream`,
//! `max_inbound_window_update_frames_per_data_frame_sent`). The connection manager
//! feeds every byte the client sent before `h2` parses it and checks [`InboundWatch::flood`]
//! each round; the first limit broken ends the connection (see `flood.rs` for the
//! counters and the other defences).

/// Envoy's inbound frame limits of `http2_protocol_options` (`ProtocolConstraints`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InboundLimits {
    /// `max_consecutive_inbound_frames_with_empty_payload` (default 1).
    pub max_consecutive_empty: u32,
    /// `max_inbound_priority_frames_per_stream` (default 100).
    pub max_priority_per_stream: u32,
    /// `max_inbound_window_update_frames_per_data_frame_sent` (default 10).
    pub max_window_updates_per_data_frame: u32,
}

impl Default for InboundLimits {
    fn default() -> Self {
        InboundLimits { max_consecutive_empty: 1, max_priority_per_stream: 100, max_window_updates_per_data_frame: 10 }
    }
}

/// Which of Envoy's inbound limits a client broke (the first one; Envoy stops checking
/// after it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboundFlood {
    /// `http2.inbound_empty_frames_flood`.
    EmptyFrames,
    /// `http2.inbound_priority_frames_flood`.
    PriorityFrames,
    /// `http2.inbound_window_update_frames_flood`.
    WindowUpdateFrames,
}

const DATA: u8 = 0;
const HEADERS: u8 = 1;
const PRIORITY: u8 = 2;
const WINDOW_UPDATE: u8 = 8;
const CONTINUATION: u8 = 9;
const END_STREAM: u8 = 0x1;
const PADDED: u8 = 0x8;

/// Follows the frames the client sends (after its preface) and applies Envoy's
/// inbound limits that `h2` does not apply as Envoy does (`ProtocolConstraints::
/// trackInboundFrame`): consecutive HEADERS, CONTINUATION and DATA frames with an
/// empty payload (padding excluded) and no END_STREAM; PRIORITY frames beyond
/// `max_inbound_priority_frames_per_stream * (1 + opened streams)`; WINDOW_UPDATE
/// frames beyond `5 + 2 * (opened streams + max_inbound_window_update_frames_per_data_frame_sent
/// * DATA frames sent)`.
#[derive(Debug)]
pub struct InboundWatch {
    limits: InboundLimits,
    /// Preface bytes still to skip.
    skip: usize,
    head: [u8; 9],
    have: usize,
    left: usize,
    /// A padded HEADERS or DATA frame whose pad length (its first payload byte) is
    /// still to come: (length, END_STREAM).
    padded: Option<(usize, bool)>,
    /// The highest client stream ID that opened a stream.
    last_stream: u32,
    /// Streams opened (HEADERS on a new stream ID).
    streams: u64,
    consecutive_empty: u64,
    priority: u64,
    window_updates: u64,
    flood: Option<InboundFlood>,
}

impl Default for InboundWatch {
    fn default() -> Self {
        InboundWatch::new(InboundLimits::default())
    }
}

impl InboundWatch {
    pub fn new(limits: InboundLimits) -> InboundWatch {
        InboundWatch {
            limits,
            skip: 24,
            head: [0; 9],
            have: 0,
            left: 0,
            padded: None,
            last_stream: 0,
            streams: 0,
            consecutive_empty: 0,
            priority: 0,
            window_updates: 0,
            flood: None,
        }
    }

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
                    self.have = 0;
                    self.on_frame_header();
                }
                continue;
            }
            let n = self.left.min(data.len());
            if let Some((len, end)) = self.padded.take() {
                // Pad Length counts itself too, as Envoy's padding length.
                self.track_empty(len <= usize::from(data[0]) + 1, end);
            }
            self.left -= n;
            data = &data[n..];
        }
    }

    fn on_frame_header(&mut self) {
        let h = self.head;
        let len = (usize::from(h[0]) << 16) | (usize::from(h[1]) << 8) | usize::from(h[2]);
        let (kind, flags) = (h[3], h[4]);
        let stream = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
        self.left = len;
        match kind {
            HEADERS | DATA | CONTINUATION => {
                if kind == HEADERS && stream % 2 == 1 && stream > self.last_stream {
                    self.last_stream = stream;
                    self.streams += 1;
                }
                let end = kind != CONTINUATION && flags & END_STREAM != 0;
                if kind != CONTINUATION && flags & PADDED != 0 && len > 0 {
                    self.padded = Some((len, end));
                } else {
                    self.track_empty(len == 0, end);
                }
            }
            PRIORITY => {
                self.priority += 1;
                let allowed = u64::from(self.limits.max_priority_per_stream) * (1 + self.streams);
                if self.priority > allowed {
                    self.trip(InboundFlood::PriorityFrames);
                }
            }
            WINDOW_UPDATE => self.window_updates += 1,
            _ => {}
        }
    }

    fn track_empty(&mut self, empty: bool, end_stream: bool) {
        if empty && !end_stream {
            self.consecutive_empty += 1;
            if self.consecutive_empty > u64::from(self.limits.max_consecutive_empty) {
                self.trip(InboundFlood::EmptyFrames);
            }
        } else {
            self.consecutive_empty = 0;
        }
    }

    fn trip(&mut self, flood: InboundFlood) {
        self.flood.get_or_insert(flood);
    }

    /// The first limit the client broke, with `data_frames_sent` DATA frames sent
    /// to it so far.
    pub fn flood(&self, data_frames_sent: u64) -> Option<InboundFlood> {
        if self.flood.is_some() {
            return self.flood;
        }
        let per_data = u64::from(self.limits.max_window_updates_per_data_frame);
        let allowed = 5 + 2 * (self.streams + per_data * data_frames_sent);
        (self.window_updates > allowed).then_some(InboundFlood::WindowUpdateFrames)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len();
        let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn window_updates_beyond_envoys_allowance_are_a_flood() {
        let mut w = InboundWatch::default();
        w.feed(PREFACE);
        let wu = [0, 0, 4, 8, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        for _ in 0..5 {
            w.feed(&wu);
        }
        assert_eq!(w.flood(0), None, "5 are allowed before anything was sent");
        w.feed(&wu[..7]);
        w.feed(&wu[7..]);
        assert_eq!(w.flood(0), Some(InboundFlood::WindowUpdateFrames));
        assert_eq!(w.flood(1), None, "20 more per DATA frame sent");
        let mut w =
            InboundWatch::new(InboundLimits { max_window_updates_per_data_frame: 1, ..InboundLimits::default() });
        w.feed(PREFACE);
        for _ in 0..8 {
            w.feed(&wu);
        }
        assert_eq!(w.flood(1), Some(InboundFlood::WindowUpdateFrames), "5 + 2 * 1 with the limit at 1");
    }

    #[test]
    fn consecutive_empty_frames_without_end_stream_are_a_flood() {
        let mut w = InboundWatch::default();
        w.feed(PREFACE);
        w.feed(&frame(1, 0x4, 1, b"\x82"));
        let empty = frame(0, 0, 1, b"");
        w.feed(&empty);
        assert_eq!(w.flood(0), None, "one is allowed");
        w.feed(&frame(0, 0, 1, b"x"));
        w.feed(&empty);
        assert_eq!(w.flood(0), None, "a frame with payload resets the count");
        // A padded DATA frame whose payload is all padding is empty, too.
        w.feed(&frame(0, 0x8, 1, &[2, 0, 0]));
        assert_eq!(w.flood(0), Some(InboundFlood::EmptyFrames));
        let mut w = InboundWatch::default();
        w.feed(PREFACE);
        for _ in 0..5 {
            w.feed(&frame(0, 0x1, 1, b""));
        }
        assert_eq!(w.flood(0), None, "END_STREAM frames do not count");
        let mut w = InboundWatch::new(InboundLimits { max_consecutive_empty: 3, ..InboundLimits::default() });
        w.feed(PREFACE);
        for _ in 0..3 {
            w.feed(&empty);
        }
        assert_eq!(w.flood(0), None);
        w.feed(&empty);
        assert_eq!(w.flood(0), Some(InboundFlood::EmptyFrames));
    }

    #[test]
    fn priority_frames_beyond_the_per_stream_allowance_are_a_flood() {
        let mut w = InboundWatch::default();
        w.feed(PREFACE);
        w.feed(&frame(1, 0x5, 1, b"\x82"));
        let priority = frame(2, 0, 3, &[0, 0, 0, 1, 16]);
        for _ in 0..200 {
            w.feed(&priority);
        }
        assert_eq!(w.flood(0), None, "100 x (1 + 1 stream)");
        w.feed(&priority);
        assert_eq!(w.flood(0), Some(InboundFlood::PriorityFrames));
    }
}
