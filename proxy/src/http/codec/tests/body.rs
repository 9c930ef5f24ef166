//! Body decoding: every framing, input split at every byte, malformed chunking.

use crate::http::codec::{BodyDecoder, BodyError, BodyFraming};

/// Decode `wire` fed in slices of at most `step` bytes (as a socket would deliver it);
/// returns the body and how many bytes of `wire` the message took.
fn decode_in_steps(framing: BodyFraming, wire: &[u8], step: usize) -> Result<(Vec<u8>, usize, bool), BodyError> {
    let mut dec = BodyDecoder::new(framing, 1024);
    let mut body = Vec::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut fed = 0;
    let mut used = 0;
    loop {
        let input_len = buf.len();
        let d = dec.decode(&buf)?;
        assert!(d.data.end <= d.consumed && d.consumed <= input_len);
        body.extend_from_slice(&buf[d.data.clone()]);
        buf.drain(..d.consumed);
        used += d.consumed;
        if d.end {
            return Ok((body, used, true));
        }
        if d.needs_more(input_len) || input_len == 0 {
            if fed == wire.len() {
                return Ok((body, used, false));
            }
            let n = step.min(wire.len() - fed);
            buf.extend_from_slice(&wire[fed..fed + n]);
            fed += n;
        }
    }
}

fn decode_all(framing: BodyFraming, wire: &[u8]) -> Result<(Vec<u8>, usize, bool), BodyError> {
    decode_in_steps(framing, wire, usize::MAX)
}

#[test]
fn content_length_stops_at_the_end() {
    let (body, used, end) = decode_all(BodyFraming::Length(5), b"helloGET / HTTP/1.1").unwrap();
    assert_eq!((body.as_slice(), used, end), (&b"hello"[..], 5, true));
    let (body, _, end) = decode_all(BodyFraming::Length(10), b"hello").unwrap();
    assert_eq!((body.as_slice(), end), (&b"hello"[..], false));
}

#[test]
fn no_body_is_done_at_once() {
    let mut d = BodyDecoder::new(BodyFraming::None, 0);
    assert!(d.is_done());
    let r = d.decode(b"next request").unwrap();
    assert_eq!((r.consumed, r.end), (0, true));
    assert!(BodyDecoder::new(BodyFraming::Length(0), 0).is_done());
}

const CHUNKED: &[u8] = b"5\r\nhello\r\n1;ext=1;other\r\n \r\nA \r\n0123456789\r\n0\r\n\r\nNEXT";

#[test]
fn chunked_with_extensions_at_every_split() {
    for step in 1..CHUNKED.len() {
        let (body, used, end) = decode_in_steps(BodyFraming::Chunked, CHUNKED, step).unwrap();
        assert_eq!(body, b"hello 0123456789", "step {step}");
        assert_eq!((used, end), (CHUNKED.len() - 4, true), "step {step}");
    }
}

#[test]
fn chunked_data_is_zero_copy_ranges() {
    let mut d = BodyDecoder::new(BodyFraming::Chunked, 1024);
    let r = d.decode(CHUNKED).unwrap();
    assert_eq!((r.data, r.consumed, r.end), (3..8, 8, false));
    let rest = &CHUNKED[8..];
    let r = d.decode(rest).unwrap();
    assert_eq!(&rest[r.data.clone()], b" ");
}

#[test]
fn chunked_trailers_are_validated_and_dropped() {
    let wire = b"3\r\nabc\r\n0\r\nX-Checksum: 1\r\nX-Other: two\r\n\r\n";
    for step in 1..wire.len() {
        let (body, used, end) = decode_in_steps(BodyFraming::Chunked, wire, step).unwrap();
        assert_eq!((body.as_slice(), used, end), (&b"abc"[..], wire.len(), true));
    }
    let bad = |w: &[u8]| decode_all(BodyFraming::Chunked, w).unwrap_err();
    assert_eq!(bad(b"0\r\nNo colon\r\n\r\n"), BodyError::InvalidTrailer);
    assert_eq!(bad(b"0\r\n folded: x\r\n\r\n"), BodyError::InvalidTrailer);
    assert_eq!(bad(b"0\r\nX: a\x00\r\n\r\n"), BodyError::InvalidTrailer);
    assert_eq!(bad(b"0\r\nX: a\n\r\n"), BodyError::InvalidTrailer);
    assert_eq!(bad(b"5\r\nhello\r\n0\r\n\n"), BodyError::InvalidTrailer);
    let mut huge = b"0\r\nX: ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 2000));
    assert_eq!(bad(&huge), BodyError::TrailersTooLarge);
    assert_eq!(BodyError::TrailersTooLarge.status(), 431);
}

