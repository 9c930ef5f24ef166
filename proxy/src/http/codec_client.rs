//! One upstream HTTP/1.1 connection (Envoy's `CodecClient` for HTTP/1).
//!
//! It owns the socket and its buffers: requests are encoded into `out` and written as
//! the socket takes them; response bytes are read into `input` and parsed by the
//! owner. Between requests it rests in the worker's pool; it may be reused only when
//! the previous response was read completely and neither side asked to close.

use std::io;
use std::sync::Arc;
use std::time::Instant;

use sluice_stack::{SocketId, Stack};

use crate::buffer::Buffer;
use crate::http::codec::ResponseParser;
use crate::http::flow_control::{self, Watermark};
use crate::transport::TransportSocket;
use crate::upstream::host::Host;

/// Read size for upstream responses.
const READ_CHUNK: usize = 64 * 1024;

#[derive(Debug)]
pub struct CodecClient {
    pub socket: SocketId,
    pub host: Arc<Host>,
    /// Index of the host in its cluster's host set (for retries' host exclusion).
    pub host_index: usize,
    pub cluster: usize,
    /// The connection is established (connect completed).
    pub connected: bool,
    /// Bytes waiting to be written.
    pub out: Buffer,
    /// Bytes read and not yet consumed by the parser or body decoder.
    pub input: Vec<u8>,
    pub input_pos: usize,
    pub parser: ResponseParser,
    /// A read may make progress (edge-triggered hint).
    pub readable: bool,
    /// An event reported the upstream's FIN or RST: reads go on until they reach it, as
    /// no further event will come (a short read does not mean drained).
    pub peer_closed: bool,
    pub read_eof: bool,
    /// Reset or failed; the socket is gone.
    pub dead: bool,
    pub requests: u32,
    pub created: Instant,
    pub idle_since: Instant,
    pub timer_at: Option<Instant>,
    closed: bool,
    /// Watermark of `input` against the cluster's buffer limit.
    pub input_mark: Watermark,
    /// Watermark of the downstream output this connection's response feeds.
    pub downstream_mark: Watermark,
    /// Raw, or TLS originated here.
    pub transport: TransportSocket,
}

/// What a read attempt found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadOutcome {
    /// New bytes are in `input`.
    Data,
    /// Nothing now.
    WouldBlock,
    /// The upstream closed its side.
    Eof,
    /// Reset or error.
    Error,
    /// `input` already holds `limit` bytes: nothing was read (still readable).
    Full,
}

impl CodecClient {
    pub fn new(
        socket: SocketId,
        host: Arc<Host>,
        host_index: usize,
        cluster: usize,
        max_headers: u32,
        now: Instant,
    ) -> Self {
        CodecClient {
            socket,
            host,
            host_index,
            cluster,
            connected: false,
            out: Buffer::new(),
            input: Vec::new(),
            input_pos: 0,
            parser: ResponseParser::new(max_headers),
            readable: false,
            peer_closed: false,
            read_eof: false,
            dead: false,
            requests: 0,
            created: now,
            idle_since: now,
            timer_at: None,
            closed: false,
            input_mark: Watermark::default(),
            downstream_mark: Watermark::default(),
            transport: TransportSocket::Raw,
        }
    }

    /// Unconsumed input.
    pub fn pending_input(&self) -> &[u8] {
        &self.input[self.input_pos..]
    }

    pub fn consume_input(&mut self, n: usize) {
        self.input_pos += n;
        if self.input_pos >= self.input.len() {
            self.input.clear();
            self.input_pos = 0;
        }
    }

    /// Read once into `input` (at most `limit` unconsumed bytes held), through
    /// `scratch` so no buffer is zero-filled per read.
    pub fn read<S: Stack>(&mut self, stack: &mut S, limit: usize, scratch: &mut [u8]) -> ReadOutcome {
        if self.dead {
            return ReadOutcome::Error;
        }
        if self.read_eof {
            return ReadOutcome::Eof;
        }
        if self.input_pos > 0 && self.input_pos * 2 >= self.input.len() {
            self.input.drain(..self.input_pos);
            self.input_pos = 0;
        }
        let held = self.input.len() - self.input_pos;
        if held >= limit {
            return ReadOutcome::Full;
        }
        let want = READ_CHUNK.min(limit - held).min(scratch.len());
        match self.transport.read(stack, self.socket, &mut scratch[..want]) {
            Ok(0) => {
                self.read_eof = true;
                ReadOutcome::Eof
            }
            Ok(n) => {
                flow_control::reserve_within(&mut self.input, n, limit);
                self.input.extend_from_slice(&scratch[..n]);
                // A short read drained the socket: the next arrival is a new event. Not
                // so once the peer's FIN or RST was reported: it waits behind the data.
                if n < want && self.transport.short_read_drains() && !self.peer_closed {
                    self.readable = false;
                }
                ReadOutcome::Data
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.readable = false;
                ReadOutcome::WouldBlock
            }
            Err(_) => {
                self.dead = true;
                ReadOutcome::Error
            }
        }
    }

