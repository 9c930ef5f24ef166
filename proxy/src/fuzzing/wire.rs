//! Building HTTP/2 frames and HPACK header blocks by hand, for seeds: no encoder state,
//! every header a literal (or a static-table index), so a seed's bytes read the same
//! whatever came before them.

/// The client connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

pub const DATA: u8 = 0;
pub const HEADERS: u8 = 1;
pub const PRIORITY: u8 = 2;
pub const RST_STREAM: u8 = 3;
pub const SETTINGS: u8 = 4;
pub const PING: u8 = 6;
pub const GOAWAY: u8 = 7;
pub const WINDOW_UPDATE: u8 = 8;
pub const CONTINUATION: u8 = 9;

pub const END_STREAM: u8 = 0x1;
pub const ACK: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;

/// One frame: 9-byte header, then `payload`.
pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len();
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// A SETTINGS frame with `(id, value)` pairs.
pub fn settings(pairs: &[(u16, u32)]) -> Vec<u8> {
    let mut p = Vec::new();
    for (id, v) in pairs {
        p.extend_from_slice(&id.to_be_bytes());
        p.extend_from_slice(&v.to_be_bytes());
    }
    frame(SETTINGS, 0, 0, &p)
}

pub fn window_update(stream: u32, increment: u32) -> Vec<u8> {
    frame(WINDOW_UPDATE, 0, stream, &increment.to_be_bytes())
}

pub fn rst_stream(stream: u32, code: u32) -> Vec<u8> {
    frame(RST_STREAM, 0, stream, &code.to_be_bytes())
}

pub fn goaway(last_stream: u32, code: u32) -> Vec<u8> {
    let mut p = last_stream.to_be_bytes().to_vec();
    p.extend_from_slice(&code.to_be_bytes());
    frame(GOAWAY, 0, 0, &p)
}

/// An HPACK string of fewer than 127 bytes, not Huffman-coded.
fn string(out: &mut Vec<u8>, s: &[u8]) {
    debug_assert!(s.len() < 127);
    out.push(s.len() as u8);
    out.extend_from_slice(s);
}

/// HPACK header block builder.
#[derive(Debug, Default, Clone)]
pub struct Block(pub Vec<u8>);

impl Block {
    /// An indexed field from the static table (e.g. 2 `:method GET`, 4 `:path /`,
    /// 6 `:scheme http`, 8 `:status 200`).
    pub fn indexed(mut self, index: u8) -> Block {
        self.0.push(0x80 | index);
        self
    }

    /// A literal without indexing whose name is static-table entry `name` (< 15).
    pub fn name_ref(mut self, name: u8, value: &[u8]) -> Block {
        self.0.push(name & 0x0f);
        string(&mut self.0, value);
        self
    }

    /// A literal without indexing with a literal name.
    pub fn literal(mut self, name: &[u8], value: &[u8]) -> Block {
        self.0.push(0);
        string(&mut self.0, name);
        string(&mut self.0, value);
        self
    }

    /// A request head: method GET (2) or POST (3), `path`, scheme http, authority `x`.
    pub fn request(post: bool, path: &[u8]) -> Block {
        Block::default().indexed(if post { 3 } else { 2 }).name_ref(4, path).indexed(6).name_ref(1, b"x")
    }

    /// A response head with `status`.
    pub fn response(status: &[u8]) -> Block {
        Block::default().name_ref(8, status)
    }
}

/// A HEADERS frame carrying `block` whole.
pub fn headers(stream: u32, block: &Block, end_stream: bool) -> Vec<u8> {
    frame(HEADERS, END_HEADERS | if end_stream { END_STREAM } else { 0 }, stream, &block.0)
}

/// HEADERS then CONTINUATION frames: `block` cut after `first` bytes and then in
/// pieces of `piece`.
pub fn headers_continued(stream: u32, block: &Block, end_stream: bool, first: usize, piece: usize) -> Vec<u8> {
    let b = &block.0;
    let first = first.min(b.len());
    let mut out = frame(HEADERS, if end_stream { END_STREAM } else { 0 }, stream, &b[..first]);
    let mut rest = &b[first..];
    loop {
        let n = piece.max(1).min(rest.len());
        let last = n == rest.len();
        out.extend(frame(CONTINUATION, if last { END_HEADERS } else { 0 }, stream, &rest[..n]));
        rest = &rest[n..];
        if last {
            return out;
        }
    }
}

pub fn data(stream: u32, body: &[u8], end_stream: bool) -> Vec<u8> {
    frame(DATA, if end_stream { END_STREAM } else { 0 }, stream, body)
}

/// The status of an HTTP/1.1 response at the start of `bytes`, if a whole status line
/// is there.
pub fn http1_status(bytes: &[u8]) -> Option<u16> {
    let line = bytes.split(|&b| b == b'\n').next()?;
    if !bytes.contains(&b'\n') {
        return None;
    }
    let code = line.strip_prefix(b"HTTP/1.1 ")?.get(..3)?;
    std::str::from_utf8(code).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuation_frames_carry_the_rest_of_the_block() {
        let b = Block::request(false, b"/direct");
        let wire = headers_continued(1, &b, true, 3, 4);
        assert_eq!(&wire[..9], &[0, 0, 3, HEADERS, END_STREAM, 0, 0, 0, 1]);
        let mut pos = 9 + 3;
        let mut carried = b.0[..3].to_vec();
        let mut flags = Vec::new();
        while pos < wire.len() {
            let len = usize::from(wire[pos + 2]);
            assert_eq!(wire[pos + 3], CONTINUATION);
            flags.push(wire[pos + 4]);
            carried.extend_from_slice(&wire[pos + 9..pos + 9 + len]);
            pos += 9 + len;
        }
        assert_eq!(carried, b.0);
        let (last, before) = flags.split_last().unwrap();
        assert_eq!(*last, END_HEADERS);
        assert!(before.iter().all(|&f| f == 0));
    }

    #[test]
    fn a_status_line_is_read_only_when_complete() {
        assert_eq!(http1_status(b"HTTP/1.1 503 Service Unavailable\r\n"), Some(503));
        assert_eq!(http1_status(b"HTTP/1.1 200 OK"), None);
        assert_eq!(http1_status(b"garbage\r\n"), None);
    }
}