#[test]
fn malformed_chunking_is_refused() {
    let bad = |w: &[u8]| decode_all(BodyFraming::Chunked, w).unwrap_err();
    for wire in [
        &b"x\r\n"[..],
        b"\r\n",
        b" 5\r\nhello\r\n0\r\n\r\n",
        b"-5\r\n",
        b"5\nhello\r\n0\r\n\r\n",
        b"5\r\nhelloXX0\r\n\r\n",
        b"5\r\nhello\n0\r\n\r\n",
        b"5;a\x00b\r\n",
        b"5;a\nb\r\n",
        b"5 x\r\n",
        b"5\rx",
        b"0\r\n\rx",
    ] {
        assert_eq!(bad(wire), BodyError::InvalidChunk, "{:?}", String::from_utf8_lossy(wire));
    }
    assert_eq!(BodyError::InvalidChunk.details(), "http1.codec_error");
}

#[test]
fn chunk_size_is_bounded() {
    let bad = |w: &[u8]| decode_all(BodyFraming::Chunked, w).unwrap_err();
    // 17 digits overflow 64 bits (llhttp's "Chunk size overflow").
    assert_eq!(bad(b"10000000000000000\r\n"), BodyError::InvalidChunk);
    // 16 digits that llhttp still takes, but no body this large can ever complete.
    assert_eq!(bad(b"ffffffffffffffff\r\nab"), BodyError::InvalidChunk);
    assert_eq!(bad(b"8000000000000000\r\nab"), BodyError::InvalidChunk);
    // Refused at the offending digit, before the line ends.
    assert_eq!(bad(b"8000000000000000"), BodyError::InvalidChunk);
    // The largest size accepted, 2^63 - 1, parses (and then waits for its data).
    let (_, _, end) = decode_all(BodyFraming::Chunked, b"7fffffffffffffff\r\nab").unwrap();
    assert!(!end);
    // Leading zeros do not count; an endless size line is refused.
    let (body, _, end) = decode_all(BodyFraming::Chunked, b"0000000000000000000003\r\nabc\r\n0\r\n\r\n").unwrap();
    assert_eq!((body.as_slice(), end), (&b"abc"[..], true));
    let mut long = b"1;".to_vec();
    long.extend(std::iter::repeat_n(b'x', 5000));
    assert_eq!(bad(&long), BodyError::InvalidChunk);
}

#[test]
fn until_close_takes_everything_and_ends_at_eof() {
    let mut d = BodyDecoder::new(BodyFraming::UntilClose, 0);
    let r = d.decode(b"all of it").unwrap();
    assert_eq!((r.data, r.consumed, r.end), (0..9, 9, false));
    d.finish_at_eof().unwrap();
    assert!(d.is_done());
}

#[test]
fn eof_inside_a_framed_body_is_truncation() {
    let mut d = BodyDecoder::new(BodyFraming::Length(10), 0);
    d.decode(b"12345").unwrap();
    assert_eq!(d.remaining(), Some(5));
    assert_eq!(d.finish_at_eof(), Err(BodyError::Truncated));
    let mut d = BodyDecoder::new(BodyFraming::Chunked, 64);
    d.decode(b"5\r\nab").unwrap();
    assert_eq!(d.finish_at_eof(), Err(BodyError::Truncated));
    let mut d = BodyDecoder::new(BodyFraming::Chunked, 64);
    assert!(d.decode(b"0\r\n\r\n").unwrap().end);
    assert_eq!(d.finish_at_eof(), Ok(()));
}

#[test]
fn backpressure_by_short_slices() {
    // The caller hands the decoder only what it can forward; nothing is lost.
    let wire = b"a\r\n0123456789\r\n0\r\n\r\n";
    let mut d = BodyDecoder::new(BodyFraming::Chunked, 64);
    let mut pos = 0;
    let mut body = Vec::new();
    while !d.is_done() {
        let window = &wire[pos..(pos + 3).min(wire.len())];
        let r = d.decode(window).unwrap();
        body.extend_from_slice(&window[r.data]);
        pos += r.consumed;
    }
    assert_eq!((body.as_slice(), pos), (&b"0123456789"[..], wire.len()));
}