    /// Write what is queued; returns bytes written. Errors mark the connection dead.
    pub fn flush<S: Stack>(&mut self, stack: &mut S) -> usize {
        let mut total = 0;
        while !self.out.is_empty() && !self.dead {
            match self.transport.write(stack, self.socket, self.out.as_slice()) {
                Ok(0) => break,
                Ok(n) => {
                    self.out.consume(n);
                    total += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => self.dead = true,
            }
        }
        if !self.dead && self.transport.flush(stack, self.socket).is_err() {
            self.dead = true;
        }
        total
    }

    /// Whether the connection could carry another request now.
    pub fn reusable(&self) -> bool {
        self.connected
            && !self.dead
            && !self.read_eof
            && !self.peer_closed
            && self.out.is_empty()
            && self.pending_input().is_empty()
            && !self.transport.has_pending_output()
    }

    /// Whether reading is paused: `input` or the downstream output it feeds is above
    /// its high watermark and has not drained to the low one. `Some(paused)` reports
    /// a change (Envoy's `upstream_flow_control_{paused,resumed}_reading_total`).
    pub fn update_read_pause(
        &mut self,
        input_limit: usize,
        down_len: usize,
        down_limit: usize,
    ) -> (bool, Option<bool>) {
        let before = self.input_mark.above() || self.downstream_mark.above();
        let held = self.input.len() - self.input_pos;
        self.input_mark.update(held, input_limit);
        self.downstream_mark.update(down_len, down_limit);
        let paused = self.input_mark.above() || self.downstream_mark.above();
        (paused, (paused != before).then_some(paused))
    }

    /// Going back to the pool idle: release buffer memory above a small size, so a
    /// pooled connection does not keep what one large response grew.
    pub fn shrink_idle(&mut self) {
        flow_control::shrink_idle(&mut self.input, &mut self.input_pos);
        self.out.clear();
        self.input_mark = Watermark::default();
        self.downstream_mark = Watermark::default();
        self.transport.shrink_idle();
    }

    /// Memory held by this connection's buffers (for accounting and tests).
    pub fn buffered_capacity(&self) -> usize {
        self.input.capacity() + self.out.capacity() + self.transport.buffered_capacity()
    }

    /// Whether [`CodecClient::close`] ran.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Close the socket (reset when `abort`).
    pub fn close<S: Stack>(&mut self, stack: &mut S, abort: bool) {
        if self.closed {
            return;
        }
        self.closed = true;
        if abort {
            stack.abort(self.socket);
        } else {
            stack.close(self.socket);
        }
        self.dead = true;
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::net::TcpListener;
    use std::time::Duration;

    use sluice_stack::kernel::KernelStack;
    use sluice_stack::{Events, Interest, Token};

    use super::*;

    /// The last bytes of a response and the RST behind them arrive before the poll, so
    /// one event reports both: the short read of the bytes must not end reading, or the
    /// reset is never seen (no later event comes for it).
    #[test]
    fn a_reset_reported_with_the_last_bytes_is_read() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let origin_addr = listener.local_addr().unwrap();
        let mut stack = KernelStack::new().unwrap();
        let socket = stack.connect(origin_addr).unwrap();
        stack.register(socket, Token(1), Interest::BOTH).unwrap();
        let (mut origin, _) = listener.accept().unwrap();
        origin.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial").unwrap();
        socket2::SockRef::from(&origin).set_linger(Some(Duration::ZERO)).unwrap();
        drop(origin);

        let mut events = Events::with_capacity(8);
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut peer_closed = false;
        while !peer_closed && Instant::now() < deadline {
            stack.poll(&mut events, Some(Duration::from_millis(100))).unwrap();
            peer_closed = events.iter().any(|e| e.is_read_closed() || e.is_error());
        }
        assert!(peer_closed, "the stack reports the reset");

        let host = Arc::new(Host::new(origin_addr, String::new(), 1, 0, None));
        let mut client = CodecClient::new(socket, host, 0, 0, 100, Instant::now());
        client.readable = true;
        client.peer_closed = peer_closed;
        let mut scratch = vec![0; READ_CHUNK];
        let mut outcomes = Vec::new();
        while client.readable && outcomes.len() < 4 {
            let outcome = client.read(&mut stack, 1 << 20, &mut scratch);
            outcomes.push(outcome);
            if outcome != ReadOutcome::Data {
                break;
            }
        }
        assert_eq!(outcomes, [ReadOutcome::Data, ReadOutcome::Error]);
        assert!(client.dead);
        assert!(client.pending_input().ends_with(b"partial"));
        client.close(&mut stack, true);
    }

    /// Reads stop at the limit: the input never holds more, whatever the socket has.
    #[test]
    fn reads_stop_at_the_limit() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let origin_addr = listener.local_addr().unwrap();
        let mut stack = KernelStack::new().unwrap();
        let socket = stack.connect(origin_addr).unwrap();
        stack.register(socket, Token(1), Interest::BOTH).unwrap();
        let (mut origin, _) = listener.accept().unwrap();
        origin.write_all(&vec![b'x'; 256 * 1024]).unwrap();

        let host = Arc::new(Host::new(origin_addr, String::new(), 1, 0, None));
        let mut client = CodecClient::new(socket, host, 0, 0, 100, Instant::now());
        client.readable = true;
        let mut scratch = vec![0; READ_CHUNK];
        let limit = 100 * 1024;
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut last = ReadOutcome::WouldBlock;
        while last != ReadOutcome::Full && Instant::now() < deadline {
            last = client.read(&mut stack, limit, &mut scratch);
            if last == ReadOutcome::WouldBlock {
                client.readable = true;
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        assert_eq!(last, ReadOutcome::Full);
        assert_eq!(client.pending_input().len(), limit);
        assert!(client.readable, "a full input leaves the socket readable");
        client.consume_input(limit);
        client.shrink_idle();
        assert!(client.buffered_capacity() <= crate::http::flow_control::IDLE_KEEP);
        client.close(&mut stack, true);
    }
}
